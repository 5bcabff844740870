// Package sqlite is a keystore.Store on a local SQLite file: keyctl's default
// store, which needs no server.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlstore"
)

// applicationID marks a SQLite file as a keyctl store ("keyc" in ASCII), so
// that keyctl never takes another program's database for its own.
const applicationID = 0x6b657963

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// Every connection of the pool gets these pragmas, so they belong in the DSN.
// _txlock=immediate makes every transaction take the write lock up front: a
// read transaction that later writes would get SQLITE_BUSY despite the
// busy timeout when another process writes first. secure_delete overwrites
// deleted rows, such as purged idempotent replies, rather than leaving their
// bytes in free pages of the file.
const readWriteParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(1)&_txlock=immediate"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the schema changes in order. A store at schema version N
// (PRAGMA user_version) has had the first N applied. They are read when
// first needed, not at start-up: most commands open an up-to-date store.
var migrations = sync.OnceValue(func() []string { return sqlstore.Migrations(migrationFiles) })

// schemaVersion is the number of migrations, the schema version of a store
// that is up to date; a test holds it equal to len(migrations()).
const schemaVersion = 7

// Options are the store's hooks for time and randomness, so that tests are
// deterministic. The zero value uses time.Now and crypto/rand.
type Options struct {
	Now  func() time.Time
	Rand io.Reader // must be safe for concurrent use when the store is

	// MustExist refuses a store file that does not exist, instead of
	// creating it: for commands that only read or change existing keys.
	MustExist bool

	// MaxConns bounds the store's SQLite connections, each of which holds
	// file descriptors (the database and its -wal file); more callers at
	// once wait for one. 0 means DefaultMaxConns.
	MaxConns int
}

// DefaultMaxConns is the default bound of a store's connections: enough
// for SQLite, which writes one transaction at a time and reads from memory
// mostly, to keep a server's CPUs busy.
const DefaultMaxConns = 16

// FilesPerConn is how many file descriptors one SQLite connection holds at
// most (the database, its -wal and -shm files), for a caller that budgets
// descriptors.
const FilesPerConn = 3

// Store is a keystore.Store on a SQLite file. It is safe for concurrent use,
// also by several processes on one file.
type Store struct {
	db    *sql.DB
	path  string // as the user gave it, for messages
	nowFn func() time.Time
	rand  io.Reader
	uses  *keystore.UseQueue // the uses queued by RecordUse

	integrity integrity // checked before the first write
}

var _ keystore.Store = (*Store)(nil)

