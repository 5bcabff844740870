package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// roundTripKeys is the size of the SQLite -> PostgreSQL -> SQLite test:
// 100,000 keys (and as many audit events; BENCHMARKS.md gives its time);
// KEYCTL_TEST_ROUNDTRIP_KEYS sets another size.
func roundTripKeys(t *testing.T) int {
	if s := os.Getenv("KEYCTL_TEST_ROUNDTRIP_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if testing.Short() {
		return 2000
	}
	return 100_000
}

// A store moved from SQLite to PostgreSQL and back with keyctl export and
// keyctl import lists the same keys and the same audit log, byte for byte,
// at every step.
func TestExportImportRoundTrip(t *testing.T) {
	pg := pgtest.DSN(t)
	n := roundTripKeys(t)
	dir := t.TempDir()
	env := childEnv(dir, "KEYCTL_TEST_NOW="+storeNow.Format(time.RFC3339))
	first := filepath.Join(dir, "first.db")
	seedRoundTrip(t, first, n)

	last := filepath.Join(dir, "last.db")
	start := time.Now()
	export1 := filepath.Join(dir, "first.export.jsonl")
	mustRun(t, env, "--store", first, "export", export1)
	mustRun(t, env, "--store", pg, "import", export1)
	export2 := filepath.Join(dir, "pg.export.jsonl")
	mustRun(t, env, "--store", pg, "export", export2)
	mustRun(t, env, "--store", last, "import", export2)
	t.Logf("%d keys: exported and imported twice in %v", n, time.Since(start))

	for _, what := range [][]string{{"list", "--all", "-o", "json"}, {"audit", "-o", "json"}} {
		want := mustRun(t, env, append([]string{"--store", first}, what...)...)
		for _, store := range []string{pg, last} {
			if got := mustRun(t, env, append([]string{"--store", store}, what...)...); got != want {
				t.Errorf("%s on %s differs from the first store's (%d bytes, want %d)", strings.Join(what, " "), store, len(got), len(want))
			}
		}
	}
	b1, _ := os.ReadFile(export1)
	b2, _ := os.ReadFile(export2)
	if strings.SplitN(string(b1), "\n", 2)[1] != strings.SplitN(string(b2), "\n", 2)[1] {
		t.Error("the export of the PostgreSQL store differs from the export it was made from (after the header)")
	}
}

// storeNow is the clock of the round-trip test's processes.
var storeNow = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

// seedRoundTrip makes a store of n keys, imported in batches at different
// times, some rotated (with and without grace), revoked, expired or used,
// with metadata.
func seedRoundTrip(t *testing.T, path string, n int) {
	t.Helper()
	now := storeNow.Add(-30 * 24 * time.Hour)
	s, err := sqlite.Open(path, sqlite.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := keystore.WithActor(context.Background(), "seed")
	var secrets []string
	for done := 0; done < n; {
		batch := make([]keystore.ImportKey, 0, keystore.MaxImportBatch)
		for i := 0; i < keystore.MaxImportBatch && done+i < n; i++ {
			secret, err := keystore.NewToken(keystore.EnvLive, nil)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, secret)
			line := fmt.Sprintf(`{"name":"key %d","scopes":["bots:read","conversations:*"],"key":%q`, done+i, secret)
			if i%3 == 0 {
				line += fmt.Sprintf(`,"metadata":{"team":"t%d","owner":"o%d"}`, i%7, i%11)
			}
			if i%5 == 0 {
				line += `,"expires_at":"` + storeNow.Add(time.Duration(i%20-10)*24*time.Hour).Format(time.RFC3339) + `"`
			}
			k, err := keystore.ParseImportRecord([]byte(line+"}"), now)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, *k)
		}
		if _, err := s.Import(ctx, batch); err != nil {
			t.Fatal(err)
		}
		done += len(batch)
		now = now.Add(time.Hour)
	}
	for i, secret := range secrets {
		if i%97 != 0 {
			continue
		}
		v, err := s.Verify(ctx, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.Key == nil {
			continue
		}
		switch i % 4 {
		case 0:
			_, err = s.Rotate(ctx, v.Key.ID, keystore.RotateOptions{})
		case 1:
			_, err = s.Rotate(ctx, v.Key.ID, keystore.RotateOptions{Grace: 24 * time.Hour})
		case 2:
			_, err = s.Revoke(ctx, v.Key.ID)
		}
		if err != nil && keystore.ErrorCode(err) != keystore.ECONFLICT {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
}
