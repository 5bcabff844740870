package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/keystore/remote"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/output"
)

// Factory builds what commands need, lazily. It is the only place that
// knows which store to open.
type Factory struct {
	IO  *output.IOStreams
	Now func() time.Time

	// Settings are resolved by the root command before any command runs.
	Settings *Settings

	// Store opens the configured store once; later calls return the same one.
	Store func() (keystore.Store, error)

	// CacheVerify makes a SQLite store serve Verify from memory, and a
	// PostgreSQL store watch its change feed: for a long-lived process
	// (serve), set before the first call to Store.
	CacheVerify bool

	// StoreMustExist refuses a local store file that does not exist instead
	// of creating an empty one: set by the root, before the first call to
	// Store, for commands annotated with storeExisting.
	StoreMustExist bool

	store keystore.Store
}

// NewFactory returns a Factory for the given streams and clock.
func NewFactory(io *output.IOStreams, now func() time.Time) *Factory {
	f := &Factory{IO: io, Now: now, Settings: &Settings{}}
	f.Store = func() (keystore.Store, error) {
		if f.store != nil {
			return f.store, nil
		}
		s, err := f.openStore()
		if err != nil {
			return nil, err
		}
		f.store = s
		return s, nil
	}
	return f
}

func (f *Factory) openStore() (keystore.Store, error) {
	s := f.Settings
	if s.APIURL != "" {
		// The API key comes from the environment only, never from a flag
		// (visible to other users) or the config file.
		key := strings.TrimSpace(os.Getenv(s.APIKeyEnv))
		if key == "" {
			return nil, withHint(usageError("no API key for the key service at %s: %s is not set", s.APIURL, s.APIKeyEnv),
				"set "+s.APIKeyEnv+" to an admin key of the key service")
		}
		return remote.Open(s.APIURL, key, remote.Options{Timeout: s.Timeout})
	}
	if postgres.IsDSN(s.StorePath) {
		// A long-lived process watches the change feed, so that /readyz
		// tells whether it reaches it.
		return postgres.Open(s.StorePath, postgres.Options{Now: f.Now, Watch: f.CacheVerify})
	}
	st, err := sqlite.Open(s.StorePath, sqlite.Options{Now: f.Now, CacheVerify: f.CacheVerify, MustExist: f.StoreMustExist})
	if err != nil && f.StoreMustExist && keystore.ErrorCode(err) == keystore.EUNAVAILABLE && !exists(s.StorePath) {
		from := ""
		if s.StoreFrom != "" && s.StoreFrom != "--store" {
			from = " (from " + s.StoreFrom + ")"
		}
		return nil, withHint(fmt.Errorf("%s%s; nothing was created", err, from),
			"create a key there first (keyctl create), or name another store with --store FILE or --api-url URL")
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Close closes the store if one was opened.
func (f *Factory) Close() error {
	if f.store == nil {
		return nil
	}
	return f.store.Close()
}

// Context returns ctx with the local actor (the OS user) for the audit log.
func (f *Factory) Context(ctx context.Context) context.Context {
	return keystore.WithActor(ctx, localActor())
}

func localActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
