// Package cache serves Verify from memory in front of any keystore.Store
// with a change feed, for a long-lived process (keyctl serve wraps the
// store it opens), as restic's cache wraps a backend.
package cache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// The store must be a keystore.ChangeFeed and a keystore.UseRecorder. A
// lookup in the store costs far more than hashing a key (BENCHMARKS.md has
// the figures); the cache answers from memory and stays exact:
//   - it keeps key records, not verdicts: expiry is judged at each Verify
//     with keystore.Judge and the store's clock;
//   - every change, by this process or another, writes an audit event in
//     its own transaction, which the store's change feed reports in commit
//     order. A watcher reads the feed every pollInterval, and at once when
//     the store notifies a change (keystore.ChangeNotifier), and drops
//     what the changes affect; a change made through this Store reads the
//     feed before it returns, so it is seen at once;
//   - a hit is served only if the last successful read of the feed began
//     less than maxStale ago; otherwise Verify reads the feed itself (one
//     read for all the hits waiting) and serves the hit if it still
//     stands, or reads the store. A change committed anywhere is therefore
//     refused within maxStale plus one read, however the watcher is
//     scheduled, and while the store cannot be read the cache answers
//     nothing.
//
// Uses (last_used_at, and the uses of scopes) are recorded through the
// store's RecordUse at most once per key, scope and second; the store
// writes them in batches and shows them on its reads meanwhile. Those
// writes add no audit event, so they do not empty the cache.

const (
	pollInterval = 20 * time.Millisecond
	maxStale     = 60 * time.Millisecond

	// maxChanges is how many changes the watcher reads one by one; with
	// more (a large import elsewhere), it empties the cache instead.
	maxChanges = 1000

	// DefaultSize bounds the number of cached records, each some 500
	// bytes (100,000 take some 50 MB); past it, some are dropped at random.
	DefaultSize = 100_000
	// maxNegative bounds the secrets remembered as belonging to no key,
	// which any caller can make up: past it, they are all forgotten.
	maxNegative = 10_000
)

// Options are the cache's clock and bound.
type Options struct {
	// Now is the store's clock (nil: time.Now); the cache judges expiry
	// with it, in whole seconds as the stores do.
	Now func() time.Time
	// Size bounds the number of key records cached; 0 means DefaultSize.
	Size int
}

// Store is a keystore.Store whose Verify is served from memory. Every
// other method is the wrapped store's; the changes also read the feed
// before they return. It is safe for concurrent use.
type Store struct {
	keystore.Store // the wrapped store

	feed  keystore.ChangeFeed
	uses  keystore.UseRecorder
	nowFn func() time.Time
	size  int // bound on len(entries)

	pollMu sync.Mutex // one read of the feed at a time

	mu       sync.RWMutex
	gen      uint64 // moves at every drop; a fill begun under an older gen is discarded
	fresh    int64  // mono() when the last successful read of the feed began; 0: never
	pos      int64  // the feed's position read last
	entries  map[[32]byte]*entry
	byID     map[string][32]byte // the positive entries, by key ID
	negative int                 // entries with no key

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{} // closed when the watcher has stopped
}

var (
	_ keystore.Store   = (*Store)(nil)
	_ keystore.Readier = (*Store)(nil)
)

// entry is what the cache knows of one secret hash.
type entry struct {
	key  *keystore.Key // nil: no key has this secret; never modified
	used atomic.Int64  // the latest use recorded, unix seconds
	// the latest use of each scope (by scopeSlot) recorded or read
	scopes [scopeSlots]atomic.Int64
}

// monoStart anchors the monotonic clock of the freshness checks.
var monoStart = time.Now()

// mono is a monotonic clock in nanoseconds, never 0 (0 means never).
func mono() int64 { return int64(time.Since(monoStart)) + 1 }

