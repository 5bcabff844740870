package postgres

import (
	"context"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

var (
	_ keystore.ChangeFeed     = (*Store)(nil)
	_ keystore.ChangeNotifier = (*Store)(nil)
	_ keystore.UseRecorder    = (*Store)(nil)
)

// ChangeNotify returns a channel closed when the change feed (feed.go)
// sees a new version; nil without Options.Watch.
func (s *Store) ChangeNotify() <-chan struct{} {
	f := s.feed
	if f == nil {
		return nil
	}
	w := make(chan struct{})
	f.mu.Lock()
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	return w
}

// RecordUse queues a use of key id at t, and of scopes at t, for the
// writer of uses (writeUses in uses.go).
func (s *Store) RecordUse(id string, t time.Time, scopes []string) {
	s.uses.Add(id, t, scopes)
}

// changesQuery reads the latest version ($1 since, $2 limit) and the
// events after since up to it, in commit order. The latest version comes
// from a subquery with LIMIT 1: joined to keyctl_changes itself, which is
// never analyzed, the planner expects thousands of rows, and on a log of
// 100,000 events the estimate passed jit_above_cost, so that every read
// compiled the query (over 100 ms) and the cache was always stale.
const changesQuery = `SELECT v.version, e.version, e.action, e.key_id, e.other
	FROM (SELECT version FROM keyctl_changes LIMIT 1) v LEFT JOIN LATERAL (
		SELECT version, seq, action, key_id,
			CASE WHEN action IN ('deliver', 'revoke') THEN coalesce(details ->> 'rotated_from', '') ELSE '' END AS other
		FROM audit_events WHERE version > $1 AND version <= v.version
		ORDER BY version, seq LIMIT $2) e ON true
	ORDER BY e.version, e.seq`

// Changes reads the audit events of the versions after since. Versions
// become visible in commit order (the feed's row lock; see record), so
// reading by version > since misses none. A version with no audit event
// (a restore of keys or links) names no key: it makes the result
// incomplete.
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]keystore.Change, int64, bool, error) {
	const op = "read changes"
	// One statement, so one snapshot: the latest version and the events
	// up to it.
	rows, err := s.pool.Query(ctx, changesQuery, since, limit+1)
	if err != nil {
		return nil, 0, false, s.fail(ctx, op, err)
	}
	defer rows.Close()
	var (
		changes  []keystore.Change
		latest   int64
		versions int64 // distinct versions among the events
		last     int64
	)
	for rows.Next() {
		var (
			version              *int64
			action, keyID, other *string
		)
		if err := rows.Scan(&latest, &version, &action, &keyID, &other); err != nil {
			return nil, 0, false, s.fail(ctx, op, err)
		}
		if version == nil {
			continue
		}
		if *version != last {
			versions++
			last = *version
		}
		changes = append(changes, keystore.Change{Action: *action, KeyID: *keyID, Other: *other})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, s.fail(ctx, op, err)
	}
	if len(changes) > limit || versions != latest-since {
		return nil, latest, false, nil
	}
	return changes, latest, true, nil
}
