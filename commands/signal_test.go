package commands

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// waitFor waits for cmd to end after a signal, failing the test if it
// takes a second.
func waitFor(t *testing.T, cmd *exec.Cmd, done <-chan error) *exec.ExitError {
	t.Helper()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("keyctl ended with %v, want an exit status", err)
		}
		return ee
	case <-time.After(time.Second):
		cmd.Process.Kill()
		t.Fatal("keyctl still running a second after SIGINT")
	}
	return nil
}

// SIGINT stops an import that waits for input: it says "interrupted",
// exits 130 and leaves the records it had read but not written out.
func TestInterruptedImportExits130(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)
	cmd, _, stderr := keyctlCmd(t, env, "", "import", "-")
	cmd.Stdin = nil
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	defer in.Close()
	io.WriteString(in, `{"key_sha256":"`+strings.Repeat("ab", 32)+`","name":"half read"}`+"\n")
	time.Sleep(300 * time.Millisecond) // it is reading; stdin stays open
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	ee := waitFor(t, cmd, done)
	if ee.ExitCode() != exitInterrupted {
		t.Errorf("exit status %v, want %d; stderr:\n%s", ee, exitInterrupted, stderr)
	}
	if !strings.Contains(stderr.String(), "interrupted\n") {
		t.Errorf("stderr does not say interrupted:\n%s", stderr)
	}
	if got := stateAt(t, store).keys; len(got) != 0 {
		t.Errorf("%d keys imported, want none", len(got))
	}
}

// verify leaves SIGINT to its default action: waiting for a store that
// another process is writing, it ends at once, by the signal, and the
// store is as it was.
func TestInterruptedVerifyEndsBySignal(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)
	keys := seedStore(t, store, time.Now().Add(-time.Hour), 1,
		keystore.CreateParams{Name: "svc", Scopes: []string{"bots:read"}})

	// A writer holds the store: verify reads the key, then waits to record
	// its use.
	conn, err := rawStore(t, store).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	cmd, _, stderr := keyctlCmd(t, env, "", "verify", keys[0].Secret)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("verify did not wait for the writer: %v, stderr:\n%s", err, stderr)
	case <-time.After(500 * time.Millisecond):
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	ee := waitFor(t, cmd, done)
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("verify ended with %v, want killed by SIGINT (which shells report as 130)", ee)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	var lastUsed sql.NullInt64
	if err := conn.QueryRowContext(context.Background(), "SELECT last_used_at FROM keys WHERE id = ?", keys[0].ID).Scan(&lastUsed); err != nil {
		t.Fatal(err)
	}
	if lastUsed.Valid {
		t.Errorf("last use recorded by a verify that was interrupted: %v", lastUsed.Int64)
	}
}

// A command stuck on a read that the first SIGINT cannot cancel (import
// --strict checks its input before it starts, reading it in the command's
// own goroutine) ends at the second.
func TestSecondInterruptEndsStuckCommand(t *testing.T) {
	dir := t.TempDir()
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+filepath.Join(dir, "keys.db"))
	cmd, _, stderr := keyctlCmd(t, env, "", "import", "--strict", "-")
	cmd.Stdin = nil
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	for range 2 {
		if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ee := waitFor(t, cmd, done)
	ws, _ := ee.Sys().(syscall.WaitStatus)
	if ee.ExitCode() != exitInterrupted && ws.Signal() != syscall.SIGINT {
		t.Errorf("ended with %v, want 130 or killed by SIGINT; stderr:\n%s", ee, stderr)
	}
}
