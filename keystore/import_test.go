package keystore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

var importNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestParseImportRecord(t *testing.T) {
	secret, err := keystore.NewToken(keystore.EnvTest, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	k, err := keystore.ParseImportRecord([]byte(`{"name":"bot","scopes":["bots:*"],"key":"`+secret+`","metadata":{"a":"b"},"created_at":"2025-06-01T00:00:00Z"}`), importNow)
	if err != nil {
		t.Fatal(err)
	}
	if k.Hash != sum || k.Hint != keystore.Hint(secret) || k.Params.Environment != "test" ||
		strings.Join(k.Params.Scopes, ",") != "bots:read,bots:write" || k.Params.Metadata["a"] != "b" ||
		!k.CreatedAt.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parsed %+v", k)
	}

	k, err = keystore.ParseImportRecord([]byte(`{"name":"hashed","scopes":["admin"],"key_sha256":"`+hex.EncodeToString(sum[:])+`"}`), importNow)
	if err != nil {
		t.Fatal(err)
	}
	if k.Hash != sum || k.Params.Environment != "live" || k.Hint != "sk_live_…" || !k.CreatedAt.IsZero() ||
		k.Source != keystore.ImportSourceSHA256 {
		t.Errorf("parsed hashed record %+v", k)
	}

	// A hashed record may bring the hint the other system kept.
	k, err = keystore.ParseImportRecord([]byte(`{"name":"h","scopes":["admin"],"environment":"test","key_sha256":"`+hex.EncodeToString(sum[:])+`","hint":"`+keystore.Hint(secret)+`"}`), importNow)
	if err != nil {
		t.Fatal(err)
	}
	if k.Hint != keystore.Hint(secret) || k.Params.Environment != "test" {
		t.Errorf("parsed hashed record with hint %+v", k)
	}
}