// New wraps s, which must be a keystore.ChangeFeed and a
// keystore.UseRecorder, and starts the watcher. Close closes s.
func New(s keystore.Store, opts Options) (*Store, error) {
	feed, ok := s.(keystore.ChangeFeed)
	if !ok {
		return nil, fmt.Errorf("cache: store %T has no change feed", s)
	}
	uses, ok := s.(keystore.UseRecorder)
	if !ok {
		return nil, fmt.Errorf("cache: store %T records no uses", s)
	}
	c := &Store{Store: s, feed: feed, uses: uses, nowFn: opts.Now, size: opts.Size,
		entries: map[[32]byte]*entry{}, byID: map[string][32]byte{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if c.nowFn == nil {
		c.nowFn = time.Now
	}
	if c.size <= 0 {
		c.size = DefaultSize
	}
	t0 := mono()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, pos, _, err := feed.Changes(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	c.pos, c.fresh = pos, t0
	go c.watch()
	return c, nil
}

// Unwrap returns the wrapped store, for its optional interfaces.
func (c *Store) Unwrap() keystore.Store { return c.Store }

// Ready is the wrapped store's Ready, if it has one.
func (c *Store) Ready(ctx context.Context) error {
	if r, ok := c.Store.(keystore.Readier); ok {
		return r.Ready(ctx)
	}
	return nil
}

// Close stops the watcher and closes the wrapped store, which writes the
// uses not yet written.
func (c *Store) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	return c.Store.Close()
}

// clock returns the current time as the stores keep it: UTC, whole seconds.
func (c *Store) clock() time.Time { return c.nowFn().UTC().Truncate(time.Second) }

func (c *Store) watch() {
	defer close(c.done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	n, _ := c.feed.(keystore.ChangeNotifier)
	var notify <-chan struct{}
	if n != nil {
		notify = n.ChangeNotify()
	}
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-notify:
			notify = n.ChangeNotify() // before reading, so that none is missed
		}
		c.poll(context.Background())
	}
}

// poll reads the changes after the last position seen and drops the
// entries they affect. On failure it drops everything and leaves the
// cache stale, so that Verify reads the store until a poll succeeds.
func (c *Store) poll(ctx context.Context) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.pollLocked(ctx)
}

// refresh reads the feed for a hit found stale, unless a read that ended
// after the staleness was seen (fresh moved from seen) made it fresh or
// failed meanwhile: the hits that find the cache stale at once wait for
// one read of the feed, instead of each reading the store. Under load a
// watcher can be late by more than maxStale; then every hit reading the
// store would load it further (two replicas on 2 cores read PostgreSQL
// 4,493 times in a round of 4 s, BENCHMARKS.md, goal 8).
func (c *Store) refresh(ctx context.Context, seen int64) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.mu.RLock()
	fresh := c.fresh
	c.mu.RUnlock()
	if fresh == seen {
		c.pollLocked(ctx)
	}
}

// pollLocked is poll with pollMu held.
func (c *Store) pollLocked(ctx context.Context) {
	t0 := mono()
	c.mu.RLock()
	since := c.pos
	c.mu.RUnlock()
	// A slow poll leaves the cache stale (hits wait for a fresh one);
	// only a failed one empties it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	changes, pos, complete, err := c.feed.Changes(ctx, since, maxChanges)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.clear()
		c.fresh = 0
		return
	case !complete:
		c.clear()
	default:
		for _, ch := range changes {
			c.apply(ch)
		}
	}
	c.pos, c.fresh = pos, t0
}

// apply drops what change ch affects. Call with mu held.
func (c *Store) apply(ch keystore.Change) {
	switch ch.Action {
	case keystore.ActionCreate, keystore.ActionImport:
		// A new key may have a secret remembered as belonging to none.
		c.dropNegative()
	case keystore.ActionRevoke, keystore.ActionUpdate, keystore.ActionDisable, keystore.ActionEnable, keystore.ActionDelete,
		keystore.ActionDeliver:
		c.drop(ch.KeyID)
	case keystore.ActionRotate:
		c.drop(ch.KeyID)
		c.dropNegative()
	default:
		c.clear() // an action this build does not know
	}
	if ch.Other != "" {
		c.drop(ch.Other)
	}
}

// drop forgets key id. Call with mu held.
func (c *Store) drop(id string) {
	c.gen++
	if h, ok := c.byID[id]; ok {
		delete(c.byID, id)
		delete(c.entries, h)
	}
}

