package postgres

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
)

// The read of the change feed, which keystore/cache makes 50 times a
// second, stays below the cost at which PostgreSQL compiles a query (JIT)
// on a large audit log: compiling it took longer than the cache may be
// stale, so it never answered from memory.
func TestChangesQueryCheap(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pgtest.Exec(t, dsn, `INSERT INTO audit_events (version, id, at, actor, action, key_id, details)
		SELECT 1, 'evt_' || g, now(), 'bench', 'import', 'key_' || g, '{}' FROM generate_series(1, 100000) g`)
	pgtest.Exec(t, dsn, "UPDATE keyctl_changes SET version = 1")
	pgtest.Exec(t, dsn, "ANALYZE audit_events")
	ctx := context.Background()
	var threshold float64
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('jit_above_cost')::float8").Scan(&threshold); err != nil {
		t.Fatal(err)
	}
	for _, since := range []int64{0, 1} {
		var plan []struct {
			Plan struct {
				TotalCost float64 `json:"Total Cost"`
			}
		}
		var js []byte
		if err := s.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+changesQuery, since, 1001).Scan(&js); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js, &plan); err != nil || len(plan) != 1 {
			t.Fatalf("plan %s: %v", js, err)
		}
		if c := plan[0].Plan.TotalCost; c >= threshold {
			t.Errorf("since %d: the feed's query costs %.0f, at or above jit_above_cost %.0f", since, c, threshold)
		}
	}
	if _, _, complete, err := s.Changes(ctx, 1, 1000); err != nil || !complete {
		t.Errorf("Changes after the last version: complete %v, %v", complete, err)
	}
}
