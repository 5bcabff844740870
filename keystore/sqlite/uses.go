package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// useFlushInterval is how often queued uses (RecordUse) are written.
const useFlushInterval = time.Second

var _ keystore.UseRecorder = (*Store)(nil)

// RecordUse queues a use of key id at t, and of scopes at t (keystore/cache
// serves Verify from memory): they are written in one transaction every
// useFlushInterval and at Close, at most one write per key and second, as
// Verify without the cache. The writes add no audit event, so they are no
// change for a change feed.
func (s *Store) RecordUse(id string, t time.Time, scopes []string) {
	// The file keeps unix seconds: so does the queue, so that reads show
	// what they will read once written.
	s.uses.Add(id, time.Unix(t.Unix(), 0).UTC(), scopes)
}

// writeUses writes a batch of queued uses in one transaction.
func (s *Store) writeUses(ctx context.Context, b keystore.UseBatch) error {
	return s.inTx(ctx, "record key use", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			"UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, t := range b.Keys {
			if _, ok := b.Scopes[id]; ok {
				continue // below, with its scopes
			}
			if _, err := stmt.ExecContext(ctx, t.Unix(), id, t.Unix()); err != nil {
				return err
			}
		}
		// The uses of scopes, each with its key's last use: one
		// statement per key.
		for id, scopes := range b.Scopes {
			times := make(map[string]int64, len(scopes))
			for sc, t := range scopes {
				times[sc] = t.Unix()
			}
			var last int64 // none queued: its use is in an earlier batch
			if t, ok := b.Keys[id]; ok {
				last = t.Unix()
			}
			if err := recordUse(ctx, tx, id, last, times); err != nil {
				return err
			}
		}
		return nil
	})
}
