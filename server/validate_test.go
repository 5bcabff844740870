package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// The API refuses what the CLI refuses, through the same validation:
// invalid UTF-8 (which encoding/json would keep as U+FFFD), invisible
// names, bidi overrides, control characters in metadata, and secrets
// where a name, metadata or scope goes. Errors never echo the secret, and
// nothing is stored.
func TestCreateRefusesBadText(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret
	secret := f.reader.Secret
	for body, want := range map[string]string{
		"{\"name\": \"bad\xffname\", \"scopes\": [\"bots:read\"]}":                          "not valid UTF-8",
		`{"name": "bad\udc00name", "scopes": ["bots:read"]}`:                                "surrogate",
		`{"name": "\ufeff\u200b", "scopes": ["bots:read"]}`:                                 "no visible character",
		`{"name": "invoice\u202efdp.exe", "scopes": ["bots:read"]}`:                         "bidirectional",
		`{"name": "x\u001b]0;pwned\u0007", "scopes": ["bots:read"]}`:                        "control characters",
		`{"name": "x", "scopes": ["bots:read"], "metadata": {"k": "\u001b]0;pwned\u0007"}}`: "control characters",
		`{"name": "x", "scopes": ["bots:read"], "metadata": {"k": "a\u0000b"}}`:             "control characters",
		`{"name": "x", "scopes": ["bots:read"], "metadata": {"k": "a\rb"}}`:                 "control characters",
		`{"name": "` + secret + `", "scopes": ["bots:read"]}`:                               "looks like a secret",
		`{"name": "x", "scopes": ["bots:read"], "metadata": {"k": "` + secret + `"}}`:       "looks like a secret",
		`{"name": "x", "scopes": ["` + secret + `"]}`:                                       "looks like a secret",
	} {
		r := f.do("POST", "/v1/api-keys", a, body)
		e := wantError(t, "create with "+body, r, 400, keystore.EINVALID)
		if !strings.Contains(e.Message, want) {
			t.Errorf("create with %q: message %q, want %q in it", body, e.Message, want)
		}
		if keystore.ContainsSecret(string(r.body)) || strings.Contains(string(r.body), secret[:20]) {
			t.Errorf("create with %q: reply holds the secret: %s", body, r.body)
		}
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d keys after refused requests, want 2", n)
	}
}

func TestImportRefusesBadText(t *testing.T) {
	f := newFixture(t, server.Options{})
	secret := f.reader.Secret
	rec := func(name string) string {
		b, _ := json.Marshal(name)
		return `{"name": ` + string(b) + `, "scopes": ["bots:read"], "key_sha256": "` + strings.Repeat("ab", 32) + `"}`
	}
	body := `{"keys": [` + strings.Join([]string{
		rec(secret),
		rec("x\u202ey"),
		`{"name": "x", "scopes": ["bots:read"], "metadata": {"k": "\u001b[2J"}, "key_sha256": "` + strings.Repeat("ef", 32) + `"}`,
	}, ",") + `]}`
	r := f.do("POST", "/v1/api-keys/import", f.admin.Secret, body)
	var res keystore.ImportResult
	data(t, "import", r, 200, &res)
	if res.Imported != 0 || res.Failed != 3 {
		t.Errorf("import: %+v, want 3 failed", res)
	}
	// Invalid UTF-8 anywhere in the body makes the whole body malformed.
	bad := "{\"keys\": [{\"name\": \"bad\xffname\", \"scopes\": [\"bots:read\"], \"key_sha256\": \"" + strings.Repeat("cd", 32) + "\"}]}"
	if e := wantError(t, "import with invalid UTF-8", f.do("POST", "/v1/api-keys/import", f.admin.Secret, bad), 400, keystore.EINVALID); !strings.Contains(e.Message, "not valid UTF-8") {
		t.Errorf("import with invalid UTF-8: %q", e.Message)
	}
	if keystore.ContainsSecret(string(r.body)) {
		t.Errorf("reply holds the secret: %s", r.body)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d keys after refused records, want 2", n)
	}
}
