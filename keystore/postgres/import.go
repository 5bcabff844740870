package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
)

var _ keystore.BatchImporter = (*Store)(nil)

// Import stores a batch of keys in one transaction, with two statements:
// the keys (a key whose hash is taken already, in the store or earlier in
// the batch, is left out by the unique index and counted as skipped), then
// an import event for each key stored.
func (s *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	const op = "import keys"
	var res keystore.ImportResult
	if len(keys) > keystore.MaxImportBatch {
		return res, keystore.Errorf(keystore.EINVALID, "%d keys in one import batch, at most %d", len(keys), keystore.MaxImportBatch)
	}
	if len(keys) == 0 {
		return res, nil
	}
	now := s.clock()
	n := len(keys)
	var (
		ids      = make([]string, 0, n)
		names    = make([]string, 0, n)
		envs     = make([]string, 0, n)
		scopes   = make([]string, 0, n)
		hashes   = make([][]byte, 0, n)
		hints    = make([]string, 0, n)
		created  = make([]time.Time, 0, n)
		expires  = make([]*time.Time, 0, n)
		metadata = make([]string, 0, n)
		details  = map[string]string{} // key ID -> import event details
	)
	for i := range keys {
		k := keys[i] // Validate fills defaults: not in the caller's slice
		if err := k.Validate(now); err != nil {
			res.Failed++
			res.Errors = append(res.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
			continue
		}
		id, err := keystore.NewID(s.rand)
		if err != nil {
			return keystore.ImportResult{}, s.fail(ctx, op, err)
		}
		c := k.CreatedAt
		if c.IsZero() {
			c = now
		}
		meta := []byte("{}")
		if len(k.Params.Metadata) > 0 {
			if meta, err = json.Marshal(k.Params.Metadata); err != nil {
				return keystore.ImportResult{}, s.fail(ctx, op, err)
			}
		}
		source := keystore.ImportSourceSHA256 // what the store knows of a key it got from elsewhere
		if k.Source == keystore.ImportSourceKey {
			source = keystore.ImportSourceKey
		}
		d, err := json.Marshal(map[string]any{
			"name": k.Params.Name, "environment": k.Params.Environment, "scopes": k.Params.Scopes, "source": source,
		})
		if err != nil {
			return keystore.ImportResult{}, s.fail(ctx, op, err)
		}
		h := k.Hash
		ids = append(ids, id)
		names = append(names, k.Params.Name)
		envs = append(envs, k.Params.Environment)
		scopes = append(scopes, strings.Join(k.Params.Scopes, " "))
		hashes = append(hashes, h[:])
		hints = append(hints, k.Hint)
		created = append(created, c)
		expires = append(expires, k.Params.ExpiresAt)
		metadata = append(metadata, string(meta))
		details[id] = string(d)
	}
	if len(ids) == 0 {
		return res, nil
	}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx,
			`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, metadata)
			 SELECT id, name, env, string_to_array(scopes, ' '), hash, hint, created, expires, meta::jsonb
			 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[])
			      WITH ORDINALITY AS r (id, name, env, scopes, hash, hint, created, expires, meta, ord)
			 ORDER BY ord
			 ON CONFLICT (secret_hash) DO NOTHING
			 RETURNING id`,
			ids, names, envs, scopes, hashes, hints, created, expires, metadata)
		if err != nil {
			return err
		}
		inserted := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			inserted[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		res.Imported = len(inserted)
		res.Skipped = len(ids) - len(inserted)
		if res.Imported == 0 {
			return nil
		}
		version, err := bump(ctx, tx)
		if err != nil {
			return err
		}
		eventIDs := make([]string, 0, len(inserted))
		keyIDs := make([]string, 0, len(inserted))
		ds := make([]string, 0, len(inserted))
		for _, id := range ids { // in the order of the batch
			if !inserted[id] {
				continue
			}
			eid, err := keystore.NewID(s.rand)
			if err != nil {
				return err
			}
			eventIDs = append(eventIDs, "evt_"+strings.TrimPrefix(eid, "key_"))
			keyIDs = append(keyIDs, id)
			ds = append(ds, details[id])
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO audit_events (version, id, at, actor, action, key_id, details)
			 SELECT $1, id, $2, $3, $4, key_id, details::jsonb
			 FROM unnest($5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS e (id, key_id, details, ord)
			 ORDER BY ord`,
			version, now, keystore.Actor(ctx), keystore.ActionImport, eventIDs, keyIDs, ds)
		return err
	})
	if err != nil {
		return keystore.ImportResult{}, err
	}
	return res, nil
}

// BeginImport returns a session whose batches are Import's: PostgreSQL
// needs nothing kept from one batch to the next.
func (s *Store) BeginImport(ctx context.Context) (keystore.ImportSession, error) {
	return importSession{s}, nil
}

type importSession struct{ s *Store }

func (im importSession) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	return im.s.Import(ctx, keys)
}

func (importSession) Close() error { return nil }
