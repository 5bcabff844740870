package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Timeouts of the connections of ListenAndServe: ReadHeader closes those
// that trickle their headers (slowloris), Read those that trickle a
// request, Write those that do not read the reply, Idle idle keep-alive
// connections.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are the timeouts of keyctl serve.
var DefaultTimeouts = Timeouts{
	ReadHeader: 5 * time.Second,
	Read:       30 * time.Second,
	Write:      60 * time.Second,
	Idle:       120 * time.Second,
}

// deadlineTick is how often the deadlines of the connections are checked:
// how late, at most, a timeout cuts a connection off.
func (t Timeouts) deadlineTick() time.Duration {
	return min(100*time.Millisecond, min(t.ReadHeader, t.Read, t.Write, t.Idle)/10)
}

// HTTP server limits of ListenAndServe.
const (
	MaxHeaderBytes  = 64 << 10
	shutdownTimeout = 10 * time.Second

	// logFlushInterval bounds how long the line of a request waits in
	// memory before it is written (see LogBuffer): one write per request
	// was a measurable part of serving one.
	logFlushInterval = 100 * time.Millisecond
)

// Config is what ListenAndServe serves, and how.
type Config struct {
	// Addr is the address to listen on, HOST:PORT; port 0 picks a free one.
	Addr string

	// TLS, when set, serves HTTPS (see LoadCertificate).
	TLS *tls.Config

	// Log gets the JSON lines of the server's log (see NewLogger): the
	// lines of requests in batches, written at most 0.1 s after the
	// request, every other line at once.
	Log io.Writer

	// Timeouts are the connections' timeouts; the zero value means
	// DefaultTimeouts.
	Timeouts Timeouts

	// Options configure the API's handler. Logger and Shed are set by
	// ListenAndServe.
	Options Options
}

// LoadCertificate reads a PEM certificate and its private key into the TLS
// configuration of Config.TLS.
func LoadCertificate(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ListenAndServe serves store's API on cfg.Addr until ctx ends, then shuts
// down gracefully: it stops accepting, lets the requests in progress finish
// (for at most 10 seconds) and writes what is left of the log.
//
// It owns everything between the socket and the handler: the timeouts
// (kept by a deadline watch, see watchedConn), the connection limit derived
// from the limit of open files (see connLimitsFor) with load shedding past
// it, net/http's own error replies as the API's JSON envelope (plain HTTP
// only), the garbage collector's heap floor (see keepHeapFloor), and the
// purge of expired idempotent replies. The address is logged as
// "listening on URL" once the server listens.
func ListenAndServe(ctx context.Context, store keystore.Store, cfg Config) error {
	to := cfg.Timeouts
	if to == (Timeouts{}) {
		to = DefaultTimeouts
	}
	// Request lines are written in batches, and at the latest
	// logFlushInterval after they are logged; other lines at once.
	logs := NewLogBuffer(cfg.Log, logFlushInterval)
	defer logs.Close()
	logger := NewLogger(logs)
	limits, err := connLimitsFor(openFileLimit())
	if err != nil {
		return err
	}
	opts := cfg.Options
	opts.Logger, opts.Shed = logger, isShed
	handler := New(store, opts)
	// Expired idempotent replies go at start and every 10 minutes.
	go handler.PurgeReplaysEvery(ctx, PurgeInterval)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		TLSConfig:         cfg.TLS,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       markShed,
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	// The connections' deadlines, which enforce the timeouts above, are
	// kept by a watch (see watchedConn), under TLS too.
	watch := watchDeadlines(to.deadlineTick())
	defer watch.Stop()
	ln = watch.listener(newLimitListener(ln, limits))
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
		ln = tls.NewListener(ln, cfg.TLS)
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
