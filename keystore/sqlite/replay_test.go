package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

func TestReplays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))

	if got, err := s.LoadReplay(ctx, a, t0); err != nil || got != nil {
		t.Fatalf("LoadReplay before any save = %q, %v; want nil", got, err)
	}
	if err := s.SaveReplay(ctx, a, []byte("first"), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveReplay(ctx, b, []byte("other"), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadReplay(ctx, a, t0); err != nil || string(got) != "first" {
		t.Errorf("LoadReplay = %q, %v; want first", got, err)
	}
	if got, err := s.LoadReplay(ctx, a, t0.Add(time.Second)); err != nil || got != nil {
		t.Errorf("LoadReplay of a record older than since = %q, %v; want nil", got, err)
	}

	// A record outlives the store's process.
	s.Close()
	s = open(t, path)
	if got, err := s.LoadReplay(ctx, b, t0); err != nil || string(got) != "other" {
		t.Errorf("LoadReplay after reopening = %q, %v; want other", got, err)
	}

	// Saving again replaces; pruning drops what is older than the cut.
	if err := s.SaveReplay(ctx, a, []byte("second"), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadReplay(ctx, a, t0); !bytes.Equal(got, []byte("second")) {
		t.Errorf("after saving again LoadReplay = %q, want second", got)
	}
	if err := s.PruneReplays(ctx, t0.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadReplay(ctx, b, t0); got != nil {
		t.Errorf("a pruned record came back: %q", got)
	}
	if got, _ := s.LoadReplay(ctx, a, t0); got == nil {
		t.Errorf("pruning dropped a newer record")
	}
}

// A store of schema 1 gains the replay table when opened, keeping its keys.
func TestMigrateFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "old")
	s.Close()
	db := rawDB(t, path)
	execAll(t, db, undoSchema4...)
	execAll(t, db, "DROP TABLE idempotent_replies", "PRAGMA user_version = 1")
	db.Close()

	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(context.Background(), k.ID); err != nil {
		t.Errorf("Get after the upgrade: %v", err)
	}
	if err := s.SaveReplay(context.Background(), sha256.Sum256(nil), []byte("x"), time.Now()); err != nil {
		t.Errorf("SaveReplay after the upgrade: %v", err)
	}
	if got := pragma(t, path, "user_version"); got != "4" {
		t.Errorf("user_version = %q, want 4", got)
	}
}
