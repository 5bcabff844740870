package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// The store with its verification cache passes the same contract.
func TestContractCached(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Now: clock.Now, CacheVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
