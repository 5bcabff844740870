package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
)

var _ keystore.IdempotencyStore = (*Store)(nil)

// ClaimIdempotency claims lookup with one insert that only one
// transaction can make (ON CONFLICT DO NOTHING waits for a concurrent
// insert of the same key to commit or roll back), so that of several
// replicas claiming one key at once exactly one wins.
func (s *Store) ClaimIdempotency(ctx context.Context, lookup, request [32]byte, at, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	const op = "claim Idempotency-Key"
	var rec keystore.IdempotencyRecord
	at, since = at.UTC().Truncate(time.Second), since.UTC().Truncate(time.Second)
	for attempt := 0; ; attempt++ {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return rec, false, s.fail(ctx, op, err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM idempotency_claims WHERE lookup = $1 AND created_at < $2", lookup[:], since); err != nil {
			tx.Rollback(ctx)
			return rec, false, s.fail(ctx, op, err)
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO idempotency_claims (lookup, request, created_at) VALUES ($1, $2, $3)
			 ON CONFLICT (lookup) DO NOTHING`, lookup[:], request[:], at)
		if err != nil {
			tx.Rollback(ctx)
			return rec, false, s.fail(ctx, op, err)
		}
		if tag.RowsAffected() == 1 {
			if err := tx.Commit(ctx); err != nil {
				return rec, false, s.fail(ctx, op, err)
			}
			return keystore.IdempotencyRecord{Request: request, CreatedAt: at}, true, nil
		}
		rec, found, err := getClaim(ctx, tx, lookup, since)
		tx.Rollback(ctx)
		if err != nil {
			return rec, false, s.fail(ctx, op, err)
		}
		if found || attempt >= 3 {
			return rec, false, nil
		}
		// The record that was in the way went (released) between the
		// insert and the read: claim again.
	}
}

// CompleteIdempotency keeps the reply of a claimed request.
func (s *Store) CompleteIdempotency(ctx context.Context, lookup [32]byte, reply keystore.IdempotentReply) error {
	reply, err := reply.Kept()
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, "UPDATE idempotency_claims SET status = $1, body = $2, withheld = $3 WHERE lookup = $4 AND status = 0",
		reply.Status, reply.Body, reply.Withheld, lookup[:])
	if err != nil {
		return s.fail(ctx, "keep idempotent reply", err)
	}
	return nil
}

// ReleaseIdempotency drops a pending claim.
func (s *Store) ReleaseIdempotency(ctx context.Context, lookup [32]byte) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM idempotency_claims WHERE lookup = $1 AND status = 0", lookup[:]); err != nil {
		return s.fail(ctx, "release Idempotency-Key", err)
	}
	return nil
}

// GetIdempotency reads the record of lookup.
func (s *Store) GetIdempotency(ctx context.Context, lookup [32]byte, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	rec, found, err := getClaim(ctx, s.pool, lookup, since.UTC().Truncate(time.Second))
	if err != nil {
		return rec, false, s.fail(ctx, "read idempotent reply", err)
	}
	return rec, found, nil
}

// PurgeIdempotency deletes the records made before before. PostgreSQL
// reclaims the space of the deleted rows at its next vacuum; they hold no
// secret in any case.
func (s *Store) PurgeIdempotency(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM idempotency_claims WHERE created_at < $1", before.UTC().Truncate(time.Second))
	if err != nil {
		return 0, s.fail(ctx, "purge idempotent replies", err)
	}
	return int(tag.RowsAffected()), nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getClaim(ctx context.Context, q queryRower, lookup [32]byte, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	var (
		request []byte
		at      time.Time
		reply   keystore.IdempotentReply
	)
	err := q.QueryRow(ctx,
		"SELECT request, created_at, status, body, withheld FROM idempotency_claims WHERE lookup = $1 AND created_at >= $2",
		lookup[:], since).Scan(&request, &at, &reply.Status, &reply.Body, &reply.Withheld)
	if errors.Is(err, pgx.ErrNoRows) {
		return keystore.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return keystore.IdempotencyRecord{}, false, err
	}
	return keystore.KeptIdempotencyRecord(request, at, reply), true, nil
}
