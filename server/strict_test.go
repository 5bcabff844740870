package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// Every request body is parsed strictly: a document that could be read two
// ways is refused with 400 in the envelope, and nothing is written.
func TestStrictBodies(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached=%t", cached), func(t *testing.T) {
			f := newFixtureCached(t, server.Options{}, cached)
			a := f.admin.Secret
			revoked := f.create(keystore.CreateParams{Name: "gone", Scopes: []string{"bots:read"}})
			if _, err := f.store.Revoke(context.Background(), revoked.ID); err != nil {
				t.Fatal(err)
			}
			valid := f.reader.Secret
			before := f.count()

			for _, tt := range []struct{ path, body, want string }{
				{"/v1/api-keys", `{"name": "a", "name": "b", "scopes": ["bots:read"]}`, `member "name" given twice`},
				{"/v1/api-keys", `{"name": "a", "scopes": ["bots:read"], "scopes": ["admin"]}`, `member "scopes" given twice`},
				{"/v1/api-keys", `{"NAME": "a", "scopes": ["bots:read"]}`, `unknown field "NAME"`},
				{"/v1/api-keys", `{"name": "a", "ſcopes": ["admin"]}`, `unknown field "ſcopes"`},
				{"/v1/api-keys", `{"name": "a", "Scopes": ["admin"]}`, `unknown field "Scopes"`},
				{"/v1/api-keys", "{\"name\": \"a\xff\", \"scopes\": [\"bots:read\"]}", "not valid UTF-8"},
				{"/v1/api-keys", `{"name": "a\ud800", "scopes": ["bots:read"]}`, "surrogate"},
				{"/v1/api-keys", `{"name": "a", "scopes": ["bots:read"], "metadata": {"k": "1", "k": "2"}}`, `member "k" given twice in "/metadata"`},
				{"/v1/api-keys/verify", `{"key": "` + revoked.Secret + `", "KEY": "` + valid + `"}`, `unknown field "KEY"`},
				{"/v1/api-keys/verify", `{"key": "` + revoked.Secret + `", "key": "` + valid + `"}`, `member "key" given twice`},
				{"/v1/api-keys/verify", `{"kEy": "` + valid + `"}`, `unknown field "kEy"`},
				{"/v1/api-keys/verify", "{\"key\": \"" + valid + "\", \"scopes\": [\"bots:read\xff\"]}", "not valid UTF-8"},
				{"/v1/api-keys/" + f.reader.ID + "/rotate", `{"grace_seconds": 1, "GRACE_SECONDS": 2}`, `unknown field "GRACE_SECONDS"`},
				{"/v1/api-keys/" + f.reader.ID + "/rotate", `{"grace_seconds": 1, "grace_seconds": 2}`, `given twice`},
				{"/v1/api-keys/import", `{"keys": [], "Keys": []}`, `unknown field "Keys"`},
				{"/v1/api-keys/import", `{"keys": [], "keys": []}`, `given twice`},
			} {
				e := wantError(t, tt.path+" "+tt.body, f.do("POST", tt.path, a, tt.body), 400, keystore.EINVALID)
				if !strings.Contains(e.Message, tt.want) {
					t.Errorf("%s %s: message %q, want %q in it", tt.path, tt.body, e.Message, tt.want)
				}
				if strings.Contains(e.Message, valid[8:20]) || strings.Contains(e.Message, revoked.Secret[8:20]) {
					t.Errorf("%s: the message shows a secret: %q", tt.path, e.Message)
				}
			}
			if n := f.count(); n != before {
				t.Errorf("%d keys after refused bodies, want %d", n, before)
			}
			k, _ := f.store.Get(context.Background(), f.reader.ID)
			if k.RotatedTo != nil {
				t.Errorf("a refused rotation rotated the key")
			}

			// A duplicate member anywhere makes the whole body ambiguous; an
			// unknown member fails its import record alone.
			hash := strings.Repeat("ab", 32)
			body := `{"keys": [{"name": "x", "name": "y", "scopes": ["bots:read"], "key_sha256": "` + hash + `"}]}`
			e := wantError(t, "import with a duplicate member", f.do("POST", "/v1/api-keys/import", a, body), 400, keystore.EINVALID)
			if !strings.Contains(e.Message, `member "name" given twice in "/keys/0"`) {
				t.Errorf("import with a duplicate member: %q", e.Message)
			}
			body = `{"keys": [{"name": "x", "SCOPES": ["admin"], "key_sha256": "` + hash + `"}]}`
			var res struct {
				Imported, Failed int
				Errors           []keystore.ImportFailed
			}
			data(t, "import", f.do("POST", "/v1/api-keys/import", a, body), 200, &res)
			if res.Imported != 0 || res.Failed != 1 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Message, `unknown field "SCOPES"`) {
				t.Errorf("import of an ambiguous record: %+v", res)
			}
			if n := f.count(); n != before {
				t.Errorf("%d keys after refused imports, want %d", n, before)
			}
		})
	}
}
