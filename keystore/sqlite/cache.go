package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// The verification cache (Options.CacheVerify) serves Verify from memory in
// a long-lived process such as keyctl serve: a point lookup in SQLite costs
// some 30 µs, hashing the key some 100 ns.
//
// It stays exact:
//   - it keeps key records, not verdicts: expiry is judged at each Verify
//     with keystore.Judge and the store's clock;
//   - a change made through this Store (create, rotate, revoke, import,
//     update, disable, enable, delete)
//     drops what it affects before the call returns;
//   - every change by another process writes an audit event in the same
//     transaction, so a watcher reads the events after the last one seen,
//     every pollInterval, and drops what they affect. Reading them by
//     seq > last is exact on SQLite: a write transaction holds the file's
//     write lock from BEGIN IMMEDIATE to COMMIT, so events take their seq
//     in commit order and none with a lower seq commits later (on
//     PostgreSQL it could: see keystore/postgres's change feed);
//   - a hit is served only if the watcher's last successful look at the
//     events began less than maxStale ago; otherwise Verify reads SQLite.
//     A change committed by another process is therefore seen within
//     maxStale plus one lookup, however the watcher is scheduled.
//
// Uses (last_used_at) are kept in memory and written in one transaction
// every flushInterval and on Close: at most one write per key and second,
// as without the cache. Those writes add no audit event, so they do not
// empty the cache. Reads through this Store (Get, List, Verify) show the
// uses not yet written.
const (
	pollInterval  = 20 * time.Millisecond
	maxStale      = 60 * time.Millisecond
	flushInterval = time.Second

	// maxEvents is how many new events the watcher reads one by one; with
	// more (a large import elsewhere), it empties the cache instead.
	maxEvents = 1000

	// defaultCacheSize bounds the number of cached records, each some 500
	// bytes (100,000 take some 50 MB); past it, some are dropped at random.
	defaultCacheSize = 100_000
	// maxNegative bounds the secrets remembered as belonging to no key,
	// which any caller can make up: past it, they are all forgotten.
	maxNegative = 10_000
)

// monoStart anchors the monotonic clock of the cache's freshness checks.
var monoStart = time.Now()

// mono is a monotonic clock in nanoseconds, never 0 (0 means never).
func mono() int64 { return int64(time.Since(monoStart)) + 1 }

type verifyCache struct {
	size int // bound on len(entries)

	mu       sync.RWMutex
	gen      uint64 // moves at every drop; a fill begun under an older gen is discarded
	fresh    int64  // mono() when the last successful poll began; 0: never
	seq      int64  // the last audit event seen
	entries  map[[32]byte]*entry
	byID     map[string][32]byte // the positive entries, by key ID
	negative int                 // entries with no key

	usedMu  sync.Mutex
	pending map[string]int64 // key ID → last use (unix seconds) not yet written
	// key ID → scope → last use of the scope not yet written; written with
	// the key's last use
	pendingScopes map[string]map[string]int64

	events *sql.Stmt // the watcher's query, prepared once

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{} // closed when the watcher has stopped
	flushed  chan struct{} // closed when the writer of uses has stopped
}

// entry is what the cache knows of one secret hash.
type entry struct {
	key  *keystore.Key // nil: no key has this secret; never modified
	used atomic.Int64  // the latest use queued for writing, unix seconds
	// the latest use of each scope (by scopeSlot) queued or read
	scopes [scopeSlots]atomic.Int64
}

func newVerifyCache(size int) *verifyCache {
	if size <= 0 {
		size = defaultCacheSize
	}
	return &verifyCache{
		size:          size,
		entries:       map[[32]byte]*entry{},
		byID:          map[string][32]byte{},
		pending:       map[string]int64{},
		pendingScopes: map[string]map[string]int64{},
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
		flushed:       make(chan struct{}),
	}
}

// startCache reads the position of the audit log and starts the watcher.
func (s *Store) startCache(size int) error {
	c := newVerifyCache(size)
	t0 := mono()
	if err := s.db.QueryRow("SELECT coalesce(max(seq), 0) FROM audit_events").Scan(&c.seq); err != nil {
		return s.fail(context.Background(), "open", err)
	}
	var err error
	// A delivery also ends the key it succeeds, named in its details.
	c.events, err = s.db.Prepare(`SELECT seq, action, key_id,
		CASE WHEN action = 'deliver' THEN coalesce(json_extract(details, '$.rotated_from'), '') ELSE '' END
		FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`)
	if err != nil {
		return s.fail(context.Background(), "open", err)
	}
	c.fresh = t0
	s.cache = c
	go s.watch()
	go s.writeUses()
	return nil
}

