package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlstore"
)

// keyColumns are the columns scanKey reads, in its order.
const keyColumns = `id, name, environment, scopes, hint, created_at, expires_at,
	revoked_at, last_used_at, rotated_from, rotated_to, metadata, disabled_at, scope_uses, delivery`

// clock returns the current time as the store keeps it: UTC, whole seconds.
func (s *Store) clock() time.Time { return s.nowFn().UTC().Truncate(time.Second) }

// Create makes a key and records its creation in the audit log, in one
// transaction.
func (s *Store) Create(ctx context.Context, p keystore.CreateParams) (*keystore.Key, error) {
	now := s.clock()
	k, details, err := p.Apply(s.rand, now)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, "create key", func(tx *sql.Tx) error {
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		return s.record(ctx, tx, now, keystore.ActionCreate, k.ID, details)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Get returns a key without its secret.
func (s *Store) Get(ctx context.Context, id string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	k, err := getKey(ctx, s.db, id, s.clock())
	if err != nil {
		return nil, s.fail(ctx, "get key "+id, err)
	}
	s.uses.Show(k)
	return k, nil
}

// List yields keys newest first, one row at a time.
func (s *Store) List(ctx context.Context, opts keystore.ListOptions) iter.Seq2[*keystore.Key, error] {
	return func(yield func(*keystore.Key, error) bool) {
		const op = "list keys"
		now := s.clock()
		cond, args, err := sqlstore.Keys(dialect, opts.ListFilter, now)
		if err == nil && (opts.Offset < 0 || opts.Limit < 0) {
			err = keystore.Errorf(keystore.EINVALID, "offset and limit must not be negative")
		}
		if err != nil {
			yield(nil, err)
			return
		}
		limit := opts.Limit
		if limit == 0 {
			limit = -1 // SQLite's "no limit"
		}
		rows, err := s.db.QueryContext(ctx,
			"SELECT "+keyColumns+" FROM keys"+cond+" ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
			append(args, limit, opts.Offset)...)
		if err != nil {
			yield(nil, s.fail(ctx, op, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanKey(rows, now)
			if err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			s.uses.Show(k)
			if !yield(k, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, s.fail(ctx, op, err))
		}
	}
}

// Count returns how many keys match f.
func (s *Store) Count(ctx context.Context, f keystore.ListFilter) (int, error) {
	cond, args, err := sqlstore.Keys(dialect, f, s.clock())
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM keys"+cond, args...).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count keys", err)
	}
	return n, nil
}

// Rotate makes the successor of key id (keystore.NewRotation).
func (s *Store) Rotate(ctx context.Context, id string, opts keystore.RotateOptions) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	return s.change(ctx, "rotate key ", id, func(tx *sql.Tx, old *keystore.Key, now time.Time) (*keystore.Key, error) {
		if err := keystore.CheckRotate(old); err != nil {
			return nil, err
		}
		if old.RotatedTo != nil {
			if err := s.replaceUndelivered(ctx, tx, old, now); err != nil {
				return nil, err
			}
		}
		r, err := keystore.NewRotation(s.rand, old, opts, now)
		if err != nil {
			return nil, err
		}
		nk := r.New
		if err := insertKey(ctx, tx, nk); err != nil {
			return nil, err
		}
		if r.DeliveryDue != nil {
			if _, err := tx.ExecContext(ctx,
				"UPDATE keys SET delivery = ?, delivery_due = ?, delivery_grace = ? WHERE id = ?",
				keystore.DeliveryPending, r.DeliveryDue.Unix(), r.GraceSeconds, nk.ID); err != nil {
				return nil, err
			}
		}
		// The guard makes a second rotation of the same key fail even if it
		// raced past the checks above.
		res, err := tx.ExecContext(ctx,
			`UPDATE keys SET rotated_to = ?, revoked_at = ?, expires_at = ?
			 WHERE id = ? AND rotated_to IS NULL AND revoked_at IS NULL`,
			nk.ID, unix(r.OldRevokedAt), unix(r.OldExpiresAt), id)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n != 1 {
			return nil, keystore.RotatedMeanwhile(id)
		}
		return nk, s.record(ctx, tx, now, keystore.ActionRotate, id, r.Details)
	})
}

// replaceUndelivered is the part of Rotate for a key that was rotated
// already (keystore.ReplaceUndelivered).
func (s *Store) replaceUndelivered(ctx context.Context, tx *sql.Tx, old *keystore.Key, now time.Time) error {
	succID := *old.RotatedTo
	var (
		delivery sql.NullString
		due      sql.NullInt64
		revoked  sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, "SELECT delivery, delivery_due, revoked_at FROM keys WHERE id = ?", succID).Scan(&delivery, &due, &revoked)
	if err != nil {
		return err
	}
	revokeSuccessor, err := keystore.ReplaceUndelivered(old, delivery.String, timePtr(due), revoked.Valid, now)
	if err != nil {
		return err
	}
	if revokeSuccessor {
		if _, err := tx.ExecContext(ctx, "UPDATE keys SET revoked_at = ?, delivery_due = NULL WHERE id = ?", now.Unix(), succID); err != nil {
			return err
		}
		if err := s.record(ctx, tx, now, keystore.ActionRevoke, succID, keystore.UndeliveredDetails(old.ID)); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "UPDATE keys SET rotated_to = NULL WHERE id = ?", old.ID)
	return err
}

// ConfirmDelivery marks the secret of key id delivered and starts the end
// of its predecessor.
func (s *Store) ConfirmDelivery(ctx context.Context, id string) (*keystore.Key, error) {
	k, err := s.change(ctx, "confirm delivery of key ", id, func(tx *sql.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		if changed, err := keystore.ApplyDelivery(k); !changed {
			return k, err
		}
		var grace sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT delivery_grace FROM keys WHERE id = ?", id).Scan(&grace); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx,
			"UPDATE keys SET delivery = ?, delivery_due = NULL, delivery_grace = NULL WHERE id = ?",
			keystore.DeliveryDelivered, id); err != nil {
			return nil, err
		}
		if k.RotatedFrom != nil {
			old, err := getKey(ctx, tx, *k.RotatedFrom, now)
			if err != nil {
				return nil, err
			}
			if revokedAt, expiresAt, end := keystore.PredecessorEnd(old, grace.Int64, now); end {
				if _, err := tx.ExecContext(ctx, "UPDATE keys SET revoked_at = ?, expires_at = ? WHERE id = ?",
					unix(revokedAt), unix(expiresAt), old.ID); err != nil {
					return nil, err
				}
			}
		}
		return k, s.record(ctx, tx, now, keystore.ActionDeliver, id, keystore.DeliveryDetails(k, grace.Int64))
	})
	s.uses.Show(k)
	return k, err
}

