package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// net/http enforces keyctl serve's timeouts (header, read, write, idle) by
// moving each connection's deadlines some eight times per request. Most of
// those moves add, change or delete a runtime timer, a measurable part of
// the cost of serving a request (BENCHMARKS.md, goal 2).
//
// A watchedConn keeps the deadlines that net/http asks for in memory, and
// a deadlineWatch, ticking every few tens of milliseconds, enforces them:
// when a connection's deadline has passed, it sets the socket's deadline
// in the past, which interrupts a Read or Write in progress, and fails the
// next one, with the socket's own timeout error, as the deadline itself
// would have. A deadline already in the past when it is asked for (how
// net/http interrupts its background read) reaches the socket at once, and
// a later deadline undoes it. So a slow client is cut off at most one tick
// later than net/http would (with ticks of at most 100 milliseconds, against timeouts
// of seconds), no socket deadline is set while requests come and go, and
// what is left per request is what a server without timeouts does too.

// deadlinePast is the deadline that interrupts I/O at once (net/http's own
// is the same).
var deadlinePast = time.Unix(1, 0)

// deadlineWatch enforces the deadlines of a listener's connections.
type deadlineWatch struct {
	every time.Duration
	now   atomic.Int64 // the time of the last tick, in Unix microseconds

	mu    sync.Mutex
	conns map[*watchedConn]struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// watchDeadlines starts a watch that ticks every d.
func watchDeadlines(d time.Duration) *deadlineWatch {
	w := &deadlineWatch{
		every: d,
		conns: map[*watchedConn]struct{}{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	w.now.Store(time.Now().UnixMicro())
	go w.run()
	return w
}

func (w *deadlineWatch) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.tick(now)
		}
	}
}

// tick interrupts the connections whose deadlines have passed.
func (w *deadlineWatch) tick(now time.Time) {
	us := now.UnixMicro()
	w.now.Store(us)
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.conns {
		c.expire(us)
	}
}

// Stop stops the watch: deadlines are no longer enforced.
func (w *deadlineWatch) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// listener wraps each connection that ln accepts in a watchedConn.
func (w *deadlineWatch) listener(ln net.Listener) net.Listener {
	return watchedListener{ln, w}
}

type watchedListener struct {
	net.Listener
	w *deadlineWatch
}

func (l watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &watchedConn{Conn: c, w: l.w}
	l.w.mu.Lock()
	l.w.conns[wc] = struct{}{}
	l.w.mu.Unlock()
	return wc, nil
}

// watchedConn is a connection whose deadlines its watch enforces.
type watchedConn struct {
	net.Conn
	w *deadlineWatch

	// mu orders the changes of the socket's deadlines; the deadlines
	// asked for change without it while the socket's need no change.
	mu          sync.Mutex
	read, write watchedDeadline
}

// watchedDeadline is a deadline asked for, in Unix microseconds (0: none),
// shifted left by one, with the low bit set while the socket's deadline is
// set in the past.
type watchedDeadline struct{ state atomic.Int64 }

func (c *watchedConn) SetReadDeadline(t time.Time) error {
	return c.ask(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *watchedConn) SetWriteDeadline(t time.Time) error {
	return c.ask(&c.write, t, c.Conn.SetWriteDeadline)
}

func (c *watchedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ask(&c.read, t, c.Conn.SetReadDeadline), c.ask(&c.write, t, c.Conn.SetWriteDeadline))
}

// ask records t as the deadline. One that passed before the watch's last
// tick reaches the socket at once; otherwise the socket is left without a
// deadline, which the watch sets when t passes.
func (c *watchedConn) ask(d *watchedDeadline, t time.Time, set func(time.Time) error) error {
	var want int64
	if !t.IsZero() {
		want = max(t.UnixMicro(), 1)
	}
	past := want != 0 && want < c.w.now.Load()
	for !past {
		// The usual case: the socket has no deadline and needs none.
		old := d.state.Load()
		if old&1 != 0 {
			break
		}
		if d.state.CompareAndSwap(old, want<<1) {
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if past {
		d.state.Store(want<<1 | 1)
		return set(t)
	}
	d.state.Store(want << 1)
	return set(time.Time{}) // undo a deadline in the past
}

// expire sets the socket's deadlines in the past where the deadline asked
// for has passed by now (in Unix microseconds).
func (c *watchedConn) expire(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read.expire(now, c.Conn.SetReadDeadline)
	c.write.expire(now, c.Conn.SetWriteDeadline)
}

func (d *watchedDeadline) expire(now int64, set func(time.Time) error) {
	old := d.state.Load()
	if want := old >> 1; old&1 == 0 && want != 0 && want <= now && d.state.CompareAndSwap(old, old|1) {
		set(deadlinePast)
	}
}

// Close closes the connection and stops watching it.
func (c *watchedConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, as net/http does before closing
// one whose request body it did not read.
func (c *watchedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
