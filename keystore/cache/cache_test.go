package cache

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// A backend is a kind of store the cache wraps. place makes an empty
// store for t and returns its spec: what openSpec opens, in this process
// or a child.
type backend struct {
	name  string
	place func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "sqlite|" + filepath.Join(t.TempDir(), "keys.db") }},
	{"postgres", func(t *testing.T) string { return "postgres|" + pgtest.DSN(t) }},
}

// openSpec opens the store of spec, on clock (nil: the real time).
func openSpec(spec string, clock *storetest.Clock) (keystore.Store, error) {
	var now func() time.Time
	if clock != nil {
		now = clock.Now
	}
	kind, where, _ := strings.Cut(spec, "|")
	if kind == "postgres" {
		return postgres.Open(where, postgres.Options{Now: now})
	}
	return sqlite.Open(where, sqlite.Options{Now: now})
}

// each runs fn over every backend.
func each(t *testing.T, fn func(t *testing.T, spec string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.place(t)) })
	}
}

func openPlain(t *testing.T, spec string, clock *storetest.Clock) keystore.Store {
	t.Helper()
	s, err := openSpec(spec, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openCached opens the store of spec, wrapped, on clock (nil: the real
// time), with at most size records (0: the default).
func openCached(t *testing.T, spec string, clock *storetest.Clock, size int) *Store {
	t.Helper()
	s, err := openSpec(spec, clock)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Size: size}
	if clock != nil {
		opts.Now = clock.Now
	}
	c, err := New(s, opts)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The cache over every store passes the stores' contract.
func TestContract(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
			// Each test of the contract gets a store of its own.
			spec := spec
			if strings.HasPrefix(spec, "postgres|") {
				spec = "postgres|" + pgtest.DSN(t)
			} else {
				spec = "sqlite|" + filepath.Join(t.TempDir(), "keys.db")
			}
			s, err := openSpec(spec, clock)
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(s, Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
}

func mustCreate(t *testing.T, s keystore.Store, p keystore.CreateParams) *keystore.Key {
	t.Helper()
	if p.Scopes == nil {
		p.Scopes = []string{"bots:read"}
	}
	k, err := s.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifyCode(t *testing.T, s keystore.Store, secret string, scopes ...string) *keystore.Verification {
	t.Helper()
	v, err := s.Verify(context.Background(), secret, scopes)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cached reports whether the cache holds a record for secret.
func cached(c *Store, secret string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[keystore.HashToken(secret)]
	return ok && e.key != nil
}

// waitFresh waits until the watcher has read the feed since now, so that
// the next Verify can be served from memory.
func waitFresh(t *testing.T, c *Store) {
	t.Helper()
	since := mono()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.RLock()
		fresh := c.fresh
		c.mu.RUnlock()
		if fresh > since {
			return
		}
	}
	t.Fatal("the cache's watcher did not read the feed within 2s")
}

// importSecret makes a key with secret through s.
func importSecret(t *testing.T, s keystore.Store, secret string) {
	t.Helper()
	ik := keystore.ImportKey{Params: keystore.CreateParams{Name: "imported", Scopes: []string{"bots:read"}, Environment: keystore.EnvLive},
		Hash: keystore.HashToken(secret), Hint: keystore.Hint(secret), CreatedAt: time.Now().UTC().Add(-time.Minute).Truncate(time.Second)}
	if res, err := s.Import(context.Background(), []keystore.ImportKey{ik}); err != nil || res.Imported != 1 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
}

func TestServesFromMemory(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		k := mustCreate(t, s, keystore.CreateParams{Name: "hot", Metadata: map[string]string{"team": "a"}})
		waitFresh(t, s)
		for range 3 {
			v := verifyCode(t, s, k.Secret, "bots:read")
			if !v.Valid || v.Key.ID != k.ID || v.Key.Metadata["team"] != "a" || v.Key.Status != keystore.StatusActive || v.Key.LastUsedAt == nil {
				t.Fatalf("Verify = %+v, key %+v", v, v.Key)
			}
		}
		if !cached(s, k.Secret) {
			t.Fatal("a verified key is not in the cache")
		}
		// The cache's own record is not the caller's to change.
		v := verifyCode(t, s, k.Secret)
		v.Key.Name = "changed"
		if v := verifyCode(t, s, k.Secret); v.Key.Name != "hot" {
			t.Errorf("a caller's change reached the cache: name %q", v.Key.Name)
		}
	})
}

// Changes made through the cached store are seen by the next Verify.
func TestChangesThroughStore(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		s := openCached(t, spec, nil, 0)
		a := mustCreate(t, s, keystore.CreateParams{Name: "a"})
		b := mustCreate(t, s, keystore.CreateParams{Name: "b"})
		d := mustCreate(t, s, keystore.CreateParams{Name: "d"})
		waitFresh(t, s)
		for _, k := range []*keystore.Key{a, b, d} {
			verifyCode(t, s, k.Secret)
		}

		if _, err := s.Revoke(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, a.Secret); v.Code != keystore.CodeRevoked {
			t.Fatalf("after Revoke: %s, want revoked at once", v.Code)
		}

		// A secret remembered as belonging to no key, then made.
		secret, _ := keystore.NewToken(keystore.EnvLive, nil)
		if v := verifyCode(t, s, secret); v.Code != keystore.CodeNotFound {
			t.Fatalf("a secret not yet issued: %s", v.Code)
		}
		importSecret(t, s, secret)
		if v := verifyCode(t, s, secret); v.Code != keystore.CodeValid {
			t.Fatalf("a key just imported: %s, want valid", v.Code)
		}

		nb, err := s.Rotate(ctx, b.ID, keystore.RotateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, b.Secret); v.Code != keystore.CodeRevoked {
			t.Fatalf("the old key after Rotate: %s, want revoked at once", v.Code)
		}
		if v := verifyCode(t, s, nb.Secret); v.Code != keystore.CodeValid {
			t.Fatalf("the new key after Rotate: %s", v.Code)
		}

		if _, err := s.Update(ctx, d.ID, keystore.UpdateParams{Scopes: []string{"bots:write"}}); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, d.Secret, "bots:read"); v.Code != keystore.CodeInsufficientScope {
			t.Fatalf("after Update: %s, want insufficient_scope at once", v.Code)
		}
		if _, err := s.Disable(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, d.Secret); v.Code != keystore.CodeDisabled {
			t.Fatalf("after Disable: %s", v.Code)
		}
		if _, err := s.Enable(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, d.Secret); v.Code != keystore.CodeValid {
			t.Fatalf("after Enable: %s", v.Code)
		}
		if _, err := s.Revoke(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		verifyCode(t, s, d.Secret)
		if _, err := s.Delete(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, d.Secret); v.Code != keystore.CodeNotFound {
			t.Fatalf("after Delete: %s", v.Code)
		}

		// Rotated awaiting delivery: the old key works until the delivery
		// is confirmed, which ends it.
		e := mustCreate(t, s, keystore.CreateParams{Name: "e"})
		verifyCode(t, s, e.Secret)
		ne, err := s.Rotate(ctx, e.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, e.Secret); v.Code != keystore.CodeValid {
			t.Fatalf("awaiting delivery: %s", v.Code)
		}
		if _, err := s.ConfirmDelivery(ctx, ne.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, e.Secret); v.Code != keystore.CodeRevoked {
			t.Fatalf("after ConfirmDelivery: %s, want revoked at once", v.Code)
		}
	})
}

// Expiry is judged at each Verify, on the store's clock.
func TestExpiryExact(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		clock := &storetest.Clock{}
		s := openCached(t, spec, clock, 0)
		expires := clock.Now().Add(time.Hour)
		k := mustCreate(t, s, keystore.CreateParams{Name: "temp", ExpiresAt: &expires})
		waitFresh(t, s)
		verifyCode(t, s, k.Secret)
		clock.Advance(time.Hour - time.Second)
		waitFresh(t, s)
		if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeValid || !cached(s, k.Secret) {
			t.Fatalf("a second before expiry: %s (cached %v)", v.Code, cached(s, k.Secret))
		}
		clock.Advance(time.Second)
		waitFresh(t, s)
		if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeExpired || v.Key.Status != keystore.StatusExpired {
			t.Fatalf("at expiry: %s, status %s; want expired", v.Code, v.Key.Status)
		}
		if !cached(s, k.Secret) {
			t.Error("expiry was not judged from the cached record")
		}
	})
}

