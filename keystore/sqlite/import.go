package sqlite

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
	"github.com/chatbotplatform/keyctl/keystore"
)

// importCacheKiB is the page cache of the connection that imports, for the
// import only. A batch inserts keys at random places in the index of
// secret hashes, all over it; with SQLite's default cache of 2 MiB, a
// large store reads the same pages from the file again and again, batch
// after batch. The cache grows only as pages are read, and shrinks back
// when the import ends.
const importCacheKiB = 128 << 10

var _ keystore.BatchImporter = (*Store)(nil)

// Import stores a batch of keys in one write transaction: an import of one
// batch.
func (s *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return keystore.ImportResult{}, err
	}
	if len(keys) == 0 {
		return keystore.ImportResult{}, nil
	}
	im, err := s.BeginImport(ctx)
	if err != nil {
		return keystore.ImportResult{}, err
	}
	res, err := im.Import(ctx, keys)
	if cerr := im.Close(); err == nil && cerr != nil {
		return res, cerr
	}
	return res, err
}

// BeginImport sets a connection aside for an import of many batches, with
// a large page cache that stays warm from one batch to the next: SQLite
// keeps a connection's cache across its own transactions in WAL mode, as
// long as no other connection writes in between. The cache size is a
// setting of the connection, which goes back to the pool at Close: Close
// puts the setting back.
func (s *Store) BeginImport(ctx context.Context) (keystore.ImportSession, error) {
	const op = "import keys"
	if err := s.checkBeforeWrite(ctx); err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	im := &importSession{s: s, conn: conn, rand: s.rand}
	if im.rand == nil {
		// IDs are not secret: reading the randomness of many at once
		// is safe, and cheaper than one read each.
		im.rand = bufio.NewReaderSize(rand.Reader, 4096)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&im.cacheSize); err != nil {
		conn.Close()
		return nil, s.fail(ctx, op, err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", -importCacheKiB)); err != nil {
		conn.Close()
		return nil, s.fail(ctx, op, err)
	}
	return im, nil
}

// importSession is an import through one connection of the store.
type importSession struct {
	s         *Store
	conn      *sql.Conn
	cacheSize int       // the connection's own setting, to put back
	rand      io.Reader // the store's, or crypto/rand read ahead

	mu     sync.Mutex // one batch at a time
	closed bool
	rows   []importRow // reused from batch to batch
	ids    []string
	buf    []byte
}

// importRow is a key of a batch that passed Validate.
type importRow struct {
	key keystore.ImportKey
	id  string
	new bool // inserted, not skipped
}

// Import stores one batch in one write transaction, through statements
// prepared once per batch. A key whose hash is taken already is left out
// by the unique index on secret_hash (ON CONFLICT DO NOTHING) and counted
// as skipped; so is the second of two equal keys in the batch.
func (im *importSession) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	const op = "import keys"
	s := im.s
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return keystore.ImportResult{}, err
	}
	if len(keys) == 0 {
		return keystore.ImportResult{}, nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return keystore.ImportResult{}, s.fail(ctx, op, errors.New("import session closed"))
	}
	tx, err := im.conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from the DSN
	if err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	defer tx.Rollback()
	res, err := im.importTx(ctx, tx, keys)
	if err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	if res.Imported > 0 {
	}
	return res, nil
}

// Close puts the connection's cache size back and returns the connection
// to the pool.
func (im *importSession) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return nil
	}
	im.closed = true
	_, err := im.conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA cache_size = %d", im.cacheSize))
	if cerr := im.conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return im.s.fail(context.Background(), "end import", err)
	}
	return nil
}

