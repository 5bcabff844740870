package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) keystore.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func create(t *testing.T, s keystore.Store, name string) *keystore.Key {
	t.Helper()
	k, err := s.Create(context.Background(), keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return k
}

// rawDB opens path with no pragmas, as another program would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func pragma(t *testing.T, path, name string) string {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// snapshot maps each file in dir to the SHA-256 of its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:])
	}
	return out
}

func TestRefuse(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{
			name:  "text file",
			setup: func(t *testing.T, path string) { writeFile(t, path, "profile: dev\nstore: keys.db\n") },
			want:  "PATH is not a keyctl store (not a SQLite database)",
		},
		{
			name:  "short file",
			setup: func(t *testing.T, path string) { writeFile(t, path, "SQLite") },
			want:  "PATH is not a keyctl store (not a SQLite database)",
		},
		{
			name: "sqlite header, then garbage",
			setup: func(t *testing.T, path string) {
				writeFile(t, path, "SQLite format 3\x00"+strings.Repeat("\xff", 4080))
			},
			want: "PATH is not a keyctl store (not a SQLite database)",
		},
		{
			name: "foreign database",
			setup: func(t *testing.T, path string) {
				db := rawDB(t, path)
				defer db.Close()
				execAll(t, db, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('keep me')")
			},
			want: "PATH is a SQLite database of another program, not a keyctl store",
		},
		{
			name: "foreign database in WAL mode",
			setup: func(t *testing.T, path string) {
				db := rawDB(t, path)
				defer db.Close()
				execAll(t, db, "PRAGMA journal_mode = WAL", "CREATE TABLE keys (id TEXT)", "INSERT INTO keys VALUES ('x')")
			},
			want: "PATH is a SQLite database of another program, not a keyctl store",
		},
		{
			name: "foreign application id",
			setup: func(t *testing.T, path string) {
				db := rawDB(t, path)
				defer db.Close()
				execAll(t, db, "PRAGMA application_id = 42")
			},
			want: "PATH is a SQLite database of another program, not a keyctl store",
		},
		{
			name: "newer keyctl",
			setup: func(t *testing.T, path string) {
				s, err := sqlite.Open(path, sqlite.Options{})
				if err != nil {
					t.Fatal(err)
				}
				create(t, s, "from the future")
				s.Close()
				db := rawDB(t, path)
				defer db.Close()
				execAll(t, db, "PRAGMA user_version = 99")
			},
			want: fmt.Sprintf("PATH was written by a newer keyctl (schema 99, this build knows %d); upgrade keyctl", sqlite.SchemaVersion),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keys.db")
			tt.setup(t, path)
			before := snapshot(t, dir)
			if len(before) != 1 {
				t.Fatalf("setup left %v", before)
			}

			s, err := sqlite.Open(path, sqlite.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if got := keystore.ErrorCode(err); got != keystore.EUNAVAILABLE {
				t.Errorf("error code %q, want %q", got, keystore.EUNAVAILABLE)
			}
			if want := strings.ReplaceAll(tt.want, "PATH", path); err.Error() != want {
				t.Errorf("error\n\t%s\nwant\n\t%s", err, want)
			}
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Errorf("Open changed the folder:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// A store that another keyctl has open has its -wal and -shm files; the
// check still must not write.
func TestRefuseNewerStoreInUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	open(t, path).Close()
	db := rawDB(t, path)
	defer db.Close()
	execAll(t, db, fmt.Sprintf("PRAGMA user_version = %d", sqlite.SchemaVersion+1), "CREATE TABLE later (x)")
	// Hold a read transaction, so that the -wal file stays as it is.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM keys").Scan(&n); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if _, ok := before["keys.db-wal"]; !ok {
		t.Fatalf("want a -wal file for this test, have %v", before)
	}

	_, err = sqlite.Open(path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("newer keyctl (schema %d, this build knows %d)", sqlite.SchemaVersion+1, sqlite.SchemaVersion)) {
		t.Fatalf("Open: %v, want a newer-keyctl error", err)
	}
	if after := snapshot(t, dir); !maps.Equal(before, after) {
		t.Errorf("Open changed the folder:\nbefore %v\nafter  %v", before, after)
	}
}

func TestRefuseFolder(t *testing.T) {
	dir := t.TempDir()
	_, err := sqlite.Open(dir, sqlite.Options{})
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(folder) = %v, want an EUNAVAILABLE error", err)
	}
	_, err = sqlite.Open("", sqlite.Options{})
	if keystore.ErrorCode(err) != keystore.EINVALID {
		t.Errorf(`Open("") = %v, want an EINVALID error`, err)
	}
}

func TestEmptyFileIsNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	writeFile(t, path, "")
	s := open(t, path)
	k := create(t, s, "first")
	if _, err := s.Get(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
}

func TestFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	create(t, s, "x")
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no -wal file while the store is open: %v", err)
	}
	s.Close()
	if got := pragma(t, path, "journal_mode"); got != "wal" {
		t.Errorf("journal_mode = %q, want wal", got)
	}
	if got := pragma(t, path, "user_version"); got != fmt.Sprint(sqlite.SchemaVersion) {
		t.Errorf("user_version = %q, want %d", got, sqlite.SchemaVersion)
	}
	if got := pragma(t, path, "application_id"); got != fmt.Sprint(0x6b657963) {
		t.Errorf("application_id = %q, want keyctl's", got)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	ctx := keystore.WithActor(context.Background(), "alice")
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := create(t, s, "a")
	b := create(t, s, "b")
	nb, err := s.Rotate(ctx, b.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	for _, k := range []*keystore.Key{a, b, nb} {
		if _, err := s.Get(ctx, k.ID); err != nil {
			t.Errorf("after reopening: %v", err)
		}
	}
	if n, err := s.Count(ctx, keystore.ListFilter{}); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
	for secret, want := range map[string]string{a.Secret: keystore.CodeValid, b.Secret: keystore.CodeRevoked, nb.Secret: keystore.CodeValid} {
		if v, err := s.Verify(ctx, secret, nil); err != nil || v.Code != want {
			t.Errorf("Verify after reopening = %+v, %v; want %s", v, err, want)
		}
	}
	if events, err := s.Audit(ctx, ""); err != nil || len(events) != 3 {
		t.Errorf("Audit after reopening = %d events, %v; want 3", len(events), err)
	}
}

// The secret must never reach the disk: neither the database nor its WAL.
func TestSecretNotOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	ctx := context.Background()
	var keys []*keystore.Key
	for i := range 5 {
		keys = append(keys, create(t, s, fmt.Sprint("k", i)))
	}
	nk, err := s.Rotate(ctx, keys[0].ID, keystore.RotateOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, nk)
	if _, err := s.Verify(ctx, nk.Secret, nil); err != nil {
		t.Fatal(err)
	}

	check := func(when string, files ...string) {
		t.Helper()
		var disk []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			disk = append(disk, b...)
		}
		for _, k := range keys {
			random := k.Secret[len("sk_live_"):]
			hash := keystore.HashToken(k.Secret)
			// The hash being there shows that the search looks in the right bytes.
			if !bytes.Contains(disk, hash[:]) {
				t.Errorf("%s: the hash of %s is not on disk", when, k.ID)
			}
			if bytes.Contains(disk, []byte(k.Secret)) || bytes.Contains(disk, []byte(random[:16])) || bytes.Contains(disk, []byte(random[16:])) {
				t.Errorf("%s: the secret of %s is on disk", when, k.ID)
			}
		}
	}
	check("store open", path, path+"-wal")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("store closed", path)
}

