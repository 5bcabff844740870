package commands

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/cache"
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

	// CacheVerify wraps the store in keystore/cache, which serves Verify
	// from memory, and makes a PostgreSQL store watch its change feed: for
	// a long-lived process (serve), set before the first call to Store.
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
		opts := remote.Options{Timeout: s.Timeout, UserAgent: userAgent(), OnRetry: f.retryNotice(s.APIURL)}
		if s.CACert != "" {
			pool, err := loadCACert(expandHome(s.CACert))
			if err != nil {
				return nil, err
			}
			opts.RootCAs = pool
		}
		return remote.Open(s.APIURL, key, opts)
	}
	if postgres.IsDSN(s.StorePath) {
		// A long-lived process watches the change feed, so that /readyz
		// tells whether it reaches it.
		st, err := postgres.Open(s.StorePath, postgres.Options{Now: f.Now, Watch: f.CacheVerify, MustExist: f.StoreMustExist})
		if err != nil && f.StoreMustExist && postgres.NoStore(err) {
			return nil, withHint(fmt.Errorf("%s; nothing was created", err),
				"create a key there first (keyctl create), or name another store with --store or --api-url")
		}
		if err != nil {
			return nil, err
		}
		return f.cached(st)
	}
	st, err := sqlite.Open(s.StorePath, sqlite.Options{Now: f.Now, MustExist: f.StoreMustExist})
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
	return f.cached(st)
}

// cached wraps st in the verification cache when f.CacheVerify (keyctl
// serve), and closes it if that fails.
func (f *Factory) cached(st keystore.Store) (keystore.Store, error) {
	if !f.CacheVerify {
		return st, nil
	}
	c, err := cache.New(st, cache.Options{Now: f.Now})
	if err != nil {
		st.Close()
		return nil, err
	}
	return c, nil
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

// userAgent is keyctl's User-Agent: keyctl/VERSION (os/arch).
func userAgent() string {
	b := buildInfo()
	return "keyctl/" + b.Version + " (" + b.Platform + ")"
}

// retryNotice says on a terminal that a call to the key service is being
// retried, and why: a refused connection should not look like a hang.
func (f *Factory) retryNotice(api string) func(next, max int, wait time.Duration, why string) {
	if !f.IO.IsStderrTTY() {
		return nil
	}
	return func(next, max int, wait time.Duration, why string) {
		fmt.Fprintf(f.IO.ErrOut, "key service at %s: %s; retrying in %s (attempt %d of %d)\n",
			output.Escape(api), output.Escape(why), wait.Round(10*time.Millisecond), next, max)
	}
}

// loadCACert reads the PEM certificates of --ca-cert, trusted for the key
// service besides the system's.
func loadCACert(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError("--ca-cert %s: %s", path, pathErr(err))
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usageError("--ca-cert %s: no PEM certificate in it", path)
	}
	return pool, nil
}
