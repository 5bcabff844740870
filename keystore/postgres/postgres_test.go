package postgres_test

import (
	"fmt"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

func open(t *testing.T, dsn string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	pgtest.Admin(t)
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		return open(t, pgtest.DSN(t), postgres.Options{Now: clock.Now})
	})
}

// The store of keyctl serve, with its change feed, passes the same
// contract.
func TestContractWatching(t *testing.T) {
	pgtest.Admin(t)
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		return open(t, pgtest.DSN(t), postgres.Options{Now: clock.Now, Watch: true})
	})
}

func TestMigrationsNumbered(t *testing.T) {
	names := postgres.MigrationNames()
	if len(names) != postgres.SchemaVersion {
		t.Fatalf("%d migrations, SchemaVersion %d", len(names), postgres.SchemaVersion)
	}
	for i, n := range names {
		if want := fmt.Sprintf("migrations/%04d_", i+1); len(n) < len(want) || n[:len(want)] != want {
			t.Errorf("migration %d is %s, want %s*.sql", i+1, n, want)
		}
	}
}