// Two processes opening a new store at once must both succeed and apply
// each migration once; each sql.DB here stands for a process.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "keys.db")
	const n = 6
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = sqlite.Open(path, sqlite.Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	for i, s := range stores {
		wg.Go(func() {
			_, errs[i] = s.Create(context.Background(), keystore.CreateParams{Name: fmt.Sprint("from ", i), Scopes: []string{"bots:read"}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c, err := stores[0].Count(context.Background(), keystore.ListFilter{}); err != nil || c != n {
		t.Errorf("Count = %d, %v; want %d", c, err, n)
	}
}

// The same with real processes, whose locks SQLite cannot coordinate in
// memory: the test binary runs itself.
func TestProcessesOpenAtOnce(t *testing.T) {
	if path := os.Getenv("KEYCTL_TEST_STORE"); path != "" {
		s, err := sqlite.Open(path, sqlite.Options{})
		if err == nil {
			_, err = s.Create(context.Background(), keystore.CreateParams{Name: "child", Scopes: []string{"bots:read"}})
			s.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "new", "keys.db")
	const n = 4
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessesOpenAtOnce$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KEYCTL_TEST_STORE="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	if c, err := open(t, path).Count(context.Background(), keystore.ListFilter{}); err != nil || c != n {
		t.Errorf("Count = %d, %v; want %d", c, err, n)
	}
}

func TestPathNeedsEscaping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we?ird #dir %41")
	path := filepath.Join(dir, "keys&x=1?.db")
	s := open(t, path)
	k := create(t, s, "x")
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the store is not at its path: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want 1", len(entries))
	}
	if _, err := open(t, path).Get(context.Background(), k.ID); err != nil {
		t.Error(err)
	}
}

// Batch rotation rotates keys while it lists them: the store must allow it,
// and the listing must not yield the new keys.
func TestRotateWhileListing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keys.db"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := map[string]bool{}
	for i := range 5 {
		want[create(t, s, fmt.Sprint("k", i)).ID] = true
	}
	rotated := map[string]bool{}
	for k, err := range s.List(ctx, keystore.ListOptions{ListFilter: keystore.ListFilter{Rotatable: true}}) {
		if err != nil {
			t.Fatal(err)
		}
		if rotated[k.ID] || !want[k.ID] {
			t.Fatalf("List yielded %s, which is new or already rotated", k.ID)
		}
		if _, err := s.Rotate(ctx, k.ID, keystore.RotateOptions{}); err != nil {
			t.Fatalf("Rotate while listing: %v", err)
		}
		rotated[k.ID] = true
	}
	if !maps.Equal(rotated, want) {
		t.Errorf("rotated %v, want %v", rotated, want)
	}
}

func TestListBadPaging(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keys.db"))
	for _, opts := range []keystore.ListOptions{{Offset: -1}, {Limit: -1}} {
		for _, err := range s.List(context.Background(), opts) {
			if keystore.ErrorCode(err) != keystore.EINVALID {
				t.Errorf("List(%+v): %v, want EINVALID", opts, err)
			}
		}
	}
}

func TestCancelledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keys.db"))
	k := create(t, s, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Create(ctx, keystore.CreateParams{Name: "y", Scopes: []string{"bots:read"}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a cancelled context: %v", err)
	}
	if _, err := s.Get(ctx, k.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v", err)
	}
	for _, err := range s.List(ctx, keystore.ListOptions{}) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("List with a cancelled context: %v", err)
		}
	}
	if n, err := s.Count(context.Background(), keystore.ListFilter{}); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

// Times are kept to the second; an expiry inside the current second is
// therefore not in the future.
func TestWholeSeconds(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 700_000_000, time.FixedZone("CET", 3600))
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	soon := now.Add(200 * time.Millisecond)
	_, err = s.Create(ctx, keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, ExpiresAt: &soon})
	if keystore.ErrorCode(err) != keystore.EINVALID {
		t.Errorf("expiry within the current second: %v, want EINVALID", err)
	}
	later := now.Add(90 * time.Minute)
	k, err := s.Create(ctx, keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, ExpiresAt: &later})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		got, want time.Time
	}{
		{"created_at (Create)", k.CreatedAt, now},
		{"created_at (Get)", got.CreatedAt, now},
		{"expires_at (Create)", *k.ExpiresAt, later},
		{"expires_at (Get)", *got.ExpiresAt, later},
	} {
		want := tt.want.UTC().Truncate(time.Second)
		if !tt.got.Equal(want) || tt.got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, want)
		}
	}

	// The key was created at second 12:00:00 (UTC+1), which is before
	// 12:00:00.7 but not before 12:00:00.
	for before, want := range map[time.Time]int{now: 1, now.Truncate(time.Second): 0} {
		if n, err := s.Count(ctx, keystore.ListFilter{CreatedBefore: before}); err != nil || n != want {
			t.Errorf("Count(created before %v) = %d, %v; want %d", before, n, err, want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// MustExist refuses a missing file and creates nothing, not even its folder.
func TestMustExist(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keys.db")
	s, err := sqlite.Open(path, sqlite.Options{MustExist: true})
	if err == nil {
		s.Close()
		t.Fatal("Open with MustExist opened a missing store")
	}
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), "no key store at "+path) {
		t.Errorf("Open = %v (%s), want EUNAVAILABLE naming the path", err, keystore.ErrorCode(err))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Open with MustExist left %v", entries)
	}
	s, err = sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(path, sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatalf("Open with MustExist on an existing store: %v", err)
	}
	s.Close()
}
