package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// Schema 3 indexes rotations alone; a store of schema 2 is brought up to
// it, and Audit still finds the rotation that made a key, through the index.
func TestMigrateToSchema3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "rotated")
	nk, err := s.Rotate(context.Background(), k.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Back to schema 2, as an older keyctl left it.
	db := rawDB(t, path)
	execAll(t, db, undoSchema7...)
	execAll(t, db, undoSchema6...)
	execAll(t, db, undoSchema5...)
	execAll(t, db, undoSchema4...)
	execAll(t, db, "DROP INDEX audit_events_new_key_id",
		"CREATE INDEX audit_events_new_key_id ON audit_events (json_extract(details, '$.new_key_id'))",
		"PRAGMA user_version = 2")
	db.Close()

	s = open(t, path)
	events, err := s.Audit(context.Background(), nk.ID)
	if err != nil || len(events) != 1 || events[0].Action != keystore.ActionRotate || events[0].KeyID != k.ID {
		t.Fatalf("Audit(new key) = %+v, %v; want the rotation that made it", events, err)
	}
	if got := pragma(t, path, "user_version"); got != fmt.Sprint(sqlite.SchemaVersion) {
		t.Errorf("user_version = %q, want %d", got, sqlite.SchemaVersion)
	}
	db = rawDB(t, path)
	defer db.Close()
	var sql string
	if err := db.QueryRow("SELECT sql FROM sqlite_schema WHERE name = 'audit_events_new_key_id'").Scan(&sql); err != nil || !strings.Contains(sql, "WHERE action = 'rotate'") {
		t.Errorf("index: %q, %v", sql, err)
	}
	rows, err := db.Query("EXPLAIN QUERY PLAN SELECT id FROM audit_events WHERE key_id = ? OR (action = 'rotate' AND json_extract(details, '$.new_key_id') = ?)", nk.ID, nk.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		rows.Scan(&id, &parent, &notused, &detail)
		plan = append(plan, detail)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "audit_events_new_key_id") || strings.Contains(p, "SCAN audit_events") {
		t.Errorf("Audit(keyID) does not use the index: %s", p)
	}
}
