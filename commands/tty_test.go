//go:build linux

package commands

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/mattn/go-runewidth"
	"golang.org/x/sys/unix"

	"github.com/chatbotplatform/keyctl/keystore"
)

// A terminal session: keyctl on a real pseudo-terminal of a given size,
// as a person runs it. The terminal's input and output go through the
// pty's line discipline, so echo, Ctrl-C and the width are real.
type ttySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File // the controlling side
	tty  *os.File // keyctl's terminal
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func startTTY(t *testing.T, env []string, cols uint16, args ...string) *ttySession {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(keyctlPath(t), args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// Its own session, with the pty as controlling terminal: Ctrl-C
	// typed there signals keyctl.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &ttySession{t: t, cmd: cmd, ptmx: ptmx, tty: tty, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return s
}

func (s *ttySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitFor waits until the terminal shows want. The bound only keeps a
// broken build from hanging the test run.
func (s *ttySession) waitFor(want string) {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(s.output(), want) {
			return
		}
	}
	s.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, s.output())
}

// exit waits for keyctl to end and returns its exit status, -1 when a
// signal ended it.
func (s *ttySession) exit() int {
	s.t.Helper()
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		}
		s.t.Fatal(err)
	case <-time.After(20 * time.Second):
		s.t.Fatalf("keyctl did not end; the terminal shows:\n%s", s.output())
	}
	return 0
}

