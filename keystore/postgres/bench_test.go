package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/cache"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
)

// benchVerify verifies 1,000 keys in turn, through the cache or against
// the database each time: the cached figure is keyctl serve's on
// PostgreSQL.
func benchVerify(b *testing.B, cached bool) {
	file, err := postgres.Open(pgtest.DSN(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var s keystore.Store = file
	if cached {
		c, err := cache.New(file, cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s = c
	}
	defer s.Close()
	ctx := context.Background()
	const n = 1000
	secrets := make([]string, 0, n)
	batch := make([]keystore.ImportKey, 0, n)
	created := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := range n {
		secret, _ := keystore.NewToken(keystore.EnvLive, nil)
		secrets = append(secrets, secret)
		batch = append(batch, keystore.ImportKey{
			Params: keystore.CreateParams{Name: fmt.Sprintf("bench %d", i), Scopes: []string{"bots:read", "bots:write"}, Environment: keystore.EnvLive},
			Hash:   keystore.HashToken(secret), Hint: keystore.Hint(secret), CreatedAt: created, Source: keystore.ImportSourceKey,
		})
	}
	if res, err := s.Import(ctx, batch); err != nil || res.Imported != n {
		b.Fatalf("Import = %+v, %v", res, err)
	}
	scopes := []string{"bots:read"}
	for _, secret := range secrets { // fill the cache
		if v, err := s.Verify(ctx, secret, scopes); err != nil || !v.Valid {
			b.Fatalf("Verify = %+v, %v", v, err)
		}
	}
	i := 0
	for b.Loop() {
		if v, err := s.Verify(ctx, secrets[i%n], scopes); err != nil || !v.Valid {
			b.Fatalf("Verify = %+v, %v", v, err)
		}
		i++
	}
}

func BenchmarkVerifyCached(b *testing.B)   { benchVerify(b, true) }
func BenchmarkVerifyUncached(b *testing.B) { benchVerify(b, false) }
