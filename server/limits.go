package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// keyctl serve bounds its connections by the process's descriptor limit
// (RLIMIT_NOFILE), so that a burst of clients never leaves the store
// without a descriptor to open a file with (which gave 500s). Of the
// descriptors left after a reserve for the store and the process's own,
// most serve connections; the last tenth is for connections that get 503
// with Retry-After at once and are closed; beyond those the server stops
// accepting, and further clients wait in the kernel's queue, which holds
// no descriptor of the process.

// FDReserve is the descriptors kept for other than connections: the
// standard streams, the listener, the poller, the log, the store's
// connections and the files of TLS, the config and the like.
func FDReserve() int {
	return sqlite.FilesPerConn*sqlite.DefaultMaxConns + 64
}

// minConnRoom is the fewest descriptors for connections that serve will
// start with.
const minConnRoom = 16

// connLimits are how many connections keyctl serve serves at once (serve)
// and holds at once, the shed ones included (total).
type connLimits struct{ serve, total int }

// connLimitsFor derives the limits from a descriptor limit; 0 means none
// is known, and so no limit.
func connLimitsFor(nofile uint64) (connLimits, error) {
	if nofile == 0 || nofile > 1<<30 {
		return connLimits{}, nil
	}
	room := int(nofile) - FDReserve()
	if room < minConnRoom {
		return connLimits{}, keystore.Errorf(keystore.EINVALID, "the limit of open files (ulimit -n) is %d; keyctl serve needs at least %d", nofile, FDReserve()+minConnRoom)
	}
	shed := max(4, room/10)
	return connLimits{serve: room - shed, total: room}, nil
}

// limitListener holds the connections of a listener to its limits: past
// serve, a connection is marked to be shed; at total, Accept waits for a
// connection to close.
type limitListener struct {
	net.Listener
	lim connLimits

	mu     sync.Mutex
	cond   *sync.Cond
	active int
	closed bool
}

func newLimitListener(ln net.Listener, lim connLimits) net.Listener {
	if lim.total == 0 {
		return ln
	}
	l := &limitListener{Listener: ln, lim: lim}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	for l.active >= l.lim.total && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.active++
	shed := l.active > l.lim.serve
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitedConn{Conn: c, l: l, shed: shed}, nil
}

func (l *limitListener) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *limitListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	return l.Listener.Close()
}

// limitedConn is a connection counted by its limitListener.
type limitedConn struct {
	net.Conn
	l         *limitListener
	shed      bool // came in over the serving limit: its requests get 503
	closeOnce sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.l.release)
	return err
}

// shedKey holds, in a request's context, whether its connection is shed.
type shedKey struct{}

// markShed is the http.Server's ConnContext: it notes whether the
// connection came in over the limit.
func markShed(ctx context.Context, c net.Conn) context.Context {
	for {
		switch x := c.(type) {
		case *limitedConn:
			if x.shed {
				return context.WithValue(ctx, shedKey{}, true)
			}
			return ctx
		case *watchedConn:
			c = x.Conn
		case *envelopeConn:
			c = x.Conn
		case *tls.Conn:
			c = x.NetConn()
		default:
			return ctx
		}
	}
}

// isShed is Options.Shed for ListenAndServe.
func isShed(r *http.Request) bool {
	shed, _ := r.Context().Value(shedKey{}).(bool)
	return shed
}

// envelopeListener wraps each connection of a plain-HTTP listener so that
// net/http's own plain-text error replies (431, 400, 501, 505: see
// RewriteHTTPError) go out as the API's JSON error envelope. Over
// TLS net/http writes them to the *tls.Conn, which must stay its own type,
// so they stay plain text there.
type envelopeListener struct {
	net.Listener
	log *slog.Logger
}

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &envelopeConn{Conn: c, log: l.log}, nil
}

type envelopeConn struct {
	net.Conn
	log *slog.Logger
}

func (c *envelopeConn) Write(b []byte) (int, error) {
	if len(b) > 9 && b[9] >= '4' && string(b[:9]) == "HTTP/1.1 " { // an error status, maybe net/http's own
		if reply, status, id, ok := RewriteHTTPError(b); ok {
			c.log.Warn("request refused before it reached the API", "status", status, "request_id", id, "remote", c.RemoteAddr().String())
			if _, err := c.Conn.Write(reply); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return c.Conn.Write(b)
}
