package keystore_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/chatbotplatform/keyctl/keystore"
)

func scanAll(t testing.TB, r io.Reader) ([]keystore.Leak, int) {
	t.Helper()
	var s keystore.LeakScanner
	var got []keystore.Leak
	if err := s.Scan(r, func(l keystore.Leak) error { got = append(got, l); return nil }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return got, s.Dropped
}

func newKey(t testing.TB, env string, seed byte) string {
	t.Helper()
	k, err := keystore.NewToken(env, seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// broken is key with its last character changed: the checksum fails.
func broken(key string) string {
	c := byte('A')
	if key[len(key)-1] == 'A' {
		c = 'B'
	}
	return key[:len(key)-1] + string(c)
}

func TestScanLeaks(t *testing.T) {
	live, test := newKey(t, "live", 1), newKey(t, "test", 2)
	noise := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0x3c, 0x7e}, 20))
	type want struct {
		secret       string
		line, column int
	}
	tests := []struct {
		name    string
		in      string
		want    []want
		dropped int
	}{
		{"alone", live, []want{{live, 1, 1}}, 0},
		{"in code", "package x\n\nconst k = \"" + live + "\"\n", []want{{live, 3, 12}}, 0},
		{"two on a line", live + " " + test, []want{{live, 1, 1}, {test, 1, 48}}, 0},
		{"url", "GET https://api.example.com/v1/bots?key=" + live + "&page=2\n", []want{{live, 1, 41}}, 0},
		{"url encoded", "curl 'https://x.io/?a=1&key=" + test + "%26b'\n", []want{{test, 1, 29}}, 0},
		{"json escapes", `{"cmd":"export K=\"` + live + `\"\n","next":"\u00e9` + test + `\t"}`,
			[]want{{live, 1, 20}, {test, 1, 86}}, 0},
		{"json escape as a break", `{"k":"` + live[:20] + `\n` + live[20:] + `"}`, []want{{live, 1, 7}}, 0},
		{"base64 noise around", noise + live + noise + "\n" + noise[:7] + test + "==", []want{{live, 1, 81}, {test, 2, 8}}, 0},
		{"wrapped", "token:\n  " + live[:30] + "\n  " + live[30:] + "\n", []want{{live, 2, 3}}, 0},
		{"crlf wrapped", live[:10] + "\r\n" + live[10:], []want{{live, 1, 1}}, 0},
		{"string concatenation", "k := \"" + live[:25] + "\" +\n\t\"" + live[25:] + "\"\n", []want{{live, 1, 7}}, 0},
		{"shell continuation", "X=" + test[:12] + "\\\n" + test[12:] + "\n", []want{{test, 1, 3}}, 0},
		{"bad checksum", "k=" + broken(live) + "\n", nil, 1},
		{"broken and good", broken(live) + "\n" + test, []want{{test, 2, 1}}, 1},
		{"too short", live[:40] + "\n", nil, 0},
		{"prefix only", "sk_live_ sk_test_\nsk_prod_" + live[8:], nil, 0},
		{"two breaks in a row are not one", live[:20] + "\n\n" + live[20:], nil, 0},
		{"key followed by more base62", live + "abcdef", []want{{live, 1, 1}}, 0},
		{"prefix in the middle of a word", "ask_" + live, []want{{live, 1, 5}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{{"whole", strings.NewReader(tt.in)}, {"one byte", iotest.OneByteReader(strings.NewReader(tt.in))}} {
				got, dropped := scanAll(t, r.r)
				if len(got) != len(tt.want) {
					t.Fatalf("%s: found %d keys, want %d: %+v", r.name, len(got), len(tt.want), got)
				}
				for i, w := range tt.want {
					if got[i].Secret != w.secret || got[i].Line != w.line || got[i].Column != w.column {
						t.Errorf("%s: finding %d at %d:%d, want %d:%d (same secret: %v)", r.name, i, got[i].Line, got[i].Column, w.line, w.column, got[i].Secret == w.secret)
					}
				}
				if dropped != tt.dropped {
					t.Errorf("%s: dropped %d, want %d", r.name, dropped, tt.dropped)
				}
			}
		})
	}
}