// dropNegative forgets the secrets remembered as belonging to no key,
// because keys were added. Call with mu held.
func (c *Store) dropNegative() {
	c.gen++
	c.forgetNegative()
}

// forgetNegative makes room: it drops the negative entries without moving
// gen, since no key changed. Call with mu held.
func (c *Store) forgetNegative() {
	if c.negative == 0 {
		return
	}
	for h, e := range c.entries {
		if e.key == nil {
			delete(c.entries, h)
		}
	}
	c.negative = 0
}

// clear forgets everything. Call with mu held.
func (c *Store) clear() {
	c.gen++
	c.entries = map[[32]byte]*entry{}
	c.byID = map[string][32]byte{}
	c.negative = 0
}

// lookup returns the entry for hash if the cache may serve it, and the
// generation to fill under otherwise. A hit in a cache gone stale is
// served after a read of the feed (refresh), if that read succeeds and
// still holds it.
func (c *Store) lookup(ctx context.Context, hash [32]byte) (e *entry, gen uint64, hit bool) {
	for try := 0; ; try++ {
		c.mu.RLock()
		e, hit = c.entries[hash]
		gen, fresh := c.gen, c.fresh
		c.mu.RUnlock()
		if fresh != 0 && mono()-fresh < int64(maxStale) {
			return e, gen, hit
		}
		if !hit || try > 0 || fresh == 0 {
			// A cache emptied by a failed read waits for the watcher's
			// next success, and reads the store meanwhile.
			return nil, gen, false
		}
		c.refresh(ctx, fresh)
	}
}

