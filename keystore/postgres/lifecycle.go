package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlstore"
)

// change reads key id in a transaction, its row locked so that concurrent
// changes from any replica apply one after the other, lets fn change it
// and record the change there, and returns the key fn returns: the
// plumbing of every change to one key (the rules are keystore's).
func (s *Store) change(ctx context.Context, op, id string, fn func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error)) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	now := s.clock()
	var out *keystore.Key
	err := s.inTx(ctx, op+id, func(tx pgx.Tx) error {
		k, err := getKey(ctx, tx, id, now, true)
		if err != nil {
			return err
		}
		out, err = fn(tx, k, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update changes key id's name, scopes, expiry or metadata, with one audit
// event that holds the before and after of each changed field.
func (s *Store) Update(ctx context.Context, id string, p keystore.UpdateParams) (*keystore.Key, error) {
	nk, err := s.change(ctx, "update key ", id, func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		nk, changes, err := p.Apply(k, now)
		if err != nil || len(changes) == 0 {
			return nk, err
		}
		meta, err := json.Marshal(nk.Metadata)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx,
			"UPDATE keys SET name = $1, scopes = $2, expires_at = $3, metadata = $4 WHERE id = $5",
			nk.Name, nk.Scopes, nk.ExpiresAt, string(meta), id); err != nil {
			return nil, err
		}
		return nk, s.record(ctx, tx, now, []event{{keystore.ActionUpdate, id, changes}})
	})
	s.uses.Show(nk)
	return nk, err
}

// Disable stops key id until Enable.
func (s *Store) Disable(ctx context.Context, id string) (*keystore.Key, error) {
	return s.setDisabled(ctx, id, true)
}

// Enable undoes Disable.
func (s *Store) Enable(ctx context.Context, id string) (*keystore.Key, error) {
	return s.setDisabled(ctx, id, false)
}

func (s *Store) setDisabled(ctx context.Context, id string, disable bool) (*keystore.Key, error) {
	action := keystore.DisableAction(disable)
	k, err := s.change(ctx, action+" key ", id, func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		if changed, err := keystore.ApplyDisable(k, disable, now); !changed {
			return k, err
		}
		if _, err := tx.Exec(ctx, "UPDATE keys SET disabled_at = $1 WHERE id = $2", k.DisabledAt, id); err != nil {
			return nil, err
		}
		return k, s.record(ctx, tx, now, []event{{action, id, map[string]any{}}})
	})
	s.uses.Show(k)
	return k, err
}

// Delete removes revoked key id; its audit events stay.
func (s *Store) Delete(ctx context.Context, id string) (*keystore.Key, error) {
	return s.change(ctx, "delete key ", id, func(tx pgx.Tx, k *keystore.Key, now time.Time) (*keystore.Key, error) {
		details, err := keystore.ApplyDelete(k)
		if err != nil {
			return nil, err
		}
		// The keys rotated from or to it would point at nothing.
		for _, stmt := range []string{
			"UPDATE keys SET rotated_from = NULL WHERE rotated_from = $1",
			"UPDATE keys SET rotated_to = NULL WHERE rotated_to = $1",
			"DELETE FROM keys WHERE id = $1",
		} {
			if _, err := tx.Exec(ctx, stmt, id); err != nil {
				return nil, err
			}
		}
		return k, s.record(ctx, tx, now, []event{{keystore.ActionDelete, id, details}})
	})
}

// Events returns the events that match f, newest first: in the reverse of
// the order their changes committed.
func (s *Store) Events(ctx context.Context, f keystore.EventFilter) ([]keystore.Event, error) {
	cond, args, err := sqlstore.Events(dialect, f)
	if err != nil {
		return nil, err
	}
	rest := cond + " ORDER BY version DESC, seq DESC"
	if f.Limit > 0 {
		args = append(args, f.Limit)
		rest += " LIMIT $" + strconv.Itoa(len(args))
	}
	args = append(args, f.Offset)
	rest += " OFFSET $" + strconv.Itoa(len(args))
	return s.readEvents(ctx, rest, args)
}

// readEvents reads the events of audit_events that rest (a condition and
// an order) selects.
func (s *Store) readEvents(ctx context.Context, rest string, args []any) ([]keystore.Event, error) {
	const op = "read audit log"
	rows, err := s.pool.Query(ctx, "SELECT id, at, actor, action, key_id, details FROM audit_events"+rest, args...)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	events := []keystore.Event{}
	for rows.Next() {
		var (
			e       keystore.Event
			details []byte
		)
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.KeyID, &details); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		e.At = e.At.UTC()
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return events, nil
}

// CountEvents returns how many events match f.
func (s *Store) CountEvents(ctx context.Context, f keystore.EventFilter) (int, error) {
	f.Offset, f.Limit = 0, 0
	cond, args, err := sqlstore.Events(dialect, f)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM audit_events"+cond, args...).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count audit events", err)
	}
	return n, nil
}
