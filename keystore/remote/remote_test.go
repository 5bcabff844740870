package remote_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/remote"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
	"github.com/chatbotplatform/keyctl/server"
)

// The remote store passes the contract suite talking to a real server on
// loopback, over a real SQLite file whose clock is the suite's.
func TestContract(t *testing.T) {
	storetest.RunHarness(t, func(t *testing.T, clock *storetest.Clock) storetest.Harness {
		path := filepath.Join(t.TempDir(), "keys.db")
		admin := bootstrap(t, path)
		local, err := sqlite.Open(path, sqlite.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { local.Close() })
		srv := httptest.NewServer(server.New(local, server.Options{}))
		t.Cleanup(srv.Close)
		s, err := remote.Open(srv.URL+"/v1", admin.Secret, remote.Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// Through the API, the audit log names the calling key.
		return storetest.Harness{Store: s, Actor: func(string) string { return admin.ID }}
	})
}

// bootstrap makes the admin key the remote store calls with, an hour before
// the suite's clock starts, in a new store at path.
func bootstrap(t testing.TB, path string) *keystore.Key {
	t.Helper()
	s, err := sqlite.Open(path, sqlite.Options{Now: func() time.Time { return storetest.Start.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.Create(context.Background(), keystore.CreateParams{Name: "admin", Scopes: []string{keystore.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