// A change by another store on the same data (to the cache, the same as
// another process or replica) is seen within maxStale plus a lookup.
func TestChangesByAnotherWriter(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		s := openCached(t, spec, nil, 0)
		other := openPlain(t, spec, nil)
		k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
		waitFresh(t, s)
		verifyCode(t, s, k.Secret)

		if _, err := other.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		waitCode(t, s, k.Secret, keystore.CodeRevoked, 100*time.Millisecond)

		k2 := mustCreate(t, s, keystore.CreateParams{Name: "k2"})
		verifyCode(t, s, k2.Secret)
		if _, err := other.Disable(ctx, k2.ID); err != nil {
			t.Fatal(err)
		}
		waitCode(t, s, k2.Secret, keystore.CodeDisabled, 100*time.Millisecond)
		if _, err := other.Enable(ctx, k2.ID); err != nil {
			t.Fatal(err)
		}
		waitCode(t, s, k2.Secret, keystore.CodeValid, 100*time.Millisecond)
		if _, err := other.Update(ctx, k2.ID, keystore.UpdateParams{Scopes: []string{"bots:write"}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for verifyCode(t, s, k2.Secret, "bots:read").Code != keystore.CodeInsufficientScope {
			if time.Since(start) > 5*time.Second {
				t.Fatal("an update elsewhere is not seen after 5s")
			}
			time.Sleep(time.Millisecond)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("an update elsewhere seen after %v, want within 100ms", took)
		}

		// Made elsewhere, with a secret that was remembered as unknown.
		secret, _ := keystore.NewToken(keystore.EnvLive, nil)
		if v := verifyCode(t, s, secret); v.Code != keystore.CodeNotFound {
			t.Fatal(v.Code)
		}
		importSecret(t, other, secret)
		waitCode(t, s, secret, keystore.CodeValid, 100*time.Millisecond)

		// Rotated elsewhere, awaiting delivery: the old key works until the
		// delivery is confirmed elsewhere, which ends it.
		k3 := mustCreate(t, s, keystore.CreateParams{Name: "k3"})
		verifyCode(t, s, k3.Secret)
		nk, err := other.Rotate(ctx, k3.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		waitCode(t, s, nk.Secret, keystore.CodeValid, 100*time.Millisecond)
		verifyCode(t, s, k3.Secret)
		if _, err := other.ConfirmDelivery(ctx, nk.ID); err != nil {
			t.Fatal(err)
		}
		waitCode(t, s, k3.Secret, keystore.CodeRevoked, 100*time.Millisecond)
	})
}

// waitCode polls Verify until it answers code, and fails if that takes
// longer than within.
func waitCode(t *testing.T, s keystore.Store, secret, code string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		v := verifyCode(t, s, secret)
		took := time.Since(start)
		if v.Code == code {
			if took > within {
				t.Errorf("Verify answered %s after %v, want within %v", code, took, within)
			}
			return took
		}
		if took > 5*time.Second {
			t.Fatalf("Verify still answers %s after %v, want %s", v.Code, took, code)
		}
		time.Sleep(time.Millisecond)
	}
}

