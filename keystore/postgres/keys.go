package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	err = s.inTx(ctx, "create key", func(tx pgx.Tx) error {
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		return s.record(ctx, tx, now, []event{{keystore.ActionCreate, k.ID, details}})
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
	k, err := getKey(ctx, s.pool, id, s.clock(), false)
	if err != nil {
		return nil, s.fail(ctx, "get key "+id, err)
	}
	s.uses.Show(k)
	return k, nil
}

// List yields keys newest first. Rows are read in pages by keyset, so that
// memory stays flat and no transaction stays open while the caller works.
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
		const page = 1000
		var (
			after     bool
			lastAt    time.Time
			lastSeq   int64
			remaining = opts.Limit
			offset    = opts.Offset
		)
		for {
			n := page
			if opts.Limit > 0 && remaining < n {
				n = remaining
			}
			q := "SELECT " + keyColumns + ", seq FROM keys" + cond
			a := append([]any(nil), args...)
			if after {
				if cond == "" {
					q += " WHERE "
				} else {
					q += " AND "
				}
				q += "(created_at, seq) < ($" + strconv.Itoa(len(a)+1) + ", $" + strconv.Itoa(len(a)+2) + ")"
				a = append(a, lastAt, lastSeq)
			}
			q += " ORDER BY created_at DESC, seq DESC LIMIT $" + strconv.Itoa(len(a)+1) + " OFFSET $" + strconv.Itoa(len(a)+2)
			a = append(a, n, offset)
			rows, err := s.pool.Query(ctx, q, a...)
			if err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			var got []*keystore.Key
			for rows.Next() {
				k, seq, err := scanKeySeq(rows, now)
				if err != nil {
					rows.Close()
					yield(nil, s.fail(ctx, op, err))
					return
				}
				got = append(got, k)
				lastAt, lastSeq = k.CreatedAt, seq
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(nil, s.fail(ctx, op, err))
				return
			}
			for _, k := range got {
				s.uses.Show(k)
				if !yield(k, nil) {
					return
				}
			}
			if len(got) < n {
				return
			}
			after, offset = true, 0
			if opts.Limit > 0 {
				if remaining -= len(got); remaining == 0 {
					return
				}
			}
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
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM keys"+cond, args...).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count keys", err)
	}
	return n, nil
}

// Rotate makes the successor of key id (keystore.NewRotation): the old
// key's row is locked first, so that of concurrent rotations, from any
// replica, exactly one makes a successor.
func (s *Store) Rotate(ctx context.Context, id string, opts keystore.RotateOptions) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	return s.change(ctx, "rotate key ", id, func(tx pgx.Tx, old *keystore.Key, now time.Time) (*keystore.Key, error) {
		if err := keystore.CheckRotate(old); err != nil {
			return nil, err
		}
		var events []event
		if old.RotatedTo != nil {
			var err error
			if events, err = replaceUndelivered(ctx, tx, old, now); err != nil {
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
			if _, err := tx.Exec(ctx,
				"UPDATE keys SET delivery = $1, delivery_due = $2, delivery_grace = $3 WHERE id = $4",
				keystore.DeliveryPending, *r.DeliveryDue, r.GraceSeconds, nk.ID); err != nil {
				return nil, err
			}
		}
		tag, err := tx.Exec(ctx,
			`UPDATE keys SET rotated_to = $1, revoked_at = $2, expires_at = $3
			 WHERE id = $4 AND rotated_to IS NULL AND revoked_at IS NULL`,
			nk.ID, r.OldRevokedAt, r.OldExpiresAt, id)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() != 1 {
			return nil, keystore.RotatedMeanwhile(id)
		}
		return nk, s.record(ctx, tx, now, append(events, event{keystore.ActionRotate, id, r.Details}))
	})
}