// Open opens the store at path, creating it (mode 0600, in a folder of mode
// 0700) when it does not exist unless opts.MustExist, and brings its schema up to date. It refuses,
// without changing a byte, a file that is not a keyctl store or that a newer
// keyctl wrote.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, keystore.Errorf(keystore.EINVALID, "no store path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, keystore.Errorf(keystore.EUNAVAILABLE, "open store %s: %v", path, err)
	}
	if opts.MustExist {
		if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			return nil, keystore.Errorf(keystore.EUNAVAILABLE, "no key store at %s", path)
		}
	}
	isNew, err := prepareFile(path, abs)
	if err != nil {
		return nil, err
	}
	if !isNew {
		if err := checkExisting(path, abs); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", fileURI(abs, readWriteParams))
	if err != nil {
		return nil, storeError(path, "open", err)
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	s := &Store{db: db, path: path, nowFn: opts.Now, rand: opts.Rand}
	if s.nowFn == nil {
		s.nowFn = time.Now
	}
	if err := s.init(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	s.uses = keystore.NewUseQueue(useFlushInterval, s.writeUses)
	return s, nil
}

// Close writes the uses queued by RecordUse, if any, and releases the
// store's connections.
func (s *Store) Close() error {
	flushErr := s.uses.Stop(context.Background())
	if err := s.db.Close(); err != nil {
		return storeError(s.path, "close store", err)
	}
	return flushErr
}

// prepareFile makes sure that abs is a regular file, creating it and its
// folder when missing. keyctl creates the file itself, mode 0600 whatever the
// umask, before SQLite opens it, because SQLite would create it with 0644;
// SQLite gives the -wal and -shm files the mode of the database. It reports
// whether the store is new: a file just created or an empty one.
func prepareFile(path, abs string) (isNew bool, err error) {
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		created, err := createFile(abs)
		if err != nil {
			return false, keystore.Errorf(keystore.EUNAVAILABLE, "create store %s: %v", path, pathErr(err))
		}
		if created {
			return true, nil
		}
		// Another keyctl created it meanwhile: open it as an existing store.
		fi, err = os.Stat(abs)
		if err != nil {
			return false, keystore.Errorf(keystore.EUNAVAILABLE, "open store %s: %v", path, pathErr(err))
		}
	} else if err != nil {
		return false, keystore.Errorf(keystore.EUNAVAILABLE, "open store %s: %v", path, pathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return false, keystore.Errorf(keystore.EUNAVAILABLE, "%s is not a keyctl store (not a regular file)", path)
	}
	return fi.Size() == 0, nil
}

// createFile creates abs, mode 0600, and its folder, mode 0700. It reports
// false when the file exists already.
func createFile(abs string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = f.Chmod(0o600) // the umask may have taken bits away
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}

// pathErr drops the path from an *fs.PathError: messages name the store
// path as the user gave it already.
func pathErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// checkExisting refuses a file that this build must not write to: one that
// is not SQLite, another program's database, or a store of a newer keyctl.
// It reads through a read-only connection, so a refused file keeps every
// byte, and no -wal or -shm file appears beside it.
func checkExisting(path, abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return keystore.Errorf(keystore.EUNAVAILABLE, "open store %s: %v", path, pathErr(err))
	}
	header := make([]byte, 100)
	n, err := io.ReadFull(f, header)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return keystore.Errorf(keystore.EUNAVAILABLE, "open store %s: %v", path, pathErr(err))
	}
	if n < len(sqliteHeader) || string(header[:len(sqliteHeader)]) != sqliteHeader {
		return notSQLite(path)
	}

	// Even read-only, SQLite creates -wal and -shm files beside a database
	// in WAL mode, and leaves them. With no -wal file the main file holds
	// the whole database, and immutable=1 reads it without creating any.
	immutable := !exists(abs + "-wal")
	if immutable && n == len(header) && plainStore(header) {
		return nil
	}
	info, err := inspect(abs, immutable)
	if immutable && (err != nil || info.refuse() != "") && exists(abs+"-wal") {
		// Another keyctl opened the file meanwhile, perhaps making it a
		// store as we read without locks: read again, with locks.
		info, err = inspect(abs, false)
	}
	if err != nil {
		return storeError(path, "open", err)
	}
	switch info.refuse() {
	case "foreign":
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s is a SQLite database of another program, not a keyctl store", path)
	case "newer":
		return newerError(path, info.version)
	}
	return nil
}

// plainStore reports whether the 100-byte header of a database file, whose
// -wal file does not exist, shows a store this build may open: in WAL mode
// (so the file holds the whole database), with keyctl's application ID and
// a schema it knows. It spares a cold command (keyctl verify) a second
// SQLite connection; any other file gets the full check.
// https://www.sqlite.org/fileformat.html#the_database_header
func plainStore(h []byte) bool {
	pageSize := int(binary.BigEndian.Uint16(h[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	version := binary.BigEndian.Uint32(h[60:])
	return pageSize >= 512 && pageSize&(pageSize-1) == 0 &&
		h[18] == 2 && h[19] == 2 && // WAL
		h[21] == 64 && h[22] == 32 && h[23] == 32 &&
		binary.BigEndian.Uint32(h[68:]) == applicationID &&
		version > 0 && version <= schemaVersion
}

// fileInfo is what checkExisting reads from a database.
type fileInfo struct{ appID, version, objects int }

// refuse says why keyctl must not write to the database: "foreign",
// "newer", or "" when it may.
func (f fileInfo) refuse() string {
	switch {
	case f.appID != applicationID && (f.appID != 0 || f.version != 0 || f.objects > 0):
		return "foreign"
	case f.version > schemaVersion:
		return "newer"
	}
	return ""
}

// inspect reads a database's application ID, schema version and number of
// schema objects through a read-only connection, in one statement so that
// they agree.
func inspect(abs string, immutable bool) (info fileInfo, err error) {
	query := "mode=ro&_pragma=busy_timeout(5000)"
	if immutable {
		query += "&immutable=1"
	}
	db, err := sql.Open("sqlite", fileURI(abs, query))
	if err != nil {
		return info, err
	}
	defer db.Close()
	err = db.QueryRow(`SELECT a.application_id, v.user_version, (SELECT count(*) FROM sqlite_schema)
		FROM pragma_application_id AS a, pragma_user_version AS v`).Scan(&info.appID, &info.version, &info.objects)
	return info, err
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func notSQLite(path string) error {
	return keystore.Errorf(keystore.EUNAVAILABLE, "%s is not a keyctl store (not a SQLite database)", path)
}

func newerError(path string, version int) error {
	return keystore.Errorf(keystore.EUNAVAILABLE,
		"%s was written by a newer keyctl (schema %d, this build knows %d); upgrade keyctl",
		path, version, schemaVersion)
}

// fileURI is the SQLite URI of abs with query. Escaping the path keeps a
// '?', '#' or '%' in a file name from being read as part of the URI.
func fileURI(abs, query string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive: file:///C:/...
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: query}
	return u.String()
}

// init checks that WAL mode took and applies pending migrations.
func (s *Store) init(ctx context.Context) error {
	// The first connection switches a new store to WAL, which needs an
	// exclusive lock that SQLite does not wait for when another process is
	// doing the same (waiting could deadlock): that process gets SQLITE_BUSY
	// at once. The switch is brief, so try again, for up to the busy timeout.
	var mode string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return s.fail(ctx, "open", err)
		}
	}
	if !strings.EqualFold(mode, "wal") {
		return keystore.Errorf(keystore.EUNAVAILABLE,
			"open store %s: write-ahead logging is not available (journal mode %s)", s.path, mode)
	}
	// Read the version outside a write transaction first, so that an up to
	// date store on a read-only file opens for reading.
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.fail(ctx, "open", err)
	}
	migrated := version != schemaVersion
	for version != schemaVersion {
		var err error
		if version, err = s.migrate(ctx); err != nil {
			return err
		}
	}
	if migrated {
		// A migration may drop data (schema 5: replies sealed with a
		// guessable key), which must leave the -wal file too.
		s.checkpoint(ctx)
	}
	return nil
}

