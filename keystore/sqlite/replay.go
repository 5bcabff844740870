package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// SaveReplay keeps record under lookup, replacing any record there, for the
// HTTP API's Idempotency-Key support (server.ReplayStore). The record is
// sealed by the server; the store neither reads nor needs to understand it.
func (s *Store) SaveReplay(ctx context.Context, lookup [32]byte, record []byte, at time.Time) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO idempotent_replies (lookup, record, created_at) VALUES (?, ?, ?)
		 ON CONFLICT (lookup) DO UPDATE SET record = excluded.record, created_at = excluded.created_at`,
		lookup[:], record, at.Unix())
	if err != nil {
		return s.fail(ctx, "save idempotent reply", err)
	}
	return nil
}

// LoadReplay returns the record kept under lookup if it was saved at or
// after since, and nil if there is none.
func (s *Store) LoadReplay(ctx context.Context, lookup [32]byte, since time.Time) ([]byte, error) {
	var record []byte
	err := s.db.QueryRowContext(ctx,
		"SELECT record FROM idempotent_replies WHERE lookup = ? AND created_at >= ?",
		lookup[:], since.Unix()).Scan(&record)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "load idempotent reply", err)
	}
	return record, nil
}

// PruneReplays deletes the records saved before t.
func (s *Store) PruneReplays(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM idempotent_replies WHERE created_at < ?", before.Unix()); err != nil {
		return s.fail(ctx, "prune idempotent replies", err)
	}
	return nil
}
