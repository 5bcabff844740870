package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"iter"
	"strings"

	"github.com/chatbotplatform/keyctl/keystore"
)

var (
	_ keystore.Exporter = (*Store)(nil)
	_ keystore.Restorer = (*Store)(nil)
)

// ExportKeys yields every key, oldest first, with the hash of its secret.
func (s *Store) ExportKeys(ctx context.Context) iter.Seq2[*keystore.ExportedKey, error] {
	return func(yield func(*keystore.ExportedKey, error) bool) {
		const op = "export keys"
		now := s.clock()
		rows, err := s.db.QueryContext(ctx, "SELECT "+keyColumns+", secret_hash FROM keys ORDER BY created_at, rowid")
		if err != nil {
			yield(nil, s.fail(ctx, op, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var hash []byte
			k, err := scanKey(scanWith{rows, &hash}, now)
			if err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			s.uses.Show(k)
			if !yield(keystore.NewExportedKey(k, hash), nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, s.fail(ctx, op, err))
		}
	}
}

// scanWith scans a row of keyColumns and one more column into extra.
type scanWith struct {
	rows  *sql.Rows
	extra any
}

func (w scanWith) Scan(dest ...any) error { return w.rows.Scan(append(dest, w.extra)...) }

// RestoreKeys stores keys as exported, without their rotation links, in
// one transaction.
func (s *Store) RestoreKeys(ctx context.Context, keys []keystore.ExportedKey) (keystore.RestoreResult, error) {
	var res keystore.RestoreResult
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return res, err
	}
	err := s.inTx(ctx, "restore keys", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, revoked_at, last_used_at, metadata, disabled_at, delivery, scope_uses)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range keys {
			k := &keys[i]
			meta, err := json.Marshal(k.Metadata)
			if err != nil {
				return err
			}
			h := k.Hash()
			r, err := stmt.ExecContext(ctx, k.ID, k.Name, k.Environment, strings.Join(k.Scopes, " "), h[:], k.Hint,
				k.CreatedAt.Unix(), unix(k.ExpiresAt), unix(k.RevokedAt), unix(k.LastUsedAt), string(meta), unix(k.DisabledAt), k.Delivery,
				keystore.EncodeScopeUses(k.ScopesLastUsed))
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				res.Skipped++
				continue
			}
			res.Restored++
		}
		return nil
	})
	if err != nil {
		return keystore.RestoreResult{}, err
	}
	return res, nil
}

// RestoreLinks sets the rotation links of keys where unset, to keys the
// store holds.
func (s *Store) RestoreLinks(ctx context.Context, keys []keystore.ExportedKey) error {
	return s.inTx(ctx, "restore rotation links", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`UPDATE keys SET
			   rotated_from = coalesce(rotated_from, (SELECT id FROM keys WHERE id = ?)),
			   rotated_to = coalesce(rotated_to, (SELECT id FROM keys WHERE id = ?))
			 WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, k := range keys {
			if k.RotatedFrom == nil && k.RotatedTo == nil {
				continue
			}
			if _, err := stmt.ExecContext(ctx, k.RotatedFrom, k.RotatedTo, k.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// RestoreEvents appends events to the audit log in the given order.
func (s *Store) RestoreEvents(ctx context.Context, events []keystore.Event) (keystore.RestoreResult, error) {
	var res keystore.RestoreResult
	if err := keystore.CheckBatch(len(events), "events"); err != nil {
		return res, err
	}
	err := s.inTx(ctx, "restore audit events", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			"INSERT INTO audit_events (id, at, actor, action, key_id, details) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range events {
			js, err := json.Marshal(e.Details)
			if err != nil {
				return err
			}
			r, err := stmt.ExecContext(ctx, e.ID, e.At.Unix(), e.Actor, e.Action, e.KeyID, string(js))
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				res.Skipped++
			} else {
				res.Restored++
			}
		}
		return nil
	})
	if err != nil {
		return keystore.RestoreResult{}, err
	}
	return res, nil
}