// stopCache stops the watcher and writes the uses not yet written.
func (s *Store) stopCache() error {
	c := s.cache
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	<-c.flushed
	c.events.Close()
	return s.flushUses(context.Background())
}

func (s *Store) watch() {
	c := s.cache
	defer close(c.done)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-poll.C:
			s.poll()
		}
	}
}

// writeUses writes the queued uses every flushInterval, apart from the
// watcher: a write may wait for another process's long transaction (an
// import), and the watcher must not wait with it.
func (s *Store) writeUses() {
	c := s.cache
	defer close(c.flushed)
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-flush.C:
			// A failed write keeps the uses for the next try.
			s.flushUses(context.Background())
		}
	}
}

// poll reads the audit events after the last one seen and drops the
// entries they affect. On failure it drops everything and leaves the cache
// stale, so that Verify reads SQLite until a poll succeeds.
func (s *Store) poll() {
	c := s.cache
	t0 := mono()
	c.mu.RLock()
	since := c.seq
	c.mu.RUnlock()

	type event struct {
		seq    int64
		action string
		keyID  string
		other  string // a deliver event's old key
	}
	var events []event
	err := func() error {
		// A slow poll leaves the cache stale (hits wait for a fresh one);
		// only a failed one empties it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rows, err := c.events.QueryContext(ctx, since, maxEvents+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e event
			if err := rows.Scan(&e.seq, &e.action, &e.keyID, &e.other); err != nil {
				return err
			}
			events = append(events, e)
		}
		return rows.Err()
	}()

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.clear()
		c.fresh = 0
		return
	case len(events) > maxEvents:
		// Too many to go through: start over from the newest.
		var last int64
		if err := s.db.QueryRow("SELECT coalesce(max(seq), 0) FROM audit_events").Scan(&last); err != nil {
			c.clear()
			c.fresh = 0
			return
		}
		c.clear()
		c.seq = last
	default:
		for _, e := range events {
			c.apply(e.action, e.keyID)
			if e.other != "" {
				c.drop(e.other)
			}
			c.seq = e.seq
		}
	}
	c.fresh = t0
}

// apply drops what a change of action to key id affects. Call with mu held.
func (c *verifyCache) apply(action, id string) {
	switch action {
	case keystore.ActionCreate, keystore.ActionImport:
		// A new key may have a secret remembered as belonging to none.
		c.dropNegative()
	case keystore.ActionRevoke, keystore.ActionUpdate, keystore.ActionDisable, keystore.ActionEnable, keystore.ActionDelete,
		keystore.ActionDeliver: // and the old key it ends, which poll drops
		c.drop(id)
	case keystore.ActionRotate:
		c.drop(id)
		c.dropNegative()
	default:
		c.clear() // an action this build does not know
	}
}

// drop forgets key id. Call with mu held.
func (c *verifyCache) drop(id string) {
	c.gen++
	if h, ok := c.byID[id]; ok {
		delete(c.byID, id)
		delete(c.entries, h)
	}
}

// dropNegative forgets the secrets remembered as belonging to no key,
// because keys were added. Call with mu held.
func (c *verifyCache) dropNegative() {
	c.gen++
	c.forgetNegative()
}

