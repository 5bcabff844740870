package keystore

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	secret, err := NewToken(EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	random := secret[len("sk_live_"):]
	for _, in := range []string{
		secret,
		"x" + secret + "y",
		strings.ToUpper(secret[:10]) + "abc",
		"sk_test_a",
		random,
		random[:16],
		random[10:30],
		"name=" + random[5:25],
	} {
		if got := Quote(in); strings.Contains(got, random[:4]) && in != "sk_test_a" || !strings.Contains(got, "not shown") {
			t.Errorf("Quote(%.12s…) = %s: shows it", in, got)
		}
	}
	for in, want := range map[string]string{
		"bogus":                        `"bogus"`,
		"a\x1b]0;pwned\a\u202e":        `"a\x1b]0;pwned\a\u202e"`,
		strings.Repeat("abcd", 20):     `"` + strings.Repeat("abcd", 10) + `…"`,
		"key_3nF8a9QzLm2Xc7Pb":         `"key_3nF8a9QzLm2Xc7Pb"`,
		"internationalization":         `"internationalization"`,
		"req_0123456789abcdef01234567": `"req_0123456789abcdef01234567"`,
		"conversations:write":          `"conversations:write"`,
		"sk_live_":                     `"sk_live_"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	const secret = "sk_live_3nF8000000000000000000000000000000a9Qz"
	for in, want := range map[string]string{
		`unknown command "` + secret + `" for "keyctl"`: `unknown command "sk_live_3nF8…" for "keyctl"`,
		"sk_test_abcde sk_test_abcd":                    "sk_test_abcd… sk_test_abcd",
		"hint sk_live_3nF8…a9Qz stays":                  "hint sk_live_3nF8…a9Qz stays",
		"task_sk_x sk_":                                 "task_sk_x sk_",
		"no key here":                                   "no key here",
		`{"key":"` + secret + `"}`:                      `{"key":"sk_live_3nF8…"}`,
	} {
		if got := RedactSecrets(in); got != want {
			t.Errorf("RedactSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}
