package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
	"github.com/chatbotplatform/keyctl/keystore/cache"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
	"github.com/chatbotplatform/keyctl/server"
)

// fixture is a real server on loopback over a real SQLite file, with an
// admin key and a key without admin.
type fixture struct {
	t      *testing.T
	path   string
	clock  *storetest.Clock
	store  keystore.Store // the file, through the cache when cached
	file   *sqlite.Store
	srv    *httptest.Server
	logs   *syncBuffer
	admin  *keystore.Key
	reader *keystore.Key
	cached bool // the store has the verification cache, as keyctl serve's
}

func newFixture(t *testing.T, opts server.Options) *fixture {
	return newFixtureCached(t, opts, false)
}

func newFixtureCached(t *testing.T, opts server.Options, cached bool) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "keys.db"), clock: &storetest.Clock{}, logs: &syncBuffer{}, cached: cached}
	f.open(opts)
	f.admin = f.create(keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	f.reader = f.create(keystore.CreateParams{Name: "reader", Scopes: []string{"bots:read"}})
	return f
}

// open starts a server over the store at f.path.
func (f *fixture) open(opts server.Options) {
	f.t.Helper()
	file, err := sqlite.Open(f.path, sqlite.Options{Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	var s keystore.Store = file
	if f.cached {
		if s, err = cache.New(file, cache.Options{Now: f.clock.Now}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.store, f.file = s, file
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(f.logs, nil))
	}
	f.srv = httptest.NewServer(server.New(s, opts))
	f.t.Cleanup(func() { f.srv.Close(); s.Close() })
}

// restart stops the server and its store and starts new ones on the file.
func (f *fixture) restart(opts server.Options) {
	f.srv.Close()
	f.store.Close()
	f.open(opts)
}

func (f *fixture) create(p keystore.CreateParams) *keystore.Key {
	f.t.Helper()
	k, err := f.store.Create(context.Background(), p)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

func (f *fixture) count() int {
	f.t.Helper()
	n, err := f.store.Count(context.Background(), keystore.ListFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with token as the bearer (none when empty) and the
// given headers, as name, value pairs.
func (f *fixture) do(method, path, token, body string, headers ...string) reply {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

type apiError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// wantError checks an error reply: status, code, envelope and request ID.
func wantError(t *testing.T, what string, r reply, status int, code string) apiError {
	t.Helper()
	var env struct {
		Error *apiError `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("%s: reply %d %q is not an error envelope: %v", what, r.status, r.body, err)
	}
	if r.status != status || env.Error.Code != code {
		t.Errorf("%s: %d %q, want %d %q (message %q)", what, r.status, env.Error.Code, status, code, env.Error.Message)
	}
	if env.Error.Message == "" || env.Error.RequestID == "" || env.Error.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("%s: error %+v, X-Request-Id %q", what, env.Error, r.header.Get("X-Request-Id"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	return *env.Error
}

// data checks a success reply and decodes its data into v.
func data(t *testing.T, what string, r reply, status int, v any) json.RawMessage {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || r.status != status || env.Data == nil {
		t.Fatalf("%s: reply %d %s, want %d with data (%v)", what, r.status, r.body, status, err)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id", what)
	}
	if v != nil {
		if err := json.Unmarshal(env.Data, v); err != nil {
			t.Fatalf("%s: data %s: %v", what, env.Data, err)
		}
	}
	return env.Meta
}

// /readyz answers 200 while the store answers, and 503, without the cause,
// once it does not.
func TestReadyz(t *testing.T) {
	f := newFixture(t, server.Options{})
	var got map[string]string
	data(t, "readyz", f.do("GET", "/readyz", "", ""), 200, &got)
	if got["status"] != "ready" {
		t.Errorf("readyz = %v", got)
	}
	f.store.Close()
	r := f.do("GET", "/readyz", "", "")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store closed: %d %s, want 503", r.status, r.body)
	}
	if !strings.Contains(string(r.body), `"code":"unavailable"`) || strings.Contains(string(r.body), f.path) {
		t.Errorf("readyz body %s: want code unavailable and no store path", r.body)
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, server.Options{})
	var got map[string]string
	data(t, "healthz", f.do("GET", "/healthz", "", ""), 200, &got)
	if got["status"] != "ok" {
		t.Errorf("healthz = %v", got)
	}
}

func TestAuthFailures(t *testing.T) {
	f := newFixture(t, server.Options{})
	expiring := f.create(keystore.CreateParams{Name: "expiring", Scopes: []string{"admin"}, ExpiresAt: ptr(storetest.Start.Add(time.Hour))})
	revoked := f.create(keystore.CreateParams{Name: "revoked", Scopes: []string{"admin"}})
	if _, err := f.store.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	unknown, _ := keystore.NewToken(keystore.EnvLive, nil)
	f.clock.Advance(2 * time.Hour)

	cases := map[string][]string{
		"no header":         nil,
		"basic auth":        {"Authorization", "Basic YWRtaW46YWRtaW4="},
		"bearer, no key":    {"Authorization", "Bearer "},
		"no scheme":         {"Authorization", f.admin.Secret},
		"malformed key":     {"Authorization", "Bearer sk_live_nope"},
		"unknown key":       {"Authorization", "Bearer " + unknown},
		"expired key":       {"Authorization", "Bearer " + expiring.Secret},
		"revoked key":       {"Authorization", "Bearer " + revoked.Secret},
		"key ID as a token": {"Authorization", "Bearer " + f.admin.ID},
	}
	var first string
	for name, h := range cases {
		for _, ep := range []struct{ method, path, body string }{
			{"GET", "/v1/api-keys", ""},
			{"POST", "/v1/api-keys/verify", `{"key": "` + f.reader.Secret + `"}`},
			{"GET", "/v1/audit-events", ""},
		} {
			r := f.do(ep.method, ep.path, "", ep.body, h...)
			e := wantError(t, name+" "+ep.path, r, 401, keystore.EUNAUTHORIZED)
			if first == "" {
				first = e.Message
			}
			if e.Message != first {
				t.Errorf("%s: message %q differs from %q: it must not tell one failure from another", name, e.Message, first)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", name, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	// The bearer scheme is case-insensitive.
	data(t, "lower-case bearer", f.do("GET", "/v1/api-keys", "", "", "Authorization", "bearer "+f.admin.Secret), 200, nil)
}

func TestForbiddenWithoutAdmin(t *testing.T) {
	f := newFixture(t, server.Options{})
	id := f.reader.ID
	for _, ep := range []struct{ method, path, body string }{
		{"POST", "/v1/api-keys", `{"name": "x", "scopes": ["admin"]}`},
		{"GET", "/v1/api-keys", ""},
		{"GET", "/v1/api-keys/" + id, ""},
		{"POST", "/v1/api-keys/" + id + "/rotate", ""},
		{"DELETE", "/v1/api-keys/" + id, ""},
		{"PATCH", "/v1/api-keys/" + id, `{"scopes": ["admin"]}`},
		{"POST", "/v1/api-keys/" + id + "/disable", ""},
		{"POST", "/v1/api-keys/" + id + "/enable", ""},
		{"POST", "/v1/api-keys/" + id + "/delete", ""},
		{"GET", "/v1/audit-events", ""},
		{"GET", "/v1/api-keys/by-hash/" + strings.Repeat("ab", 32), ""},
	} {
		e := wantError(t, ep.method+" "+ep.path, f.do(ep.method, ep.path, f.reader.Secret, ep.body), 403, keystore.EFORBIDDEN)
		if !strings.Contains(e.Message, "admin") {
			t.Errorf("403 message %q does not name the admin scope", e.Message)
		}
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d keys after refused requests, want 2", n)
	}
	// Any valid key may verify.
	var v keystore.Verification
	data(t, "verify", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, `{"key": "`+f.admin.Secret+`", "scopes": ["bots:*"]}`), 200, &v)
	if !v.Valid || v.Key == nil || v.Key.ID != f.admin.ID {
		t.Errorf("verify = %+v", v)
	}
}

func TestKeyLifecycle(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret

	var k keystore.Key
	r := f.do("POST", "/v1/api-keys", a, `{"name": "bot", "scopes": ["bots:*", "channels:read"], "environment": "test",
		"expires_at": "2027-01-01T00:00:00Z", "metadata": {"team": "x"}}`)
	data(t, "create", r, 201, &k)
	if k.Secret == "" || !strings.HasPrefix(k.Secret, "sk_test_") || strings.Join(k.Scopes, " ") != "bots:read bots:write channels:read" {
		t.Errorf("created %+v", k)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: a reply with a secret must not be cached", cc)
	}

	var got keystore.Key
	data(t, "show", f.do("GET", "/v1/api-keys/"+k.ID, a, ""), 200, &got)
	if got.ID != k.ID || got.Secret != "" || got.Metadata["team"] != "x" {
		t.Errorf("show = %+v", got)
	}

	var nk keystore.Key
	data(t, "rotate", f.do("POST", "/v1/api-keys/"+k.ID+"/rotate", a, `{"grace_seconds": 3600}`), 201, &nk)
	if nk.Secret == "" || nk.RotatedFrom == nil || *nk.RotatedFrom != k.ID {
		t.Errorf("rotated to %+v", nk)
	}
	wantError(t, "rotate again", f.do("POST", "/v1/api-keys/"+k.ID+"/rotate", a, ""), 409, keystore.ECONFLICT)

	var v keystore.Verification
	data(t, "verify old key in grace", f.do("POST", "/v1/api-keys/verify", a, `{"key": "`+k.Secret+`"}`), 200, &v)
	if !v.Valid {
		t.Errorf("old key in its grace period: %+v", v)
	}

	var rk keystore.Key
	data(t, "revoke", f.do("DELETE", "/v1/api-keys/"+nk.ID, a, ""), 200, &rk)
	if rk.Status != keystore.StatusRevoked {
		t.Errorf("revoked key status %q", rk.Status)
	}
	v = keystore.Verification{}
	data(t, "verify revoked", f.do("POST", "/v1/api-keys/verify", a, `{"key": "`+nk.Secret+`", "scopes": ["bots:read"]}`), 200, &v)
	if v.Valid || v.Code != keystore.CodeRevoked || v.MissingScopes == nil {
		t.Errorf("verify of a revoked key = %+v", v)
	}

	var events []keystore.Event
	meta := data(t, "audit", f.do("GET", "/v1/audit-events?key_id="+k.ID, a, ""), 200, &events)
	if len(events) != 2 || events[0].Action != "rotate" || events[1].Action != "create" || events[1].Actor != f.admin.ID {
		t.Errorf("audit = %+v, want newest first", events)
	}
	if string(meta) != `{"page":1,"per_page":20,"total":2}` {
		t.Errorf("audit meta = %s", meta)
	}

	unknown := "key_" + strings.Repeat("0", 16)
	wantError(t, "show unknown", f.do("GET", "/v1/api-keys/"+unknown, a, ""), 404, keystore.ENOTFOUND)
	wantError(t, "revoke unknown", f.do("DELETE", "/v1/api-keys/"+unknown, a, ""), 404, keystore.ENOTFOUND)
	wantError(t, "show malformed", f.do("GET", "/v1/api-keys/key_x", a, ""), 400, keystore.EINVALID)
	wantError(t, "audit malformed", f.do("GET", "/v1/audit-events?key_id=k1", a, ""), 400, keystore.EINVALID)
	wantError(t, "bad scope", f.do("POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["bot:read"]}`), 400, keystore.EINVALID)
	wantError(t, "no scope", f.do("POST", "/v1/api-keys", a, `{"name": "x", "scopes": []}`), 400, keystore.EINVALID)
	wantError(t, "bad expiry", f.do("POST", "/v1/api-keys", a, `{"name": "x", "scopes": ["admin"], "expires_at": "tomorrow"}`), 400, keystore.EINVALID)
	wantError(t, "negative grace", f.do("POST", "/v1/api-keys/"+f.reader.ID+"/rotate", a, `{"grace_seconds": -1}`), 400, keystore.EINVALID)
	wantError(t, "huge grace", f.do("POST", "/v1/api-keys/"+f.reader.ID+"/rotate", a, `{"grace_seconds": 9223372036854775807}`), 400, keystore.EINVALID)
	wantError(t, "verify bad scope", f.do("POST", "/v1/api-keys/verify", a, `{"key": "x", "scopes": ["nope"]}`), 400, keystore.EINVALID)

	// Managing keys is a use of the admin scope.
	var me keystore.Key
	data(t, "show self", f.do("GET", "/v1/api-keys/"+f.admin.ID, a, ""), 200, &me)
	if !slices.Contains(me.UsedScopes, keystore.ScopeAdmin) {
		t.Errorf("the admin key's used scopes %q lack admin", me.UsedScopes)
	}

	// by-hash: the SHA-256 of the secret in hex, never the secret.
	hash := keystore.HashToken(k.Secret)
	var byHash keystore.Key
	data(t, "by-hash", f.do("GET", "/v1/api-keys/by-hash/"+hex.EncodeToString(hash[:]), a, ""), 200, &byHash)
	if byHash.ID != k.ID || byHash.Secret != "" {
		t.Errorf("by-hash = %+v, want %s without secret", byHash, k.ID)
	}
	wantError(t, "by-hash unknown", f.do("GET", "/v1/api-keys/by-hash/"+strings.Repeat("00", 32), a, ""), 404, keystore.ENOTFOUND)
	for _, bad := range []string{"abc", strings.Repeat("zz", 32), strings.Repeat("ab", 33), k.Secret} {
		e := wantError(t, "by-hash "+bad, f.do("GET", "/v1/api-keys/by-hash/"+bad, a, ""), 400, keystore.EINVALID)
		if strings.Contains(e.Message, k.Secret) {
			t.Errorf("by-hash error repeats the secret: %q", e.Message)
		}
	}
}

func TestPagination(t *testing.T) {
	f := newFixture(t, server.Options{})
	for i := range 43 {
		f.create(keystore.CreateParams{Name: fmt.Sprint("k", i), Scopes: []string{"bots:read"}})
	}
	const total = 45
	type meta struct {
		Page, PerPage, Total int
	}
	page := func(query string) ([]keystore.Key, meta) {
		t.Helper()
		var keys []keystore.Key
		raw := data(t, query, f.do("GET", "/v1/api-keys"+query, f.admin.Secret, ""), 200, &keys)
		var m struct {
			Page    *int `json:"page"`
			PerPage *int `json:"per_page"`
			Total   *int `json:"total"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || m.Page == nil || m.PerPage == nil || m.Total == nil {
			t.Fatalf("%s: meta %s", query, raw)
		}
		return keys, meta{*m.Page, *m.PerPage, *m.Total}
	}
	for _, tt := range []struct {
		query string
		n     int
		meta  meta
	}{
		{"", 20, meta{1, 20, total}},
		{"?page=2", 20, meta{2, 20, total}},
		{"?page=3", 5, meta{3, 20, total}},
		{"?page=4", 0, meta{4, 20, total}},
		{"?per_page=100", total, meta{1, 100, total}},
		{"?per_page=1&page=45", 1, meta{45, 1, total}},
		{"?per_page=7&page=2&status=active&environment=live&scope=bots:read", 7, meta{2, 7, total}},
		{"?scope=admin", 1, meta{1, 20, 1}},
		{"?rotatable=true&per_page=50", total, meta{1, 50, total}},
		{"?created_before=2026-01-01T00:00:00Z", 0, meta{1, 20, 0}},
		{"?created_before=2026-01-01T00:00:00.5Z", 20, meta{1, 20, total}},
	} {
		keys, m := page(tt.query)
		if len(keys) != tt.n || m != tt.meta {
			t.Errorf("GET /v1/api-keys%s = %d keys, %+v; want %d, %+v", tt.query, len(keys), m, tt.n, tt.meta)
		}
	}
	// Pages do not overlap and hold every key once, newest first.
	seen := map[string]bool{}
	for p := 1; p <= 3; p++ {
		keys, _ := page("?page=" + strconv.Itoa(p))
		for _, k := range keys {
			if seen[k.ID] {
				t.Errorf("key %s on two pages", k.ID)
			}
			seen[k.ID] = true
		}
	}
	if len(seen) != total {
		t.Errorf("the pages hold %d keys, want %d", len(seen), total)
	}

	for _, q := range []string{
		"per_page=0", "per_page=101", "per_page=-1", "per_page=abc", "per_page=1.5", "per_page=",
		"page=0", "page=-2", "page=x", "page=99999999999999999999",
	} {
		if strings.HasSuffix(q, "=") {
			continue // empty means the default
		}
		e := wantError(t, q, f.do("GET", "/v1/api-keys?"+q, f.admin.Secret, ""), 400, keystore.EINVALID)
		name, _, _ := strings.Cut(q, "=")
		if !strings.HasPrefix(e.Message, name+" must be a whole number from 1 to ") {
			t.Errorf("%s: message %q", q, e.Message)
		}
	}
	for _, q := range []string{"status=deleted", "environment=prod", "scope=robots:*", "created_before=yesterday", "rotatable=yes", "metadata%5Bteam=x", "metadata%5Bt%5D=a&metadata%5Bt%5D=b"} {
		wantError(t, q, f.do("GET", "/v1/api-keys?"+q, f.admin.Secret, ""), 400, keystore.EINVALID)
	}
}

func TestErrorEnvelopeAndRequestID(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret
	e := wantError(t, "unknown path", f.do("GET", "/v2/keys", a, ""), 404, keystore.ENOTFOUND)
	if !strings.Contains(e.Message, "no such endpoint") {
		t.Errorf("404 message %q", e.Message)
	}
	r := f.do("PUT", "/v1/api-keys", a, "")
	wantError(t, "wrong method", r, 405, "method_not_allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q", allow)
	}
	// The mux would redirect these; an API answers 404 instead.
	for _, p := range []string{"/v1//api-keys", "/v1/api-keys/", "/v1/./api-keys", "/healthz/"} {
		r := f.do("GET", p, a, "")
		wantError(t, p, r, 404, keystore.ENOTFOUND)
		if r.header.Get("Location") != "" {
			t.Errorf("%s: Location %q", p, r.header.Get("Location"))
		}
	}

	ids := map[string]bool{}
	for range 5 {
		id := f.do("GET", "/healthz", "", "").header.Get("X-Request-Id")
		if !regexp.MustCompile(`^req_[0-9a-f]{24}$`).MatchString(id) || ids[id] {
			t.Errorf("X-Request-Id %q: want a fresh req_ ID", id)
		}
		ids[id] = true
	}
	if got := f.do("GET", "/healthz", "", "", "X-Request-Id", "trace-42.a_b").header.Get("X-Request-Id"); got != "trace-42.a_b" {
		t.Errorf("a plain client request ID was not echoed: %q", got)
	}
	for _, bad := range []string{"a b", strings.Repeat("x", 65), "<script>", f.reader.Secret} {
		if got := f.do("GET", "/healthz", "", "", "X-Request-Id", bad).header.Get("X-Request-Id"); got == bad || !strings.HasPrefix(got, "req_") {
			t.Errorf("X-Request-Id %q echoed as %q", bad, got)
		}
	}
}

func TestBodies(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret
	big := `{"name": "` + strings.Repeat("x", apiv1.MaxBodyBytes) + `", "scopes": ["admin"]}`
	wantError(t, "body over 1 MiB", f.do("POST", "/v1/api-keys", a, big), 413, keystore.ETOOLARGE)
	wantError(t, "verify body over 1 MiB", f.do("POST", "/v1/api-keys/verify", a, big), 413, keystore.ETOOLARGE)

	for body, want := range map[string]string{
		``:                                      "request body is empty",
		`{`:                                     "malformed JSON body",
		`{"name": "x",}`:                        "malformed JSON body: syntax error at byte",
		`[]`:                                    "want a JSON object",
		`"x"`:                                   "want a JSON object",
		`{"name": 5, "scopes": ["admin"]}`:      "field name must be a string",
		`{"name": "x", "scopes": "admin"}`:      "field scopes must be a list of strings",
		`{"name": "x", "scopes": [1]}`:          "field scopes must be a list of strings",
		`{"name": "x", "metadata": {"a": 1}}`:   "field metadata must be an object of strings, not a number",
		`{"nmae": "x", "scopes": ["admin"]}`:    `unknown field "nmae"`,
		`{"name": "x", "scopes": ["admin"]} {}`: "more than one JSON value",
		`{"name": "x", "scopes": ["admin"]}x`:   "more than one JSON value",
	} {
		e := wantError(t, "create with "+body, f.do("POST", "/v1/api-keys", a, body), 400, keystore.EINVALID)
		if !strings.Contains(e.Message, want) {
			t.Errorf("create with %s: message %q, want %q in it", body, e.Message, want)
		}
	}
	e := wantError(t, "rotate with a string grace", f.do("POST", "/v1/api-keys/"+f.reader.ID+"/rotate", a, `{"grace_seconds": "1h"}`), 400, keystore.EINVALID)
	if !strings.Contains(e.Message, "grace_seconds must be a whole number") {
		t.Errorf("message %q", e.Message)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d keys after refused requests, want 2", n)
	}
}

// A store error is logged, and the reply says nothing of it.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.store.Close() // every query now fails
	r := f.do("GET", "/v1/api-keys", f.admin.Secret, "")
	e := wantError(t, "closed store", r, 500, keystore.EINTERNAL)
	if strings.Contains(e.Message, "sql") || strings.Contains(e.Message, f.path) {
		t.Errorf("500 message leaks internals: %q", e.Message)
	}
	if !strings.Contains(f.logs.String(), "database is closed") {
		t.Errorf("the log does not say what failed:\n%s", f.logs)
	}
}

// panicStore is a faulty front for the real store: Get panics.
type panicStore struct{ keystore.Store }

func (panicStore) Get(context.Context, string) (*keystore.Key, error) { panic("boom") }

func TestPanicIsA500(t *testing.T) {
	f := newFixture(t, server.Options{})
	logs := &syncBuffer{}
	srv := httptest.NewServer(server.New(panicStore{f.store}, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))}))
	defer srv.Close()
	f.srv = srv
	wantError(t, "panicking store", f.do("GET", "/v1/api-keys/"+f.reader.ID, f.admin.Secret, ""), 500, keystore.EINTERNAL)
	if !strings.Contains(logs.String(), "panic: boom") {
		t.Errorf("the log does not show the panic:\n%s", logs)
	}
	data(t, "next request", f.do("GET", "/v1/api-keys", f.admin.Secret, ""), 200, nil)
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t, server.Options{})
	a := f.admin.Secret
	body := `{"name": "ci", "scopes": ["bots:read"]}`
	var first, again keystore.Key
	r1 := f.do("POST", "/v1/api-keys", a, body, "Idempotency-Key", "idem-1")
	data(t, "first create", r1, 201, &first)
	r2 := f.do("POST", "/v1/api-keys", a, body, "Idempotency-Key", "idem-1")
	data(t, "retried create", r2, 201, &again)
	if again.ID != first.ID || again.Secret != first.Secret || again.Secret == "" {
		t.Errorf("retry made %s (secret %t), want %s with the same secret", again.ID, again.Secret == first.Secret, first.ID)
	}
	if r2.header.Get("Idempotent-Replayed") != "true" || r1.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("Idempotent-Replayed: first %q, retry %q", r1.header.Get("Idempotent-Replayed"), r2.header.Get("Idempotent-Replayed"))
	}
	if r1.header.Get("X-Request-Id") == r2.header.Get("X-Request-Id") {
		t.Errorf("a replay must have its own request ID")
	}
	if n := f.count(); n != 3 {
		t.Errorf("%d keys, want 3: a retry must not make a key", n)
	}

	e := wantError(t, "same key, other body", f.do("POST", "/v1/api-keys", a, `{"name": "other", "scopes": ["bots:read"]}`, "Idempotency-Key", "idem-1"), 409, keystore.ECONFLICT)
	if !strings.Contains(e.Message, "Idempotency-Key") {
		t.Errorf("409 message %q", e.Message)
	}
	// The same key on another endpoint is another request too.
	wantError(t, "same key, rotate", f.do("POST", "/v1/api-keys/"+f.reader.ID+"/rotate", a, body, "Idempotency-Key", "idem-1"), 409, keystore.ECONFLICT)

	// Keys belong to their caller: another admin's idem-1 is another request.
	other := f.create(keystore.CreateParams{Name: "admin 2", Scopes: []string{"admin"}})
	var third keystore.Key
	data(t, "other caller", f.do("POST", "/v1/api-keys", other.Secret, body, "Idempotency-Key", "idem-1"), 201, &third)
	if third.ID == first.ID {
		t.Errorf("another caller got the first caller's reply")
	}

	// A rotation is replayed too, rather than refused as a second rotation.
	var rot1, rot2 keystore.Key
	data(t, "rotate", f.do("POST", "/v1/api-keys/"+first.ID+"/rotate", a, `{"grace_seconds": 60}`, "Idempotency-Key", "rot-1"), 201, &rot1)
	data(t, "retried rotate", f.do("POST", "/v1/api-keys/"+first.ID+"/rotate", a, `{"grace_seconds": 60}`, "Idempotency-Key", "rot-1"), 201, &rot2)
	if rot1.ID != rot2.ID || rot1.Secret != rot2.Secret {
		t.Errorf("retried rotation gave %s, want %s", rot2.ID, rot1.ID)
	}

	// An error is not kept: after fixing the request, the same key works.
	wantError(t, "bad create", f.do("POST", "/v1/api-keys", a, `{"name": "", "scopes": ["bots:read"]}`, "Idempotency-Key", "idem-2"), 400, keystore.EINVALID)

	before := f.count()
	wantError(t, "long Idempotency-Key", f.do("POST", "/v1/api-keys", a, body, "Idempotency-Key", strings.Repeat("k", 256)), 400, keystore.EINVALID)
	wantError(t, "non-ASCII Idempotency-Key", f.do("POST", "/v1/api-keys", a, body, "Idempotency-Key", "clé"), 400, keystore.EINVALID)
	if n := f.count(); n != before {
		t.Errorf("a refused Idempotency-Key made a key")
	}
}

func TestIdempotencyExpires(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, server.Options{Now: clock})
	body := `{"name": "ci", "scopes": ["bots:read"]}`
	var k1, k2, k3 keystore.Key
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "daily"), 201, &k1)
	mu.Lock()
	now = now.Add(23 * time.Hour)
	mu.Unlock()
	data(t, "retry after 23h", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "daily"), 201, &k2)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	data(t, "retry after 25h", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "daily"), 201, &k3)
	if k2.ID != k1.ID || k3.ID == k1.ID {
		t.Errorf("keys %s, %s, %s: want the first replayed within 24 hours only", k1.ID, k2.ID, k3.ID)
	}
}

// Concurrent retries with one Idempotency-Key make one key.
func TestIdempotencyConcurrent(t *testing.T) {
	f := newFixture(t, server.Options{})
	body := `{"name": "race", "scopes": ["bots:read"]}`
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", f.srv.URL+"/v1/api-keys", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+f.admin.Secret)
			req.Header.Set("Idempotency-Key", "same")
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var env struct{ Data keystore.Key }
			json.NewDecoder(resp.Body).Decode(&env)
			ids[i] = env.Data.ID + " " + env.Data.Secret
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || len(id) < 60 {
			t.Fatalf("concurrent retries got different replies: %q", ids)
		}
	}
	if c := f.count(); c != 3 {
		t.Errorf("%d keys, want 3", c)
	}
}

// The reply is kept in the store file without its secret: a new server on
// the reopened store replays it with the secret withheld and says so, and
// the secret is not on disk.
func TestIdempotencyAfterRestart(t *testing.T) {
	f := newFixture(t, server.Options{})
	body := `{"name": "deploy", "scopes": ["bots:read"]}`
	var first, again keystore.Key
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "restart-1"), 201, &first)

	f.restart(server.Options{})
	r := f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "restart-1")
	data(t, "retry after restart", r, 201, &again)
	if again.ID != first.ID || again.Secret != "" || again.Name != "deploy" {
		t.Errorf("after a restart the retry gave %s (secret %t), want %s without its secret", again.ID, again.Secret != "", first.ID)
	}
	if r.header.Get("Idempotent-Secret") != "withheld" || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("headers Idempotent-Secret %q, Idempotent-Replayed %q; want withheld, true",
			r.header.Get("Idempotent-Secret"), r.header.Get("Idempotent-Replayed"))
	}
	wantError(t, "other body after restart", f.do("POST", "/v1/api-keys", f.admin.Secret, `{"name": "x", "scopes": ["admin"]}`, "Idempotency-Key", "restart-1"), 409, keystore.ECONFLICT)
	if n := f.count(); n != 3 {
		t.Errorf("%d keys, want 3", n)
	}

	var disk []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(f.path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		disk = append(disk, b...)
	}
	random := first.Secret[len("sk_live_"):]
	for i := 0; i+8 <= len(random); i += 8 {
		if bytes.Contains(disk, []byte(random[i:i+8])) {
			t.Errorf("part of the secret of a kept reply is on disk: %d..%d", i, i+8)
		}
	}
	if bytes.Contains(disk, []byte("restart-1")) {
		t.Errorf("the Idempotency-Key is on disk")
	}
}

// The secret of a reply is held in memory for SecretReplayTTL only.
func TestIdempotencySecretHeldBriefly(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, server.Options{Now: clock})
	body := `{"name": "brief", "scopes": ["bots:read"]}`
	var k1, k2, k3 keystore.Key
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "b"), 201, &k1)
	data(t, "retry", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "b"), 201, &k2)
	mu.Lock()
	now = now.Add(server.SecretReplayTTL + time.Second)
	mu.Unlock()
	r := f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "b")
	data(t, "late retry", r, 201, &k3)
	if k2.Secret != k1.Secret || k3.ID != k1.ID || k3.Secret != "" || r.header.Get("Idempotent-Secret") != "withheld" {
		t.Errorf("retry secret %t; late retry %s secret %t header %q: want the secret at once, withheld later",
			k2.Secret == k1.Secret, k3.ID, k3.Secret != "", r.header.Get("Idempotent-Secret"))
	}
}

// Expired replies are purged from the store.
func TestPurgeReplays(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, server.Options{Now: clock})
	body := `{"name": "old", "scopes": ["bots:read"]}`
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "p"), 201, nil)
	mu.Lock()
	now = now.Add(server.ReplayTTL + time.Hour)
	mu.Unlock()
	srv := server.New(f.store, server.Options{Now: clock})
	if err := srv.PurgeReplays(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := f.file.PurgeIdempotency(context.Background(), now)
	if err != nil || n != 0 {
		t.Errorf("after PurgeReplays, %d records were left to purge (%v), want 0", n, err)
	}
}

// A store that keeps no replies itself gets them kept in memory.
func TestIdempotencyInMemory(t *testing.T) {
	f := newFixture(t, server.Options{})
	srv := httptest.NewServer(server.New(plainStore{f.store}, server.Options{}))
	defer srv.Close()
	f.srv = srv
	body := `{"name": "mem", "scopes": ["bots:read"]}`
	var a, b keystore.Key
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "m"), 201, &a)
	data(t, "retry", f.do("POST", "/v1/api-keys", f.admin.Secret, body, "Idempotency-Key", "m"), 201, &b)
	if a.ID != b.ID || f.count() != 3 {
		t.Errorf("in memory: %s then %s, %d keys", a.ID, b.ID, f.count())
	}
}

// plainStore hides the SQLite store's replay methods.
type plainStore struct{ keystore.Store }

func TestRateLimit(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, server.Options{RateLimit: 3, Now: clock})
	for i := range 3 {
		r := f.do("GET", "/v1/api-keys", f.admin.Secret, "")
		data(t, "within the limit", r, 200, nil)
		if r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) || r.header.Get("X-RateLimit-Reset") != "1" {
			t.Errorf("request %d: limit %q remaining %q reset %q", i, r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"), r.header.Get("X-RateLimit-Reset"))
		}
	}
	r := f.do("GET", "/v1/api-keys", f.admin.Secret, "")
	wantError(t, "over the limit", r, 429, keystore.ERATELIMITED)
	if r.header.Get("Retry-After") != "1" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("429: Retry-After %q, remaining %q", r.header.Get("Retry-After"), r.header.Get("X-RateLimit-Remaining"))
	}
	// Each key has its own bucket, and unknown keys are limited too.
	data(t, "another key", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, `{"key": "x"}`), 200, nil)
	for range 3 {
		wantError(t, "unknown key", f.do("GET", "/v1/api-keys", "sk_live_guess", ""), 401, keystore.EUNAUTHORIZED)
	}
	wantError(t, "unknown key over the limit", f.do("GET", "/v1/api-keys", "sk_live_guess", ""), 429, keystore.ERATELIMITED)
	// No bearer, no bucket; /healthz is never limited.
	wantError(t, "no bearer", f.do("GET", "/v1/api-keys", "", ""), 401, keystore.EUNAUTHORIZED)
	for range 5 {
		data(t, "healthz", f.do("GET", "/healthz", "", ""), 200, nil)
	}

	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	r = f.do("GET", "/v1/api-keys", f.admin.Secret, "")
	data(t, "a second later", r, 200, nil)
	if r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Errorf("a second later %q remain, want 2", r.header.Get("X-RateLimit-Remaining"))
	}

	off := newFixture(t, server.Options{})
	for range 20 {
		r := off.do("GET", "/v1/api-keys", off.admin.Secret, "")
		data(t, "no limit", r, 200, nil)
		if r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("limit headers without a limit")
		}
	}
}

// Over a cached store (keyctl serve's), verifications are answered from
// memory, and a key revoked through the API fails the next request, as the
// key in the body and as the bearer.
func TestCachedVerifyAndRevoke(t *testing.T) {
	f := newFixtureCached(t, server.Options{}, true)
	k := f.create(keystore.CreateParams{Name: "client", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "a"}})
	body := `{"key":"` + k.Secret + `","scopes":["bots:read"]}`
	for i := range 3 {
		var v keystore.Verification
		data(t, "verify", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, body), 200, &v)
		if !v.Valid || v.Code != keystore.CodeValid || v.Key == nil || v.Key.ID != k.ID || v.Key.Status != keystore.StatusActive ||
			v.Key.LastUsedAt == nil || v.Key.Metadata["team"] != "a" || len(v.MissingScopes) != 0 {
			t.Fatalf("verify %d: %+v %+v", i, v, v.Key)
		}
	}
	var v keystore.Verification
	data(t, "missing scope", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, `{"key":"`+k.Secret+`","scopes":["bots:write"]}`), 200, &v)
	if v.Valid || v.Code != keystore.CodeInsufficientScope || len(v.MissingScopes) != 1 {
		t.Fatalf("verify with a scope it lacks: %+v", v)
	}
	data(t, "revoke", f.do("DELETE", "/v1/api-keys/"+k.ID, f.admin.Secret, ""), 200, nil)
	data(t, "after revoke", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, body), 200, &v)
	if v.Valid || v.Code != keystore.CodeRevoked || v.Key == nil || v.Key.Status != keystore.StatusRevoked {
		t.Fatalf("a key revoked through the API, at once: %+v %+v", v, v.Key)
	}
	data(t, "revoke the caller", f.do("DELETE", "/v1/api-keys/"+f.reader.ID, f.admin.Secret, ""), 200, nil)
	wantError(t, "a revoked bearer", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, body), 401, keystore.EUNAUTHORIZED)
}

// Revocation is immediate: a key revoked by another process writing the
// same file is refused on the next request.
func TestRevokedByAnotherProcess(t *testing.T) {
	if spec := os.Getenv("KEYCTL_TEST_REVOKE"); spec != "" {
		path, id, _ := strings.Cut(spec, "|")
		// The server's store reads the fixture's clock, which starts at
		// storetest.Start: this process revokes at that time too.
		s, err := sqlite.Open(path, sqlite.Options{Now: func() time.Time { return storetest.Start }})
		if err == nil {
			_, err = s.Revoke(context.Background(), id)
			s.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	f := newFixture(t, server.Options{})
	client := f.create(keystore.CreateParams{Name: "client", Scopes: []string{"admin"}})
	data(t, "before", f.do("GET", "/v1/api-keys", client.Secret, ""), 200, nil)

	cmd := exec.Command(os.Args[0], "-test.run=^TestRevokedByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KEYCTL_TEST_REVOKE="+f.path+"|"+client.ID)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("revoking in another process: %v\n%s", err, out)
	}
	wantError(t, "after another process revoked the key", f.do("GET", "/v1/api-keys", client.Secret, ""), 401, keystore.EUNAUTHORIZED)
	data(t, "other keys still work", f.do("GET", "/v1/api-keys", f.admin.Secret, ""), 200, nil)
}

// One log line per request, with what an operator needs and never a secret:
// through slog's own JSON handler, and through keyctl serve's logger, which
// holds request lines in a LogBuffer until it is flushed.
func TestLogs(t *testing.T) {
	t.Run("slog", func(t *testing.T) {
		f := newFixture(t, server.Options{})
		testLogs(t, f, f.logs.String)
	})
	t.Run("buffered", func(t *testing.T) {
		var out syncBuffer
		lb := server.NewLogBuffer(&out, time.Hour)
		f := newFixture(t, server.Options{Logger: server.NewLogger(lb)})
		testLogs(t, f, func() string {
			if held := out.String(); held != "" {
				t.Errorf("request lines written before the buffer was flushed:\n%s", held)
			}
			if err := lb.Close(); err != nil {
				t.Fatal(err)
			}
			return out.String()
		})
	})
}

func testLogs(t *testing.T, f *fixture, logged func() string) {
	var k keystore.Key
	data(t, "create", f.do("POST", "/v1/api-keys", f.admin.Secret, `{"name": "logged", "scopes": ["bots:read"]}`, "Idempotency-Key", "log-1"), 201, &k)
	data(t, "replay", f.do("POST", "/v1/api-keys", f.admin.Secret, `{"name": "logged", "scopes": ["bots:read"]}`, "Idempotency-Key", "log-1"), 201, nil)
	data(t, "verify", f.do("POST", "/v1/api-keys/verify", f.reader.Secret, `{"key": "`+k.Secret+`"}`), 200, nil)
	wantError(t, "secret in the path", f.do("GET", "/v1/api-keys/"+k.Secret, f.admin.Secret, ""), 400, keystore.EINVALID)
	wantError(t, "secret as request id", f.do("GET", "/v1/api-keys", "sk_live_x", "", "X-Request-Id", k.Secret), 401, keystore.EUNAUTHORIZED)
	data(t, "healthz", f.do("GET", "/healthz", "", ""), 200, nil)
	const requests = 6

	logs := logged()
	for _, secret := range []string{f.admin.Secret, f.reader.Secret, k.Secret} {
		random := secret[len("sk_live_"):]
		if strings.Contains(logs, random[:16]) || strings.Contains(logs, random[16:]) {
			t.Errorf("the log holds a secret:\n%s", logs)
		}
	}
	if strings.Contains(logs, `"logged"`) {
		t.Errorf("the log holds a request body:\n%s", logs)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, line)
	}
	if len(lines) != requests {
		t.Fatalf("%d log lines for %d requests:\n%s", len(lines), requests, logs)
	}
	for i, line := range lines {
		for _, field := range []string{"method", "path", "status", "duration_ms", "request_id"} {
			if _, ok := line[field]; !ok {
				t.Errorf("line %d lacks %s: %v", i, field, line)
			}
		}
	}
	if lines[0]["key_id"] != f.admin.ID || lines[0]["status"] != 201.0 || lines[0]["path"] != "/v1/api-keys" || lines[0]["method"] != "POST" {
		t.Errorf("create line: %v", lines[0])
	}
	if lines[2]["key_id"] != f.reader.ID {
		t.Errorf("verify line names caller %v, want %s", lines[2]["key_id"], f.reader.ID)
	}
	if lines[3]["path"] != "/v1/api-keys/[redacted]" {
		t.Errorf("path with a secret logged as %v", lines[3]["path"])
	}
	if _, ok := lines[4]["key_id"]; ok {
		t.Errorf("an unauthenticated request names a key: %v", lines[4])
	}
}

func ptr[T any](v T) *T { return &v }

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