// A revocation by a real keyctl process: the test binary runs itself.
func TestRevokedByAnotherProcess(t *testing.T) {
	if args := os.Getenv("KEYCTL_TEST_REVOKE"); args != "" {
		spec, id, _ := strings.Cut(args, "#")
		s, err := openSpec(spec, nil)
		if err == nil {
			_, err = s.Revoke(context.Background(), id)
			if cerr := s.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
		waitFresh(t, s)
		verifyCode(t, s, k.Secret)
		if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeValid || !cached(s, k.Secret) {
			t.Fatalf("before: %s, cached %v", v.Code, cached(s, k.Secret))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestRevokedByAnotherProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KEYCTL_TEST_REVOKE="+spec+"#"+k.ID)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		took := waitCode(t, s, k.Secret, keystore.CodeRevoked, 100*time.Millisecond)
		t.Logf("revocation by another process seen after %v", took)
	})
}

// With the watcher stalled, Verify reads the store rather than serve what
// may be stale.
func TestStaleReadsStore(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		other := openPlain(t, spec, nil)
		k := cachedThenStale(t, s)
		if _, err := other.Revoke(context.Background(), k.ID); err != nil {
			t.Fatal(err)
		}
		if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeRevoked {
			t.Fatalf("with the watcher stalled: %s, want revoked", v.Code)
		}
	})
}

