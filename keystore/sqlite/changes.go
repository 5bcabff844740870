package sqlite

import (
	"context"

	"github.com/chatbotplatform/keyctl/keystore"
)

var _ keystore.ChangeFeed = (*Store)(nil)

// Changes reads the audit events after seq since: every change by any
// process writes one in its own transaction. Reading them by seq > since
// is exact on SQLite: a write transaction holds the file's write lock
// from BEGIN IMMEDIATE to COMMIT, so events take their seq in commit
// order and none with a lower seq commits later (on PostgreSQL it could:
// see keystore/postgres's Changes).
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]keystore.Change, int64, bool, error) {
	const op = "read changes"
	// A delivery ends the key it succeeds, and the revocation of an
	// undelivered successor unlinks it: both named in the details.
	rows, err := s.db.QueryContext(ctx, `SELECT seq, action, key_id,
		CASE WHEN action IN ('deliver', 'revoke') THEN coalesce(json_extract(details, '$.rotated_from'), '') ELSE '' END
		FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`, since, limit+1)
	if err != nil {
		return nil, 0, false, s.fail(ctx, op, err)
	}
	defer rows.Close()
	var changes []keystore.Change
	pos := since
	for rows.Next() {
		var c keystore.Change
		if err := rows.Scan(&pos, &c.Action, &c.KeyID, &c.Other); err != nil {
			return nil, 0, false, s.fail(ctx, op, err)
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, s.fail(ctx, op, err)
	}
	if len(changes) <= limit {
		return changes, pos, true, nil
	}
	if err := s.db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM audit_events").Scan(&pos); err != nil {
		return nil, 0, false, s.fail(ctx, op, err)
	}
	return nil, pos, false, nil
}