func (s *ttySession) write(text string) {
	s.t.Helper()
	if _, err := s.ptmx.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

// finalOutput is what the terminal showed once keyctl's output is drained.
func (s *ttySession) finalOutput() string {
	time.Sleep(50 * time.Millisecond) // the reader may hold the last bytes
	return strings.ReplaceAll(s.output(), "\r\n", "\n")
}

func ttyEnv(t *testing.T) (env []string, store string) {
	home := t.TempDir()
	store = filepath.Join(home, "keys.db")
	return childEnv(home, "KEYCTL_STORE="+store, "TERM=xterm"), store
}

// On a terminal, list fits the table to its width, sums scopes up, cuts
// long names with an ellipsis and says on stderr that --limit cut it. In a
// pipe every value stays whole.
func TestListOnTerminal(t *testing.T) {
	env, store := ttyEnv(t)
	long := "Nightly export of every conversation to the data warehouse in eu-west-1"
	seedStore(t, store, testNow.Add(-time.Hour), 55, keystore.CreateParams{Name: long,
		Scopes: []string{"bots:read", "bots:write", "channels:read", "conversations:read", "agent-loops:write"}})
	seedStore(t, store, testNow, 4, keystore.CreateParams{Name: "admin", Scopes: keystore.AllScopes})

	s := startTTY(t, env, 100, "list")
	if code := s.exit(); code != 0 {
		t.Fatalf("list exited %d:\n%s", code, s.finalOutput())
	}
	out := s.finalOutput()
	t.Logf("terminal:\n%s", out)
	if !strings.Contains(out, "Showing 50 of 59 keys (use --all or --limit)") {
		t.Errorf("no notice that the list was cut:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rows := 0
	for _, line := range lines {
		if w := runewidth.StringWidth(line); w > 100 {
			t.Errorf("a line is %d columns wide on a 100-column terminal: %q", w, line)
		}
		if strings.HasPrefix(line, "key_") {
			rows++
			if strings.Contains(line, "admin") && !regexp.MustCompile(`\ball\b`).MatchString(line) {
				t.Errorf("a key with every scope does not say all: %q", line)
			}
			if strings.Contains(line, "Nightly") && (!strings.Contains(line, "…") || !strings.Contains(line, "bots:*")) {
				t.Errorf("a long row is not fitted (name cut with …, scopes summed up as bots:*): %q", line)
			}
		}
	}
	if rows != 50 {
		t.Errorf("%d rows, want 50:\n%s", rows, out)
	}

	// A wide terminal shows the whole name; a pipe shows every value whole,
	// and no notice.
	s = startTTY(t, env, 250, "list", "--limit", "60")
	s.exit()
	if out := s.finalOutput(); !strings.Contains(out, long) || strings.Contains(out, "Showing") {
		t.Errorf("on a wide terminal, with every key listed:\n%s", out)
	}
	r := keyctlRun(t, env, "", "list")
	if !strings.Contains(r.stdout, long+"\tlive\tactive\tbots:read,bots:write,channels:read,conversations:read,agent-loops:write\t") || r.stderr != "" {
		t.Errorf("in a pipe, list cut a value or wrote to stderr:\n%s\nstderr: %s", r.stdout, r.stderr)
	}
}

// On a terminal, verify - asks for the key and does not echo it.
func TestVerifyReadsTerminalWithoutEcho(t *testing.T) {
	env, store := ttyEnv(t)
	k := seedStore(t, store, testNow, 1, keystore.CreateParams{Name: "bot", Scopes: []string{"bots:read"}})[0]

	s := startTTY(t, env, 100, "verify", "-")
	s.waitFor("Key to verify (input hidden): ")
	s.write(k.Secret + "\r")
	if code := s.exit(); code != 0 {
		t.Fatalf("verify exited %d:\n%s", code, s.finalOutput())
	}
	out := s.finalOutput()
	if strings.Contains(out, k.Secret[8:]) {
		t.Errorf("the terminal echoed the key:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^code\s+valid`).MatchString(out) {
		t.Errorf("no valid result:\n%s", out)
	}

	// Ctrl-C at the prompt ends it, and leaves the terminal echoing.
	s = startTTY(t, env, 100, "verify", "-")
	s.waitFor("Key to verify (input hidden): ")
	s.write("sk_live_ab\x03")
	if code := s.exit(); code == 0 {
		t.Errorf("verify interrupted at its prompt exited 0")
	}
	termios, err := unix.IoctlGetTermios(int(s.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if termios.Lflag&unix.ECHO == 0 {
		t.Errorf("verify interrupted at its prompt left the terminal without echo")
	}
}

// Ctrl-C at the revoke prompt cancels at once: exit 130, nothing revoked.
func TestRevokePromptInterrupted(t *testing.T) {
	env, store := ttyEnv(t)
	k := seedStore(t, store, testNow, 1, keystore.CreateParams{Name: "bot", Scopes: []string{"bots:read"}})[0]

	s := startTTY(t, env, 100, "revoke", k.ID)
	s.waitFor("[y/N] ")
	s.write("\x03")
	if code := s.exit(); code != exitInterrupted {
		t.Errorf("revoke interrupted at its prompt exited %d, want 130:\n%s", code, s.finalOutput())
	}
	if out := s.finalOutput(); !strings.Contains(out, "interrupted") {
		t.Errorf("no word of the interrupt:\n%s", out)
	}
	if st := strings.TrimSpace(mustRun(t, env, "show", k.ID, "-o", "json", "--jq", ".status")); st != "active" {
		t.Errorf("status %q after the interrupted revoke, want active", st)
	}

	// Answering y revokes; delete asks the same way.
	s = startTTY(t, env, 100, "revoke", k.ID)
	s.waitFor("[y/N] ")
	s.write("y\r")
	if code := s.exit(); code != 0 {
		t.Fatalf("revoke answered y exited %d:\n%s", code, s.finalOutput())
	}
	if out := s.finalOutput(); !strings.Contains(out, fmt.Sprintf("✓ Revoked %s (bot)", k.ID)) {
		t.Errorf("no confirmation:\n%s", out)
	}
	s = startTTY(t, env, 100, "delete", k.ID)
	s.waitFor("Delete " + k.ID + " (bot) for good?")
	s.write("n\r")
	if code := s.exit(); code != exitError {
		t.Errorf("delete answered n exited %d, want 1", code)
	}
	mustRun(t, env, "show", k.ID)
}
