package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
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
	rnd := s.rand
	if rnd == nil {
		// IDs are not secret: reading the randomness of many at once is
		// safe, and cheaper than one read each.
		rnd = bufio.NewReaderSize(rand.Reader, 4096)
	}
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
		id, err := keystore.NewID(rnd)
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
		d := importDetails(k)
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
		details[id] = d
	}
	if len(ids) == 0 {
		return res, nil
	}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		inserted, err := copyKeys(ctx, tx, ids, names, envs, scopes, hashes, hints, created, expires, metadata)
		if err != nil {
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
		actor := keystore.Actor(ctx)
		events := make([][]any, 0, len(inserted))
		for _, id := range ids { // in the order of the batch
			if !inserted[id] {
				continue
			}
			eid, err := keystore.NewID(rnd)
			if err != nil {
				return err
			}
			events = append(events, []any{version, "evt_" + strings.TrimPrefix(eid, "key_"), now, actor,
				keystore.ActionImport, id, details[id]})
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_events"},
			[]string{"version", "id", "at", "actor", "action", "key_id", "details"}, pgx.CopyFromRows(events))
		return err
	})
	if err != nil {
		return keystore.ImportResult{}, err
	}
	return res, nil
}

// importDetails is the details of the import event of k, as json.Marshal
// writes {name, environment, scopes, source}: never the secret or its hash.
func importDetails(k keystore.ImportKey) string {
	source := keystore.ImportSourceSHA256 // what the store knows of a key it got from elsewhere
	if k.Source == keystore.ImportSourceKey {
		source = keystore.ImportSourceKey
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"environment":`...)
	b = plainjson.AppendString(b, k.Params.Environment)
	b = append(b, `,"name":`...)
	b = plainjson.AppendString(b, k.Params.Name)
	b = append(b, `,"scopes":[`...)
	for i, sc := range k.Params.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = plainjson.AppendString(b, sc)
	}
	b = append(b, `],"source":`...)
	b = plainjson.AppendString(b, source)
	return string(append(b, '}'))
}

// copyKeys stores the keys of a batch that the store does not hold yet and
// returns their IDs. It sends them with COPY, three times as fast as an
// INSERT of the same rows (bench/run, goal 7), after leaving out the
// hashes taken already and the second of two equal ones in the batch; if
// another transaction takes one of the hashes meanwhile, COPY fails on the
// unique index, and the batch goes again through INSERT ... ON CONFLICT DO
// NOTHING, which skips it.
func copyKeys(ctx context.Context, tx pgx.Tx, ids, names, envs, scopes []string, hashes [][]byte,
	hints []string, created []time.Time, expires []*time.Time, metadata []string) (map[string]bool, error) {
	taken := map[string]bool{}
	rows, err := tx.Query(ctx, "SELECT secret_hash FROM keys WHERE secret_hash = ANY($1::bytea[])", hashes)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return nil, err
		}
		taken[string(h)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	inserted := map[string]bool{}
	var copyRows [][]any
	for i := range ids {
		if taken[string(hashes[i])] {
			continue
		}
		taken[string(hashes[i])] = true
		inserted[ids[i]] = true
		copyRows = append(copyRows, []any{ids[i], names[i], envs[i], strings.Fields(scopes[i]), hashes[i],
			hints[i], created[i], expires[i], metadata[i]})
	}
	if len(copyRows) == 0 {
		return inserted, nil
	}
	sp, err := tx.Begin(ctx) // a savepoint, to go on after a failed COPY
	if err != nil {
		return nil, err
	}
	_, err = sp.CopyFrom(ctx, pgx.Identifier{"keys"},
		[]string{"id", "name", "environment", "scopes", "secret_hash", "hint", "created_at", "expires_at", "metadata"},
		pgx.CopyFromRows(copyRows))
	if err == nil {
		return inserted, sp.Commit(ctx)
	}
	sp.Rollback(ctx)
	if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "23505" { // unique_violation
		return nil, err
	}
	return insertKeys(ctx, tx, ids, names, envs, scopes, hashes, hints, created, expires, metadata)
}

// insertKeys is copyKeys through INSERT ... ON CONFLICT DO NOTHING.
func insertKeys(ctx context.Context, tx pgx.Tx, ids, names, envs, scopes []string, hashes [][]byte,
	hints []string, created []time.Time, expires []*time.Time, metadata []string) (map[string]bool, error) {
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
		return nil, err
	}
	defer rows.Close()
	inserted := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		inserted[id] = true
	}
	return inserted, rows.Err()
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
