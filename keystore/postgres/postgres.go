// Package postgres is a keystore.Store on a PostgreSQL database (15 or
// later), for several `keyctl serve` replicas that share one database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersion is the number of migrations, the schema version of a
// database that is up to date; a test holds it equal to len(migrations()).
const SchemaVersion = 5

// migrateLock is the key of the advisory lock under which a keyctl migrates
// a database, so that replicas starting together migrate it once.
// ("keyctl" in ASCII.)
const migrateLock = 0x6b657963746c

// IsDSN reports whether store names a PostgreSQL database rather than a
// SQLite file.
func IsDSN(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// migrations are the schema changes in order; a database at schema version
// N has had the first N applied.
var migrations = sync.OnceValue(func() []string { return sqlstore.Migrations(migrationFiles) })

// MigrationNames returns the file names of the migrations, in order, for the
// test that they are numbered 1..N.
func MigrationNames() []string { return sqlstore.MigrationNames(migrationFiles) }

// Options are the store's hooks for time and randomness, and what a
// long-lived process (keyctl serve) turns on.
type Options struct {
	Now  func() time.Time
	Rand io.Reader // must be safe for concurrent use

	// Watch keeps a connection that LISTENs to the change feed, with
	// polling of the version as the fallback, so that Ready reports
	// whether the feed is reachable (see feed.go).
	Watch bool

	// MustExist refuses a database that holds no keyctl store yet
	// instead of making one, for commands that only read.
	MustExist bool

	// UseFlushInterval is how often the uses of keys (last_used_at) are
	// written, in one batch; 0 means one second. Close writes the rest.
	UseFlushInterval time.Duration
}

// Store is a keystore.Store on a PostgreSQL database. It is safe for
// concurrent use, also by several processes on one database.
type Store struct {
	pool  *pgxpool.Pool
	name  string // the DSN without its password, for messages
	pass  string // the password, to scrub from messages
	nowFn func() time.Time
	rand  io.Reader
	uses  *keystore.UseQueue // the uses queued by RecordUse (uses.go)
	feed  *feed              // nil unless Options.Watch
}

var _ keystore.Store = (*Store)(nil)

// Open connects to the database that dsn names (pgx's URL form, with the
// usual PG* variables and ~/.pgpass), brings its schema up to date, and
// refuses a database that a newer keyctl migrated.
func Open(dsn string, opts Options) (*Store, error) {
	name := Redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, keystore.Errorf(keystore.EINVALID, "invalid store %s: %s", name, scrub(oneLine(err.Error()), ""))
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "keyctl"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	s := &Store{name: name, pass: cfg.ConnConfig.Password, nowFn: opts.Now, rand: opts.Rand}
	if s.nowFn == nil {
		s.nowFn = time.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.fail(ctx, "open", err)
	}
	if err := s.migrate(ctx, opts.MustExist); err != nil {
		s.pool.Close()
		return nil, err
	}
	s.uses = keystore.NewUseQueue(opts.UseFlushInterval, s.writeUses)
	if opts.Watch {
		if s.feed, err = startFeed(s, cfg.ConnConfig); err != nil {
			s.uses.Stop(context.Background())
			s.pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close writes the uses of keys not yet written, stops the feed and
// releases the store's connections.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.uses.Stop(ctx)
	if s.feed != nil {
		s.feed.stop()
	}
	s.pool.Close()
	return err
}

var _ keystore.Readier = (*Store)(nil)

// Ready reports whether the store can serve: the database answers and,
// with Options.Watch, the change feed is connected or its polling is recent.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "check store", err)
	}
	if s.feed != nil {
		return s.feed.ready()
	}
	return nil
}

// schemaVersion reads the version of the database's schema: 0 when keyctl
// never migrated it.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('keyctl_schema') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, "SELECT version FROM keyctl_schema").Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// migrate applies the pending migrations, all in one transaction under an
// advisory lock (pg_advisory_lock), so that replicas starting together migrate once and none
// sees half a schema.
func (s *Store) migrate(ctx context.Context, mustExist bool) error {
	const op = "upgrade"
	version, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return s.fail(ctx, "open", err)
	}
	if version == 0 && mustExist {
		return noStoreError{keystore.Errorf(keystore.EUNAVAILABLE, "store %s does not exist (the database holds no keyctl tables)", s.name)}
	}
	if version == SchemaVersion {
		return nil
	}
	if version > SchemaVersion {
		return s.newerError(version)
	}
	// The lock is the session's, taken before the transaction begins: a
	// transaction that began before another replica's migration committed
	// may see stale catalog entries (to_regclass) even after waiting for it.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return s.fail(ctx, op, err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(migrateLock)); err != nil {
			conn.Conn().Close(context.Background()) // closing the session releases the lock
		}
	}()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer tx.Rollback(context.Background())
	if version, err = schemaVersion(ctx, tx); err != nil {
		return s.fail(ctx, op, err)
	}
	if version > SchemaVersion {
		return s.newerError(version)
	}
	if version == 0 {
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS keyctl_schema (version integer NOT NULL)"); err != nil {
			return s.fail(ctx, op, err)
		}
	}
	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations()[v]); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42P07" { // duplicate_table
				return keystore.Errorf(keystore.EUNAVAILABLE,
					"upgrade store %s to schema %d: %s: the database holds tables that keyctl did not make (use a database or schema of its own)",
					s.name, v+1, pe.Message)
			}
			return s.fail(ctx, fmt.Sprintf("%s to schema %d", op, v+1), err)
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM keyctl_schema"); err != nil {
		return s.fail(ctx, op, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO keyctl_schema (version) VALUES ($1)", SchemaVersion); err != nil {
		return s.fail(ctx, op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// noStoreError is Open's refusal, with Options.MustExist, of a database
// that holds no store: a keystore.Error that NoStore can tell.
type noStoreError struct{ err *keystore.Error }

func (e noStoreError) Error() string { return e.err.Error() }
func (e noStoreError) Unwrap() error { return e.err }

// NoStore reports whether err is Open's refusal, with Options.MustExist, of
// a database that holds no store.
func NoStore(err error) bool {
	_, ok := errors.AsType[noStoreError](err)
	return ok
}

func (s *Store) newerError(version int) error {
	return keystore.Errorf(keystore.EUNAVAILABLE,
		"store %s was written by a newer keyctl (schema %d, this build knows %d); upgrade keyctl",
		s.name, version, SchemaVersion)
}

// fail turns an error met during op into one a user can act on: domain
// errors pass through, a cancelled context stays recognisable with
// errors.Is, and database errors become a keystore.Error naming the store,
// never its password.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if _, ok := errors.AsType[*keystore.Error](err); ok {
		return err
	}
	if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	msg := scrub(oneLine(err.Error()), s.pass)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		// The database never sees a secret, only its hash: its message is
		// safe to show.
		switch {
		case pe.Code == "53100":
			return keystore.Errorf(keystore.EUNAVAILABLE, "%s: disk full writing store %s", op, s.name)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"), pe.Code == "28P01", pe.Code == "28000", pe.Code == "3D000":
			return keystore.Errorf(keystore.EUNAVAILABLE, "%s: cannot use store %s: %s", op, s.name, msg)
		}
		return keystore.Errorf(keystore.EINTERNAL, "%s in store %s: %s", op, s.name, msg)
	}
	// Anything else is a failure to reach the database.
	return keystore.Errorf(keystore.EUNAVAILABLE, "%s: cannot reach store %s: %s", op, s.name, msg)
}

// Redact returns dsn with its password, if any, replaced by xxxxx, so that
// it can be shown.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

var passwordParam = regexp.MustCompile(`(?i)(password=)('[^']*'|[^\s&]*)`)

// scrub removes a password from a message from pgx.
func scrub(msg, pass string) string {
	if pass != "" {
		msg = strings.ReplaceAll(msg, pass, "xxxxx")
	}
	return passwordParam.ReplaceAllString(msg, "${1}xxxxx")
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
