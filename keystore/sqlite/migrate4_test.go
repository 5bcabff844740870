package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// undoSchema4 takes a store back to schema 3, as an older keyctl left it.
var undoSchema4 = []string{
	"DROP INDEX audit_events_action",
	"ALTER TABLE keys DROP COLUMN disabled_at",
	"PRAGMA user_version = 3",
}

// Schema 4 adds disabled_at: a store of schema 3 is brought up to it, its
// keys enabled, and a key can then be disabled.
func TestMigrateToSchema4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "old")
	s.Close()
	db := rawDB(t, path)
	execAll(t, db, undoSchema7...)
	execAll(t, db, undoSchema6...)
	execAll(t, db, undoSchema5...)
	execAll(t, db, undoSchema4...)
	db.Close()

	s = open(t, path)
	defer s.Close()
	got, err := s.Get(context.Background(), k.ID)
	if err != nil || got.DisabledAt != nil || got.Status != keystore.StatusActive {
		t.Fatalf("Get after the upgrade = %+v, %v; want an active key", got, err)
	}
	if got := pragma(t, path, "user_version"); got != fmt.Sprint(sqlite.SchemaVersion) {
		t.Errorf("user_version = %q, want %d", got, sqlite.SchemaVersion)
	}
	d, err := s.Disable(context.Background(), k.ID)
	if err != nil || d.Status != keystore.StatusDisabled {
		t.Fatalf("Disable after the upgrade = %+v, %v", d, err)
	}
}
