package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

func open(t *testing.T, dsn string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	pgtest.Admin(t)
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		return open(t, pgtest.DSN(t), postgres.Options{Now: clock.Now})
	})
}

// The store of keyctl serve, with its change feed, passes the same
// contract.
func TestContractWatching(t *testing.T) {
	pgtest.Admin(t)
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		return open(t, pgtest.DSN(t), postgres.Options{Now: clock.Now, Watch: true})
	})
}

func TestMigrationsNumbered(t *testing.T) {
	names := postgres.MigrationNames()
	if len(names) != postgres.SchemaVersion {
		t.Fatalf("%d migrations, SchemaVersion %d", len(names), postgres.SchemaVersion)
	}
	for i, n := range names {
		if want := fmt.Sprintf("migrations/%04d_", i+1); len(n) < len(want) || n[:len(want)] != want {
			t.Errorf("migration %d is %s, want %s*.sql", i+1, n, want)
		}
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func query[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(ctx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(ctx(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// A database that a newer keyctl migrated is refused, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	open(t, dsn, postgres.Options{}).Close()
	pgtest.Exec(t, dsn, "UPDATE keyctl_schema SET version = 99")
	_, err := postgres.Open(dsn, postgres.Options{})
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), fmt.Sprintf("newer keyctl (schema 99, this build knows %d); upgrade keyctl", postgres.SchemaVersion)) {
		t.Fatalf("Open = %v, want the newer-schema error", err)
	}
	if v := query[int32](t, dsn, "SELECT version FROM keyctl_schema"); v != 99 {
		t.Errorf("schema version %d after the refusal, want 99", v)
	}
}

// Replicas that start together on a new database migrate it once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(dsn, postgres.Options{})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	if rows := query[int64](t, dsn, "SELECT count(*) FROM keyctl_schema"); rows != 1 {
		t.Errorf("%d rows in keyctl_schema, want 1", rows)
	}
}

// A database with tables of its own that keyctl did not make is refused
// with a message that says so.
func TestForeignTablesRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	pgtest.Exec(t, dsn, "CREATE TABLE keys (x int)")
	_, err := postgres.Open(dsn, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "tables that keyctl did not make") {
		t.Fatalf("Open = %v, want the foreign-tables error", err)
	}
}

// A password in the DSN never shows in an error.
func TestPasswordNotShown(t *testing.T) {
	for _, dsn := range []string{
		"postgres://postgres:s3cretpw@127.0.0.1:1/keyctl?sslmode=disable&connect_timeout=2",
		"postgresql://postgres@127.0.0.1:1/keyctl?sslmode=disable&password=s3cretpw&connect_timeout=2",
		"postgres://postgres:s3cretpw@127.0.0.1:1/keyctl?sslmode=bogus",
	} {
		_, err := postgres.Open(dsn, postgres.Options{})
		if err == nil {
			t.Fatalf("Open(%s) succeeded", postgres.Redact(dsn))
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("error does not name the server: %v", err)
		}
	}
	if got := postgres.Redact("postgres://u:pw@h/db?password=pw2"); strings.Contains(got, "pw@") || strings.Contains(got, "pw2") {
		t.Errorf("Redact = %s", got)
	}
}