// fill remembers what the store said of hash (k nil: no key), unless the
// cache dropped anything since gen was read: the record might predate it.
func (c *Store) fill(hash [32]byte, k *keystore.Key, gen uint64) *entry {
	e := &entry{key: k}
	if k != nil && k.LastUsedAt != nil {
		e.used.Store(k.LastUsedAt.Unix())
	}
	if k != nil {
		for sc, t := range k.ScopesLastUsed {
			if i := scopeSlot(sc); i >= 0 {
				e.scopes[i].Store(t.Unix())
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.fresh == 0 {
		return e
	}
	if old, ok := c.entries[hash]; ok {
		return old // filled meanwhile; keeps its recorded uses
	}
	if k == nil {
		if c.negative >= maxNegative {
			c.forgetNegative()
		}
		c.negative++
	} else {
		if len(c.entries) >= c.size {
			c.evict()
		}
		c.byID[k.ID] = hash
	}
	c.entries[hash] = e
	return e
}

// evict makes room: it drops about a sixteenth of the entries, at random
// (map order), without moving gen. Call with mu held.
func (c *Store) evict() {
	n := len(c.entries)/16 + 1
	for h, e := range c.entries {
		if n == 0 {
			break
		}
		if e.key == nil {
			c.negative--
		} else {
			delete(c.byID, e.key.ID)
		}
		delete(c.entries, h)
		n--
	}
}

// Verify checks secret as the wrapped store's Verify does, from memory
// when it can. The key record of the result shares its Scopes and
// Metadata with the cache: callers must not modify them.
func (c *Store) Verify(ctx context.Context, secret string, scopes []string) (*keystore.Verification, error) {
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			return nil, keystore.UnknownScope(sc)
		}
	}
	if len(secret) != keystore.TokenLen {
		return keystore.InvalidFormat(), nil
	}
	now := c.clock()
	hash := keystore.HashToken(secret)
	e, gen, hit := c.lookup(ctx, hash)
	// Only a secret of the right format gets an entry (below): a hit needs
	// no parsing, the hash names the same secret.
	if !hit {
		if _, err := keystore.ParseToken(secret); err != nil {
			return keystore.InvalidFormat(), nil
		}
	}
	// The result, the caller's copy of the record and its last use in one
	// allocation.
	r := &answer{used: now}
	var k *keystore.Key
	if hit {
		if e.key != nil {
			// A shallow copy: Scopes and Metadata are shared, read-only.
			r.key = *e.key
			k = &r.key
			k.Status = k.StatusAt(now)
		}
	} else {
		var err error
		k, err = c.Store.Lookup(ctx, hash)
		if keystore.ErrorCode(err) == keystore.ENOTFOUND {
			k, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		var cached *keystore.Key
		if k != nil {
			rec := *k
			cached = &rec
		}
		e = c.fill(hash, cached, gen)
	}
	v := &r.v
	keystore.JudgeInto(v, k, now, scopes)
	if v.Valid || v.Code == keystore.CodeInsufficientScope {
		var asked []string
		if v.Valid {
			asked = scopes
		}
		c.used(e, k.ID, now, asked)
		k.LastUsedAt = &r.used
	} else if k != nil && hit {
		// Uses recorded through the cache since the record was read.
		if u := e.used.Load(); u > 0 && (k.LastUsedAt == nil || k.LastUsedAt.Unix() < u) {
			r.used = time.Unix(u, 0).UTC()
			k.LastUsedAt = &r.used
		}
	}
	return v, nil
}

// answer is what Verify returns: the result, the key record it points to
// and the key's last use.
type answer struct {
	v    keystore.Verification
	key  keystore.Key
	used time.Time
}

// used records a use of key id at t, asking for scopes, through the
// store, unless the entry has one at t or later for the key and each
// scope already: at most one record per key, scope and second.
func (c *Store) used(e *entry, id string, t time.Time, scopes []string) {
	sec := t.Unix()
	changed := later(&e.used, sec)
	var fresh []string
	for _, sc := range scopes {
		if i := scopeSlot(sc); i >= 0 && later(&e.scopes[i], sec) {
			fresh = append(fresh, sc)
		}
	}
	if changed || len(fresh) > 0 {
		c.uses.RecordUse(id, t, fresh)
	}
}

// later moves a to t if t is later, and reports whether it did.
func later(a *atomic.Int64, t int64) bool {
	for {
		prev := a.Load()
		if prev >= t {
			return false
		}
		if a.CompareAndSwap(prev, t) {
			return true
		}
	}
}

// scopeSlots bounds the scopes an entry tracks: keystore.AllScopes has 11.
const scopeSlots = 16

// scopeSlot is the index of scope sc in an entry's scopes, or -1.
func scopeSlot(sc string) int {
	if i := slices.Index(keystore.AllScopes, sc); i < scopeSlots {
		return i
	}
	return -1
}

// The changes: the wrapped store's, then a read of the feed, so that what
// they changed is dropped before they return. An error may hide a change
// made (a batch imported in part), so they read it then too.

func (c *Store) Create(ctx context.Context, p keystore.CreateParams) (*keystore.Key, error) {
	v, err := c.Store.Create(ctx, p)
	c.poll(ctx)
	return v, err
}

func (c *Store) Rotate(ctx context.Context, id string, opts keystore.RotateOptions) (*keystore.Key, error) {
	v, err := c.Store.Rotate(ctx, id, opts)
	c.poll(ctx)
	return v, err
}

func (c *Store) Revoke(ctx context.Context, id string) (*keystore.Key, error) {
	v, err := c.Store.Revoke(ctx, id)
	c.poll(ctx)
	return v, err
}

func (c *Store) Update(ctx context.Context, id string, p keystore.UpdateParams) (*keystore.Key, error) {
	v, err := c.Store.Update(ctx, id, p)
	c.poll(ctx)
	return v, err
}

func (c *Store) Disable(ctx context.Context, id string) (*keystore.Key, error) {
	v, err := c.Store.Disable(ctx, id)
	c.poll(ctx)
	return v, err
}

func (c *Store) Enable(ctx context.Context, id string) (*keystore.Key, error) {
	v, err := c.Store.Enable(ctx, id)
	c.poll(ctx)
	return v, err
}

func (c *Store) Delete(ctx context.Context, id string) (*keystore.Key, error) {
	v, err := c.Store.Delete(ctx, id)
	c.poll(ctx)
	return v, err
}

func (c *Store) ConfirmDelivery(ctx context.Context, id string) (*keystore.Key, error) {
	v, err := c.Store.ConfirmDelivery(ctx, id)
	c.poll(ctx)
	return v, err
}

func (c *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	v, err := c.Store.Import(ctx, keys)
	c.poll(ctx)
	return v, err
}
