package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
)

// undoSchema6 takes a store back to schema 5, as an older keyctl left it.
var undoSchema6 = []string{
	"ALTER TABLE keys DROP COLUMN scope_uses",
	"PRAGMA user_version = 5",
}

// Schema 6 adds scope_uses: a store of schema 5 is brought up to it, its
// keys with no recorded scope use, and a verification then records one.
func TestMigrateToSchema6(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "old")
	s.Close()
	db := rawDB(t, path)
	execAll(t, db, undoSchema7...)
	execAll(t, db, undoSchema6...)
	db.Close()

	s = open(t, path)
	defer s.Close()
	ctx := context.Background()
	got, err := s.Get(ctx, k.ID)
	if err != nil || len(got.UsedScopes) != 0 || len(got.ScopesLastUsed) != 0 {
		t.Fatalf("Get after the upgrade = %+v, %v; want no scope use", got, err)
	}
	if got := pragma(t, path, "user_version"); got != "7" {
		t.Errorf("user_version = %q, want 7", got)
	}
	if v, err := s.Verify(ctx, k.Secret, []string{k.Scopes[0]}); err != nil || !v.Valid {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	got, err = s.Get(ctx, k.ID)
	if err != nil || len(got.UsedScopes) != 1 || got.UsedScopes[0] != k.Scopes[0] {
		t.Fatalf("after a verify: used scopes %v, %v", got.UsedScopes, err)
	}
}