// forgetNegative makes room: it drops the negative entries without moving
// gen, since no key changed. Call with mu held.
func (c *verifyCache) forgetNegative() {
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
func (c *verifyCache) clear() {
	c.gen++
	c.entries = map[[32]byte]*entry{}
	c.byID = map[string][32]byte{}
	c.negative = 0
}

// changed drops what a change made through this Store affects, after it
// committed: newKeys when it added keys, and the keys it modified.
func (s *Store) changed(newKeys bool, ids ...string) {
	c := s.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if newKeys {
		c.dropNegative()
	}
	for _, id := range ids {
		c.drop(id)
	}
}

// lookup returns the entry for hash if the cache may serve it, and the
// generation to fill under otherwise.
func (c *verifyCache) lookup(hash [32]byte) (e *entry, gen uint64, hit bool) {
	c.mu.RLock()
	e, hit = c.entries[hash]
	gen, fresh := c.gen, c.fresh
	c.mu.RUnlock()
	if fresh == 0 || mono()-fresh >= int64(maxStale) {
		return nil, gen, false
	}
	return e, gen, hit
}

// fill remembers what SQLite said of hash (k nil: no key), unless the
// cache dropped anything since gen was read: the record might predate it.
func (c *verifyCache) fill(hash [32]byte, k *keystore.Key, gen uint64) *entry {
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
		return old // filled meanwhile; keeps its queued uses
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
func (c *verifyCache) evict() {
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

// verifyCached is Verify through the cache, for a secret of valid format.
func (s *Store) verifyCached(ctx context.Context, secret string, scopes []string) (*keystore.Verification, error) {
	c := s.cache
	now := s.clock()
	hash := keystore.HashToken(secret)
	e, gen, hit := c.lookup(hash)
	var (
		k    *keystore.Key
		used *time.Time // where k's last use will point
	)
	if hit {
		if e.key != nil {
			// A shallow copy: Scopes and Metadata are shared, read-only.
			rec := &keyAndUse{key: *e.key, used: now}
			k, used = &rec.key, &rec.used
			k.Status = k.StatusAt(now)
		}
	} else {
		var err error
		// Copies, so that hash and now stay on the stack on a hit.
		key, t := hash, now
		k, err = scanKey(s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM keys WHERE secret_hash = ?", key[:]), t)
		if errors.Is(err, sql.ErrNoRows) {
			k, err = nil, nil
		}
		if err != nil {
			return nil, s.fail(ctx, "verify key", err)
		}
		s.withUses(k)
		var cached *keystore.Key
		if k != nil {
			rec := *k
			cached = &rec
			used = &t
		}
		e = c.fill(hash, cached, gen)
	}
	v := keystore.Judge(k, now, scopes)
	if v.Valid || v.Code == keystore.CodeInsufficientScope {
		s.used(e, k.ID, now.Unix())
		if v.Valid && len(scopes) > 0 {
			s.usedScopes(e, k.ID, scopes, now.Unix())
		}
		k.LastUsedAt = used
	} else if k != nil && hit {
		// Uses made through the cache since the record was read.
		if u := e.used.Load(); u > 0 && (k.LastUsedAt == nil || k.LastUsedAt.Unix() < u) {
			*used = time.Unix(u, 0).UTC()
			k.LastUsedAt = used
		}
	}
	return v, nil
}

// keyAndUse puts a cached record's copy and its time of use in one
// allocation.
type keyAndUse struct {
	key  keystore.Key
	used time.Time
}

// used queues a use of key id at unix second t, unless one at t or later
// is queued already.
func (s *Store) used(e *entry, id string, t int64) {
	for {
		prev := e.used.Load()
		if prev >= t {
			return
		}
		if e.used.CompareAndSwap(prev, t) {
			break
		}
	}
	c := s.cache
	c.usedMu.Lock()
	if t > c.pending[id] {
		c.pending[id] = t
	}
	c.usedMu.Unlock()
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

// usedScopes queues a use of scopes by key id at unix second t, unless
// the entry has one at t or later for each already: at most one queued
// change per key, scope and second.
func (s *Store) usedScopes(e *entry, id string, scopes []string, t int64) {
	changed := false
	for _, sc := range scopes {
		i := scopeSlot(sc)
		if i < 0 {
			continue
		}
		for {
			prev := e.scopes[i].Load()
			if prev >= t {
				break
			}
			if e.scopes[i].CompareAndSwap(prev, t) {
				changed = true
				break
			}
		}
	}
	if !changed {
		return
	}
	c := s.cache
	c.usedMu.Lock()
	m := c.pendingScopes[id]
	if m == nil {
		m = make(map[string]int64, len(scopes))
		c.pendingScopes[id] = m
	}
	for _, sc := range scopes {
		if t > m[sc] {
			m[sc] = t
		}
	}
	c.usedMu.Unlock()
}

// withUses shows on k the uses not yet written, if any.
func (s *Store) withUses(k *keystore.Key) {
	if s.cache == nil || k == nil {
		return
	}
	c := s.cache
	c.usedMu.Lock()
	t, ok := c.pending[k.ID]
	var scopes map[string]int64
	if m := c.pendingScopes[k.ID]; len(m) > 0 {
		scopes = maps.Clone(m)
	}
	c.usedMu.Unlock()
	if ok && (k.LastUsedAt == nil || k.LastUsedAt.Unix() < t) {
		u := time.Unix(t, 0).UTC()
		k.LastUsedAt = &u
	}
	if len(scopes) > 0 {
		uses := k.ScopesLastUsed // may be shared with the cache: copied on change
		for sc, t := range scopes {
			uses, _ = keystore.WithScopeUses(uses, []string{sc}, time.Unix(t, 0).UTC())
		}
		k.SetScopeUses(uses)
	}
}

// flushUses writes the queued uses in one transaction. A use stays queued
// until its write has committed, so that reads keep showing it.
func (s *Store) flushUses(ctx context.Context) error {
	c := s.cache
	c.usedMu.Lock()
	if len(c.pending) == 0 && len(c.pendingScopes) == 0 {
		c.usedMu.Unlock()
		return nil
	}
	batch := make(map[string]int64, len(c.pending))
	for id, t := range c.pending {
		batch[id] = t
	}
	scopeBatch := make(map[string]map[string]int64, len(c.pendingScopes))
	for id, m := range c.pendingScopes {
		scopeBatch[id] = maps.Clone(m)
	}
	c.usedMu.Unlock()

	err := s.inTx(ctx, "record key use", func(tx *sql.Tx) error {
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
	c.usedMu.Lock()
	for id, t := range batch {
		if c.pending[id] == t {
			delete(c.pending, id)
		}
	}
	for id, scopes := range scopeBatch {
		m := c.pendingScopes[id]
		for sc, t := range scopes {
			if m[sc] == t {
				delete(m, sc)
			}
		}
		if len(m) == 0 {
			delete(c.pendingScopes, id)
		}
	}
	c.usedMu.Unlock()
	return nil
}

// The HTTP API verifies two keys per request to POST /v1/api-keys/verify:
// the caller's and the one in the body. VerifyBearer and VerifyInto are
// Verify for those two, with what a hit in the cache needs and no more:
// no copy of the record for the caller, no allocation for the other, and
// no check of the secret's format, which Verify made when it cached the
// record: a secret with the same SHA-256 is the same secret. Anything but
// a hit goes through Verify.

// hit returns the cache's entry for secret if the cache may answer for it,
// and the store's time of the verification. As lookup, it reads the
// monotonic clock after looking, but from the same reading as the store's
// time when that has one (time.Now's do): one reading of the clock, not
// two, on the hot path.
func (s *Store) hit(secret string) (*entry, time.Time, bool) {
	c := s.cache
	if c == nil || len(secret) != keystore.TokenLen {
		return nil, time.Time{}, false
	}
	hash := keystore.HashToken(secret)
	c.mu.RLock()
	e, ok := c.entries[hash]
	fresh := c.fresh
	c.mu.RUnlock()
	t := s.nowFn()
	var m int64
	if t != t.Round(0) { // t has a monotonic reading
		m = int64(t.Sub(monoStart)) + 1
	} else {
		m = mono()
	}
	if !ok || fresh == 0 || m-fresh >= int64(maxStale) {
		return nil, time.Time{}, false
	}
	return e, t.UTC().Truncate(time.Second), true // as s.clock()
}

// VerifyBearer is Verify(ctx, secret, nil) for the bearer key of a request
// to the HTTP API, which needs to know only whether the key is valid and,
// if it is, its ID and scopes. It records the use as Verify does. On a hit
// it copies nothing: scopes is the cached record's own slice, to be read
// only. id is "" when the key is not valid.
func (s *Store) VerifyBearer(ctx context.Context, secret string) (id string, scopes []string, err error) {
	e, now, hit := s.hit(secret)
	if !hit {
		v, err := s.Verify(ctx, secret, nil)
		if err != nil || !v.Valid || v.Key == nil {
			return "", nil, err
		}
		return v.Key.ID, v.Key.Scopes, nil
	}
	k := e.key
	var v keystore.Verification
	if keystore.JudgeInto(&v, k, now, nil); !v.Valid {
		return "", nil, nil
	}
	s.used(e, k.ID, now.Unix())
	return k.ID, k.Scopes, nil
}

// VerifyInto is Verify, writing its result into v, the key record it
// points to (if any) into k and the key's last use (k.LastUsedAt) into
// used: on a hit, nothing is allocated.
func (s *Store) VerifyInto(ctx context.Context, secret string, scopes []string, v *keystore.Verification, k *keystore.Key, used *time.Time) error {
	e, now, hit := s.hit(secret)
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			hit = false // Verify says which
		}
	}
	if !hit {
		res, err := s.Verify(ctx, secret, scopes)
		if err != nil {
			return err
		}
		*v = *res
		if res.Key != nil {
			*k = *res.Key
			v.Key = k
			if k.LastUsedAt != nil {
				*used = *k.LastUsedAt
				k.LastUsedAt = used
			}
		}
		return nil
	}
	if e.key == nil {
		keystore.JudgeInto(v, nil, now, scopes)
		return nil
	}
	// As verifyCached on a hit.
	*k = *e.key // Scopes and Metadata are shared, read-only
	k.Status = k.StatusAt(now)
	keystore.JudgeInto(v, k, now, scopes)
	if v.Valid || v.Code == keystore.CodeInsufficientScope {
		s.used(e, k.ID, now.Unix())
		if v.Valid && len(scopes) > 0 {
			s.usedScopes(e, k.ID, scopes, now.Unix())
		}
		*used = now
		k.LastUsedAt = used
	} else if u := e.used.Load(); u > 0 && (k.LastUsedAt == nil || k.LastUsedAt.Unix() < u) {
		*used = time.Unix(u, 0).UTC()
		k.LastUsedAt = used
	}
	return nil
}
