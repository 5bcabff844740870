package sqlite

import (
	"context"
	"database/sql"
	"maps"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// useFlushInterval is how often queued uses (RecordUse) are written.
const useFlushInterval = time.Second

// useRecorder keeps the uses queued by RecordUse (keystore/cache's, which
// serves Verify from memory) and writes them in one transaction every
// useFlushInterval and at Close: at most one write per key and second,
// as Verify without the cache. The writes add no audit event, so they
// are no change for a change feed. Reads through the Store (Get, List,
// Lookup) show the uses not yet written.
type useRecorder struct {
	s *Store

	mu      sync.Mutex
	pending map[string]int64 // key ID → last use (unix seconds) not yet written
	// key ID → scope → last use of the scope not yet written; written with
	// the key's last use
	pendingScopes map[string]map[string]int64
	started       bool // the writer runs

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	err      error
}

func newUseRecorder(s *Store) *useRecorder {
	return &useRecorder{s: s, pending: map[string]int64{}, pendingScopes: map[string]map[string]int64{},
		quit: make(chan struct{}), done: make(chan struct{})}
}

var _ keystore.UseRecorder = (*Store)(nil)

// RecordUse queues a use of key id at t, and of scopes at t. The writer
// starts with the first use, so a command that records none starts no
// goroutine.
func (s *Store) RecordUse(id string, t time.Time, scopes []string) {
	u, sec := s.uses, t.Unix()
	u.mu.Lock()
	defer u.mu.Unlock()
	if sec > u.pending[id] {
		u.pending[id] = sec
	}
	if len(scopes) > 0 {
		m := u.pendingScopes[id]
		if m == nil {
			m = make(map[string]int64, len(scopes))
			u.pendingScopes[id] = m
		}
		for _, sc := range scopes {
			if sec > m[sc] {
				m[sc] = sec
			}
		}
	}
	if !u.started {
		u.started = true
		go u.run()
	}
}

// run writes the queued uses every useFlushInterval. A write may wait for
// another process's long transaction (an import); verifications do not
// wait with it.
func (u *useRecorder) run() {
	defer close(u.done)
	t := time.NewTicker(useFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-u.quit:
			return
		case <-t.C:
			// A failed write keeps the uses for the next try.
			u.flush(context.Background())
		}
	}
}

// stop ends the writer and writes what is left.
func (u *useRecorder) stop() error {
	u.stopOnce.Do(func() {
		close(u.quit)
		u.mu.Lock()
		started := u.started
		u.mu.Unlock()
		if started {
			<-u.done
		}
		u.err = u.flush(context.Background())
	})
	return u.err
}

// withUses shows on k the uses not yet written, if any.
func (s *Store) withUses(k *keystore.Key) {
	if k == nil {
		return
	}
	u := s.uses
	u.mu.Lock()
	t, ok := u.pending[k.ID]
	var scopes map[string]int64
	if m := u.pendingScopes[k.ID]; len(m) > 0 {
		scopes = maps.Clone(m)
	}
	u.mu.Unlock()
	if ok && (k.LastUsedAt == nil || k.LastUsedAt.Unix() < t) {
		used := time.Unix(t, 0).UTC()
		k.LastUsedAt = &used
	}
	if len(scopes) > 0 {
		uses := k.ScopesLastUsed // may be shared: copied on change
		for sc, t := range scopes {
			uses, _ = keystore.WithScopeUses(uses, []string{sc}, time.Unix(t, 0).UTC())
		}
		k.SetScopeUses(uses)
	}
}

// flush writes the queued uses in one transaction. A use stays queued
// until its write has committed, so that reads keep showing it.
func (u *useRecorder) flush(ctx context.Context) error {
	u.mu.Lock()
	if len(u.pending) == 0 && len(u.pendingScopes) == 0 {
		u.mu.Unlock()
		return nil
	}
	batch := maps.Clone(u.pending)
	scopeBatch := make(map[string]map[string]int64, len(u.pendingScopes))
	for id, m := range u.pendingScopes {
		scopeBatch[id] = maps.Clone(m)
	}
	u.mu.Unlock()

	err := u.s.inTx(ctx, "record key use", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			"UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, t := range batch {
			if _, ok := scopeBatch[id]; ok {
				continue // below, with its scopes
			}
			if _, err := stmt.ExecContext(ctx, t, id, t); err != nil {
				return err
			}
		}
		// The uses of scopes, each with its key's last use: one
		// statement per key.
		for id, scopes := range scopeBatch {
			if err := recordUse(ctx, tx, id, batch[id], scopes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.mu.Lock()
	for id, t := range batch {
		if u.pending[id] == t {
			delete(u.pending, id)
		}
	}
	for id, scopes := range scopeBatch {
		m := u.pendingScopes[id]
		for sc, t := range scopes {
			if m[sc] == t {
				delete(m, sc)
			}
		}
		if len(m) == 0 {
			delete(u.pendingScopes, id)
		}
	}
	u.mu.Unlock()
	return nil
}
