package server

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// The claims of a server over a store that keeps none hold the contract of
// keystore.IdempotencyStore too.
func TestMemoryClaims(t *testing.T) {
	storetest.RunIdempotency(t, newMemoryClaims())
}

// A claim left pending by a server that stopped mid-request is not waited
// for forever: after staleClaim a retry gets 409, and no second key.
func TestStaleClaim(t *testing.T) {
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	admin, err := store.Create(context.Background(), keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := `{"name": "x", "scopes": ["bots:read"]}`
	lookup := replayLookup(admin.ID, "stuck")
	if _, claimed, err := store.ClaimIdempotency(context.Background(), lookup, requestHash("POST", "/v1/api-keys", []byte(body)),
		now.Add(-staleClaim-time.Minute), now.Add(-ReplayTTL)); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	srv := New(store, Options{})
	req := httptest.NewRequest("POST", "/v1/api-keys", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin.Secret)
	req.Header.Set("Idempotency-Key", "stuck")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != 409 || !strings.Contains(w.Body.String(), "did not finish") {
		t.Errorf("retry of a stale claim: %d %s, want 409", w.Code, w.Body)
	}
	if n, _ := store.Count(context.Background(), keystore.ListFilter{}); n != 1 {
		t.Errorf("%d keys, want 1", n)
	}
}
