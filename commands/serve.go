package commands

import (
	"context"
	"crypto/tls"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// ServeOptions are the inputs of keyctl serve.
type ServeOptions struct {
	f *Factory

	Addr      string
	TLSCert   string
	TLSKey    string
	RateLimit string

	TestKeysManageLive bool

	Rate float64 // requests per second per API key, from RateLimit; 0: no limit
}

// NewCmdServe builds keyctl serve.
func NewCmdServe(f *Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "serve [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE] [--rate-limit N/s]",
		Short: "Serve the key store as an HTTP API",
		Long: `Serve the key store (--store, or the profile's store: a SQLite file, or a
PostgreSQL database by its postgres:// DSN) as the key service's HTTP API,
so that clients and other keyctl commands can use it with
--api-url http://HOST:PORT/v1 and an API key in CHATBOT_API_KEY.

Several replicas may serve one PostgreSQL database behind a load balancer:
each verifies keys in the database, so a change made through any of them is
seen by all. GET /readyz answers 503 while the replica cannot reach its
store (or, on PostgreSQL, its change feed). Rate limits are counted by each
replica.

Every request but GET /healthz and GET /readyz needs "Authorization: Bearer <key>"; managing
keys and reading the audit log need a key with the admin scope, verifying a
key needs any valid key. Create the first admin key locally:
keyctl --store FILE create --name admin --scope admin.

A test key (sk_test_) manages test keys only: with it, creating, rotating,
revoking or importing a live key is refused with 403, so that a test admin
key handed to CI or developers cannot make live keys.
--test-keys-manage-live lifts that rule.

Each request is logged as one JSON line on stderr (never a secret), written
in batches at most 0.1s after the request; other lines, and those of
requests answered with 5xx, are written at once. The address is logged as
"listening on URL" once the server listens; with port 0 the system picks a
free port. SIGINT or SIGTERM stops the server gracefully, writing what is
left of the log.

Connections are bounded by the limit of open files (ulimit -n): past nine
tenths of it, new connections get 503 with Retry-After; beyond it, clients
wait. A retry of an idempotent create that this server did not answer first
gets the reply without the secret (header Idempotent-Secret: withheld).`,
		Example: `  keyctl --store keys.db create -q --name admin --scope admin
  keyctl --store keys.db serve --addr 127.0.0.1:8080
  keyctl serve --addr :8443 --tls-cert cert.pem --tls-key key.pem --rate-limit 6000/m
  keyctl --store 'postgres://keyctl@db:5432/keyctl?sslmode=verify-full' serve --addr :8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on, HOST:PORT (port 0 picks a free one)")
	fl.StringVar(&opts.TLSCert, "tls-cert", "", "serve HTTPS with this certificate file (PEM)")
	fl.StringVar(&opts.TLSKey, "tls-key", "", "the private key file (PEM) of --tls-cert")
	fl.StringVar(&opts.RateLimit, "rate-limit", "100/s", "requests allowed per API key, such as 100/s or 6000/m; 0 for no limit")
	fl.BoolVar(&opts.TestKeysManageLive, "test-keys-manage-live", false, "let test keys (sk_test_) with the admin scope manage live keys too")
	return cmd
}

func (opts *ServeOptions) resolve() error {
	if s := opts.f.Settings; s.APIURL != "" {
		if s.APIURLFrom == "--api-url" {
			return withHint(usageError("serve serves a local store; --api-url (here %s) is for clients of a key service", s.APIURL),
				"drop --api-url and pass --store FILE")
		}
		return withHint(usageError("serve serves a local store, but %s names a key service (%s)", s.APIURLFrom, s.APIURL),
			"pass --store FILE, which wins over "+s.APIURLFrom)
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return usageError("invalid --addr %s (want HOST:PORT, such as 127.0.0.1:8080)", keystore.Quote(opts.Addr))
	}
	rate, err := parseRate(opts.RateLimit)
	if err != nil {
		return err
	}
	opts.Rate = rate
	return nil
}

// parseRate reads a rate such as 100/s, 6000/m or 50000/h as requests per
// second; "0" is no limit.
func parseRate(s string) (float64, error) {
	bad := func() (float64, error) {
		return 0, usageError("invalid --rate-limit %s (want requests per second, minute or hour, such as 100/s or 6000/m, or 0 for no limit)", keystore.Quote(s))
	}
	if s == "0" {
		return 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return bad()
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) || strings.ContainsAny(num, "eEpPxX_") {
		return bad()
	}
	seconds := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	if seconds == 0 {
		return bad()
	}
	return n / seconds, nil
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	f := opts.f
	var tlsConfig *tls.Config
	if opts.TLSCert != "" {
		var err error
		if tlsConfig, err = server.LoadCertificate(opts.TLSCert, opts.TLSKey); err != nil {
			return usageError("cannot load --tls-cert and --tls-key: %s", oneLine(err.Error()))
		}
	}
	// Every request verifies its bearer key: from memory, exactly (see
	// keystore/cache).
	f.CacheVerify = true
	store, err := f.Store()
	if err != nil {
		return err
	}
	return server.ListenAndServe(ctx, store, server.Config{
		Addr:    opts.Addr,
		TLS:     tlsConfig,
		Log:     f.IO.ErrOut,
		Options: server.Options{RateLimit: opts.Rate, TestKeysManageLive: opts.TestKeysManageLive},
	})
}