// cachedThenStale makes a key that s caches, then stops s's watcher and
// leaves s stale, as a watcher late by maxStale would.
func cachedThenStale(t *testing.T, s *Store) *keystore.Key {
	t.Helper()
	k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
	waitFresh(t, s)
	verifyCode(t, s, k.Secret)
	if !cached(s, k.Secret) {
		t.Fatal("not cached")
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	s.fresh = mono() - int64(maxStale)
	s.mu.Unlock()
	return k
}

// Hits that find the cache stale (a late watcher) wait for one read of
// the feed, and are served from memory after it: they do not each read
// the store.
func TestStaleHitsReadFeedOnce(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		k := cachedThenStale(t, s)
		feed := &countingFeed{ChangeFeed: s.feed}
		store := &countingStore{Store: s.Store}
		s.feed, s.Store = feed, store
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				if v, err := s.Verify(context.Background(), k.Secret, nil); err != nil || !v.Valid {
					t.Errorf("Verify = %+v, %v", v, err)
				}
			})
		}
		wg.Wait()
		if n := feed.n.Load(); n < 1 || n > 2 {
			t.Errorf("32 stale hits read the feed %d times, want once (twice if the read took maxStale)", n)
		}
		if n := store.lookups.Load(); n != 0 {
			t.Errorf("32 stale hits read the store %d times, want none", n)
		}
	})
}

type countingFeed struct {
	keystore.ChangeFeed
	n atomic.Int64
}

func (f *countingFeed) Changes(ctx context.Context, since int64, limit int) ([]keystore.Change, int64, bool, error) {
	f.n.Add(1)
	return f.ChangeFeed.Changes(ctx, since, limit)
}

type countingStore struct {
	keystore.Store
	lookups atomic.Int64
}

func (s *countingStore) Lookup(ctx context.Context, hash [32]byte) (*keystore.Key, error) {
	s.lookups.Add(1)
	return s.Store.Lookup(ctx, hash)
}

// A failed read of the feed empties the cache and leaves it stale: a
// store that cannot be read answers nothing from memory.
func TestFailedPollForgets(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
		waitFresh(t, s)
		verifyCode(t, s, k.Secret)
		if !cached(s, k.Secret) {
			t.Fatal("not cached")
		}
		s.stopOnce.Do(func() { close(s.stop) })
		<-s.done
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.feed = failingFeed{}
		s.poll(ctx)
		if cached(s, k.Secret) || s.fresh != 0 {
			t.Fatalf("after a failed poll: cached %v, fresh %d", cached(s, k.Secret), s.fresh)
		}
	})
}

type failingFeed struct{}

func (failingFeed) Changes(context.Context, int64, int) ([]keystore.Change, int64, bool, error) {
	return nil, 0, false, keystore.Errorf(keystore.EUNAVAILABLE, "no feed")
}

