package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

var _ keystore.IdempotencyStore = (*Store)(nil)

// ClaimIdempotency claims lookup in one write transaction (BEGIN
// IMMEDIATE): of several processes on one file claiming the same key at
// once, exactly one makes the record.
func (s *Store) ClaimIdempotency(ctx context.Context, lookup, request [32]byte, at, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	const op = "claim Idempotency-Key"
	var rec keystore.IdempotencyRecord
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return rec, false, s.fail(ctx, op, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM idempotency_claims WHERE lookup = ? AND created_at < ?", lookup[:], since.Unix()); err != nil {
		return rec, false, s.fail(ctx, op, err)
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO idempotency_claims (lookup, request, created_at) VALUES (?, ?, ?)
		 ON CONFLICT (lookup) DO NOTHING`, lookup[:], request[:], at.Unix())
	if err != nil {
		return rec, false, s.fail(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return rec, false, s.fail(ctx, op, err)
	}
	if n == 1 {
		if err := tx.Commit(); err != nil {
			return rec, false, s.fail(ctx, op, err)
		}
		return keystore.IdempotencyRecord{Request: request, CreatedAt: time.Unix(at.Unix(), 0).UTC()}, true, nil
	}
	rec, _, err = getClaim(ctx, tx, lookup, since)
	if err != nil {
		return rec, false, s.fail(ctx, op, err)
	}
	return rec, false, tx.Commit()
}

// CompleteIdempotency keeps the reply of a claimed request.
func (s *Store) CompleteIdempotency(ctx context.Context, lookup [32]byte, reply keystore.IdempotentReply) error {
	reply, err := reply.Kept()
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "UPDATE idempotency_claims SET status = ?, body = ?, withheld = ? WHERE lookup = ? AND status = 0",
		reply.Status, reply.Body, reply.Withheld, lookup[:])
	if err != nil {
		return s.fail(ctx, "keep idempotent reply", err)
	}
	return nil
}

// ReleaseIdempotency drops a pending claim.
func (s *Store) ReleaseIdempotency(ctx context.Context, lookup [32]byte) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM idempotency_claims WHERE lookup = ? AND status = 0", lookup[:]); err != nil {
		return s.fail(ctx, "release Idempotency-Key", err)
	}
	return nil
}

// GetIdempotency reads the record of lookup.
func (s *Store) GetIdempotency(ctx context.Context, lookup [32]byte, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	rec, found, err := getClaim(ctx, s.db, lookup, since)
	if err != nil {
		return rec, false, s.fail(ctx, "read idempotent reply", err)
	}
	return rec, found, nil
}

// PurgeIdempotency deletes the records made before before. The store's
// connections have secure_delete on, so the deleted rows' bytes are
// overwritten in the file.
func (s *Store) PurgeIdempotency(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM idempotency_claims WHERE created_at < ?", before.Unix())
	if err != nil {
		return 0, s.fail(ctx, "purge idempotent replies", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail(ctx, "purge idempotent replies", err)
	}
	if n > 0 {
		s.checkpoint(ctx)
	}
	return int(n), nil
}

// checkpoint copies the -wal file into the store and empties it, so that
// the older versions of pages that it holds, with deleted rows in them,
// leave the files. Readers of other processes may keep it from finishing:
// the next checkpoint then does.
func (s *Store) checkpoint(ctx context.Context) {
	s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getClaim(ctx context.Context, q queryRower, lookup [32]byte, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	var (
		request []byte
		at      int64
		reply   keystore.IdempotentReply
	)
	err := q.QueryRowContext(ctx,
		"SELECT request, created_at, status, body, withheld FROM idempotency_claims WHERE lookup = ? AND created_at >= ?",
		lookup[:], since.Unix()).Scan(&request, &at, &reply.Status, &reply.Body, &reply.Withheld)
	if errors.Is(err, sql.ErrNoRows) {
		return keystore.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return keystore.IdempotencyRecord{}, false, err
	}
	return keystore.KeptIdempotencyRecord(request, time.Unix(at, 0), reply), true, nil
}