func TestImportKeyValidate(t *testing.T) {
	k, err := keystore.DecodeImportRecord([]byte(`{"name":"x","scopes":["admin"],"key_sha256":"` + strings.Repeat("ab", 32) + `","expires_at":"2026-01-01T00:00:00.5Z","created_at":"2025-12-31T22:59:59.9Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Decoding does not look at the clock; validating does, in whole seconds.
	if err := k.Validate(importNow.Add(-time.Hour)); err != nil {
		t.Errorf("Validate an hour earlier: %v", err)
	}
	if err := k.Validate(importNow); err == nil || !strings.Contains(err.Error(), "not in the future") {
		t.Errorf("Validate at expiry = %v, want not in the future", err)
	}
	if !k.CreatedAt.Equal(importNow.Add(-time.Hour - time.Second)) {
		t.Errorf("created_at = %v, want whole seconds", k.CreatedAt)
	}

	// A store checks what it is given, the hint included: never a secret.
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	for _, tt := range []struct {
		name string
		k    keystore.ImportKey
		want string
	}{
		{"secret as hint", keystore.ImportKey{Params: keystore.CreateParams{Name: "x", Scopes: []string{"admin"}}, Hint: secret}, "hint is not that of a key of keyctl's format"},
		{"hint of another env", keystore.ImportKey{Params: keystore.CreateParams{Name: "x", Scopes: []string{"admin"}}, Hint: "sk_test_…"}, "hint is not that of a key of keyctl's format"},
		{"pattern scope", keystore.ImportKey{Params: keystore.CreateParams{Name: "x", Scopes: []string{"bots:*"}}, Hint: "sk_live_…"}, "unknown scope"},
		{"future created_at", keystore.ImportKey{Params: keystore.CreateParams{Name: "x", Scopes: []string{"admin"}}, Hint: "sk_live_…", CreatedAt: importNow.Add(time.Second)}, "created_at is in the future"},
	} {
		err := tt.k.Validate(importNow)
		if err == nil || keystore.ErrorCode(err) != keystore.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[8:20]) {
			t.Errorf("%s: error %q shows the secret", tt.name, err)
		}
	}
	ok := keystore.ImportKey{Params: keystore.CreateParams{Name: "x", Scopes: []string{"admin"}}, Hint: "sk_live_…"}
	if err := ok.Validate(importNow); err != nil || ok.Params.Environment != keystore.EnvLive {
		t.Errorf("Validate = %v, environment %q; want nil, live", err, ok.Params.Environment)
	}
}

func TestValidHint(t *testing.T) {
	secret, _ := keystore.NewToken(keystore.EnvTest, nil)
	for hint, want := range map[string]bool{
		keystore.Hint(secret): true,
		"sk_test_…":           true,
		"sk_test_ab…":         false, // not keyctl's hint: another format
		"sk_test_…cd":         false,
		"sk_test_…abcd":       false,
		"sk_live_…":           false, // another environment
		secret:                false,
		"sk_test_abcde…":      false,
		"sk_test_abcd…wxyz1":  false,
		"sk_test_ab-d…":       false,
		"sk_test_abcd":        false,
		"":                    false,
	} {
		if got := keystore.ValidHint(hint, keystore.EnvTest); got != want {
			t.Errorf("ValidHint(%q) = %t, want %t", hint, got, want)
		}
	}
}

func TestParseImportRecordRejects(t *testing.T) {
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	hash := strings.Repeat("ab", 32)
	for _, tt := range []struct{ line, want string }{
		{``, "empty line"},
		{`{`, "not a JSON import record"},
		{`[]`, "want a JSON object, got an array"},
		{`"` + secret + `"`, "want a JSON object, got a string"},
		{`{"name":"x","scopes":"admin","key":"` + secret + `"}`, "field scopes must be a list of strings"},
		{`{"name":"x","scopes":["admin"]}`, "needs key or key_sha256"},
		{`{"name":"x","scopes":["admin"],"key":"` + secret + `","key_sha256":"` + hash + `"}`, "not both"},
		{`{"name":"x","scopes":["admin"],"key":"` + secret[:45] + `"}`, "wrong key format"},
		{`{"name":"x","scopes":["admin"],"key":"` + secret + `","environment":"test"}`, "does not match"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"xyz"}`, "64 hexadecimal"},
		{`{"name":"x","scopes":["bot:read"],"key_sha256":"` + hash + `"}`, "unknown scope"},
		{`{"name":"","scopes":["admin"],"key_sha256":"` + hash + `"}`, "needs a name"},
		{`{"name":"x","scopes":[],"key_sha256":"` + hash + `"}`, "at least one scope"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `","expires_at":"2020-01-01T00:00:00Z"}`, "not in the future"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `","created_at":"2030-01-01T00:00:00Z"}`, "created_at is in the future"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `","colour":"red"}`, `unknown field "colour"`},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `"} {}`, "more than one"},
		{`{"` + secret + `":1}`, "unknown field"},
		{`{"name":"x","scopes":["admin"],"key":"` + secret + `","hint":"sk_live_…"}`, "hint goes only with key_sha256"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `","hint":"` + secret + `"}`, "hint is not that of a key of keyctl's format"},
		{`{"name":"x","scopes":["admin"],"key_sha256":"` + hash + `","environment":"prod"}`, "unknown environment"},
	} {
		_, err := keystore.ParseImportRecord([]byte(tt.line), importNow)
		if err == nil || keystore.ErrorCode(err) != keystore.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseImportRecord(%.60q) = %v, want EINVALID containing %q", tt.line, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), secret[8:20]) {
			t.Errorf("error %q shows the secret", err)
		}
	}
}

func FuzzParseImportRecord(f *testing.F) {
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	f.Add([]byte(`{"name":"bot","scopes":["bots:*"],"key":"` + secret + `"}`))
	f.Add([]byte(`{"name":"h","scopes":["admin"],"key_sha256":"` + strings.Repeat("0f", 32) + `","environment":"test"}`))
	f.Add([]byte(`{"name":"x","scopes":["*:read"],"key_sha256":"00","expires_at":"2027-01-01T00:00:00Z","metadata":{"a":"b"}}`))
	f.Add([]byte(`{"name":"h","scopes":["admin"],"key_sha256":"` + strings.Repeat("0f", 32) + `","hint":"sk_live_ab…cd","created_at":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, line []byte) {
		k, err := keystore.ParseImportRecord(line, importNow)
		if err != nil {
			if keystore.ErrorCode(err) != keystore.EINVALID {
				t.Fatalf("error code %q, want invalid", keystore.ErrorCode(err))
			}
			return
		}
		if !keystore.ValidEnv(k.Params.Environment) || len(k.Params.Scopes) == 0 || k.Params.Name == "" || k.CreatedAt.After(importNow) ||
			!keystore.ValidHint(k.Hint, k.Params.Environment) {
			t.Fatalf("accepted a bad record: %+v", k)
		}
		for _, s := range k.Params.Scopes {
			if !keystore.ValidScope(s) {
				t.Fatalf("accepted scope %q", s)
			}
		}
	})
}