// replaceUndelivered is the part of Rotate for a key that was rotated
// already (keystore.ReplaceUndelivered). It returns the events to record.
func replaceUndelivered(ctx context.Context, tx pgx.Tx, old *keystore.Key, now time.Time) ([]event, error) {
	succID := *old.RotatedTo
	var (
		delivery *string
		due      *time.Time
		revoked  *time.Time
	)
	err := tx.QueryRow(ctx, "SELECT delivery, delivery_due, revoked_at FROM keys WHERE id = $1 FOR UPDATE", succID).Scan(&delivery, &due, &revoked)
	if err != nil {
		return nil, err
	}
	var d string
	if delivery != nil {
		d = *delivery
	}
	revokeSuccessor, err := keystore.ReplaceUndelivered(old, d, due, revoked != nil, now)
	if err != nil {
		return nil, err
	}
	var events []event
	if revokeSuccessor {
		if _, err := tx.Exec(ctx, "UPDATE keys SET revoked_at = $1, delivery_due = NULL WHERE id = $2", now, succID); err != nil {
			return nil, err
		}
		events = append(events, event{keystore.ActionRevoke, succID, keystore.UndeliveredDetails(old.ID)})
	}
	if _, err := tx.Exec(ctx, "UPDATE keys SET rotated_to = NULL WHERE id = $1", old.ID); err != nil {
		return nil, err
	}
	return events, nil
}

// ConfirmDelivery marks the secret of key id delivered and starts the end
// of its predecessor.
func (s *Store) ConfirmDelivery(ctx context.Context, id string) (*keystore.Key, error) {
	k, err := s.change(ctx, "confirm delivery of key ", id, func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		if changed, err := keystore.ApplyDelivery(k); !changed {
			return k, err
		}
		var grace *int64
		if err := tx.QueryRow(ctx, "SELECT delivery_grace FROM keys WHERE id = $1", id).Scan(&grace); err != nil {
			return nil, err
		}
		g := int64(0)
		if grace != nil {
			g = *grace
		}
		if _, err := tx.Exec(ctx,
			"UPDATE keys SET delivery = $1, delivery_due = NULL, delivery_grace = NULL WHERE id = $2",
			keystore.DeliveryDelivered, id); err != nil {
			return nil, err
		}
		if k.RotatedFrom != nil {
			old, err := getKey(ctx, tx, *k.RotatedFrom, now, true)
			if err != nil {
				return nil, err
			}
			if revokedAt, expiresAt, end := keystore.PredecessorEnd(old, g, now); end {
				if _, err := tx.Exec(ctx, "UPDATE keys SET revoked_at = $1, expires_at = $2 WHERE id = $3",
					revokedAt, expiresAt, old.ID); err != nil {
					return nil, err
				}
			}
		}
		return k, s.record(ctx, tx, now, []event{{keystore.ActionDeliver, id, keystore.DeliveryDetails(k, g)}})
	})
	s.uses.Show(k)
	return k, err
}

// Revoke stops key id at once. Revoking it again changes nothing and records
// no second event.
func (s *Store) Revoke(ctx context.Context, id string) (*keystore.Key, error) {
	k, err := s.change(ctx, "revoke key ", id, func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		changed, unlinkFrom, details := keystore.ApplyRevoke(k, now)
		if !changed {
			return k, nil
		}
		if _, err := tx.Exec(ctx, "UPDATE keys SET revoked_at = $1, delivery_due = NULL WHERE id = $2", now, id); err != nil {
			return nil, err
		}
		if unlinkFrom != "" {
			if _, err := tx.Exec(ctx, "UPDATE keys SET rotated_to = NULL WHERE id = $1 AND rotated_to = $2", unlinkFrom, id); err != nil {
				return nil, err
			}
		}
		return k, s.record(ctx, tx, now, []event{{keystore.ActionRevoke, id, details}})
	})
	s.uses.Show(k)
	return k, err
}

