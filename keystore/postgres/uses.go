package postgres

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// useRecorder keeps the uses of keys (last_used_at) in memory and writes
// them in one statement every interval and at stop, so that Verify does
// not write to the database per request: at most one write per key per
// interval, whatever the rate of requests. Reads through the same Store
// show the uses not yet written; another replica sees them within the
// interval.
type useRecorder struct {
	s        *Store
	interval time.Duration

	mu      sync.Mutex
	pending map[string]time.Time // key ID -> last use not yet written
	// key ID -> scope -> last use of the scope not yet written
	pendingScopes map[string]map[string]time.Time

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	started  bool
	err      error
}

func newUseRecorder(s *Store, interval time.Duration) *useRecorder {
	if interval <= 0 {
		interval = time.Second
	}
	return &useRecorder{s: s, interval: interval, pending: map[string]time.Time{},
		pendingScopes: map[string]map[string]time.Time{},
		quit:          make(chan struct{}), done: make(chan struct{})}
}

// add queues a use of key id at t, which asked for scopes. The writer
// starts with the first use, so a command that verifies nothing starts no
// goroutine.
func (u *useRecorder) add(id string, t time.Time, scopes []string) {
	u.mu.Lock()
	if t.After(u.pending[id]) {
		u.pending[id] = t
	}
	if len(scopes) > 0 {
		m := u.pendingScopes[id]
		if m == nil {
			m = make(map[string]time.Time, len(scopes))
			u.pendingScopes[id] = m
		}
		for _, sc := range scopes {
			if t.After(m[sc]) {
				m[sc] = t
			}
		}
	}
	if !u.started {
		u.started = true
		go u.run()
	}
	u.mu.Unlock()
}

// show puts on k its use not yet written, if later than the one stored.
func (u *useRecorder) show(k *keystore.Key) {
	if k == nil {
		return
	}
	u.mu.Lock()
	t, ok := u.pending[k.ID]
	var scopes map[string]time.Time
	if m := u.pendingScopes[k.ID]; len(m) > 0 {
		scopes = maps.Clone(m)
	}
	u.mu.Unlock()
	if ok && (k.LastUsedAt == nil || k.LastUsedAt.Before(t)) {
		k.LastUsedAt = &t
	}
	if len(scopes) > 0 {
		uses := k.ScopesLastUsed
		for sc, t := range scopes {
			uses, _ = keystore.WithScopeUses(uses, []string{sc}, t)
		}
		k.SetScopeUses(uses)
	}
}

func (u *useRecorder) run() {
	defer close(u.done)
	t := time.NewTicker(u.interval)
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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u.err = u.flush(ctx)
	})
	return u.err
}

// flush writes the queued uses in one statement. A use stays queued until
// its write has committed, so that reads keep showing it.
func (u *useRecorder) flush(ctx context.Context) error {
	u.mu.Lock()
	if len(u.pending) == 0 && len(u.pendingScopes) == 0 {
		u.mu.Unlock()
		return nil
	}
	ids := make([]string, 0, len(u.pending))
	times := make([]time.Time, 0, len(u.pending))
	for id, t := range u.pending {
		ids = append(ids, id)
		times = append(times, t)
	}
	scopeBatch := make(map[string]map[string]time.Time, len(u.pendingScopes))
	scopeIDs := make([]string, 0, len(u.pendingScopes))
	scopeUses := make([]string, 0, len(u.pendingScopes))
	for id, m := range u.pendingScopes {
		scopeBatch[id] = maps.Clone(m)
		scopeIDs = append(scopeIDs, id)
		scopeUses = append(scopeUses, keystore.EncodeScopeUses(m))
	}
	u.mu.Unlock()

	if len(scopeIDs) > 0 {
		// Each scope keeps the later of its stored and its new time.
		_, err := u.s.pool.Exec(ctx,
			`UPDATE keys AS k SET scope_uses = (
			     SELECT coalesce(jsonb_object_agg(e.key, e.t), '{}'::jsonb) FROM (
			         SELECT key, max(value::bigint) AS t FROM (
			             SELECT key, value FROM jsonb_each_text(k.scope_uses)
			             UNION ALL
			             SELECT key, value FROM jsonb_each_text(u.uses)) AS a
			         GROUP BY key) AS e)
			 FROM unnest($1::text[], $2::jsonb[]) AS u (id, uses)
			 WHERE k.id = u.id`,
			scopeIDs, scopeUses)
		if err != nil {
			return u.s.fail(ctx, "record key use", err)
		}
		u.mu.Lock()
		for id, scopes := range scopeBatch {
			m := u.pendingScopes[id]
			for sc, t := range scopes {
				if m[sc].Equal(t) {
					delete(m, sc)
				}
			}
			if len(m) == 0 {
				delete(u.pendingScopes, id)
			}
		}
		u.mu.Unlock()
	}
	if len(ids) == 0 {
		return nil
	}

	_, err := u.s.pool.Exec(ctx,
		`UPDATE keys AS k SET last_used_at = u.t
		 FROM unnest($1::text[], $2::timestamptz[]) AS u (id, t)
		 WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.t)`,
		ids, times)
	if err != nil {
		return u.s.fail(ctx, "record key use", err)
	}
	u.mu.Lock()
	for i, id := range ids {
		if u.pending[id].Equal(times[i]) {
			delete(u.pending, id)
		}
	}
	u.mu.Unlock()
	return nil
}
