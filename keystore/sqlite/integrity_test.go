package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// seedStore makes a store of n keys, whole in its main file (no -wal).
func seedStore(t *testing.T, n int) (path string, b []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "keys.db")
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := keystore.WithActor(context.Background(), "seed")
	for i := range n {
		k, err := s.Create(ctx, keystore.CreateParams{Name: "key " + strings.Repeat("x", i%50), Scopes: []string{"bots:read"}, Metadata: map[string]string{"n": strings.Repeat("v", i%30)}})
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if _, err := s.Revoke(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// integrityCheck is SQLite's own verdict on a file, read without changing
// it: "ok" or its first finding.
func integrityCheck(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check(1)").Scan(&res); err != nil {
		return err.Error()
	}
	return res
}

// Copies of a store with bytes flipped in their pages: every copy that
// SQLite's integrity_check calls damaged refuses writes (create, rotate,
// revoke, import), with a DamagedError, and keeps every byte.
func TestDamagedStoreRefusesWrites(t *testing.T) {
	_, orig := seedStore(t, 600)
	const pageSize = 4096
	pages := len(orig) / pageSize
	rng := rand.New(rand.NewPCG(14, 6))
	damaged, refused := 0, 0
	for i := range 40 {
		b := bytes.Clone(orig)
		page := 1 + rng.IntN(pages-1) // page 1 is the header and schema: Open refuses those at once
		if i%4 == 0 {
			b[page*pageSize] ^= 0xff // the page's type
		} else {
			off := page*pageSize + 8 + rng.IntN(pageSize-16)
			for j := range 8 {
				b[off+j] ^= byte(rng.IntN(255) + 1)
			}
		}
		path := filepath.Join(t.TempDir(), "keys.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		verdict := integrityCheck(t, path)
		if verdict == "ok" {
			continue // the flip hit free space
		}
		damaged++
		s, err := sqlite.Open(path, sqlite.Options{})
		if err != nil {
			refused++
			continue
		}
		ctx := keystore.WithActor(context.Background(), "t")
		var errs []error
		_, err = s.Create(ctx, keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}})
		errs = append(errs, err)
		_, err = s.Import(ctx, []keystore.ImportKey{{Params: keystore.CreateParams{Name: "y", Scopes: []string{"bots:read"}}, Hash: [32]byte{1}}})
		errs = append(errs, err)
		_, err = s.Revoke(ctx, "key_0000000000000000")
		errs = append(errs, err)
		s.Close()
		for j, err := range errs {
			var de *sqlite.DamagedError
			if !errors.As(err, &de) || keystore.ErrorCode(err) != keystore.EUNAVAILABLE {
				t.Errorf("copy %d (page %d, %s): write %d = %v, want a DamagedError", i, page, verdict, j, err)
			} else if !strings.Contains(de.RecoveryHint(), ".recover") || !strings.Contains(err.Error(), "keys.db is damaged") {
				t.Errorf("copy %d: %q, hint %q", i, err, de.RecoveryHint())
			}
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
			t.Errorf("copy %d: the damaged file changed", i)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
			t.Errorf("copy %d: %d bytes written to the -wal file", i, fi.Size())
		}
		refused++
	}
	t.Logf("%d of 40 copies damaged, %d refused", damaged, refused)
	if damaged < 20 || refused != damaged {
		t.Errorf("%d damaged copies, %d refused; want at least 20, all refused", damaged, refused)
	}
}

// A sound store passes the check, and a process that only reads never runs it.
func TestSoundStoreWrites(t *testing.T) {
	path, _ := seedStore(t, 50)
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if _, err := s.Create(keystore.WithActor(context.Background(), "t"), keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}}); err != nil {
			t.Fatal(err)
		}
	}
}
