package sqlite

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// VerifyBearer answers as Verify(ctx, secret, nil) does, and VerifyInto as
// Verify does, with the cache and without, on a hit and on a miss; they
// record the use the same way.
func TestVerifyBearerAndIntoAgreeWithVerify(t *testing.T) {
	ctx := context.Background()
	for _, withCache := range []bool{true, false} {
		t.Run(map[bool]string{true: "cached", false: "plain"}[withCache], func(t *testing.T) {
			clock := &storetest.Clock{}
			path := filepath.Join(t.TempDir(), "keys.db")
			var s *Store
			if withCache {
				s = openCached(t, path, clock, 0)
			} else {
				s = openPlain(t, path, clock)
			}
			expires := clock.Now().Add(time.Hour)
			active := mustCreate(t, s, keystore.CreateParams{Name: "active", Scopes: []string{"bots:read", "admin"}})
			expiring := mustCreate(t, s, keystore.CreateParams{Name: "expiring", ExpiresAt: &expires})
			revoked := mustCreate(t, s, keystore.CreateParams{Name: "revoked"})
			if _, err := s.Revoke(ctx, revoked.ID); err != nil {
				t.Fatal(err)
			}
			unknown, _ := keystore.NewToken(keystore.EnvLive, rand.Reader)
			// A record imported by hash alone holds any hash; a secret
			// of the wrong format must not match it.
			if res, err := s.Import(ctx, []keystore.ImportKey{{Params: keystore.CreateParams{Name: "hashed", Scopes: []string{"admin"}}, Hash: keystore.HashToken("password"), Hint: "sk_live_…", CreatedAt: clock.Now()}}); err != nil || res.Imported != 1 {
				t.Fatalf("import by hash: %+v, %v", res, err)
			}
			secrets := []string{active.Secret, expiring.Secret, revoked.Secret, unknown, "password", "", "sk_live_short"}

			check := func(when string) {
				t.Helper()
				for _, secret := range secrets {
					for _, scopes := range [][]string{nil, {"bots:read"}, {"bots:write", "admin"}, {"bots:reed"}} {
						for range 2 { // a miss, then (cached) a hit
							var (
								v    keystore.Verification
								k    keystore.Key
								used time.Time
							)
							err := s.VerifyInto(ctx, secret, scopes, &v, &k, &used)
							want, werr := s.Verify(ctx, secret, scopes)
							if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
								t.Fatalf("%s, %s, %v: VerifyInto error %v, Verify %v", when, keystore.Hint(secret), scopes, err, werr)
							}
							if err != nil {
								continue
							}
							if !reflect.DeepEqual(&v, want) || (v.Key != nil && v.Key != &k) || (k.LastUsedAt != nil && k.LastUsedAt != &used) {
								t.Errorf("%s, %s, %v: VerifyInto = %+v %+v, Verify = %+v %+v", when, keystore.Hint(secret), scopes, v, v.Key, want, want.Key)
							}
						}
					}
					for range 2 { // a miss, then (cached) a hit
						id, scopes, err := s.VerifyBearer(ctx, secret)
						if err != nil {
							t.Fatal(err)
						}
						v := verifyCode(t, s, secret)
						switch {
						case v.Valid && (id != v.Key.ID || !slices.Equal(scopes, v.Key.Scopes)):
							t.Errorf("%s, %s: VerifyBearer = %q %v, Verify = %+v", when, keystore.Hint(secret), id, scopes, v.Key)
						case !v.Valid && (id != "" || scopes != nil):
							t.Errorf("%s, %s: VerifyBearer = %q %v, Verify = %s", when, keystore.Hint(secret), id, scopes, v.Code)
						}
					}
				}
			}
			check("now")
			if withCache {
				waitFresh(t, s)
				for _, secret := range secrets[:3] {
					s.VerifyBearer(ctx, secret)
					if !cached(s, secret) {
						t.Fatalf("%s not cached", keystore.Hint(secret))
					}
				}
			}
			check("cached")
			clock.Advance(time.Hour)
			if withCache {
				waitFresh(t, s)
			}
			check("an hour later")

			// The use is recorded as Verify records it.
			clock.Advance(time.Minute)
			used := clock.Now()
			if withCache {
				waitFresh(t, s)
			}
			if id, _, _ := s.VerifyBearer(ctx, active.Secret); id != active.ID {
				t.Fatalf("VerifyBearer = %q", id)
			}
			if got, err := s.Get(ctx, active.ID); err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
				t.Fatalf("last_used_at after VerifyBearer: %v, %v; want %v", got.LastUsedAt, err, used)
			}
		})
	}
}

// A key revoked through the store fails the next VerifyBearer.
func TestVerifyBearerRevokedAtOnce(t *testing.T) {
	ctx := context.Background()
	s := openCached(t, filepath.Join(t.TempDir(), "keys.db"), nil, 0)
	k := mustCreate(t, s, keystore.CreateParams{Name: "k", Scopes: []string{"admin"}})
	waitFresh(t, s)
	if id, _, _ := s.VerifyBearer(ctx, k.Secret); id != k.ID || !cached(s, k.Secret) {
		t.Fatalf("VerifyBearer = %q", id)
	}
	if _, err := s.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := s.VerifyBearer(ctx, k.Secret); id != "" {
		t.Fatalf("a revoked key authenticates as %q", id)
	}
}

// With the watcher stalled, VerifyBearer and VerifyInto read the store, as
// Verify does: a key revoked by another process fails at once. Both with
// the real clock (whose readings are monotonic too) and a test clock.
func TestVerifyBearerStaleReadsStore(t *testing.T) {
	for _, clock := range []*storetest.Clock{nil, {}} {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "keys.db")
		s := openCached(t, path, clock, 0)
		other := openPlain(t, path, clock)
		a := mustCreate(t, s, keystore.CreateParams{Name: "a"})
		b := mustCreate(t, s, keystore.CreateParams{Name: "b"})
		waitFresh(t, s)
		for _, k := range []*keystore.Key{a, b} {
			if id, _, _ := s.VerifyBearer(ctx, k.Secret); id != k.ID || !cached(s, k.Secret) {
				t.Fatalf("VerifyBearer = %q (cached %v)", id, cached(s, k.Secret))
			}
		}
		s.cache.stopOnce.Do(func() { close(s.cache.stop) })
		<-s.cache.done
		s.cache.mu.Lock()
		s.cache.fresh = mono() - int64(maxStale)
		s.cache.mu.Unlock()
		for _, k := range []*keystore.Key{a, b} {
			if _, err := other.Revoke(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
		}
		if id, _, _ := s.VerifyBearer(ctx, a.Secret); id != "" {
			t.Errorf("with the watcher stalled, VerifyBearer authenticates a key revoked elsewhere")
		}
		var (
			v    keystore.Verification
			k    keystore.Key
			used time.Time
		)
		if err := s.VerifyInto(ctx, b.Secret, nil, &v, &k, &used); err != nil || v.Code != keystore.CodeRevoked {
			t.Errorf("with the watcher stalled, VerifyInto: %s, %v; want revoked", v.Code, err)
		}
	}
}
