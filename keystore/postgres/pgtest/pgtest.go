// Package pgtest gives tests a database of their own on the PostgreSQL
// server that KEYCTL_TEST_POSTGRES names, and drops it when they end.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the server for the tests: a DSN such as
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, of a role
// that may create databases.
const EnvVar = "KEYCTL_TEST_POSTGRES"

// Admin returns the DSN of KEYCTL_TEST_POSTGRES, and skips t when it is not
// set.
func Admin(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		t.Skipf("%s is not set: the PostgreSQL tests need a server (%s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", EnvVar, EnvVar)
	}
	return dsn
}

// DSN creates an empty database for t and returns its DSN; the database is
// dropped when t ends. It skips t when KEYCTL_TEST_POSTGRES is not set.
func DSN(t testing.TB) string {
	t.Helper()
	admin := Admin(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "keyctl_test_" + hex.EncodeToString(b)
	Exec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs sql on the database of dsn, failing t on error.
func Exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