// Uses are written in batches, without emptying the cache, and shown by
// reads through the store before they are written.
func TestRecordsUses(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		clock := &storetest.Clock{}
		s := openCached(t, spec, clock, 0)
		other := openPlain(t, spec, clock)
		k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
		clock.Advance(time.Minute)
		used := clock.Now()
		waitFresh(t, s)
		for range 10 {
			verifyCode(t, s, k.Secret)
		}
		if got, _ := s.Get(context.Background(), k.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
			t.Fatalf("Get through the cached store: last_used_at %v, want %v", got.LastUsedAt, used)
		}
		for k2, err := range s.List(context.Background(), keystore.ListOptions{}) {
			if err != nil || k2.LastUsedAt == nil || !k2.LastUsedAt.Equal(used) {
				t.Fatalf("List through the cached store: %v, %v", k2, err)
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			got, err := other.Get(context.Background(), k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.LastUsedAt != nil {
				if !got.LastUsedAt.Equal(used) {
					t.Fatalf("last_used_at %v, want %v", got.LastUsedAt, used)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the use was not written within 3s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitFresh(t, s)
		if !cached(s, k.Secret) {
			t.Error("writing uses emptied the cache")
		}

		// Close writes what is left, the use of a scope with the key's.
		clock.Advance(time.Minute)
		later := clock.Now()
		verifyCode(t, s, k.Secret)
		if v := verifyCode(t, s, k.Secret, k.Scopes[0]); !v.Valid {
			t.Fatalf("Verify = %+v", v)
		}
		if got, _ := s.Get(context.Background(), k.ID); !slices.Equal(got.UsedScopes, k.Scopes[:1]) {
			t.Fatalf("Get through the cached store: used scopes %q", got.UsedScopes)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got, _ := other.Get(context.Background(), k.ID)
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(later) {
			t.Fatalf("after Close: last_used_at %v, want %v", got.LastUsedAt, later)
		}
		if !slices.Equal(got.UsedScopes, k.Scopes[:1]) || !got.ScopesLastUsed[k.Scopes[0]].Equal(later) {
			t.Fatalf("after Close: scope uses %v, want %s at %v", got.ScopesLastUsed, k.Scopes[0], later)
		}
	})
}

// The cache holds at most Size records, and answers right past it.
func TestBounded(t *testing.T) {
	s := openCached(t, backends[0].place(t), nil, 4)
	var keys []*keystore.Key
	for i := range 10 {
		keys = append(keys, mustCreate(t, s, keystore.CreateParams{Name: string(rune('a' + i))}))
	}
	waitFresh(t, s)
	for range 2 {
		for _, k := range keys {
			if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeValid || v.Key.ID != k.ID {
				t.Fatalf("%s: %s", k.ID, v.Code)
			}
		}
	}
	for range maxNegative + 10 {
		secret, _ := keystore.NewToken(keystore.EnvTest, nil)
		verifyCode(t, s, secret)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	positive := len(s.entries) - s.negative
	if positive > 4 || s.negative > maxNegative || len(s.byID) != positive {
		t.Errorf("%d records (%d by ID), %d negative; want at most 4 and %d", positive, len(s.byID), s.negative, maxNegative)
	}
}

// Verifies racing with changes: once Revoke has returned, no Verify that
// starts afterwards answers valid, whatever was in flight.
func TestConcurrent(t *testing.T) {
	each(t, func(t *testing.T, spec string) {
		s := openCached(t, spec, nil, 0)
		ctx := context.Background()
		var keys []*keystore.Key
		for i := range 20 {
			keys = append(keys, mustCreate(t, s, keystore.CreateParams{Name: string(rune('a' + i))}))
		}
		waitFresh(t, s)
		stop := make(chan struct{})
		errs := make(chan error, 4)
		for w := range 4 {
			go func() {
				for i := w; ; i++ {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					if _, err := s.Verify(ctx, keys[i%len(keys)].Secret, nil); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for _, k := range keys {
			if _, err := s.Revoke(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeRevoked {
				t.Fatalf("%s right after Revoke: %s", k.ID, v.Code)
			}
			mustCreate(t, s, keystore.CreateParams{Name: "more"})
		}
		close(stop)
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range keys {
			if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeRevoked {
				t.Errorf("%s at the end: %s", k.ID, v.Code)
			}
		}
	})
}

// BenchmarkPoll is the watcher's read of the feed when nothing changed:
// what a cached store costs when idle, 1/pollInterval a second.
func BenchmarkPoll(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			spec := "sqlite|" + filepath.Join(b.TempDir(), "keys.db")
			if bk.name == "postgres" {
				spec = "postgres|" + pgtest.DSN(b)
			}
			s, err := openSpec(spec, nil)
			if err != nil {
				b.Fatal(err)
			}
			c, err := New(s, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				c.poll(context.Background())
			}
		})
	}
}
