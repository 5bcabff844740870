//go:build unix

package sqlite_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// A new store is private whatever the umask: file 0600, folders 0700, and
// SQLite's -wal and -shm files take the file's mode.
func TestNewStoreModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	top := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(top, "keyctl", "keys.db")
	s := open(t, path)
	create(t, s, "x")

	want := map[string]fs.FileMode{
		top:                0o700 | fs.ModeDir,
		filepath.Dir(path): 0o700 | fs.ModeDir,
		path:               0o600,
		path + "-wal":      0o600,
		path + "-shm":      0o600,
	}
	for name, mode := range want {
		fi, err := os.Stat(name)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
}

// A store the user may read but not write opens for reading, and a change
// fails with a clear error.
func TestReadOnlyFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write to read-only files")
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	k := create(t, open(t, path), "x")
	for _, s := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(path+s, 0o400); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	s := open(t, path)
	ctx := context.Background()
	if _, err := s.Get(ctx, k.ID); err != nil {
		t.Errorf("Get from a read-only store: %v", err)
	}
	_, err := s.Revoke(ctx, k.ID)
	t.Log(err)
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Revoke in a read-only store: %v, want a read-only error", err)
	}
}

func TestReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write to read-only folders")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	first := open(t, path)
	create(t, first, "x")
	first.Close() // removes the -wal and -shm files
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)

	// SQLite cannot make its -shm file, so even reading fails; what matters
	// is a clear error, not a panic.
	s, err := sqlite.Open(path, sqlite.Options{})
	if err == nil {
		defer s.Close()
		_, err = s.Create(context.Background(), keystore.CreateParams{Name: "y", Scopes: []string{"bots:read"}})
	}
	t.Log(err)
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), path) {
		t.Errorf("read-only folder: %v, want an EUNAVAILABLE error naming the store", err)
	}

	_, err = sqlite.Open(filepath.Join(dir, "new", "keys.db"), sqlite.Options{})
	t.Log(err)
	if keystore.ErrorCode(err) != keystore.EUNAVAILABLE || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("new store in a read-only folder: %v, want an EUNAVAILABLE error", err)
	}
}