// TestScanLeaksChunks puts keys across the scanner's buffer boundaries.
func TestScanLeaksChunks(t *testing.T) {
	key := newKey(t, "live", 3)
	for _, at := range []int{64<<10 - 50, 64<<10 - 20, 64<<10 - 3, 64<<10 - 1, 64 << 10, 128<<10 - 10, 200 << 10} {
		var b strings.Builder
		lines := 0
		for b.Len() < at {
			b.WriteString(strings.Repeat("x", 99) + "\n")
			lines++
		}
		s := b.String()[:at]
		lines = strings.Count(s, "\n")
		col := at - (strings.LastIndexByte(s, '\n') + 1) + 1
		in := s + key[:30] + "\n" + key[30:] + "\n" + strings.Repeat("sk_", 1000)
		got, dropped := scanAll(t, strings.NewReader(in))
		if len(got) != 1 || got[0].Secret != key || got[0].Line != lines+1 || got[0].Column != col || got[0].Offset != int64(at) {
			t.Fatalf("key at %d: got %+v, want line %d column %d", at, got, lines+1, col)
		}
		if dropped != 0 {
			t.Fatalf("dropped %d", dropped)
		}
	}
}

func TestScanLeaksLarge(t *testing.T) {
	key := newKey(t, "test", 4)
	var b bytes.Buffer
	n := 0
	for i := range 20000 {
		b.WriteString("line with some sk_ noise and sk_live_short text\n")
		if i%997 == 0 {
			b.WriteString("k=" + key + "\n")
			n++
		}
	}
	got, _ := scanAll(t, &b)
	if len(got) != n {
		t.Fatalf("found %d, want %d", len(got), n)
	}
}

func TestScanLeaksBinary(t *testing.T) {
	key := newKey(t, "live", 5)
	s := keystore.LeakScanner{SkipBinary: true}
	err := s.Scan(strings.NewReader("\x7fELF\x00\x00"+key), func(keystore.Leak) error {
		t.Fatal("reported a key of binary data")
		return nil
	})
	if !errors.Is(err, keystore.ErrBinary) {
		t.Fatalf("err = %v, want ErrBinary", err)
	}
	// A NUL past the first 8000 bytes: text, as for git.
	got := 0
	err = s.Scan(strings.NewReader(strings.Repeat("a", 9000)+"\x00"+key), func(keystore.Leak) error { got++; return nil })
	if err != nil || got != 1 {
		t.Fatalf("late NUL: err %v, found %d", err, got)
	}
	// Without SkipBinary, binary data is scanned.
	got = 0
	var plain keystore.LeakScanner
	if err := plain.Scan(strings.NewReader("\x00"+key), func(keystore.Leak) error { got++; return nil }); err != nil || got != 1 {
		t.Fatalf("binary scanned: err %v, found %d", err, got)
	}
}

func TestScanLeaksCallbackError(t *testing.T) {
	key := newKey(t, "live", 6)
	stop := errors.New("stop")
	var s keystore.LeakScanner
	n := 0
	err := s.Scan(strings.NewReader(key+"\n"+key), func(keystore.Leak) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d calls, want stop after 1", err, n)
	}
}

func FuzzScanLeaks(f *testing.F) {
	key := newKey(f, "live", 7)
	f.Add([]byte(key))
	f.Add([]byte("a\nb " + key[:20] + "\" +\n \"" + key[20:] + "\n"))
	f.Add([]byte(broken(key) + "sk_test_" + key[8:]))
	f.Add([]byte(`{"k":"` + key[:9] + `\n` + key[9:] + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, dropped := scanAll(t, bytes.NewReader(data))
		bytewise, dropped2 := scanAll(t, iotest.OneByteReader(bytes.NewReader(data)))
		if len(whole) != len(bytewise) || dropped != dropped2 {
			t.Fatalf("whole read: %d found %d dropped; byte by byte: %d found %d dropped", len(whole), dropped, len(bytewise), dropped2)
		}
		last := int64(-1)
		for i, l := range whole {
			if l != bytewise[i] {
				t.Fatalf("finding %d differs: %+v and %+v", i, l, bytewise[i])
			}
			if _, err := keystore.ParseToken(l.Secret); err != nil {
				t.Fatalf("reported a secret that fails ParseToken: %v", err)
			}
			if l.Offset <= last || !bytes.HasPrefix(data[l.Offset:], []byte(l.Secret[:8])) {
				t.Fatalf("finding %d at offset %d: not a key's start after %d", i, l.Offset, last)
			}
			last = l.Offset
			before := data[:l.Offset]
			if line := bytes.Count(before, []byte{'\n'}) + 1; line != l.Line {
				t.Fatalf("line %d, want %d", l.Line, line)
			}
			if col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1; col != l.Column {
				t.Fatalf("column %d, want %d", l.Column, col)
			}
		}
		// A valid key alone is found.
		if _, err := keystore.ParseToken(string(data)); err == nil && len(whole) != 1 {
			t.Fatalf("a whole key not found")
		}
	})
}