// Verify checks secret by its hash, in the database, on every call: a
// change committed by any replica is seen by the next Verify. The use is
// recorded in memory and written in batches (see uses.go).
func (s *Store) Verify(ctx context.Context, secret string, scopes []string) (*keystore.Verification, error) {
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			return nil, keystore.Errorf(keystore.EINVALID, "unknown scope %q (did you mean %s?)", keystore.Truncate(sc, 40), keystore.NearestScope(sc))
		}
	}
	if _, err := keystore.ParseToken(secret); err != nil {
		return keystore.InvalidFormat(), nil
	}
	now := s.clock()
	hash := keystore.HashToken(secret)
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = $1", hash[:]), now)
	if err != nil && lostConn(ctx, err) {
		// The pool's connection was cut (a failover, pg_terminate_backend):
		// a read is safe to send again, on a new one.
		k, err = scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = $1", hash[:]), now)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		k, err = nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "verify key", err)
	}
	v := keystore.Judge(k, now, scopes)
	if v.Valid || v.Code == keystore.CodeInsufficientScope {
		var used []string
		if v.Valid {
			used = scopes
		}
		s.uses.Add(k.ID, now, used)
		k.LastUsedAt = &now
		s.uses.Show(k)
	} else {
		s.uses.Show(k)
	}
	return v, nil
}

// Lookup returns the key whose secret has SHA-256 hash.
func (s *Store) Lookup(ctx context.Context, hash [32]byte) (*keystore.Key, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = $1", hash[:]), s.clock())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keystore.Errorf(keystore.ENOTFOUND, "no key has that secret")
	}
	if err != nil {
		return nil, s.fail(ctx, "look up key by hash", err)
	}
	s.uses.Show(k)
	return k, nil
}

// Audit returns events in the order their changes committed; with keyID,
// those of that key and the rotation that made it.
func (s *Store) Audit(ctx context.Context, keyID string) ([]keystore.Event, error) {
	cond, args, err := sqlstore.Events(dialect, keystore.EventFilter{KeyID: keyID})
	if err != nil {
		return nil, err
	}
	return s.readEvents(ctx, cond+" ORDER BY version, seq", args)
}

// lostConn reports whether err is the loss of a connection rather than an
// answer of the database or the end of ctx.
func lostConn(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	pe, isPg := errors.AsType[*pgconn.PgError](err)
	return !isPg || strings.HasPrefix(pe.Code, "57P") // admin_shutdown and the like
}

