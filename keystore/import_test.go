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
	if k.Hash != sum || k.Params.Environment != "live" || k.Hint != "sk_live_…" || !k.CreatedAt.Equal(importNow) {
		t.Errorf("parsed hashed record %+v", k)
	}
}

func TestParseImportRecordRejects(t *testing.T) {
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	hash := strings.Repeat("ab", 32)
	for _, tt := range []struct{ line, want string }{
		{``, "empty line"},
		{`{`, "not a JSON import record"},
		{`[]`, "wrong type"},
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
		if !keystore.ValidEnv(k.Params.Environment) || len(k.Params.Scopes) == 0 || k.Params.Name == "" || k.CreatedAt.After(importNow) {
			t.Fatalf("accepted a bad record: %+v", k)
		}
		for _, s := range k.Params.Scopes {
			if !keystore.ValidScope(s) {
				t.Fatalf("accepted scope %q", s)
			}
		}
	})
}
