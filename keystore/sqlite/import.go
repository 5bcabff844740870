package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chatbotplatform/keyctl/keystore"
)

// importCacheKiB is the page cache of the connection that imports a batch,
// for the batch only. A batch writes keys and events with random IDs and
// hashes all over four indexes; with SQLite's default cache of 2 MiB, a
// large store reads the same pages from the file again and again. The
// cache grows only as pages are read, and shrinks back after the batch.
const importCacheKiB = 128 << 10

// importDetails are the details of an import event: never the secret or
// its hash.
type importDetails struct {
	Name        string   `json:"name"`
	Environment string   `json:"environment"`
	Scopes      []string `json:"scopes"`
	Source      string   `json:"source"` // key or key_sha256
}

// Import stores a batch of keys in one write transaction, through statements
// prepared once per batch. A key whose hash is taken already is left out by
// the unique index on secret_hash (ON CONFLICT DO NOTHING) and counted as
// skipped; so is the second of two equal keys in the batch.
func (s *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	const op = "import keys"
	if len(keys) > keystore.MaxImportBatch {
		return keystore.ImportResult{}, keystore.Errorf(keystore.EINVALID,
			"%d keys in one import batch, at most %d", len(keys), keystore.MaxImportBatch)
	}
	if len(keys) == 0 {
		return keystore.ImportResult{}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	defer conn.Close()
	// The cache size is a setting of the connection, which goes back to
	// the pool afterwards: set it for this batch only, and put it back.
	var cacheSize int
	if err := conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cacheSize); err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", -importCacheKiB)); err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA cache_size = %d", cacheSize))

	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from the DSN
	if err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	defer tx.Rollback()
	res, err := s.importTx(ctx, tx, keys)
	if err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		return keystore.ImportResult{}, s.fail(ctx, op, err)
	}
	if res.Imported > 0 {
		s.changed(true)
	}
	return res, nil
}

func (s *Store) importTx(ctx context.Context, tx *sql.Tx, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	var res keystore.ImportResult
	now := s.clock()
	actor := keystore.Actor(ctx)
	insertKey, err := tx.PrepareContext(ctx,
		`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, metadata)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (secret_hash) DO NOTHING`)
	if err != nil {
		return res, err
	}
	defer insertKey.Close()
	insertEvent, err := tx.PrepareContext(ctx,
		"INSERT INTO audit_events (id, at, actor, action, key_id, details) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return res, err
	}
	defer insertEvent.Close()

	// A statement run with a context that can end watches it from a
	// goroutine of its own; the loop checks ctx itself instead, every so
	// often, and the statements run without it.
	stmtCtx := context.WithoutCancel(ctx)
	for i := range keys {
		if i%256 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		k := keys[i] // Validate fills defaults: not in the caller's slice
		if err := k.Validate(now); err != nil {
			res.Failed++
			res.Errors = append(res.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
			continue
		}
		id, err := keystore.NewID(s.rand)
		if err != nil {
			return res, err
		}
		created := k.CreatedAt
		if created.IsZero() {
			created = now
		}
		meta := []byte("{}")
		if len(k.Params.Metadata) > 0 {
			if meta, err = json.Marshal(k.Params.Metadata); err != nil {
				return res, err
			}
		}
		r, err := insertKey.ExecContext(stmtCtx, id, k.Params.Name, k.Params.Environment,
			strings.Join(k.Params.Scopes, " "), k.Hash[:], k.Hint, created.Unix(),
			unix(k.Params.ExpiresAt), string(meta))
		if err != nil {
			return res, err
		}
		if n, err := r.RowsAffected(); err != nil {
			return res, err
		} else if n == 0 {
			res.Skipped++
			continue
		}
		eventID, err := keystore.NewID(s.rand)
		if err != nil {
			return res, err
		}
		source := keystore.ImportSourceSHA256
		if k.Source == keystore.ImportSourceKey {
			source = keystore.ImportSourceKey
		}
		details, err := json.Marshal(importDetails{k.Params.Name, k.Params.Environment, k.Params.Scopes, source})
		if err != nil {
			return res, err
		}
		// An event ID has a key ID's shape under its own prefix.
		_, err = insertEvent.ExecContext(stmtCtx, "evt_"+strings.TrimPrefix(eventID, "key_"),
			now.Unix(), actor, keystore.ActionImport, id, string(details))
		if err != nil {
			return res, err
		}
		res.Imported++
	}
	return res, nil
}
