package keystore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestContainsSecret(t *testing.T) {
	live := mustToken(t, keystore.EnvLive, seeded(7))
	test := mustToken(t, keystore.EnvTest, seeded(8))
	mistyped := live[:20] + flip(live[20]) + live[21:]
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{live, true},
		{test, true},
		{"prod " + live + " key", true},
		{"sk_sk_live_" + live[8:], true},
		{"xsk_" + live, true},
		{strings.Repeat("sk_", 20) + test, true},
		{mistyped, false},            // checksum fails: not a secret
		{live[:45], false},           // truncated
		{keystore.Hint(live), false}, // a display hint
		{"sk_live_" + strings.Repeat("A", 38), false},
		{"", false},
		{"Production Server", false},
	} {
		if got := keystore.ContainsSecret(tc.in); got != tc.want {
			t.Errorf("ContainsSecret(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestValidateRefuses: every entry point validates through
// CreateParams.Validate; what it refuses, and that no error repeats a
// secret.
func TestValidateRefuses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	secret := mustToken(t, keystore.EnvLive, seeded(9))
	ok := func() keystore.CreateParams {
		return keystore.CreateParams{Name: "ci", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "x"}}
	}
	for _, tc := range []struct {
		name string
		edit func(*keystore.CreateParams)
		want string
	}{
		{"secret as name", func(p *keystore.CreateParams) { p.Name = secret }, "looks like a secret"},
		{"secret inside name", func(p *keystore.CreateParams) { p.Name = "key " + secret }, "looks like a secret"},
		{"secret as metadata value", func(p *keystore.CreateParams) { p.Metadata["k"] = secret }, "looks like a secret"},
		{"secret as metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{secret: "v"} }, "looks like a secret"},
		{"secret as scope", func(p *keystore.CreateParams) { p.Scopes = []string{secret} }, "looks like a secret"},
		{"invalid UTF-8 name", func(p *keystore.CreateParams) { p.Name = "bad\xffname" }, "not valid UTF-8"},
		{"replacement char name", func(p *keystore.CreateParams) { p.Name = "bad\ufffdname" }, "U+FFFD"},
		{"invisible name", func(p *keystore.CreateParams) { p.Name = "\ufeff\u200b" }, "no visible character"},
		{"filler name", func(p *keystore.CreateParams) { p.Name = "\u3164 \u2800" }, "no visible character"},
		{"bidi override name", func(p *keystore.CreateParams) { p.Name = "ci\u202etxt.exe" }, "bidirectional"},
		{"bidi isolate name", func(p *keystore.CreateParams) { p.Name = "ci\u2066x" }, "bidirectional"},
		{"escape name", func(p *keystore.CreateParams) { p.Name = "ci\x1b]0;pwned\a" }, "control characters"},
		{"escape in metadata value", func(p *keystore.CreateParams) { p.Metadata["k"] = "\x1b]0;pwned\a" }, "control characters"},
		{"NUL in metadata value", func(p *keystore.CreateParams) { p.Metadata["k"] = "a\x00b" }, "control characters"},
		{"CR in metadata value", func(p *keystore.CreateParams) { p.Metadata["k"] = "a\rb" }, "control characters"},
		{"invalid UTF-8 metadata value", func(p *keystore.CreateParams) { p.Metadata["k"] = "a\xc3" }, "not valid UTF-8"},
		{"escape in metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"k\x1b": "v"} }, "control characters"},
		{"bidi in metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"k\u202e": "v"} }, "bidirectional"},
		{"invisible metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"\u200b": "v"} }, "no visible character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok()
			if err := p.Validate(now); err != nil {
				t.Fatalf("the base params fail: %v", err)
			}
			p = ok()
			tc.edit(&p)
			err := p.Validate(now)
			if err == nil {
				t.Fatalf("Validate accepted %+v", p)
			}
			if keystore.ErrorCode(err) != keystore.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v (%s), want EINVALID containing %q", err, keystore.ErrorCode(err), tc.want)
			}
			if strings.Contains(err.Error(), secret[:20]) || strings.ContainsAny(err.Error(), "\x1b\x00\r\u202e\u2066") {
				t.Errorf("error repeats its input: %q", err)
			}
		})
	}
	// What stays allowed: non-Latin names, emoji, a hint, RTL text.
	for _, name := range []string{"Производство", "ボット", "bot 🤖", keystore.Hint(secret), "שלום עולם", "a\u200db"} {
		p := ok()
		p.Name = name
		if err := p.Validate(now); err != nil {
			t.Errorf("Validate refused name %q: %v", name, err)
		}
	}
}

func TestExpandScopesHidesSecret(t *testing.T) {
	secret := mustToken(t, keystore.EnvTest, seeded(10))
	_, err := keystore.ExpandScopes([]string{"bots:read", secret})
	if err == nil || strings.Contains(err.Error(), secret[:20]) {
		t.Fatalf("ExpandScopes(secret) = %v, want an error without the secret", err)
	}
}

// FuzzContainsSecret: ContainsSecret is true exactly when some 46 bytes of
// the input parse as a token.
func FuzzContainsSecret(f *testing.F) {
	f.Add("sk_live_" + strings.Repeat("a", 38))
	f.Add("x " + mustToken(f, keystore.EnvLive, seeded(11)) + " y")
	f.Add("sk_test_sk_test_")
	f.Fuzz(func(t *testing.T, s string) {
		want := false
		for i := 0; i+keystore.TokenLen <= len(s); i++ {
			if _, err := keystore.ParseToken(s[i : i+keystore.TokenLen]); err == nil {
				want = true
				break
			}
		}
		if got := keystore.ContainsSecret(s); got != want {
			t.Fatalf("ContainsSecret(%q) = %v, want %v", s, got, want)
		}
	})
}
