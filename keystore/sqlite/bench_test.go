package sqlite_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/cache"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// The benchmarks of the store. bench/run compares BenchmarkVerifyCached
// with BenchmarkSHA256Key, run together: verifying a cached key should cost
// little more than hashing it.

// benchKeys is how many keys the verify benchmarks spread their lookups
// over.
const benchKeys = 1000

// benchStore opens a store in a fresh folder and imports n keys, returning
// their secrets.
func benchStore(b *testing.B, opts sqlite.Options, n int) (*sqlite.Store, []string) {
	b.Helper()
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "keys.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	secrets := make([]string, 0, n)
	batch := make([]keystore.ImportKey, 0, keystore.MaxImportBatch)
	flush := func() {
		if res, err := s.Import(context.Background(), batch); err != nil || res.Imported != len(batch) {
			b.Fatalf("Import = %+v, %v", res, err)
		}
		batch = batch[:0]
	}
	created := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := range n {
		secret, err := keystore.NewToken(keystore.EnvLive, nil)
		if err != nil {
			b.Fatal(err)
		}
		secrets = append(secrets, secret)
		batch = append(batch, keystore.ImportKey{
			Params:    keystore.CreateParams{Name: fmt.Sprintf("bench %d", i), Scopes: []string{"bots:read", "bots:write"}, Environment: keystore.EnvLive},
			Hash:      keystore.HashToken(secret),
			Hint:      keystore.Hint(secret),
			CreatedAt: created,
			Source:    keystore.ImportSourceKey,
		})
		if len(batch) == keystore.MaxImportBatch {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return s, secrets
}

var sink [32]byte

// BenchmarkSHA256Key is the reference: SHA-256 of a key's 46 bytes, and
// nothing else (no conversion, no allocation).
func BenchmarkSHA256Key(b *testing.B) {
	secret, _ := keystore.NewToken(keystore.EnvLive, nil)
	key := []byte(secret)
	for b.Loop() {
		sink = sha256.Sum256(key)
	}
}

func benchVerify(b *testing.B, cached bool) {
	file, secrets := benchStore(b, sqlite.Options{}, benchKeys)
	var s keystore.Store = file
	if cached {
		c, err := cache.New(file, cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s = c
	}
	ctx := context.Background()
	scopes := []string{"bots:read"}
	for _, secret := range secrets { // fill the cache
		if v, err := s.Verify(ctx, secret, scopes); err != nil || !v.Valid {
			b.Fatalf("Verify = %+v, %v", v, err)
		}
	}
	i := 0
	for b.Loop() {
		v, err := s.Verify(ctx, secrets[i%len(secrets)], scopes)
		if err != nil || !v.Valid {
			b.Fatalf("Verify = %+v, %v", v, err)
		}
		i++
	}
}

func BenchmarkVerifyCached(b *testing.B)   { benchVerify(b, true) }
func BenchmarkVerifyUncached(b *testing.B) { benchVerify(b, false) }

func BenchmarkCreate(b *testing.B) {
	s, _ := benchStore(b, sqlite.Options{}, 0)
	ctx := context.Background()
	p := keystore.CreateParams{Name: "bench", Scopes: []string{"bots:read"}}
	for b.Loop() {
		if _, err := s.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRotate(b *testing.B) {
	s, _ := benchStore(b, sqlite.Options{}, 0)
	ctx := context.Background()
	k, err := s.Create(ctx, keystore.CreateParams{Name: "bench", Scopes: []string{"bots:read"}})
	if err != nil {
		b.Fatal(err)
	}
	id := k.ID
	for b.Loop() {
		nk, err := s.Rotate(ctx, id, keystore.RotateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		id = nk.ID
	}
}

// BenchmarkList lists 10,000 keys per operation.
func BenchmarkList(b *testing.B) {
	const n = 10_000
	s, _ := benchStore(b, sqlite.Options{}, n)
	ctx := context.Background()
	for b.Loop() {
		got := 0
		for _, err := range s.List(ctx, keystore.ListOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n {
			b.Fatalf("listed %d keys, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}

// BenchmarkImport imports one full batch per operation.
func BenchmarkImport(b *testing.B) {
	s, _ := benchStore(b, sqlite.Options{}, 0)
	ctx := context.Background()
	batch := make([]keystore.ImportKey, keystore.MaxImportBatch)
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			secret, _ := keystore.NewToken(keystore.EnvLive, nil)
			batch[i] = keystore.ImportKey{
				Params: keystore.CreateParams{Name: "imported", Scopes: []string{"bots:read"}, Environment: keystore.EnvLive},
				Hash:   keystore.HashToken(secret), Hint: keystore.Hint(secret), Source: keystore.ImportSourceKey,
			}
		}
		b.StartTimer()
		if res, err := s.Import(ctx, batch); err != nil || res.Imported != len(batch) {
			b.Fatalf("Import = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/key")
}
