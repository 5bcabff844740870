package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
)

// The change feed. Every change (create, rotate, revoke, import) bumps the
// one row of keyctl_changes under its row lock and sends NOTIFY
// keyctl_changes from its own transaction; PostgreSQL delivers the
// notification when the transaction commits. Versions become visible in
// commit order, and audit events carry the version of their change.
//
// A store opened with Options.Watch keeps one connection that LISTENs,
// and reads the version on that connection whenever feedPoll passes
// without a notification: the fallback when notifications are lost, and a
// check that the connection is alive. When the connection is cut
// (pg_terminate_backend, a failover, a network fault) the feed reconnects
// at once and then every feedRetry; Ready fails once it has been down for
// feedGrace, so that a load balancer drains the replica.
//
// Verify reads the database on every call. keyctl serve wraps the store in
// keystore/cache, which reads the changes themselves (Changes, by
// version) every 20 ms through the pool, and at once when the feed sees a
// new version (ChangeNotify): with the LISTEN connection cut, a replica
// still refuses a revoked key within the cache's bound. The feed is also
// what tells a replica (and its load balancer) that it is connected.
const (
	feedPoll  = 250 * time.Millisecond
	feedRetry = 100 * time.Millisecond
	feedGrace = time.Second
)

type feed struct {
	s      *Store
	cfg    *pgx.ConnConfig
	schema string // the store's schema, which notifications name

	version atomic.Int64 // the latest version seen
	up      atomic.Bool  // the LISTEN connection is open
	downAt  atomic.Int64 // unix nanoseconds when it went down

	mu      sync.Mutex
	waiters []chan struct{} // woken at every new version

	quit chan struct{}
	done chan struct{}
}

func startFeed(s *Store, cfg *pgx.ConnConfig) (*feed, error) {
	f := &feed{s: s, cfg: cfg.Copy(), quit: make(chan struct{}), done: make(chan struct{})}
	// Its own name in pg_stat_activity, so that an operator tells it from
	// the pool's connections.
	f.cfg.RuntimeParams["application_name"] = cfg.RuntimeParams["application_name"] + "-feed"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := f.connect(ctx)
	if err != nil {
		return nil, s.fail(ctx, "listen to changes", err)
	}
	go f.run(conn)
	return f, nil
}

// connect opens the LISTEN connection and reads the version, after LISTEN,
// so that no change between the two goes unseen.
func (f *feed) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, f.cfg)
	if err != nil {
		return nil, err
	}
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&f.schema); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	if err := f.poll(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	f.up.Store(true)
	return conn, nil
}

func (f *feed) poll(ctx context.Context, conn *pgx.Conn) error {
	var v int64
	if err := conn.QueryRow(ctx, "SELECT version FROM keyctl_changes").Scan(&v); err != nil {
		return err
	}
	f.saw(v)
	return nil
}

// saw records version v, if newer, and wakes the waiters.
func (f *feed) saw(v int64) {
	for {
		old := f.version.Load()
		if v <= old {
			return
		}
		if f.version.CompareAndSwap(old, v) {
			break
		}
	}
	f.mu.Lock()
	for _, w := range f.waiters {
		close(w)
	}
	f.waiters = nil
	f.mu.Unlock()
}

func (f *feed) run(conn *pgx.Conn) {
	defer close(f.done)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-f.quit:
			return
		default:
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := f.connect(ctx)
			cancel()
			if err != nil {
				select {
				case <-f.quit:
					return
				case <-time.After(feedRetry):
				}
				continue
			}
			conn = c
		}
		if err := f.listen(conn); err != nil {
			f.down()
			conn.Close(context.Background())
			conn = nil
		}
	}
}

// listen waits for notifications on conn for up to feedPoll, then reads
// the version. An error means the connection is lost.
func (f *feed) listen(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), feedPoll)
	defer cancel()
	go func() {
		select {
		case <-f.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() == nil || conn.IsClosed() {
				return err
			}
			break // the poll interval passed
		}
		schema, version, _ := strings.Cut(n.Payload, ":")
		if v, err := strconv.ParseInt(version, 10, 64); err == nil && schema == f.schema {
			f.saw(v)
		}
	}
	select {
	case <-f.quit:
		return nil
	default:
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	return f.poll(pctx, conn)
}

func (f *feed) down() {
	if f.up.Swap(false) {
		f.downAt.Store(time.Now().UnixNano())
	}
}

func (f *feed) stop() {
	close(f.quit)
	<-f.done
}

// ready fails when the LISTEN connection has been down for feedGrace.
func (f *feed) ready() error {
	if f.up.Load() {
		return nil
	}
	if d := time.Since(time.Unix(0, f.downAt.Load())); d < feedGrace {
		return nil
	}
	return keystore.Errorf(keystore.EUNAVAILABLE, "the change feed of store %s is not connected", f.s.name)
}

// Version returns the latest version of the change feed this store has
// seen: through its feed with Options.Watch, otherwise read now.
func (s *Store) Version(ctx context.Context) (int64, error) {
	if s.feed != nil {
		return s.feed.version.Load(), nil
	}
	var v int64
	if err := s.pool.QueryRow(ctx, "SELECT version FROM keyctl_changes").Scan(&v); err != nil {
		return 0, s.fail(ctx, "read change version", err)
	}
	return v, nil
}

// WaitVersion waits until the feed has seen version v or later. It needs
// Options.Watch.
func (s *Store) WaitVersion(ctx context.Context, v int64) error {
	f := s.feed
	if f == nil {
		return errors.New("WaitVersion needs a store opened with Options.Watch")
	}
	for {
		f.mu.Lock()
		if f.version.Load() >= v {
			f.mu.Unlock()
			return nil
		}
		w := make(chan struct{})
		f.waiters = append(f.waiters, w)
		f.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
