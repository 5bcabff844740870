package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// SaveReplay keeps record under lookup, replacing any record there, for the
// HTTP API's Idempotency-Key support (server.ReplayStore). The record is
// sealed by the server; the store neither reads nor needs to understand it.
func (s *Store) SaveReplay(ctx context.Context, lookup [32]byte, record []byte, at time.Time) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO idempotent_replies (lookup, record, created_at) VALUES ($1, $2, $3)
		 ON CONFLICT (lookup) DO UPDATE SET record = excluded.record, created_at = excluded.created_at`,
		lookup[:], record, at.UTC().Truncate(time.Second))
	if err != nil {
		return s.fail(ctx, "save idempotent reply", err)
	}
	return nil
}

// LoadReplay returns the record kept under lookup if it was saved at or
// after since, and nil if there is none.
func (s *Store) LoadReplay(ctx context.Context, lookup [32]byte, since time.Time) ([]byte, error) {
	var record []byte
	err := s.pool.QueryRow(ctx,
		"SELECT record FROM idempotent_replies WHERE lookup = $1 AND created_at >= $2",
		lookup[:], since.UTC().Truncate(time.Second)).Scan(&record)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "load idempotent reply", err)
	}
	return record, nil
}

// PruneReplays deletes the records saved before t.
func (s *Store) PruneReplays(ctx context.Context, before time.Time) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM idempotent_replies WHERE created_at < $1", before.UTC().Truncate(time.Second)); err != nil {
		return s.fail(ctx, "prune idempotent replies", err)
	}
	return nil
}
