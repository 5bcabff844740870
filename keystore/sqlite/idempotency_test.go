package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// fileBytes is the store file and its -wal file, as a thief would copy them.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// Schema 5 drops the sealed replies of schema 2, and their bytes leave the
// file.
func TestMigrateDropsSealedReplies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "old")
	s.Close()

	marker := strings.Repeat("SEALEDREPLY", 40)
	db := rawDB(t, path)
	execAll(t, db, undoSchema7...)
	execAll(t, db, undoSchema6...)
	execAll(t, db, undoSchema5...)
	execAll(t, db, fmt.Sprintf("INSERT INTO idempotent_replies VALUES (x'01', CAST('%s' AS BLOB), 1)", marker),
		"PRAGMA wal_checkpoint(TRUNCATE)")
	db.Close()
	if !bytes.Contains(fileBytes(t, path), []byte(marker)) {
		t.Fatal("the test's record is not in the file")
	}

	s = open(t, path)
	if _, err := s.Get(context.Background(), k.ID); err != nil {
		t.Errorf("Get after the upgrade: %v", err)
	}
	if got := pragma(t, path, "user_version"); got != fmt.Sprint(sqlite.SchemaVersion) {
		t.Errorf("user_version = %q, want %d", got, sqlite.SchemaVersion)
	}
	if bytes.Contains(fileBytes(t, path), []byte(marker[:22])) {
		t.Errorf("the dropped replies' bytes are still in the store file")
	}
}

// A purged record's bytes leave the file (secure_delete, and the -wal
// file checkpointed).
func TestPurgeIdempotencyOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	c := context.Background()
	t0 := time.Now().Add(-48 * time.Hour)
	marker := strings.Repeat("KEPTREPLY", 40)
	lookup := sha256.Sum256([]byte("x"))
	if _, claimed, err := s.ClaimIdempotency(c, lookup, lookup, t0, t0.Add(-time.Hour)); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	if err := s.CompleteIdempotency(c, lookup, keystore.IdempotentReply{Status: 201, Body: []byte(marker)}); err != nil {
		t.Fatal(err)
	}
	create(t, s, "after")
	if !bytes.Contains(fileBytes(t, path), []byte(marker)) {
		t.Fatal("the test's record is not in the file")
	}
	if n, err := s.PurgeIdempotency(c, time.Now().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PurgeIdempotency = %d, %v", n, err)
	}
	if bytes.Contains(fileBytes(t, path), []byte(marker[:18])) {
		t.Errorf("a purged reply's bytes are still in the store files")
	}
}

// undoSchema5 takes a store back to schema 4, as an older keyctl left it.
var undoSchema5 = []string{
	"DROP TABLE idempotency_claims",
	"CREATE TABLE idempotent_replies (lookup BLOB PRIMARY KEY, record BLOB NOT NULL, created_at INTEGER NOT NULL)",
	"CREATE INDEX idempotent_replies_created_at ON idempotent_replies (created_at)",
	"PRAGMA user_version = 4",
}