// importTx writes the keys of a batch and then their events, each in the
// order of the batch (which keyctl list and keyctl audit show for keys and
// events of the same second). The IDs of the batch are drawn first and
// handed out in sorted order, so that three of the four indexes the
// inserts write to (keys by ID, events by ID and by key) take their
// entries in order, each page written by a run of inserts while it is at
// hand; see batchIDShared for why they share a prefix.
func (im *importSession) importTx(ctx context.Context, tx *sql.Tx, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	var res keystore.ImportResult
	s := im.s
	now := s.clock()
	actor := keystore.Actor(ctx)

	rows := im.rows[:0]
	for i := range keys {
		rows = append(rows, importRow{key: keys[i]}) // Validate fills defaults: not in the caller's slice
		k := &rows[len(rows)-1].key
		if err := k.Validate(now); err != nil {
			rows = rows[:len(rows)-1]
			res.Failed++
			res.Errors = append(res.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
		}
	}
	defer func() { clear(rows[:cap(rows)]); im.rows = rows[:0] }() // keep no record past the batch
	if len(rows) == 0 {
		return res, nil
	}
	ids, err := im.batchIDs(len(rows), "")
	if err != nil {
		return res, err
	}
	for j := range rows {
		rows[j].id = ids[j]
	}

	insertKey, err := tx.PrepareContext(ctx,
		`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, metadata)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (secret_hash) DO NOTHING`)
	if err != nil {
		return res, err
	}
	defer insertKey.Close()

	// A statement run with a context that can end watches it from a
	// goroutine of its own; the loops check ctx themselves instead, every
	// so often, and the statements run without it.
	stmtCtx := context.WithoutCancel(ctx)
	for j := range rows {
		if j%256 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		r := &rows[j]
		k := &r.key
		created := k.CreatedAt
		if created.IsZero() {
			created = now
		}
		meta := "{}"
		if len(k.Params.Metadata) > 0 {
			im.buf = appendMetadata(im.buf[:0], k.Params.Metadata)
			meta = string(im.buf)
		}
		rs, err := insertKey.ExecContext(stmtCtx, r.id, k.Params.Name, k.Params.Environment,
			strings.Join(k.Params.Scopes, " "), k.Hash[:], k.Hint, created.Unix(),
			unix(k.Params.ExpiresAt), meta)
		if err != nil {
			return res, err
		}
		if n, err := rs.RowsAffected(); err != nil {
			return res, err
		} else if n == 0 {
			res.Skipped++
			continue
		}
		r.new = true
		res.Imported++
	}
	if res.Imported == 0 {
		return res, nil
	}

	insertEvent, err := tx.PrepareContext(ctx,
		"INSERT INTO audit_events (id, at, actor, action, key_id, details) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return res, err
	}
	defer insertEvent.Close()
	// An event ID has a key ID's shape under its own prefix.
	eventIDs, err := im.batchIDs(res.Imported, "evt_")
	if err != nil {
		return res, err
	}
	e := 0
	for j := range rows {
		if j%256 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		r := &rows[j]
		if !r.new {
			continue
		}
		im.buf = appendImportDetails(im.buf[:0], &r.key)
		if _, err := insertEvent.ExecContext(stmtCtx, eventIDs[e], now.Unix(), actor,
			keystore.ActionImport, r.id, string(im.buf)); err != nil {
			return res, err
		}
		e++
	}
	return res, nil
}

// batchIDShared is how many of the random characters of an ID all the IDs
// of a batch share. A batch's IDs then sit side by side in the indexes by
// ID, as if they had been numbered: a batch writes a few dozen pages of
// each, instead of most of the pages of the index as random IDs do (the
// index of secret hashes is the one left written all over). The rest of
// an ID, 13 characters (77 bits), is its own, as random as ever.
// IDs are public and need only be unique; the shared characters are drawn
// for each batch, so batches still land far apart.
const batchIDShared = 3

// batchIDs draws n IDs for a batch, in sorted order, with prefix in place
// of key_ when set: see batchIDShared.
func (im *importSession) batchIDs(n int, prefix string) ([]string, error) {
	const head = len("key_") + batchIDShared
	shared, err := keystore.NewID(im.rand)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "key_"
	}
	shared = prefix + shared[len("key_"):head]
	ids := im.ids[:0]
	for range n {
		id, err := keystore.NewID(im.rand)
		if err != nil {
			return nil, err
		}
		ids = append(ids, shared+id[head:])
	}
	slices.Sort(ids)
	im.ids = ids
	return ids, nil
}

// appendMetadata appends m as json.Marshal writes it: names sorted.
func appendMetadata(dst []byte, m map[string]string) []byte {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = plainjson.AppendString(dst, n)
		dst = append(dst, ':')
		dst = plainjson.AppendString(dst, m[n])
	}
	return append(dst, '}')
}

// appendImportDetails appends the details of the import event of k, as
// json.Marshal writes {name, environment, scopes, source}: never the
// secret or its hash.
func appendImportDetails(dst []byte, k *keystore.ImportKey) []byte {
	source := keystore.ImportSourceSHA256 // what the store knows of a key it got from elsewhere
	if k.Source == keystore.ImportSourceKey {
		source = keystore.ImportSourceKey
	}
	dst = append(dst, `{"name":`...)
	dst = plainjson.AppendString(dst, k.Params.Name)
	dst = append(dst, `,"environment":`...)
	dst = plainjson.AppendString(dst, k.Params.Environment)
	dst = append(dst, `,"scopes":`...)
	if k.Params.Scopes == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, sc := range k.Params.Scopes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = plainjson.AppendString(dst, sc)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"source":`...)
	dst = plainjson.AppendString(dst, source)
	return append(dst, '}')
}
