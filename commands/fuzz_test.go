package commands

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatbotplatform/keyctl/keystore"
)

// FuzzParseMeta: --meta pairs, NUL-separated in one input so that the
// fuzzer also tries several, are accepted exactly when each has a key
// before its first "=" and no key comes twice; what is accepted maps each
// key to the rest of its pair, and anything else is a one-line usage error.
func FuzzParseMeta(f *testing.F) {
	for _, s := range []string{
		"team=platform", "a=1\x00b=2", "a=1\x00a=2", "novalue", "=v", " =v", "k=", "k==v", "k=v=w",
		"\x00", "", "é=ü", "k\n=v", "a=\x00", strings.Repeat("k", 41) + "=v",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var pairs []string
		if in != "" {
			pairs = strings.Split(in, "\x00")
		}
		meta, err := parseMeta(pairs)

		want := map[string]string{}
		valid := true
		for _, p := range pairs {
			k, v, ok := strings.Cut(p, "=")
			if _, dup := want[k]; !ok || strings.TrimSpace(k) == "" || dup {
				valid = false
				break
			}
			want[k] = v
		}
		if err != nil {
			if valid {
				t.Fatalf("parseMeta(%q) rejected valid pairs: %v", pairs, err)
			}
			if meta != nil {
				t.Fatalf("parseMeta(%q) returned %v with an error", pairs, meta)
			}
			if exitCode(err) != exitUsage {
				t.Fatalf("parseMeta(%q) error %v exits %d, want %d", pairs, err, exitCode(err), exitUsage)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
				t.Fatalf("parseMeta(%q) error is not one line of text: %q", pairs, msg)
			}
			return
		}
		if !valid {
			t.Fatalf("parseMeta(%q) = %v, want an error", pairs, meta)
		}
		if len(meta) != len(want) {
			t.Fatalf("parseMeta(%q) = %v, want %v", pairs, meta, want)
		}
		for k, v := range want {
			if got, ok := meta[k]; !ok || got != v {
				t.Fatalf("parseMeta(%q)[%q] = %q, want %q", pairs, k, got, v)
			}
		}
		// What the flag accepts the store either takes or refuses as
		// invalid input: never anything worse.
		p := keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Metadata: meta}
		if err := p.Validate(testNow); err != nil && keystore.ErrorCode(err) != keystore.EINVALID {
			t.Fatalf("Validate(metadata %v): %v", meta, err)
		}
	})
}

// FuzzParseExpiry: --expires-in and --expires-at give an expiry in the
// future, in whole seconds of UTC, or a usage error.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range [][2]string{
		{"90d", ""}, {"", "2027-01-31"}, {"", "2027-01-31T12:00:00Z"}, {"", "2027-01-31T12:00:00.5+02:00"},
		{"1d", "2027-01-31"}, {"0", ""}, {"", "2025-12-31"}, {"", "9999-12-31T23:59:59Z"},
		{"", "2026-01-01T00:00:00.9Z"}, {"1s", ""}, {"", "tomorrow"}, {"-1d", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, in, at string) {
		exp, err := parseExpiry(in, at, testNow)
		if err != nil {
			if exp != nil || exitCode(err) != exitUsage {
				t.Fatalf("parseExpiry(%q, %q) = %v, %v; want no time and a usage error", in, at, exp, err)
			}
			return
		}
		switch {
		case in == "" && at == "":
			if exp != nil {
				t.Fatalf("parseExpiry with no flags = %v", exp)
			}
		case in != "" && at != "":
			t.Fatalf("parseExpiry(%q, %q) accepted both flags", in, at)
		case exp == nil:
			t.Fatalf("parseExpiry(%q, %q) = no expiry", in, at)
		case !exp.After(testNow) || exp.Location() != time.UTC || exp.Nanosecond() != 0:
			t.Fatalf("parseExpiry(%q, %q) = %v, want a later time in whole seconds of UTC", in, at, exp)
		}
	})
}
