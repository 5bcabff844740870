package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
	"github.com/chatbotplatform/keyctl/keystore"
)

var _ keystore.BatchImporter = (*Store)(nil)

// Import stores a batch of keys in importParts transactions, each with
// two statements: the keys of its part (a key whose hash is taken already,
// in the store or earlier in the batch, is left out by the unique index
// and counted as skipped), then an import event for each key stored. A
// part's events are written while the next part's keys are, on another
// connection, so that PostgreSQL works on two cores; a part starts writing
// its keys only when the part before has written its own, so that keys
// are stored in the order of the batch. After an error, the parts that
// were written stay written and are counted; no part starts after one
// that failed to write its keys.
func (s *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	const op = "import keys"
	var res keystore.ImportResult
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return res, err
	}
	if len(keys) == 0 {
		return res, nil
	}
	now := s.clock()
	rnd := s.rand
	if rnd == nil {
		// IDs are not secret: reading the randomness of many at once is
		// safe, and cheaper than one read each.
		rnd = bufio.NewReaderSize(rand.Reader, 4096)
	}
	rows := make([]importRow, 0, len(keys))
	for i := range keys {
		k := keys[i] // Validate fills defaults: not in the caller's slice
		if err := k.Validate(now); err != nil {
			res.Failed++
			res.Errors = append(res.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
			continue
		}
		r, err := newImportRow(rnd, k, now)
		if err != nil {
			return keystore.ImportResult{}, s.fail(ctx, op, err)
		}
		rows = append(rows, r)
	}
	parts := make([]importPart, 0, importParts)
	for size := (len(rows) + importParts - 1) / importParts; len(rows) > 0; {
		n := min(size, len(rows))
		parts = append(parts, importPart{rows: rows[:n]})
		rows = rows[n:]
	}
	actor := keystore.Actor(ctx)
	var wg sync.WaitGroup
	before := make(chan struct{})
	close(before) // no part before the first
	for i := range parts {
		<-before
		if i > 0 && !parts[i-1].keysWritten {
			break // it failed: the parts after it are not written
		}
		p, next := &parts[i], make(chan struct{})
		wg.Go(func() {
			var once sync.Once
			signal := func() { once.Do(func() { close(next) }) }
			p.err = s.inTx(ctx, op, func(tx pgx.Tx) error { return p.write(ctx, tx, signal, now, actor) })
			signal()
			if p.err != nil {
				p.imported, p.skipped = 0, 0 // rolled back
			}
		})
		before = next
	}
	wg.Wait()
	var err error
	for _, p := range parts {
		res.Imported += p.imported
		res.Skipped += p.skipped
		if err == nil {
			err = p.err
		}
	}
	return res, err
}

// importParts is how many transactions a batch is written in. Two would
// keep two cores busy; with four, only a quarter of a batch (the first
// part's keys, the last part's events) has one core to itself. Four was
// measured (bench/run, goal 8), two was not.
const importParts = 4

// importRow is a key of a batch, as stored, with its import event.
type importRow struct {
	id, name, env string
	scopes        []string
	hash          []byte
	hint          string
	created       time.Time
	expires       *time.Time
	metadata      string
	eventID       string
	details       string
}

func newImportRow(rnd io.Reader, k keystore.ImportKey, now time.Time) (importRow, error) {
	id, err := keystore.NewID(rnd)
	if err != nil {
		return importRow{}, err
	}
	eid, err := keystore.NewID(rnd)
	if err != nil {
		return importRow{}, err
	}
	created := k.CreatedAt
	if created.IsZero() {
		created = now
	}
	meta := []byte("{}")
	if len(k.Params.Metadata) > 0 {
		if meta, err = json.Marshal(k.Params.Metadata); err != nil {
			return importRow{}, err
		}
	}
	return importRow{id: id, name: k.Params.Name, env: k.Params.Environment, scopes: k.Params.Scopes,
		hash: k.Hash[:], hint: k.Hint, created: created, expires: k.Params.ExpiresAt, metadata: string(meta),
		eventID: "evt_" + strings.TrimPrefix(eid, "key_"), details: importDetails(k)}, nil
}

// importPart is the rows of a batch written in one transaction.
type importPart struct {
	rows              []importRow
	imported, skipped int
	err               error
	// keysWritten: its keys are written and its events have their
	// version, so the next part may write its own.
	keysWritten bool
}

// write stores the part's keys, takes the version of its events, calls
// next, and then stores the import events of the keys it stored: the next
// part's keys are written meanwhile, and its events come after these in
// the change feed. next is called whatever happens.
func (p *importPart) write(ctx context.Context, tx pgx.Tx, next func(), now time.Time, actor string) error {
	defer next()
	inserted, err := copyKeys(ctx, tx, p.rows)
	if err != nil {
		return err
	}
	p.imported, p.skipped = len(inserted), len(p.rows)-len(inserted)
	if p.imported == 0 {
		p.keysWritten = true
		return nil
	}
	version, err := bump(ctx, tx)
	if err != nil {
		return err
	}
	p.keysWritten = true
	next()
	events := make([][]any, 0, len(inserted))
	for _, r := range p.rows { // in the order of the batch
		if inserted[r.id] {
			events = append(events, []any{version, r.eventID, now, actor, keystore.ActionImport, r.id, r.details})
		}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_events"},
		[]string{"version", "id", "at", "actor", "action", "key_id", "details"}, pgx.CopyFromRows(events))
	return err
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

// copyKeys stores the rows whose hash the store does not hold yet and
// returns their IDs. It sends them with COPY, three times as fast as an
// INSERT of the same rows; when a hash is taken (in the store, in a
// transaction not committed yet, or twice in rows), COPY fails on the
// unique index, and the rows go again through INSERT ... ON CONFLICT DO
// NOTHING, which skips what is taken. A fresh import, the usual one, is
// thus written in one statement, without looking its hashes up first.
func copyKeys(ctx context.Context, tx pgx.Tx, rows []importRow) (map[string]bool, error) {
	sp, err := tx.Begin(ctx) // a savepoint, to go on after a failed COPY
	if err != nil {
		return nil, err
	}
	_, err = sp.CopyFrom(ctx, pgx.Identifier{"keys"},
		[]string{"id", "name", "environment", "scopes", "secret_hash", "hint", "created_at", "expires_at", "metadata"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.id, r.name, r.env, r.scopes, r.hash, r.hint, r.created, r.expires, r.metadata}, nil
		}))
	if err == nil {
		inserted := make(map[string]bool, len(rows))
		for _, r := range rows {
			inserted[r.id] = true
		}
		return inserted, sp.Commit(ctx)
	}
	sp.Rollback(ctx)
	if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "23505" { // unique_violation
		return nil, err
	}
	return insertKeys(ctx, tx, rows)
}

// insertKeys is copyKeys through INSERT ... ON CONFLICT DO NOTHING.
func insertKeys(ctx context.Context, tx pgx.Tx, rows []importRow) (map[string]bool, error) {
	n := len(rows)
	var (
		ids, names, envs, scopes, hints, metadata = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hashes                                    = make([][]byte, n)
		created                                   = make([]time.Time, n)
		expires                                   = make([]*time.Time, n)
	)
	for i, r := range rows {
		ids[i], names[i], envs[i], scopes[i], hints[i], metadata[i] = r.id, r.name, r.env, strings.Join(r.scopes, " "), r.hint, r.metadata
		hashes[i], created[i], expires[i] = r.hash, r.created, r.expires
	}
	res, err := tx.Query(ctx,
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
	defer res.Close()
	inserted := map[string]bool{}
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return nil, err
		}
		inserted[id] = true
	}
	return inserted, res.Err()
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