// Revoke stops key id at once. Revoking it again changes nothing and records
// no second event.
func (s *Store) Revoke(ctx context.Context, id string) (*keystore.Key, error) {
	k, err := s.change(ctx, "revoke key ", id, func(tx *sql.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		changed, unlinkFrom, details := keystore.ApplyRevoke(k, now)
		if !changed {
			return k, nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE keys SET revoked_at = ?, delivery_due = NULL WHERE id = ?", now.Unix(), id); err != nil {
			return nil, err
		}
		if unlinkFrom != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE keys SET rotated_to = NULL WHERE id = ? AND rotated_to = ?", unlinkFrom, id); err != nil {
				return nil, err
			}
		}
		return k, s.record(ctx, tx, now, keystore.ActionRevoke, id, details)
	})
	s.uses.Show(k)
	return k, err
}

// Verify checks secret in the file and records the last use of a key that
// may be used. keystore/cache serves it from memory in a long-lived process.
func (s *Store) Verify(ctx context.Context, secret string, scopes []string) (*keystore.Verification, error) {
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			return nil, keystore.UnknownScope(sc)
		}
	}
	if _, err := keystore.ParseToken(secret); err != nil {
		return keystore.InvalidFormat(), nil
	}
	const op = "verify key"
	now := s.clock()
	hash := keystore.HashToken(secret)
	k, err := scanKey(s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = ?", hash[:]), now)
	if errors.Is(err, sql.ErrNoRows) {
		k, err = nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	v := keystore.Judge(k, now, scopes)
	if v.Valid || v.Code == keystore.CodeInsufficientScope {
		// At most one write per key and second, however often it is used:
		// none when this second's use, and that of the scopes asked for,
		// is recorded already. The scopes go in the same statement.
		var used []string
		if v.Valid {
			var changed bool
			if k.ScopesLastUsed, changed = keystore.WithScopeUses(k.ScopesLastUsed, scopes, now); changed {
				used = scopes
				k.SetScopeUses(k.ScopesLastUsed)
			}
		}
		if k.LastUsedAt == nil || k.LastUsedAt.Before(now) || len(used) > 0 {
			if err := recordUse(ctx, s.db, k.ID, now.Unix(), scopeTimes(used, now.Unix())); err != nil {
				return nil, s.fail(ctx, op, err)
			}
		}
		k.LastUsedAt = &now
	}
	return v, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// scopeTimes pairs each scope with t.
func scopeTimes(scopes []string, t int64) map[string]int64 {
	if len(scopes) == 0 {
		return nil
	}
	m := make(map[string]int64, len(scopes))
	for _, s := range scopes {
		m[s] = t
	}
	return m
}

// recordUse writes a use of key id at unix second t, and of the scopes in
// uses at their times, in one statement. Times only move forward: a use
// older than the one stored changes nothing.
func recordUse(ctx context.Context, db execer, id string, t int64, uses map[string]int64) error {
	var (
		b    strings.Builder
		args = []any{t}
	)
	b.WriteString("UPDATE keys SET last_used_at = max(coalesce(last_used_at, 0), ?)")
	if len(uses) > 0 {
		b.WriteString(", scope_uses = json_set(scope_uses")
		for _, sc := range slices.Sorted(maps.Keys(uses)) {
			// A scope name holds no quote: it is one of keystore.AllScopes.
			path := `$."` + sc + `"`
			b.WriteString(", ?, max(coalesce(json_extract(scope_uses, ?), 0), ?)")
			args = append(args, path, path, uses[sc])
		}
		b.WriteString(")")
	}
	b.WriteString(" WHERE id = ?")
	_, err := db.ExecContext(ctx, b.String(), append(args, id)...)
	return err
}

// Audit returns events oldest first; with keyID, those of that key and the
// rotation that made it.
func (s *Store) Audit(ctx context.Context, keyID string) ([]keystore.Event, error) {
	cond, args, err := sqlstore.Events(dialect, keystore.EventFilter{KeyID: keyID})
	if err != nil {
		return nil, err
	}
	return s.readEvents(ctx, cond+" ORDER BY seq", args)
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE, from the DSN) and
// commits when fn succeeds. The first of a process checks the store's
// integrity first.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	if err := s.checkBeforeWrite(ctx); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return s.fail(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// insertKey stores k, keeping only the SHA-256 of its secret.
func insertKey(ctx context.Context, tx *sql.Tx, k *keystore.Key) error {
	meta, err := json.Marshal(k.Metadata)
	if err != nil {
		return err
	}
	hash := keystore.HashToken(k.Secret)
	_, err = tx.ExecContext(ctx,
		`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, rotated_from, metadata)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Environment, strings.Join(k.Scopes, " "), hash[:], k.Hint,
		k.CreatedAt.Unix(), unix(k.ExpiresAt), k.RotatedFrom, string(meta))
	return err
}

// record appends an event to the audit log, in the caller's transaction.
func (s *Store) record(ctx context.Context, tx *sql.Tx, now time.Time, action, keyID string, details map[string]any) error {
	id, err := keystore.NewID(s.rand)
	if err != nil {
		return err
	}
	// An event ID has a key ID's shape under its own prefix.
	id = "evt_" + strings.TrimPrefix(id, "key_")
	if extra := keystore.AuditDetails(ctx); len(extra) > 0 {
		merged := maps.Clone(extra)
		maps.Copy(merged, details)
		details = merged
	}
	js, err := json.Marshal(details)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO audit_events (id, at, actor, action, key_id, details) VALUES (?, ?, ?, ?, ?, ?)",
		id, now.Unix(), keystore.Actor(ctx), action, keyID, string(js))
	return err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getKey loads key id, ENOTFOUND when there is none.
func getKey(ctx context.Context, q querier, id string, now time.Time) (*keystore.Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM keys WHERE id = ?", id), now)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keystore.Errorf(keystore.ENOTFOUND, "key %s not found", id)
	}
	return k, err
}

// scanKey reads a row of keyColumns and computes the key's status at now.
func scanKey(row interface{ Scan(...any) error }, now time.Time) (*keystore.Key, error) {
	var (
		k                          keystore.Key
		scopes, metadata           string
		created                    int64
		expires, revoked, lastUsed sql.NullInt64
		disabled                   sql.NullInt64
		from, to, delivery         sql.NullString
		scopeUses                  []byte
	)
	err := row.Scan(&k.ID, &k.Name, &k.Environment, &scopes, &k.Hint, &created,
		&expires, &revoked, &lastUsed, &from, &to, &metadata, &disabled, &scopeUses, &delivery)
	if err != nil {
		return nil, err
	}
	uses, err := keystore.DecodeScopeUses(scopeUses)
	if err != nil {
		return nil, err
	}
	k.SetScopeUses(uses)
	if metadata == "{}" { // most keys: spares the decoder
		k.Metadata = map[string]string{}
	} else if err := json.Unmarshal([]byte(metadata), &k.Metadata); err != nil {
		return nil, err
	}
	if k.Metadata == nil {
		k.Metadata = map[string]string{}
	}
	k.Scopes = strings.Fields(scopes)
	k.CreatedAt = time.Unix(created, 0).UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = timePtr(expires), timePtr(revoked), timePtr(lastUsed)
	k.DisabledAt = timePtr(disabled)
	if from.Valid {
		k.RotatedFrom = &from.String
	}
	if to.Valid {
		k.RotatedTo = &to.String
	}
	if delivery.Valid {
		k.Delivery = &delivery.String
	}
	k.Status = k.StatusAt(now)
	return &k, nil
}

// dialect is the SQL of this store where the PostgreSQL store's differs
// (sqlstore builds the filters of both).
var dialect = sqlstore.Dialect{
	Time: func(t time.Time) any { return t.Unix() },
	JSONText: func(column, field string) string {
		return "json_extract(" + column + ", '$." + field + "')"
	},
	AnyScope: func(scopes []string) (string, []any) {
		// Padding the space-separated list with spaces makes every match
		// a whole scope.
		alts, args := make([]string, len(scopes)), make([]any, len(scopes))
		for i, sc := range scopes {
			alts[i], args[i] = "instr(' ' || scopes || ' ', ?) > 0", " "+sc+" "
		}
		return strings.Join(alts, " OR "), args
	},
	HasMetadata: func(m map[string]string) (string, []any, error) {
		var (
			conds []string
			args  []any
		)
		for _, name := range slices.Sorted(maps.Keys(m)) {
			conds = append(conds, "EXISTS (SELECT 1 FROM json_each(keys.metadata) WHERE json_each.key = ? AND json_each.value = ?)")
			args = append(args, name, m[name])
		}
		return strings.Join(conds, " AND "), args, nil
	},
	IDPrefix: func(prefix string) (string, []any) {
		// A range of the primary key: IDs are ASCII, so every ID with the
		// prefix sorts before the prefix followed by DEL.
		return "id >= ? AND id < ?", []any{prefix, prefix + "\x7f"}
	},
}

func unix(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.Unix(v.Int64, 0).UTC()
	return &t
}

// Lookup returns the key whose secret has SHA-256 hash.
func (s *Store) Lookup(ctx context.Context, hash [32]byte) (*keystore.Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = ?", hash[:]), s.clock())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keystore.Errorf(keystore.ENOTFOUND, "no key has that secret")
	}
	if err != nil {
		return nil, s.fail(ctx, "look up key by hash", err)
	}
	s.uses.Show(k)
	return k, nil
}
