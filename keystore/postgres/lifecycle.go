package postgres

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlstore"
)

// Update changes key id's name, scopes, expiry or metadata, with one audit
// event that holds the before and after of each changed field. The key's
// row is locked first, so that concurrent updates apply one after the
// other.
func (s *Store) Update(ctx context.Context, id string, p keystore.UpdateParams) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	now := s.clock()
	var nk *keystore.Key
	err := s.inTx(ctx, "update key "+id, func(tx pgx.Tx) error {
		k, err := getKey(ctx, tx, id, now, true)
		if err != nil {
			return err
		}
		var changes map[string]any
		nk, changes, err = p.Apply(k, now)
		if err != nil || len(changes) == 0 {
			return err
		}
		meta, err := json.Marshal(nk.Metadata)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			"UPDATE keys SET name = $1, scopes = $2, expires_at = $3, metadata = $4 WHERE id = $5",
			nk.Name, nk.Scopes, nk.ExpiresAt, string(meta), id); err != nil {
			return err
		}
		return s.record(ctx, tx, now, []event{{keystore.ActionUpdate, id, changes}})
	})
	if err != nil {
		return nil, err
	}
	s.uses.Show(nk)
	return nk, nil
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
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	action := keystore.DisableAction(disable)
	now := s.clock()
	var k *keystore.Key
	err := s.inTx(ctx, action+" key "+id, func(tx pgx.Tx) error {
		var err error
		if k, err = getKey(ctx, tx, id, now, true); err != nil {
			return err
		}
		if changed, err := keystore.ApplyDisable(k, disable, now); !changed {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE keys SET disabled_at = $1 WHERE id = $2", k.DisabledAt, id); err != nil {
			return err
		}
		return s.record(ctx, tx, now, []event{{action, id, map[string]any{}}})
	})
	if err != nil {
		return nil, err
	}
	s.uses.Show(k)
	return k, nil
}

// Delete removes revoked key id; its audit events stay.
func (s *Store) Delete(ctx context.Context, id string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	now := s.clock()
	var k *keystore.Key
	err := s.inTx(ctx, "delete key "+id, func(tx pgx.Tx) error {
		var err error
		if k, err = getKey(ctx, tx, id, now, true); err != nil {
			return err
		}
		details, err := keystore.ApplyDelete(k)
		if err != nil {
			return err
		}
		// The keys rotated from or to it would point at nothing.
		for _, stmt := range []string{
			"UPDATE keys SET rotated_from = NULL WHERE rotated_from = $1",
			"UPDATE keys SET rotated_to = NULL WHERE rotated_to = $1",
			"DELETE FROM keys WHERE id = $1",
		} {
			if _, err := tx.Exec(ctx, stmt, id); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, now, []event{{keystore.ActionDelete, id, details}})
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Events returns the events that match f, newest first: in the reverse of
// the order their changes committed.
func (s *Store) Events(ctx context.Context, f keystore.EventFilter) ([]keystore.Event, error) {
	const op = "read audit log"
	cond, args, err := sqlstore.Events(dialect, f)
	if err != nil {
		return nil, err
	}
	query := "SELECT id, at, actor, action, key_id, details FROM audit_events" + cond + " ORDER BY version DESC, seq DESC"
	if f.Limit > 0 {
		args = append(args, f.Limit)
		query += " LIMIT $" + strconv.Itoa(len(args))
	}
	args = append(args, f.Offset)
	query += " OFFSET $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, query, args...)
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
