package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// A secret, or its random part alone, sent in any place where the API takes
// input comes back in no reply (body or header) and in no log line: not
// whole, and not 10 characters of it in a row.
func TestNoSecretEchoed(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret
	leak, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	random := leak[len("sk_live_"):]
	hash := strings.Repeat("ab", 32)

	type req struct {
		method, path, token, body string
		headers                   []string
	}
	var reqs []req
	for _, s := range []string{leak, random, strings.ToUpper(leak[:8]) + random, "x" + leak} {
		q := url.QueryEscape(s)
		js := fmt.Sprintf("%q", s)
		reqs = append(reqs,
			// Headers.
			req{"GET", "/v1/api-keys", s, "", nil},
			req{"GET", "/healthz", "", "", []string{"X-Request-Id", s}},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bots:read"]}`, []string{"Idempotency-Key", s}},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bots:read"]}`, []string{"Idempotency-Key", s + strings.Repeat("k", 300)}},
			// The path.
			req{"GET", "/v1/api-keys/" + s, a, "", nil},
			req{"POST", "/v1/api-keys/" + s + "/rotate", a, "", nil},
			req{"DELETE", "/v1/api-keys/" + s, a, "", nil},
			req{"GET", "/v1/" + s, a, "", nil},
			req{"GET", "/v1/api-keys/" + s[:len(s)/2] + "/" + s[len(s)/2:], a, "", nil},
			req{"PUT", "/v1/api-keys/" + s, a, "", nil},
			// Query parameters.
			req{"GET", "/v1/api-keys?status=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?environment=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?scope=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?created_before=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?rotatable=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?page=" + q, a, "", nil},
			req{"GET", "/v1/api-keys?per_page=" + q, a, "", nil},
			req{"GET", "/v1/audit-events?key_id=" + q, a, "", nil},
			// Member names and values of bodies.
			req{"POST", "/v1/api-keys", a, `{` + js + `: 1}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": [` + js + `]}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bots:read"], "environment": ` + js + `}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bots:read"], "expires_at": ` + js + `}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bots:read"], "metadata": {"a": 1, ` + js + `: 2}}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": "x", ` + js + `: 1, ` + js + `: 2}`, nil},
			req{"POST", "/v1/api-keys", a, `{"name": ` + js + `x}`, nil},
			req{"POST", "/v1/api-keys/" + f.reader.ID + "/rotate", a, `{"grace_seconds": ` + js + `}`, nil},
			req{"POST", "/v1/api-keys/" + f.reader.ID + "/rotate", a, `{` + js + `: 1}`, nil},
			req{"POST", "/v1/api-keys/verify", a, `{` + js + `: 1}`, nil},
			req{"POST", "/v1/api-keys/verify", a, `{"key": ` + js + `}`, nil},
			req{"POST", "/v1/api-keys/verify", a, `{"key": "x", "scopes": [` + js + `]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{` + js + `: []}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{` + js + `: 1}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": [` + js + `], "key_sha256": "` + hash + `"}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": ["admin"], "environment": ` + js + `, "key_sha256": "` + hash + `"}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": ["admin"], "hint": ` + js + `, "key_sha256": "` + hash + `"}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": ["admin"], "key_sha256": ` + js + `}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": ["admin"], "key": ` + js + `}]}`, nil},
			req{"POST", "/v1/api-keys/import", a, `{"keys": [{"name": "x", "scopes": ["admin"], "created_at": ` + js + `, "key_sha256": "` + hash + `"}]}`, nil},
		)
	}

	var out strings.Builder
	for _, r := range reqs {
		rep := f.do(r.method, r.path, r.token, r.body, r.headers...)
		out.Reset()
		out.Write(rep.body)
		for name, vs := range rep.header {
			fmt.Fprintf(&out, "\n%s: %s", name, strings.Join(vs, ", "))
		}
		if w := window(out.String(), random); w != "" {
			t.Errorf("%s %.60s %.60s: the reply shows %q of the secret:\n%s", r.method, r.path, r.body, w, out.String())
		}
	}
	if w := window(f.logs.String(), random); w != "" {
		t.Errorf("the log shows %q of a secret:\n%s", w, f.logs)
	}
}

// window returns a run of 10 characters of random found in text, or "".
func window(text, random string) string {
	for i := 0; i+10 <= len(random); i++ {
		if strings.Contains(text, random[i:i+10]) {
			return random[i : i+10]
		}
	}
	return ""
}
