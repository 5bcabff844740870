package commands

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// Timeouts of keyctl serve's connections: readHeaderTimeout closes those
// that trickle their headers (slowloris), readTimeout those that trickle a
// request, writeTimeout those that do not read the reply, idleTimeout
// idle keep-alive connections. Variables only so that a test can shorten
// them.
var (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
)

// deadlineTick is how often the deadlines of keyctl serve's connections
// are checked: how late, at most, a timeout cuts a connection off.
func deadlineTick() time.Duration {
	return min(100*time.Millisecond, min(readHeaderTimeout, readTimeout, writeTimeout, idleTimeout)/10)
}

// HTTP server limits of keyctl serve.
const (
	maxHeaderBytes  = 64 << 10
	shutdownTimeout = 10 * time.Second

	// logFlushInterval bounds how long the line of a request waits in
	// memory before it is written (see server.LogBuffer): one write per
	// request was a measurable part of serving one.
	logFlushInterval = 100 * time.Millisecond
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
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return usageError("cannot load --tls-cert and --tls-key: %s", oneLine(err.Error()))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Every request verifies its bearer key: from memory, exactly (see
	// keystore/sqlite's cache).
	f.CacheVerify = true
	store, err := f.Store()
	if err != nil {
		return err
	}
	// Request lines are written in batches, and at the latest
	// logFlushInterval after they are logged; other lines at once.
	logs := server.NewLogBuffer(f.IO.ErrOut, logFlushInterval)
	defer logs.Close()
	logger := server.NewLogger(logs)
	limits, err := connLimitsFor(openFileLimit())
	if err != nil {
		return err
	}
	handler := server.New(store, server.Options{Logger: logger, RateLimit: opts.Rate, TestKeysManageLive: opts.TestKeysManageLive, Shed: isShed})
	// Expired idempotent replies go at start and every 10 minutes.
	go handler.PurgeReplaysEvery(ctx, server.PurgeInterval)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       markShed,
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	// The connections' deadlines, which enforce the timeouts above, are
	// kept by a watch (see watchedConn), under TLS too.
	watch := watchDeadlines(deadlineTick())
	defer watch.Stop()
	ln = watch.listener(newLimitListener(ln, limits))
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsConfig)
	} else {
		ln = envelopeListener{ln, logger}
	}
	url := scheme + "://" + ln.Addr().String()
	if limits.total > 0 {
		logger.Info("listening on "+url, "url", url, "api", url+"/v1", "max_connections", limits.serve, "shed_connections", limits.total-limits.serve)
	} else {
		logger.Info("listening on "+url, "url", url, "api", url+"/v1")
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	go keepHeapFloor(ctx)
	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", url, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", url, err)
	}
	logger.Info("stopped")
	return nil
}
