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

// A string the Scanner reads is the string encoding/json reads; one it
// refuses is one with an escape, a control character or invalid UTF-8.
func FuzzScannerString(f *testing.F) {
	for _, s := range seeds {
		f.Add(`"` + s + `"`)
		f.Add(`  "` + s + `" `)
	}
	f.Add(`"unterminated`)
	f.Add(`"esc\"aped"`)
	f.Fuzz(func(t *testing.T, text string) {
		sc := NewScanner([]byte(text))
		sc.Space()
		got, ok := sc.Str()
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal([]byte(text[:sc.i]), &want); err != nil {
			t.Fatalf("Str read %q from %q, which encoding/json refuses: %v", got, text, err)
		}
		if got != want {
			t.Fatalf("Str read %q from %q, encoding/json %q", got, text, want)
		}
	})
}

func TestScanner(t *testing.T) {
	sc := NewScanner([]byte(` { "key" : "sk_live_x", "n":"é"} `))
	sc.Space()
	if !sc.Take('{') {
		t.Fatal("no {")
	}
	sc.Space()
	if q, ok := sc.Quoted(); !ok || string(q) != `"key"` {
		t.Fatalf("Quoted = %q, %v", q, ok)
	}
	sc.Space()
	if !sc.Take(':') || sc.Take(':') {
		t.Fatal("Take(':') should read one colon")
	}
	sc.Space()
	if s, ok := sc.Str(); !ok || s != "sk_live_x" {
		t.Fatalf("Str = %q, %v", s, ok)
	}
	if sc.End() {
		t.Fatal("End before the end")
	}
	if !sc.Take(',') {
		t.Fatal("no ,")
	}
	sc.Space()
	if r, ok := sc.Raw(); !ok || string(r) != "n" {
		t.Fatalf("Raw = %q, %v", r, ok)
	}
	sc.Take(':')
	if s, ok := sc.Str(); !ok || s != "é" {
		t.Fatalf("Str = %q, %v", s, ok)
	}
	if !sc.Take('}') || !sc.End() {
		t.Fatal("not at the end after }")
	}
	for _, bad := range []string{`"a\nb"`, "\"a\x01\"", "\"\xff\"", `"open`, `x`, ``} {
		sc := NewScanner([]byte(bad))
		if s, ok := sc.Str(); ok {
			t.Errorf("Str read %q from %q", s, bad)
		}
	}
}

func TestNameAndNext(t *testing.T) {
	sc := NewScanner([]byte(`{ "a" : 1 , "b":[2 ,3] }`))
	sc.Take('{')
	if n, ok := sc.Name(); !ok || string(n) != "a" {
		t.Fatalf("Name = %q, %v", n, ok)
	}
	sc.Take('1')
	if more, ok := sc.Next('}'); !more || !ok {
		t.Fatalf("Next after 1 = %v, %v; want a comma", more, ok)
	}
	if n, ok := sc.Name(); !ok || string(n) != "b" {
		t.Fatalf("Name = %q, %v", n, ok)
	}
	sc.Take('[')
	sc.Take('2')
	if more, ok := sc.Next(']'); !more || !ok {
		t.Fatalf("Next after 2 = %v, %v; want a comma", more, ok)
	}
	sc.Take('3')
	if more, ok := sc.Next(']'); more || !ok {
		t.Fatalf("Next after 3 = %v, %v; want the ]", more, ok)
	}
	if more, ok := sc.Next('}'); more || !ok || !sc.End() {
		t.Fatalf("Next after ] = %v, %v; want the } and the end", more, ok)
	}
	for _, bad := range []string{`"a" 1`, `a:`, `"a\n":`, ``} {
		sc := NewScanner([]byte(bad))
		if n, ok := sc.Name(); ok {
			t.Errorf("Name read %q from %q", n, bad)
		}
	}
	for _, bad := range []string{` ]`, `x`, ``} {
		sc := NewScanner([]byte(bad))
		if _, ok := sc.Next('}'); ok {
			t.Errorf("Next('}') took %q", bad)
		}
	}
}
