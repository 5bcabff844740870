package sqlite

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// openCached opens a cached store at path on clock (nil: the real time).
func openCached(t *testing.T, path string, clock *storetest.Clock, size int) *Store {
	t.Helper()
	opts := Options{CacheVerify: true, CacheSize: size}
	if clock != nil {
		opts.Now = clock.Now
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPlain(t *testing.T, path string, clock *storetest.Clock) *Store {
	t.Helper()
	opts := Options{}
	if clock != nil {
		opts.Now = clock.Now
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCreate(t *testing.T, s *Store, p keystore.CreateParams) *keystore.Key {
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

func verifyCode(t *testing.T, s *Store, secret string, scopes ...string) *keystore.Verification {
	t.Helper()
	v, err := s.Verify(context.Background(), secret, scopes)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cached reports whether the cache holds a record for secret.
func cached(s *Store, secret string) bool {
	c := s.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[keystore.HashToken(secret)]
	return ok && e.key != nil
}

// waitFresh waits until the watcher has looked at the audit log since now,
// so that the next Verify can be served from memory.
func waitFresh(t *testing.T, s *Store) {
	t.Helper()
	since := mono()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.cache.mu.RLock()
		fresh := s.cache.fresh
		s.cache.mu.RUnlock()
		if fresh > since {
			return
		}
	}
	t.Fatal("the cache's watcher did not poll within 2s")
}

func TestCacheServesFromMemory(t *testing.T) {
	s := openCached(t, filepath.Join(t.TempDir(), "keys.db"), nil, 0)
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
	// The store's own record is not the caller's to change.
	v := verifyCode(t, s, k.Secret)
	v.Key.Name = "changed"
	if v := verifyCode(t, s, k.Secret); v.Key.Name != "hot" {
		t.Errorf("a caller's change reached the cache: name %q", v.Key.Name)
	}
}

// Changes made through the cached store are seen by the next Verify.
func TestCacheChangesThroughStore(t *testing.T) {
	ctx := context.Background()
	rnd := rand.NewChaCha8([32]byte{7})
	predict := rand.NewChaCha8([32]byte{7})
	s, err := Open(filepath.Join(t.TempDir(), "keys.db"), Options{CacheVerify: true, Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	a := mustCreate(t, s, keystore.CreateParams{Name: "a"})
	b := mustCreate(t, s, keystore.CreateParams{Name: "b"})
	// Skip predict past what the two creates read: an ID, a secret and an
	// event ID each.
	for range 2 {
		keystore.NewID(predict)
		keystore.NewToken(keystore.EnvLive, predict)
		keystore.NewID(predict)
	}
	waitFresh(t, s)
	verifyCode(t, s, a.Secret)
	verifyCode(t, s, b.Secret)

	if _, err := s.Revoke(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if v := verifyCode(t, s, a.Secret); v.Code != keystore.CodeRevoked {
		t.Fatalf("after Revoke: %s, want revoked at once", v.Code)
	}

	// The next key's secret, remembered as belonging to no key before it
	// is made. Revoke read an event ID.
	keystore.NewID(predict)
	keystore.NewID(predict)
	next, _ := keystore.NewToken(keystore.EnvLive, predict)
	if v := verifyCode(t, s, next); v.Code != keystore.CodeNotFound {
		t.Fatalf("a secret not yet issued: %s", v.Code)
	}
	c := mustCreate(t, s, keystore.CreateParams{Name: "c"})
	if c.Secret != next {
		t.Fatal("the prediction of the next secret is wrong; the test needs fixing")
	}
	if v := verifyCode(t, s, c.Secret); v.Code != keystore.CodeValid {
		t.Fatalf("a key just created: %s, want valid", v.Code)
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
}

// Expiry is judged at each Verify, on the store's clock.
func TestCacheExpiryExact(t *testing.T) {
	clock := &storetest.Clock{}
	s := openCached(t, filepath.Join(t.TempDir(), "keys.db"), clock, 0)
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
}

// A change by another store on the same file (to the cache, the same as
// another process) is seen within maxStale.
func TestCacheChangesByAnotherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openCached(t, path, nil, 0)
	other := openPlain(t, path, nil)
	k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
	waitFresh(t, s)
	verifyCode(t, s, k.Secret)

	// Revoked elsewhere.
	if _, err := other.Revoke(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	waitCode(t, s, k.Secret, keystore.CodeRevoked, 100*time.Millisecond)

	// Disabled and enabled elsewhere.
	k2 := mustCreate(t, s, keystore.CreateParams{Name: "k2"})
	verifyCode(t, s, k2.Secret)
	if _, err := other.Disable(context.Background(), k2.ID); err != nil {
		t.Fatal(err)
	}
	waitCode(t, s, k2.Secret, keystore.CodeDisabled, 100*time.Millisecond)
	if _, err := other.Enable(context.Background(), k2.ID); err != nil {
		t.Fatal(err)
	}
	waitCode(t, s, k2.Secret, keystore.CodeValid, 100*time.Millisecond)

	// Created elsewhere, with a secret that was remembered as unknown.
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	if v := verifyCode(t, s, secret); v.Code != keystore.CodeNotFound {
		t.Fatal(v.Code)
	}
	h := keystore.HashToken(secret)
	ik := keystore.ImportKey{Params: keystore.CreateParams{Name: "imported", Scopes: []string{"bots:read"}, Environment: keystore.EnvLive},
		Hash: h, Hint: keystore.Hint(secret), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if res, err := other.Import(context.Background(), []keystore.ImportKey{ik}); err != nil || res.Imported != 1 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	waitCode(t, s, secret, keystore.CodeValid, 100*time.Millisecond)

	// Rotated elsewhere, awaiting delivery: the old key works until the
	// delivery is confirmed elsewhere, which ends it.
	k3 := mustCreate(t, s, keystore.CreateParams{Name: "k3"})
	verifyCode(t, s, k3.Secret)
	nk, err := other.Rotate(context.Background(), k3.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	waitCode(t, s, nk.Secret, keystore.CodeValid, 100*time.Millisecond)
	verifyCode(t, s, k3.Secret)
	if _, err := other.ConfirmDelivery(context.Background(), nk.ID); err != nil {
		t.Fatal(err)
	}
	waitCode(t, s, k3.Secret, keystore.CodeRevoked, 100*time.Millisecond)
}

// waitCode polls Verify until it answers code, and fails if that takes
// longer than within.
func waitCode(t *testing.T, s *Store, secret, code string, within time.Duration) time.Duration {
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
func TestCacheRevokedByAnotherProcess(t *testing.T) {
	if args := os.Getenv("KEYCTL_TEST_REVOKE"); args != "" {
		path, id := filepath.Dir(args), filepath.Base(args)
		s, err := Open(filepath.Join(path, "keys.db"), Options{})
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
	dir := t.TempDir()
	s := openCached(t, filepath.Join(dir, "keys.db"), nil, 0)
	k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
	waitFresh(t, s)
	verifyCode(t, s, k.Secret)
	if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeValid || !cached(s, k.Secret) {
		t.Fatalf("before: %s, cached %v", v.Code, cached(s, k.Secret))
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheRevokedByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KEYCTL_TEST_REVOKE="+filepath.Join(dir, k.ID))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	took := waitCode(t, s, k.Secret, keystore.CodeRevoked, 100*time.Millisecond)
	t.Logf("revocation by another process seen after %v", took)
}

// With the watcher stalled, Verify reads SQLite rather than serve what
// may be stale.
func TestCacheStaleReadsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openCached(t, path, nil, 0)
	other := openPlain(t, path, nil)
	k := mustCreate(t, s, keystore.CreateParams{Name: "k"})
	waitFresh(t, s)
	verifyCode(t, s, k.Secret)
	if !cached(s, k.Secret) {
		t.Fatal("not cached")
	}
	s.cache.stopOnce.Do(func() { close(s.cache.stop) })
	<-s.cache.done
	s.cache.mu.Lock()
	s.cache.fresh = mono() - int64(maxStale)
	s.cache.mu.Unlock()
	if _, err := other.Revoke(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	if v := verifyCode(t, s, k.Secret); v.Code != keystore.CodeRevoked {
		t.Fatalf("with the watcher stalled: %s, want revoked", v.Code)
	}
}

// Uses are written in batches, without emptying the cache, and shown by
// reads through the store before they are written.
func TestCacheRecordsUses(t *testing.T) {
	clock := &storetest.Clock{}
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openCached(t, path, clock, 0)
	other := openPlain(t, path, clock)
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

	// Close writes what is left.
	clock.Advance(time.Minute)
	later := clock.Now()
	verifyCode(t, s, k.Secret)
	// A scope's use goes with the key's, from the cache (VerifyInto) too.
	var (
		v    keystore.Verification
		rec  keystore.Key
		when time.Time
	)
	if err := s.VerifyInto(context.Background(), k.Secret, []string{k.Scopes[0]}, &v, &rec, &when); err != nil || !v.Valid {
		t.Fatalf("VerifyInto = %+v, %v", v, err)
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
}

// The cache holds at most CacheSize records, and answers right past it.
func TestCacheBounded(t *testing.T) {
	s := openCached(t, filepath.Join(t.TempDir(), "keys.db"), nil, 4)
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
	c := s.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	positive := len(c.entries) - c.negative
	if positive > 4 || c.negative > maxNegative || len(c.byID) != positive {
		t.Errorf("%d records (%d by ID), %d negative; want at most 4 and %d", positive, len(c.byID), c.negative, maxNegative)
	}
}

// BenchmarkPoll is the watcher's look at the audit log when nothing
// changed: what a cached store costs when idle, 1/pollInterval a second.
func BenchmarkPoll(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "keys.db"), Options{CacheVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		s.poll()
	}
}

// Verifies racing with changes: once Revoke has returned, no Verify that
// starts afterwards answers valid, whatever was in flight.
func TestCacheConcurrent(t *testing.T) {
	s := openCached(t, filepath.Join(t.TempDir(), "keys.db"), nil, 0)
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
}
