package keystore

import (
	"context"
	"maps"
	"sync"
	"time"
)

// UseQueue keeps the uses of keys that a store was told of (UseRecorder)
// in memory and has the store write them in one batch every interval and
// at Stop, so that verifying does not write to the database per request:
// at most one write per key and interval, whatever the rate of requests.
// Reads through the store show the uses not yet written (Show).
type UseQueue struct {
	write    func(context.Context, UseBatch) error
	interval time.Duration

	mu     sync.Mutex
	keys   map[string]time.Time            // key ID → last use not yet written
	scopes map[string]map[string]time.Time // key ID → scope → last use not yet written
	// started: the writer runs
	started bool

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	err      error
}

// UseBatch is the uses a UseQueue hands its store to write. A scope's use
// comes with a use of its key, which may be in an earlier batch.
type UseBatch struct {
	Keys   map[string]time.Time            // key ID → last use
	Scopes map[string]map[string]time.Time // key ID → scope → last use
}

// NewUseQueue returns a queue whose uses write writes, every interval
// (one second when interval is 0). write must keep times moving forward
// only: a use older than the one stored changes nothing.
func NewUseQueue(interval time.Duration, write func(context.Context, UseBatch) error) *UseQueue {
	if interval <= 0 {
		interval = time.Second
	}
	return &UseQueue{write: write, interval: interval,
		keys: map[string]time.Time{}, scopes: map[string]map[string]time.Time{},
		quit: make(chan struct{}), done: make(chan struct{})}
}

// Add queues a use of key id at t, which asked for scopes. The writer
// starts with the first use, so a command that verifies nothing starts no
// goroutine.
func (q *UseQueue) Add(id string, t time.Time, scopes []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.After(q.keys[id]) {
		q.keys[id] = t
	}
	if len(scopes) > 0 {
		m := q.scopes[id]
		if m == nil {
			m = make(map[string]time.Time, len(scopes))
			q.scopes[id] = m
		}
		for _, sc := range scopes {
			if t.After(m[sc]) {
				m[sc] = t
			}
		}
	}
	if !q.started {
		q.started = true
		go q.run()
	}
}

// Show puts on k its uses not yet written, where later than those stored.
func (q *UseQueue) Show(k *Key) {
	if k == nil {
		return
	}
	q.mu.Lock()
	t, ok := q.keys[k.ID]
	var scopes map[string]time.Time
	if m := q.scopes[k.ID]; len(m) > 0 {
		scopes = maps.Clone(m)
	}
	q.mu.Unlock()
	if ok && (k.LastUsedAt == nil || k.LastUsedAt.Before(t)) {
		k.LastUsedAt = &t
	}
	if len(scopes) > 0 {
		uses := k.ScopesLastUsed // may be shared: copied on change
		for sc, t := range scopes {
			uses, _ = WithScopeUses(uses, []string{sc}, t)
		}
		k.SetScopeUses(uses)
	}
}

// run writes the queued uses every interval. A write may wait for another
// process's long transaction (an import); verifications do not wait with it.
func (q *UseQueue) run() {
	defer close(q.done)
	t := time.NewTicker(q.interval)
	defer t.Stop()
	for {
		select {
		case <-q.quit:
			return
		case <-t.C:
			// A failed write keeps the uses for the next try.
			q.Flush(context.Background())
		}
	}
}

// Stop ends the writer and writes what is left, within ctx. Later calls
// return the first call's error.
func (q *UseQueue) Stop(ctx context.Context) error {
	q.stopOnce.Do(func() {
		close(q.quit)
		q.mu.Lock()
		started := q.started
		q.mu.Unlock()
		if started {
			<-q.done
		}
		q.err = q.Flush(ctx)
	})
	return q.err
}

// Flush writes the queued uses in one batch. A use stays queued until its
// write has returned without error, so that reads keep showing it; a use
// queued meanwhile stays for the next batch.
func (q *UseQueue) Flush(ctx context.Context) error {
	q.mu.Lock()
	if len(q.keys) == 0 && len(q.scopes) == 0 {
		q.mu.Unlock()
		return nil
	}
	b := UseBatch{Keys: maps.Clone(q.keys), Scopes: make(map[string]map[string]time.Time, len(q.scopes))}
	for id, m := range q.scopes {
		b.Scopes[id] = maps.Clone(m)
	}
	q.mu.Unlock()

	if err := q.write(ctx, b); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, t := range b.Keys {
		if q.keys[id].Equal(t) {
			delete(q.keys, id)
		}
	}
	for id, scopes := range b.Scopes {
		m := q.scopes[id]
		for sc, t := range scopes {
			if m[sc].Equal(t) {
				delete(m, sc)
			}
		}
		if len(m) == 0 {
			delete(q.scopes, id)
		}
	}
	return nil
}
