package server_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
	"github.com/chatbotplatform/keyctl/server"
)

type importReply struct {
	Imported int                     `json:"imported"`
	Skipped  int                     `json:"skipped"`
	Failed   int                     `json:"failed"`
	Errors   []keystore.ImportFailed `json:"errors"`
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImport(t *testing.T) {
	f := newFixture(t, server.Options{})
	plain, hashed := newSecret(t), newSecret(t)
	sum := keystore.HashToken(hashed)
	body := `{"keys": [
		{"name": "plain", "scopes": ["bots:*"], "key": "` + plain + `", "created_at": "2025-06-01T00:00:00Z"},
		{"name": "hashed", "scopes": ["admin"], "key_sha256": "` + hex.EncodeToString(sum[:]) + `", "hint": "` + keystore.Hint(hashed) + `"},
		{"name": "bad", "scopes": ["admin"], "key": "` + plain[:45] + `"},
		{"name": "dup", "scopes": ["admin"], "key": "` + f.reader.Secret + `"},
		{"name": "late", "scopes": ["admin"], "key_sha256": "` + strings.Repeat("ab", 32) + `", "created_at": "2099-01-01T00:00:00Z"},
		{"name": "x", "scopes": ["admin"], "key": "` + newSecret(t) + `", "colour": "red"}
	]}`
	var got importReply
	data(t, "import", f.do("POST", "/v1/api-keys/import", f.admin.Secret, body), 200, &got)
	if got.Imported != 2 || got.Skipped != 1 || got.Failed != 3 || len(got.Errors) != 3 {
		t.Fatalf("import = %+v, want 2 imported, 1 skipped, 3 failed", got)
	}
	// Errors name records by position, whether the record itself or the
	// store refused it, and never repeat a secret.
	for i, w := range []struct {
		line int
		msg  string
	}{{3, "wrong key format"}, {5, "created_at is in the future"}, {6, `unknown field "colour"`}} {
		if e := got.Errors[i]; e.Line != w.line || !strings.Contains(e.Message, w.msg) {
			t.Errorf("error %d = %+v, want line %d with %q", i, e, w.line, w.msg)
		}
	}
	if strings.Contains(fmt.Sprint(got.Errors), plain[8:40]) {
		t.Errorf("errors show a secret: %+v", got.Errors)
	}

	for secret, hint := range map[string]string{plain: keystore.Hint(plain), hashed: keystore.Hint(hashed)} {
		var v keystore.Verification
		data(t, "verify", f.do("POST", "/v1/api-keys/verify", f.admin.Secret, `{"key": "`+secret+`"}`), 200, &v)
		if !v.Valid || v.Key == nil || v.Key.Hint != hint {
			t.Errorf("imported key verifies as %+v, want valid with hint %s", v, hint)
		}
	}
	events, err := f.store.Audit(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	imports := 0
	for _, e := range events {
		if e.Action == keystore.ActionImport {
			imports++
			if e.Actor != f.admin.ID {
				t.Errorf("import event by %q, want the calling key %s", e.Actor, f.admin.ID)
			}
		}
	}
	if imports != 2 {
		t.Errorf("%d import events, want 2", imports)
	}
	// The log never holds a secret that travelled in a record.
	if strings.Contains(f.logs.String(), plain[8:]) || strings.Contains(f.logs.String(), "sk_live_") {
		t.Errorf("the log shows a secret:\n%s", f.logs)
	}
}

func TestImportRefused(t *testing.T) {
	f := newFixture(t, server.Options{})
	before := f.count()
	record := func() string {
		return `{"name": "k", "scopes": ["admin"], "key": "` + newSecret(t) + `"}`
	}
	many := make([]string, apiv1.MaxImportRecords+1)
	for i := range many {
		many[i] = record()
	}
	for _, tt := range []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"no bearer", "", `{"keys": []}`, 401, keystore.EUNAUTHORIZED},
		{"without admin", f.reader.Secret, `{"keys": [` + record() + `]}`, 403, keystore.EFORBIDDEN},
		{"empty body", f.admin.Secret, ``, 400, keystore.EINVALID},
		{"no keys", f.admin.Secret, `{}`, 400, keystore.EINVALID},
		{"keys not a list", f.admin.Secret, `{"keys": {}}`, 400, keystore.EINVALID},
		{"unknown field", f.admin.Secret, `{"keys": [], "dry_run": true}`, 400, keystore.EINVALID},
		{"too many records", f.admin.Secret, `{"keys": [` + strings.Join(many, ",") + `]}`, 400, keystore.EINVALID},
		{"over 1 MiB", f.admin.Secret, `{"keys": [{"name": "` + strings.Repeat("n", apiv1.MaxBodyBytes) + `"}]}`, 413, keystore.ETOOLARGE},
	} {
		wantError(t, tt.name, f.do("POST", "/v1/api-keys/import", tt.token, tt.body), tt.status, tt.code)
	}
	if n := f.count(); n != before {
		t.Errorf("refused imports left %d keys, want %d", n, before)
	}

	var got importReply
	data(t, "empty import", f.do("POST", "/v1/api-keys/import", f.admin.Secret, `{"keys": []}`), 200, &got)
	if got.Imported+got.Skipped+got.Failed != 0 || got.Errors == nil {
		t.Errorf("empty import = %+v, want zeros and errors []", got)
	}
}

// A retried import gets the first reply, not "all skipped".
func TestImportIdempotent(t *testing.T) {
	f := newFixture(t, server.Options{})
	body := `{"keys": [{"name": "k", "scopes": ["admin"], "key": "` + newSecret(t) + `"}]}`
	var first, again importReply
	data(t, "import", f.do("POST", "/v1/api-keys/import", f.admin.Secret, body, "Idempotency-Key", "imp-1"), 200, &first)
	r := f.do("POST", "/v1/api-keys/import", f.admin.Secret, body, "Idempotency-Key", "imp-1")
	data(t, "retried import", r, 200, &again)
	if first.Imported != 1 || again.Imported != 1 || again.Skipped != 0 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("import %+v, retry %+v (replayed %q); want the first reply again", first, again, r.header.Get("Idempotent-Replayed"))
	}
	var plain importReply
	data(t, "import again", f.do("POST", "/v1/api-keys/import", f.admin.Secret, body), 200, &plain)
	if plain.Skipped != 1 || plain.Imported != 0 {
		t.Errorf("import again without a key = %+v, want 1 skipped", plain)
	}
}
