package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/server"
)

// FuzzHandler sends arbitrary requests, with an admin key in the store:
// the handler must never panic, and must always answer a JSON envelope,
// success or error, with an X-Request-Id. ADMIN in the authorization
// header stands for the admin key's secret.
func FuzzHandler(f *testing.F) {
	store, err := sqlite.Open(filepath.Join(f.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	admin, err := store.Create(context.Background(), keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	if err != nil {
		f.Fatal(err)
	}
	var logs syncBuffer
	h := server.New(store, server.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), RateLimit: 0})

	for _, seed := range []struct{ method, path, body, auth, idem string }{
		{"GET", "/healthz", "", "", ""},
		{"GET", "/v1/api-keys?page=2&per_page=5", "", "Bearer ADMIN", ""},
		{"GET", "/v1/api-keys?per_page=1000&status=x&created_before=y&rotatable=z", "", "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys", `{"name": "f", "scopes": ["bots:*"], "metadata": {"a": "b"}}`, "Bearer ADMIN", "i1"},
		{"POST", "/v1/api-keys", `{"name": "f", "scopes": ["bots:read"], "expires_at": "2099-01-01T00:00:00Z"}`, "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys", `{"name": [], "x": 1}`, "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/key_0000000000000000/rotate", `{"grace_seconds": 10}`, "Bearer ADMIN", "r"},
		{"DELETE", "/v1/api-keys/key_0000000000000000", "", "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/verify", `{"key": "sk_live_000000000000000000000000000000002UYg5A", "scopes": ["*"]}`, "Bearer ADMIN", ""},
		{"GET", "/v1/audit-events?key_id=key_0000000000000000", "", "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/import", `{"keys": [{"name": "i", "scopes": ["bots:*"], "key": "sk_live_000000000000000000000000000000002UYg5A"}, {"name": "h", "scopes": ["admin"], "key_sha256": "` + strings.Repeat("0f", 32) + `", "hint": "sk_live_ab…cd"}, null, 1]}`, "Bearer ADMIN", "m"},
		{"PATCH", "/v1/api-keys", "{", "bearer ADMIN", ""},
		{"PATCH", "/v1/api-keys/key_0000000000000000", `{"name": "n", "scopes": ["bots:*"], "expires_at": null, "metadata": {"a": null, "b": "c"}}`, "Bearer ADMIN", ""},
		{"PATCH", "/v1/api-keys/key_0000000000000000", `{"expires_at": "2099-01-01T00:00:00Z"}`, "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/key_0000000000000000/disable", "", "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/key_0000000000000000/enable", "{}", "Bearer ADMIN", ""},
		{"POST", "/v1/api-keys/key_0000000000000000/delete", "", "Bearer ADMIN", ""},
		{"GET", "/v1/audit-events?page=2&per_page=3&action=update&since=2026-01-01T00:00:00Z", "", "Bearer ADMIN", ""},
		{"GET", "/v1/api-keys?id_prefix=key_a&expiring_before=2027-01-01T00:00:00Z&revocable=true", "", "Bearer ADMIN", ""},
		{"GET", "//v1/../api-keys/", "", "Basic x", ""},
		{"OPTIONS", "*", "", "", ""},
	} {
		f.Add(seed.method, seed.path, seed.body, seed.auth, seed.idem)
	}
	f.Fuzz(func(t *testing.T, method, path, body, auth, idem string) {
		req, err := http.NewRequest(method, "http://keys.test"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a server could receive
		}
		req.Header.Set("Authorization", strings.ReplaceAll(auth, "ADMIN", admin.Secret))
		req.Header.Set("Idempotency-Key", idem)
		w := httptest.NewRecorder()
		logs.mu.Lock()
		logs.b.Reset()
		logs.mu.Unlock()

		h.ServeHTTP(w, req)

		if strings.Contains(logs.String(), "panic") {
			t.Fatalf("%s %q panicked:\n%s", method, path, logs.String())
		}
		if w.Header().Get("X-Request-Id") == "" {
			t.Fatalf("%s %q: no X-Request-Id", method, path)
		}
		var env map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		if err := dec.Decode(&env); err != nil {
			t.Fatalf("%s %q: %d reply %q is not JSON", method, path, w.Code, w.Body.String())
		}
		_, isData := env["data"]
		rawErr, isErr := env["error"]
		switch {
		case isErr == isData:
			t.Fatalf("%s %q: reply %s is neither a data nor an error envelope", method, path, w.Body.String())
		case isErr:
			var e struct{ Code, Message, Request_ID string }
			if json.Unmarshal(rawErr, &e) != nil || e.Code == "" || e.Message == "" || e.Request_ID != w.Header().Get("X-Request-Id") || w.Code < 400 {
				t.Fatalf("%s %q: bad error reply %d %s", method, path, w.Code, w.Body.String())
			}
		case w.Code >= 300:
			t.Fatalf("%s %q: data with status %d", method, path, w.Code)
		}
		if strings.Contains(logs.String(), admin.Secret[8:24]) {
			t.Fatalf("the log holds the admin secret")
		}
	})
}
