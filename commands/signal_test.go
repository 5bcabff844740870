package commands

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// waitFor waits for cmd to end after a signal, failing the test if it
// takes five seconds.
func waitFor(t *testing.T, cmd *exec.Cmd, done <-chan error) *exec.ExitError {
	t.Helper()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("keyctl ended with %v, want an exit status", err)
		}
		return ee
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("keyctl still running five seconds after SIGINT")
	}
	return nil
}

// waitCatching waits until process pid catches SIGINT, as Linux shows in
// /proc/PID/status; elsewhere it gives the process half a second.
func waitCatching(t *testing.T, pid int) {
	t.Helper()
	status := fmt.Sprintf("/proc/%d/status", pid)
	if _, err := os.Stat(status); err != nil {
		time.Sleep(500 * time.Millisecond)
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(status)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64); err == nil && m&(1<<(syscall.SIGINT-1)) != 0 {
					return
				}
			}
		}
	}
	t.Fatal("keyctl did not catch SIGINT within 10 seconds")
}

// SIGINT stops an import that waits for input: it says "interrupted",
// exits 130 and leaves the records it had read but not written out.
func TestInterruptedImportExits130(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)
	// The store exists already, however early the signal comes.
	seedStore(t, store, time.Now(), 0, keystore.CreateParams{})
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
	waitCatching(t, cmd.Process.Pid) // then it reads on; stdin stays open
	time.Sleep(100 * time.Millisecond)
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
	waitCatching(t, cmd.Process.Pid)
	// SIGINT every 0.1 s: the first cancels the command, stuck on its read;
	// one sent after the first was handled ends the process.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(5 * time.Second)
signals:
	for {
		if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case err = <-done:
			break signals
		case <-tick.C:
		case <-giveUp:
			cmd.Process.Kill()
			t.Fatal("keyctl still running after five seconds of SIGINTs")
		}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("keyctl ended with %v, want an exit status", err)
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	if ee.ExitCode() != exitInterrupted && ws.Signal() != syscall.SIGINT {
		t.Errorf("ended with %v, want 130 or killed by SIGINT; stderr:\n%s", ee, stderr)
	}
}