// A revocation is judged by revoked_at being set: a replica whose clock is
// an hour behind the revoking one's refuses the key too.
func TestRevokedWhateverTheClock(t *testing.T) {
	dsn := pgtest.DSN(t)
	now := time.Now()
	a := open(t, dsn, postgres.Options{Now: func() time.Time { return now }})
	defer a.Close()
	b := open(t, dsn, postgres.Options{Now: func() time.Time { return now.Add(-time.Hour) }})
	defer b.Close()
	k, err := b.Create(ctx(t), keystore.CreateParams{Name: "skew", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	v, err := b.Verify(ctx(t), k.Secret, nil)
	if err != nil || v.Code != keystore.CodeRevoked {
		t.Fatalf("Verify on the replica behind = %+v, %v; want revoked", v, err)
	}
	got, err := b.Get(ctx(t), k.ID)
	if err != nil || got.Status != keystore.StatusRevoked {
		t.Errorf("Get on the replica behind: %+v, %v; want status revoked", got, err)
	}
	if n, err := b.Count(ctx(t), keystore.ListFilter{Status: keystore.StatusRevoked}); err != nil || n != 1 {
		t.Errorf("Count(revoked) = %d, %v; want 1", n, err)
	}
}

// Verify writes no use per request: uses are written in batches, and the
// last ones when the store closes.
func TestUsesWrittenInBatches(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, postgres.Options{UseFlushInterval: time.Hour})
	b := open(t, dsn, postgres.Options{})
	defer b.Close()
	k, err := a.Create(ctx(t), keystore.CreateParams{Name: "used", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if v, err := a.Verify(ctx(t), k.Secret, nil); err != nil || !v.Valid {
			t.Fatalf("Verify = %+v, %v", v, err)
		}
	}
	if got, _ := a.Get(ctx(t), k.ID); got.LastUsedAt == nil {
		t.Error("the verifying store does not show the use it holds")
	}
	if got, _ := b.Get(ctx(t), k.ID); got.LastUsedAt != nil {
		t.Errorf("last_used_at %v in the database before the flush", got.LastUsedAt)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx(t), k.ID); got.LastUsedAt == nil {
		t.Error("Close did not write the use")
	}
}

// The change feed sees a change made through another store, also after its
// connection was cut with pg_terminate_backend, and Ready says whether it
// is connected.
func TestFeed(t *testing.T) {
	dsn := pgtest.DSN(t)
	w := open(t, dsn, postgres.Options{Watch: true})
	defer w.Close()
	other := open(t, dsn, postgres.Options{})
	defer other.Close()

	change := func() int64 {
		t.Helper()
		if _, err := other.Create(ctx(t), keystore.CreateParams{Name: "k", Scopes: []string{"bots:read"}}); err != nil {
			t.Fatal(err)
		}
		v, err := other.Version(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	wait := func(what string, v int64) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx(t), 10*time.Second)
		defer cancel()
		if err := w.WaitVersion(c, v); err != nil {
			t.Fatalf("%s: version %d not seen: %v", what, v, err)
		}
	}
	wait("first change", change())
	if err := w.Ready(ctx(t)); err != nil {
		t.Fatalf("Ready = %v", err)
	}

	killed := query[int64](t, dsn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'keyctl-feed'`)
	if killed != 1 {
		t.Fatalf("terminated %d feed connections, want 1", killed)
	}
	wait("change after the feed's connection was cut", change())
	if err := w.Ready(ctx(t)); err != nil {
		t.Errorf("Ready after reconnecting = %v", err)
	}
}

// Ready fails once the database is gone.
func TestReadyFailsWithoutDatabase(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{Watch: true})
	defer s.Close()
	if err := s.Ready(ctx(t)); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	pgtest.Exec(t, pgtest.Admin(t), "DROP DATABASE "+name+" WITH (FORCE)")
	err = s.Ready(ctx(t))
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE {
		t.Fatalf("Ready without the database = %v, want unavailable", err)
	}
}

// Verify goes on after the pool's connections were cut: it sends the read
// again on a new connection.
func TestVerifyAfterConnectionsCut(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{})
	defer s.Close()
	k, err := s.Create(ctx(t), keystore.CreateParams{Name: "k", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		killed := query[int64](t, dsn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'keyctl'`)
		if killed == 0 {
			t.Fatal("no connection of the store to cut")
		}
		if v, err := s.Verify(ctx(t), k.Secret, nil); err != nil || !v.Valid {
			t.Fatalf("Verify after the connections were cut = %+v, %v", v, err)
		}
	}
}

// With MustExist, a database without a store is refused and left empty.
func TestMustExist(t *testing.T) {
	dsn := pgtest.DSN(t)
	_, err := postgres.Open(dsn, postgres.Options{MustExist: true})
	if !postgres.NoStore(err) || keystore.ErrorCode(err) != keystore.EUNAVAILABLE {
		t.Fatalf("Open = %v, want the no-store error", err)
	}
	if n := query[int64](t, dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("%d tables after the refusal, want 0", n)
	}
	open(t, dsn, postgres.Options{}).Close()
	open(t, dsn, postgres.Options{MustExist: true}).Close()
}

// Stores in two schemas of one database (search_path) are apart: each
// has its own tables and its feed follows its own changes only.
func TestSchemasApart(t *testing.T) {
	dsn := pgtest.DSN(t)
	pgtest.Exec(t, dsn, "CREATE SCHEMA a; CREATE SCHEMA b")
	with := func(schema string) string {
		u, _ := url.Parse(dsn)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	a := open(t, with("a"), postgres.Options{})
	defer a.Close()
	b := open(t, with("b"), postgres.Options{Watch: true})
	defer b.Close()
	create := func(s *postgres.Store) {
		t.Helper()
		if _, err := s.Create(ctx(t), keystore.CreateParams{Name: "k", Scopes: []string{"bots:read"}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		create(a)
	}
	create(b)
	create(b)
	c, cancel := context.WithTimeout(ctx(t), 10*time.Second)
	defer cancel()
	if err := b.WaitVersion(c, 2); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Version(ctx(t)); v != 2 {
		t.Errorf("b's feed is at version %d, want 2 (a made 3 changes)", v)
	}
	if n, err := b.Count(ctx(t), keystore.ListFilter{}); err != nil || n != 2 {
		t.Errorf("b holds %d keys, %v; want 2", n, err)
	}
}

// Schema 2 adds disabled_at: a database of schema 1 is brought up to it,
// its keys enabled, and a key can then be disabled.
func TestMigrateToSchema2(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{})
	k, err := s.Create(ctx(t), keystore.CreateParams{Name: "old", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	undoSchema5(t, dsn)
	undoSchema4(t, dsn)
	undoSchema3(t, dsn)
	pgtest.Exec(t, dsn, "DROP INDEX audit_events_action")
	pgtest.Exec(t, dsn, "ALTER TABLE keys DROP COLUMN disabled_at")
	pgtest.Exec(t, dsn, "UPDATE keyctl_schema SET version = 1")

	s = open(t, dsn, postgres.Options{})
	defer s.Close()
	got, err := s.Get(ctx(t), k.ID)
	if err != nil || got.DisabledAt != nil || got.Status != keystore.StatusActive {
		t.Fatalf("Get after the upgrade = %+v, %v; want an active key", got, err)
	}
	if v := query[int32](t, dsn, "SELECT version FROM keyctl_schema"); v != postgres.SchemaVersion {
		t.Errorf("schema version %d after the upgrade, want %d", v, postgres.SchemaVersion)
	}
	if d, err := s.Disable(ctx(t), k.ID); err != nil || d.Status != keystore.StatusDisabled {
		t.Fatalf("Disable after the upgrade = %+v, %v", d, err)
	}
}

// undoSchema3 takes a database back to schema 2, as an older keyctl left
// it: sealed replies instead of claims.
func undoSchema3(t *testing.T, dsn string) {
	t.Helper()
	pgtest.Exec(t, dsn, "DROP TABLE idempotency_claims")
	pgtest.Exec(t, dsn, "CREATE TABLE idempotent_replies (lookup bytea PRIMARY KEY, record bytea NOT NULL, created_at timestamptz NOT NULL)")
	pgtest.Exec(t, dsn, "CREATE INDEX idempotent_replies_created_at ON idempotent_replies (created_at)")
	pgtest.Exec(t, dsn, "UPDATE keyctl_schema SET version = 2")
}

// Schema 3 drops the sealed replies of schema 1 and claims Idempotency-Keys
// instead.
func TestMigrateToSchema3(t *testing.T) {
	dsn := pgtest.DSN(t)
	open(t, dsn, postgres.Options{}).Close()
	undoSchema5(t, dsn)
	undoSchema4(t, dsn)
	undoSchema3(t, dsn)
	pgtest.Exec(t, dsn, "INSERT INTO idempotent_replies VALUES ('\\x01', 'sealed', now())")
	s := open(t, dsn, postgres.Options{})
	defer s.Close()
	if n := query[int64](t, dsn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'idempotent_replies'"); n != 0 {
		t.Errorf("the sealed replies' table is still there")
	}
	if v := query[int32](t, dsn, "SELECT version FROM keyctl_schema"); v != postgres.SchemaVersion {
		t.Errorf("schema version %d, want %d", v, postgres.SchemaVersion)
	}
}

// undoSchema4 takes a database back to schema 3, as an older keyctl left
// it: no scope uses.
func undoSchema4(t *testing.T, dsn string) {
	t.Helper()
	pgtest.Exec(t, dsn, "ALTER TABLE keys DROP COLUMN scope_uses")
	pgtest.Exec(t, dsn, "UPDATE keyctl_schema SET version = 3")
}

// Schema 4 adds scope_uses: a database of schema 3 is brought up to it,
// its keys with no recorded scope use; a verification then records one,
// and it is written to the database.
func TestMigrateToSchema4(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{})
	k, err := s.Create(ctx(t), keystore.CreateParams{Name: "old", Scopes: []string{"bots:read", "bots:write"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	undoSchema5(t, dsn)
	undoSchema4(t, dsn)

	s = open(t, dsn, postgres.Options{})
	got, err := s.Get(ctx(t), k.ID)
	if err != nil || len(got.UsedScopes) != 0 {
		t.Fatalf("Get after the upgrade = %+v, %v; want no scope use", got, err)
	}
	if v := query[int32](t, dsn, "SELECT version FROM keyctl_schema"); v != postgres.SchemaVersion {
		t.Errorf("schema version %d, want %d", v, postgres.SchemaVersion)
	}
	if v, err := s.Verify(ctx(t), k.Secret, []string{"bots:write"}); err != nil || !v.Valid {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	if err := s.Close(); err != nil { // writes the queued uses
		t.Fatal(err)
	}
	if got := query[string](t, dsn, "SELECT scope_uses::text FROM keys WHERE id = '"+k.ID+"'"); !strings.Contains(got, `"bots:write"`) || strings.Contains(got, "bots:read") {
		t.Errorf("scope_uses = %s, want bots:write alone", got)
	}
}

// undoSchema5 takes a database back to schema 4, as an older keyctl left
// it: no delivery of rotated secrets.
func undoSchema5(t *testing.T, dsn string) {
	t.Helper()
	for _, col := range []string{"delivery", "delivery_due", "delivery_grace"} {
		pgtest.Exec(t, dsn, "ALTER TABLE keys DROP COLUMN "+col)
	}
	pgtest.Exec(t, dsn, "UPDATE keyctl_schema SET version = 4")
}

// Schema 5 adds the delivery of rotated secrets: a database of schema 4
// is brought up to it, its keys without a delivery, and a rotation can
// then await its delivery.
func TestMigrateToSchema5(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{})
	k, err := s.Create(ctx(t), keystore.CreateParams{Name: "old", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	undoSchema5(t, dsn)

	s = open(t, dsn, postgres.Options{})
	defer s.Close()
	got, err := s.Get(ctx(t), k.ID)
	if err != nil || got.Delivery != nil {
		t.Fatalf("Get after the upgrade = %+v, %v; want no delivery", got, err)
	}
	if v := query[int32](t, dsn, "SELECT version FROM keyctl_schema"); v != postgres.SchemaVersion {
		t.Errorf("schema version %d after the upgrade, want %d", v, postgres.SchemaVersion)
	}
	nk, err := s.Rotate(ctx(t), k.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
	if err != nil || nk.Delivery == nil || *nk.Delivery != keystore.DeliveryPending {
		t.Fatalf("Rotate after the upgrade = %+v, %v", nk, err)
	}
	if _, err := s.ConfirmDelivery(ctx(t), nk.ID); err != nil {
		t.Fatalf("ConfirmDelivery after the upgrade: %v", err)
	}
}