// migrate applies the next migration, if any, in its own transaction and
// returns the new schema version. The version is read again inside the
// write transaction, so two processes opening a new store at once apply
// each migration once.
func (s *Store) migrate(ctx context.Context) (version int, err error) {
	const op = "upgrade"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.fail(ctx, op, err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, s.fail(ctx, op, err)
	}
	if version > schemaVersion {
		return 0, newerError(s.path, version)
	}
	if version == schemaVersion {
		return version, nil
	}
	if err := s.checkBeforeWrite(ctx); err != nil {
		return 0, err
	}
	stmts := []string{
		migrations()[version],
		fmt.Sprintf("PRAGMA user_version = %d", version+1),
		fmt.Sprintf("PRAGMA application_id = %d", applicationID),
	}
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return 0, s.fail(ctx, fmt.Sprintf("%s to schema %d", op, version+1), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, s.fail(ctx, op, err)
	}
	return version + 1, nil
}

// fail turns an error met during op into one a user can act on: domain
// errors pass through, a cancelled context stays recognisable with
// errors.Is, and SQLite errors become a keystore.Error naming the store.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if _, ok := errors.AsType[*keystore.Error](err); ok {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return storeError(s.path, op, err)
}

func isBusy(err error) bool {
	return resultCode(err) == sqlite3.SQLITE_BUSY
}

// resultCode is the primary SQLite result code of err, 0 if none.
func resultCode(err error) int {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code() & 0xff
	}
	return 0
}

func storeError(path, op string, err error) error {
	switch resultCode(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s: store %s is busy (another keyctl is writing to it); try again", op, path)
	case sqlite3.SQLITE_READONLY:
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s: store %s is read-only (check the permissions of the file, of its -wal and -shm files, and of its folder)", op, path)
	case sqlite3.SQLITE_FULL:
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s: disk full writing store %s", op, path)
	case sqlite3.SQLITE_NOTADB:
		return notSQLite(path)
	case sqlite3.SQLITE_CORRUPT:
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s: store %s is damaged", op, path)
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM:
		return keystore.Errorf(keystore.EUNAVAILABLE, "%s: cannot access store %s: %v", op, path, err)
	}
	// SQLite never sees a secret, only its hash, so its message is safe to show.
	return keystore.Errorf(keystore.EINTERNAL, "%s in store %s: %v", op, path, err)
}

var _ keystore.Readier = (*Store)(nil)

// Ready reports whether the store can serve now: its file can be read.
func (s *Store) Ready(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM keys LIMIT 1)").Scan(&n); err != nil {
		return s.fail(ctx, "check store", err)
	}
	return nil
}
