package server_test

import (
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// A test admin key manages test keys only: creating, updating, disabling,
// enabling, rotating, revoking, deleting or importing a live key with it is a 403 that changes nothing, unless the
// server allows it with TestKeysManageLive.
func TestTestKeyManagesTestKeysOnly(t *testing.T) {
	f := newFixture(t, server.Options{})
	testAdmin := f.create(keystore.CreateParams{Name: "test admin", Scopes: []string{"admin"}, Environment: keystore.EnvTest})
	testKey := f.create(keystore.CreateParams{Name: "test bot", Scopes: []string{"bots:read"}, Environment: keystore.EnvTest})
	ta := testAdmin.Secret
	before := f.count()

	refused := []struct{ what, method, path, body string }{
		{"create live", "POST", "/v1/api-keys", `{"name": "live admin", "scopes": ["admin"], "environment": "live"}`},
		{"create with the default environment (live)", "POST", "/v1/api-keys", `{"name": "live admin", "scopes": ["admin"]}`},
		{"rotate live", "POST", "/v1/api-keys/" + f.reader.ID + "/rotate", ``},
		{"revoke live", "DELETE", "/v1/api-keys/" + f.reader.ID, ``},
		{"update live", "PATCH", "/v1/api-keys/" + f.reader.ID, `{"scopes": ["admin"]}`},
		{"disable live", "POST", "/v1/api-keys/" + f.reader.ID + "/disable", ``},
		{"enable live", "POST", "/v1/api-keys/" + f.reader.ID + "/enable", ``},
		{"delete live", "POST", "/v1/api-keys/" + f.reader.ID + "/delete", ``},
		{"import live", "POST", "/v1/api-keys/import", `{"keys": [
			{"name": "t", "scopes": ["bots:read"], "environment": "test", "key_sha256": "` + strings.Repeat("ab", 32) + `"},
			{"name": "l", "scopes": ["admin"], "key_sha256": "` + strings.Repeat("cd", 32) + `"}]}`},
	}
	for _, tc := range refused {
		e := wantError(t, tc.what, f.do(tc.method, tc.path, ta, tc.body), 403, keystore.EFORBIDDEN)
		if !strings.Contains(e.Message, "test key, which manages test keys only") {
			t.Errorf("%s: message %q", tc.what, e.Message)
		}
	}
	if n := f.count(); n != before {
		t.Errorf("%d keys after refused requests, want %d", n, before)
	}
	if k, err := f.store.Get(t.Context(), f.reader.ID); err != nil || k.Status != keystore.StatusActive || k.RotatedTo != nil || len(k.Scopes) != 1 {
		t.Errorf("the live key after refused requests: %+v, %v", k, err)
	}

	// Test keys it may manage.
	var made keystore.Key
	data(t, "create test", f.do("POST", "/v1/api-keys", ta, `{"name": "ci", "scopes": ["bots:read"], "environment": "test"}`), 201, &made)
	if made.Environment != keystore.EnvTest {
		t.Errorf("created %+v", made)
	}
	data(t, "update test", f.do("PATCH", "/v1/api-keys/"+testKey.ID, ta, `{"name": "test bot 2"}`), 200, nil)
	data(t, "disable test", f.do("POST", "/v1/api-keys/"+testKey.ID+"/disable", ta, ``), 200, nil)
	data(t, "enable test", f.do("POST", "/v1/api-keys/"+testKey.ID+"/enable", ta, ``), 200, nil)
	data(t, "rotate test", f.do("POST", "/v1/api-keys/"+testKey.ID+"/rotate", ta, ``), 201, nil)
	data(t, "revoke test", f.do("DELETE", "/v1/api-keys/"+made.ID, ta, ``), 200, nil)
	data(t, "delete test", f.do("POST", "/v1/api-keys/"+made.ID+"/delete", ta, ``), 200, nil)
	data(t, "import test", f.do("POST", "/v1/api-keys/import", ta, `{"keys": [
		{"name": "t", "scopes": ["bots:read"], "environment": "test", "key_sha256": "`+strings.Repeat("ef", 32)+`"}]}`), 200, nil)
	// Reading is not managing.
	data(t, "show live", f.do("GET", "/v1/api-keys/"+f.reader.ID, ta, ``), 200, nil)

	// A live admin key manages both.
	data(t, "live admin creates test", f.do("POST", "/v1/api-keys", f.admin.Secret, `{"name": "t2", "scopes": ["bots:read"], "environment": "test"}`), 201, nil)

	// Configured: the test key may manage live keys too.
	f.restart(server.Options{TestKeysManageLive: true})
	var live keystore.Key
	data(t, "create live, allowed", f.do("POST", "/v1/api-keys", ta, `{"name": "live", "scopes": ["bots:read"]}`), 201, &live)
	if live.Environment != keystore.EnvLive {
		t.Errorf("created %+v", live)
	}
	data(t, "revoke live, allowed", f.do("DELETE", "/v1/api-keys/"+f.reader.ID, ta, ``), 200, nil)
}
