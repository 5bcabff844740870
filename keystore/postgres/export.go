package postgres

import (
	"context"
	"encoding/json"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
)

var (
	_ keystore.Exporter = (*Store)(nil)
	_ keystore.Restorer = (*Store)(nil)
)

// ExportKeys yields every key, oldest first, with the hash of its secret,
// from one snapshot of the database, read in pages by keyset.
func (s *Store) ExportKeys(ctx context.Context) iter.Seq2[*keystore.ExportedKey, error] {
	return func(yield func(*keystore.ExportedKey, error) bool) {
		const op = "export keys"
		now := s.clock()
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			yield(nil, s.fail(ctx, op, err))
			return
		}
		defer tx.Rollback(context.Background())
		var (
			lastAt  time.Time
			lastSeq int64 = -1
		)
		for {
			rows, err := tx.Query(ctx,
				"SELECT "+keyColumns+", seq, secret_hash FROM keys WHERE (created_at, seq) > ($1, $2) ORDER BY created_at, seq LIMIT 1000",
				lastAt, lastSeq)
			if err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			var page []*keystore.ExportedKey
			for rows.Next() {
				var hash []byte
				k, seq, err := scanKeySeq(withExtra{rows, &hash}, now)
				if err != nil {
					rows.Close()
					yield(nil, s.fail(ctx, op, err))
					return
				}
				s.uses.Show(k)
				page = append(page, keystore.NewExportedKey(k, hash))
				lastAt, lastSeq = k.CreatedAt, seq
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			for _, k := range page {
				if !yield(k, nil) {
					return
				}
			}
			if len(page) < 1000 {
				return
			}
		}
	}
}

// withExtra scans a row and one more column into extra.
type withExtra struct {
	rows  pgx.Rows
	extra any
}

func (w withExtra) Scan(dest ...any) error { return w.rows.Scan(append(dest, w.extra)...) }

// RestoreKeys stores keys as exported, without their rotation links, in
// one transaction and one statement.
func (s *Store) RestoreKeys(ctx context.Context, keys []keystore.ExportedKey) (keystore.RestoreResult, error) {
	const op = "restore keys"
	var res keystore.RestoreResult
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return res, err
	}
	if len(keys) == 0 {
		return res, nil
	}
	n := len(keys)
	var (
		ids, names, envs, scopes, hints, metas = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hashes                                 = make([][]byte, n)
		created                                = make([]time.Time, n)
		expires, revoked, used                 = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		disabled                               = make([]*time.Time, n)
		delivery                               = make([]*string, n)
		uses                                   = make([]string, n)
	)
	for i := range keys {
		k := &keys[i]
		meta, err := json.Marshal(k.Metadata)
		if err != nil {
			return res, s.fail(ctx, op, err)
		}
		h := k.Hash()
		ids[i], names[i], envs[i], scopes[i], hints[i], metas[i] = k.ID, k.Name, k.Environment, strings.Join(k.Scopes, " "), k.Hint, string(meta)
		hashes[i] = h[:]
		created[i], expires[i], revoked[i], used[i] = k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt
		disabled[i] = k.DisabledAt
		delivery[i] = k.Delivery
		uses[i] = keystore.EncodeScopeUses(k.ScopesLastUsed)
	}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, revoked_at, last_used_at, metadata, disabled_at, delivery, scope_uses)
			 SELECT id, name, env, string_to_array(scopes, ' '), hash, hint, created, expires, revoked, used, meta::jsonb, disabled, delivery, uses::jsonb
			 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[],
			             $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::timestamptz[], $13::text[], $14::text[])
			      WITH ORDINALITY AS r (id, name, env, scopes, hash, hint, created, expires, revoked, used, meta, disabled, delivery, uses, ord)
			 ORDER BY ord
			 ON CONFLICT DO NOTHING`,
			ids, names, envs, scopes, hashes, hints, created, expires, revoked, used, metas, disabled, delivery, uses)
		if err != nil {
			return err
		}
		res.Restored = int(tag.RowsAffected())
		res.Skipped = n - res.Restored
		if res.Restored > 0 {
			_, err = bump(ctx, tx)
		}
		return err
	})
	if err != nil {
		return keystore.RestoreResult{}, err
	}
	return res, nil
}

// RestoreLinks sets the rotation links of keys where unset, to keys the
// store holds.
func (s *Store) RestoreLinks(ctx context.Context, keys []keystore.ExportedKey) error {
	var ids []string
	var from, to []*string
	for _, k := range keys {
		if k.RotatedFrom != nil || k.RotatedTo != nil {
			ids, from, to = append(ids, k.ID), append(from, k.RotatedFrom), append(to, k.RotatedTo)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return s.inTx(ctx, "restore rotation links", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`UPDATE keys AS k SET
			   rotated_from = coalesce(k.rotated_from, (SELECT id FROM keys WHERE id = l.from_id)),
			   rotated_to = coalesce(k.rotated_to, (SELECT id FROM keys WHERE id = l.to_id))
			 FROM unnest($1::text[], $2::text[], $3::text[]) AS l (id, from_id, to_id)
			 WHERE k.id = l.id`,
			ids, from, to)
		if err != nil {
			return err
		}
		_, err = bump(ctx, tx)
		return err
	})
}

// RestoreEvents appends events to the audit log in the given order, under
// one version of the change feed.
func (s *Store) RestoreEvents(ctx context.Context, events []keystore.Event) (keystore.RestoreResult, error) {
	const op = "restore audit events"
	var res keystore.RestoreResult
	if err := keystore.CheckBatch(len(events), "events"); err != nil {
		return res, err
	}
	if len(events) == 0 {
		return res, nil
	}
	n := len(events)
	ids, actors, actions, keyIDs, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	for i, e := range events {
		js, err := json.Marshal(e.Details)
		if err != nil {
			return res, s.fail(ctx, op, err)
		}
		ids[i], at[i], actors[i], actions[i], keyIDs[i], details[i] = e.ID, e.At, e.Actor, e.Action, e.KeyID, string(js)
	}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		version, err := bump(ctx, tx)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO audit_events (version, id, at, actor, action, key_id, details)
			 SELECT $1, id, at, actor, action, key_id, details::jsonb
			 FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])
			      WITH ORDINALITY AS e (id, at, actor, action, key_id, details, ord)
			 ORDER BY ord
			 ON CONFLICT DO NOTHING`,
			version, ids, at, actors, actions, keyIDs, details)
		if err != nil {
			return err
		}
		res.Restored = int(tag.RowsAffected())
		res.Skipped = n - res.Restored
		return nil
	})
	if err != nil {
		return keystore.RestoreResult{}, err
	}
	return res, nil
}
