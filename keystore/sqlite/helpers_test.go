package sqlite

import (
	"context"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

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
