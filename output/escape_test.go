package output

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":             "plain name",
		"Производство 🤖":         "Производство 🤖",
		"x\x1b]0;pwned\a":        `x\x1b]0;pwned\x07`,
		"a\rb\x00c\td\ne":        `a\x0db\x00c\x09d\x0ae`,
		"invoice\u202efdp.exe":   `invoice\u202efdp.exe`,
		"\u2066isolate\u2069":    `\u2066isolate\u2069`,
		"bad\xffbyte":            `bad\xffbyte`,
		"c1\u009bcontrol":        `c1\u009bcontrol`,
		"back\\slash":            `back\slash`,
		"line\u2028separator":    `line\u2028separator`,
		"keeps U+FFFD \ufffd ok": "keeps U+FFFD \ufffd ok",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("x\x1b]0;pwned\a\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		for _, r := range out {
			if needsEscape(r) {
				t.Fatalf("Escape(%q) = %q keeps %U", s, out, r)
			}
		}
		if Escape(out) != out {
			t.Fatalf("Escape(Escape(%q)) changed again", s)
		}
	})
}
