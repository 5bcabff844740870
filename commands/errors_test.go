package commands

import "testing"

func TestRedactSecrets(t *testing.T) {
	const secret = "sk_live_3nF8000000000000000000000000000000a9Qz"
	for in, want := range map[string]string{
		`unknown command "` + secret + `" for "keyctl"`: `unknown command "sk_live_3nF8…" for "keyctl"`,
		`malformed key id "` + secret[:40] + `…"`:       `malformed key id "sk_live_3nF8……"`,
		"sk_test_abcde sk_test_abcd":                    "sk_test_abcd… sk_test_abcd",
		"hint sk_live_3nF8…a9Qz stays":                  "hint sk_live_3nF8…a9Qz stays",
		"key key_3nF8a9QzLm2Xc7Pb not found":            "key key_3nF8a9QzLm2Xc7Pb not found",
		"whsec_sk_live_3nF80000":                        "whsec_sk_live_3nF8…",
	} {
		if got := redactSecrets(in); got != want {
			t.Errorf("redactSecrets(%q) = %q, want %q", in, got, want)
		}
		if got := redactSecrets(want); got != want {
			t.Errorf("redactSecrets(%q) = %q: not idempotent", want, got)
		}
	}
}
