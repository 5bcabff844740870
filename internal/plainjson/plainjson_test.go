package plainjson

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

var seeds = []string{"", "POST", "/v1/api-keys/verify", "req_0123456789abcdef01234567", "sk_live_JPf2…lyLO",
	"abcdefg\"", "abcdefgh\\", "abcdefgh\x1f", "abcdefgh\x7f", "abcdefgh\x80", "abcdefg<", "abcdefgh>", "abcdefgh&&",
	" !#$%&'()*+,-./0123456789", "\x00\x00\x00\x00\x00\x00\x00\x00", "a\u2028b\u2029", "\xff\xfe", "é\"<", "tab\there"}

// PlainPrefix, eight bytes at a time, agrees with the byte-wise tables.
func FuzzPlainPrefix(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{false, true} {
			table := strPlain
			if html {
				table = htmlPlain
			}
			want := 0
			for want < len(s) && table[s[want]] {
				want++
			}
			if got := PlainPrefix(s, html); got != want {
				t.Fatalf("PlainPrefix(%q, %v) = %d, want %d", s, html, got, want)
			}
			if got := PlainPrefix([]byte(s), html); got != want {
				t.Fatalf("PlainPrefix([]byte(%q), %v) = %d, want %d", s, html, got, want)
			}
		}
	})
}

func TestPlainPrefixEveryByte(t *testing.T) {
	for _, html := range []bool{false, true} {
		table := strPlain
		if html {
			table = htmlPlain
		}
		for c := 0; c < 256; c++ {
			for pos := 0; pos < 16; pos++ {
				b := []byte("abcdefghijklmnop")
				b[pos] = byte(c)
				want := 16
				if !table[c] {
					want = pos
				}
				if got := PlainPrefix(string(b), html); got != want {
					t.Fatalf("byte %#x at %d (html %v): %d, want %d", c, pos, html, got, want)
				}
			}
		}
	}
}

// AppendString writes what json.Marshal writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got[1:], want)
		}
	})
}

// AppendSlogString writes what log/slog's JSONHandler writes.
func FuzzAppendSlogString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add("\b\f<>&")
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
				return slog.Attr{}
			}
			return a
		},
	})
	f.Fuzz(func(t *testing.T, s string) {
		buf.Reset()
		r := slog.Record{}
		r.AddAttrs(slog.String("s", s))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want := "{\"s\":" + string(AppendSlogString(nil, s)) + "}\n"
		if buf.String() != want {
			t.Fatalf("AppendSlogString(%q): %s, slog: %s", s, want, buf.String())
		}
	})
}