// inTx runs fn in one transaction and commits when fn succeeds.
func (s *Store) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer tx.Rollback(context.Background())
	if err := fn(tx); err != nil {
		return s.fail(ctx, op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// insertKey stores k, keeping only the SHA-256 of its secret.
func insertKey(ctx context.Context, tx pgx.Tx, k *keystore.Key) error {
	meta, err := json.Marshal(k.Metadata)
	if err != nil {
		return err
	}
	hash := keystore.HashToken(k.Secret)
	_, err = tx.Exec(ctx,
		`INSERT INTO keys (id, name, environment, scopes, secret_hash, hint, created_at, expires_at, rotated_from, metadata)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.Name, k.Environment, k.Scopes, hash[:], k.Hint, k.CreatedAt, k.ExpiresAt, k.RotatedFrom, string(meta))
	return err
}

// event is an audit event to record.
type event struct {
	action, keyID string
	details       map[string]any
}

// record appends events to the audit log and moves the change feed on, in
// the caller's transaction, at its end: it takes the feed's row lock, which
// every change takes, so the version of each change is visible only after
// those of the changes that committed before it (see the schema).
func (s *Store) record(ctx context.Context, tx pgx.Tx, now time.Time, events []event) error {
	version, err := bump(ctx, tx)
	if err != nil {
		return err
	}
	actor := keystore.Actor(ctx)
	for _, e := range events {
		id, err := keystore.NewID(s.rand)
		if err != nil {
			return err
		}
		// An event ID has a key ID's shape under its own prefix.
		id = "evt_" + strings.TrimPrefix(id, "key_")
		details := e.details
		if extra := keystore.AuditDetails(ctx); len(extra) > 0 {
			details = maps.Clone(extra)
			maps.Copy(details, e.details)
		}
		js, err := json.Marshal(details)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			"INSERT INTO audit_events (version, id, at, actor, action, key_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
			version, id, now, actor, e.action, e.keyID, string(js)); err != nil {
			return err
		}
	}
	return nil
}

// feedChannel is the channel of the change feed's notifications.
const feedChannel = "keyctl_changes"

// bump moves the change feed's version on and queues its notification,
// which PostgreSQL delivers when the transaction commits.
func bump(ctx context.Context, tx pgx.Tx) (int64, error) {
	var version int64
	if err := tx.QueryRow(ctx, "UPDATE keyctl_changes SET version = version + 1 RETURNING version").Scan(&version); err != nil {
		return 0, err
	}
	// Stores in several schemas of one database share the channel: the
	// payload names the schema.
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, current_schema() || ':' || $2)", feedChannel, strconv.FormatInt(version, 10)); err != nil {
		return 0, err
	}
	return version, nil
}

// getKey loads key id, ENOTFOUND when there is none; lock takes its row
// lock for the transaction.
func getKey(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string, now time.Time, lock bool) (*keystore.Key, error) {
	query := "SELECT " + keyColumns + " FROM keys WHERE id = $1"
	if lock {
		query += " FOR UPDATE"
	}
	k, err := scanKey(q.QueryRow(ctx, query, id), now)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keystore.Errorf(keystore.ENOTFOUND, "key %s not found", id)
	}
	return k, err
}

// scanKey reads a row of keyColumns and computes the key's status at now.
func scanKey(row pgx.Row, now time.Time) (*keystore.Key, error) {
	k, _, err := scan(row, now, false)
	return k, err
}

// scanKeySeq is scanKey for a row of keyColumns and seq.
func scanKeySeq(row pgx.Row, now time.Time) (*keystore.Key, int64, error) {
	return scan(row, now, true)
}

func scan(row pgx.Row, now time.Time, withSeq bool) (*keystore.Key, int64, error) {
	var (
		k                          keystore.Key
		metadata                   []byte
		expires, revoked, lastUsed *time.Time
		disabled                   *time.Time
		seq                        int64
		scopeUses                  []byte
	)
	dest := []any{&k.ID, &k.Name, &k.Environment, &k.Scopes, &k.Hint, &k.CreatedAt,
		&expires, &revoked, &lastUsed, &k.RotatedFrom, &k.RotatedTo, &metadata, &disabled, &scopeUses, &k.Delivery}
	if withSeq {
		dest = append(dest, &seq)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, 0, err
	}
	if string(metadata) == "{}" {
		k.Metadata = map[string]string{}
	} else if err := json.Unmarshal(metadata, &k.Metadata); err != nil {
		return nil, 0, err
	}
	if k.Metadata == nil {
		k.Metadata = map[string]string{}
	}
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	uses, err := keystore.DecodeScopeUses(scopeUses)
	if err != nil {
		return nil, 0, err
	}
	k.SetScopeUses(uses)
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = utc(expires), utc(revoked), utc(lastUsed)
	k.DisabledAt = utc(disabled)
	k.Status = k.StatusAt(now)
	return &k, seq, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// dialect is the SQL of this store where the SQLite store's differs
// (sqlstore builds the filters of both).
var dialect = sqlstore.Dialect{
	Numbered: true,
	Time:     func(t time.Time) any { return t },
	JSONText: func(column, field string) string { return column + " ->> '" + field + "'" },
	AnyScope: func(scopes []string) (string, []any) {
		return "scopes && ?::text[]", []any{scopes}
	},
	HasMetadata: func(m map[string]string) (string, []any, error) {
		js, err := json.Marshal(m)
		return "metadata @> ?::jsonb", []any{string(js)}, err
	},
	IDPrefix: func(prefix string) (string, []any) {
		// starts_with compares bytes, whatever the database's collation.
		return "starts_with(id, ?)", []any{prefix}
	},
}
