package commands

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// ciRecipe returns the shell script of the README's "Rotate keys from CI"
// job: the lines of its `run: |` block, unindented.
func ciRecipe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "      - name: Rotate keys older than 90 days\n")
	if !ok {
		t.Fatal("README: no step named \"Rotate keys older than 90 days\"")
	}
	_, rest, ok = strings.Cut(rest, "        run: |\n")
	if !ok {
		t.Fatal("README: the rotation step has no run: | block")
	}
	var lines []string
	for line := range strings.Lines(rest) {
		body, ok := strings.CutPrefix(line, "          ")
		if !ok {
			break
		}
		lines = append(lines, body)
	}
	script := strings.Join(lines, "")
	if !strings.Contains(script, "keyctl rotate") || !strings.Contains(script, "--exec") {
		t.Fatalf("README: the CI recipe does not rotate with --exec:\n%s", script)
	}
	return script
}

// fakeGH is a stand-in for gh: "gh secret set NAME --repo R" stores its
// stdin as the secret NAME in $GH_DIR, atomically, after a pause that gives
// a kill time to land while a secret is being delivered. Each call adds a
// line to $GH_DIR/.calls, so that a test can time a kill by it.
const fakeGH = `#!/bin/sh
[ "$1 $2" = "secret set" ] && [ -n "$3" ] && [ "$4" = "--repo" ] && [ -n "$5" ] || { echo "fake gh: want secret set NAME --repo R" >&2; exit 2; }
echo "$3" >> "$GH_DIR/.calls"
tmp="$GH_DIR/.$3.$$"
cat > "$tmp" || exit 1
sleep 0.05
mv "$tmp" "$GH_DIR/$3"
`

// The README's CI recipe, killed at random points by SIGINT and SIGKILL
// (20 times, on a local store and through a real keyctl serve) and rerun
// until it exits 0, leaves every selected key rotated once, its new secret
// in the (fake) GitHub secrets, where it verifies, and no active key whose
// delivery is pending, which would be a secret nobody has.
func TestCIRecipeSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CI recipe some 60 times")
	}
	script := ciRecipe(t)
	// A rerun waits for a killed run's lease: keep it short here.
	const lease = "--delivery-timeout 15m"
	if !strings.Contains(script, lease) {
		t.Fatalf("the CI recipe has no %q to shorten:\n%s", lease, script)
	}
	script = strings.Replace(script, lease, "--delivery-timeout 1s", 1)
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "remote"}[remote], func(t *testing.T) {
			runCIRecipe(t, script, remote)
		})
	}
}

func runCIRecipe(t *testing.T, script string, remote bool) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	bin, ghDir := filepath.Join(dir, "bin"), filepath.Join(dir, "gh")
	for _, d := range []string{bin, ghDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "gh"), []byte(fakeGH), 0o755); err != nil {
		t.Fatal(err)
	}
	keyctlDir := filepath.Dir(keyctlPath(t))
	env := childEnv(filepath.Join(dir, "home"),
		"PATH="+bin+string(os.PathListSeparator)+keyctlDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GH_DIR="+ghDir, "GITHUB_REPOSITORY=acme/app")
	env = env[1:] // the PATH above replaces childEnv's
	if remote {
		admin := seedStore(t, store, time.Now(), 1, keystore.CreateParams{Name: "ci admin", Scopes: []string{"admin"}})[0]
		env = append(env, "KEYCTL_API_URL="+serveStoreChild(t, env, store), "CHATBOT_API_KEY="+admin.Secret)
	} else {
		env = append(env, "KEYCTL_STORE="+store)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	old := time.Now().Add(-200 * 24 * time.Hour)
	kills := map[string]int{}
	calls := filepath.Join(ghDir, ".calls")
	for round := range 20 {
		// Each round has keys of its own to rotate, and some that the
		// recipe must leave alone.
		var selected []*keystore.Key
		for i := range 8 {
			p := keystore.CreateParams{Name: fmt.Sprintf("r%d-k%d", round, i), Scopes: []string{"bots:read"},
				Metadata: map[string]string{"rotated_by": "ci", "github_secret": fmt.Sprintf("KEY_R%d_%d", round, i)}}
			selected = append(selected, seedStore(t, store, old, 1, p)...)
		}
		seedStore(t, store, old, 1, keystore.CreateParams{Name: "manual", Scopes: []string{"bots:read"},
			Metadata: map[string]string{"github_secret": fmt.Sprintf("MANUAL_%d", round)}})
		seedStore(t, store, old, 1, keystore.CreateParams{Name: "test env", Scopes: []string{"bots:read"}, Environment: keystore.EnvTest,
			Metadata: map[string]string{"rotated_by": "ci", "github_secret": fmt.Sprintf("TEST_%d", round)}})

		sig := map[bool]syscall.Signal{true: syscall.SIGINT, false: syscall.SIGKILL}[round%2 == 0]
		// The kill lands at a random point of the run: after a random
		// number of deliveries have begun (none: before keyctl rotates
		// anything, maybe before it starts), and a random part of one.
		at := when{calls: calls, after: countLines(calls) + rng.IntN(8), extra: time.Duration(rng.Int64N(int64(60 * time.Millisecond)))}
		code, killed := killRecipe(t, env, script, at, sig)
		if killed {
			kills[sig.String()]++
		} else if code != 0 {
			t.Fatalf("round %d: the recipe, not killed, exited %d", round, code)
		}
		// Rerun until it exits 0.
		for attempt := 1; ; attempt++ {
			code, out, errOut := recipeRun(t, env, script)
			if code == 0 {
				if strings.Contains(out, `"key":`) || keystore.RedactSecrets(out+errOut) != out+errOut {
					t.Errorf("the recipe's log holds a secret:\n%s%s", out, errOut)
				}
				break
			}
			if attempt == 5 {
				t.Fatalf("round %d: the recipe still exits %d after %d reruns:\n%s", round, code, attempt, errOut)
			}
		}
		checkRecipeDone(t, store, ghDir, selected, fmt.Sprintf("round %d (%v %v)", round, sig, at))
	}
	t.Logf("recipe runs killed: %v", kills)
	if kills["interrupt"]+kills["killed"] < 18 {
		t.Errorf("kills landed %v: want 18 of the 20 at least to hit a running recipe", kills)
	}
}

// checkRecipeDone checks the store and the fake GitHub secrets after a
// recipe exited 0.
func checkRecipeDone(t *testing.T, store, ghDir string, selected []*keystore.Key, what string) {
	t.Helper()
	st := stateAt(t, store)
	checkConsistent(t, st)
	for _, k := range st.keys {
		if k.pending() && !k.revokedAt.Valid {
			t.Errorf("%s: key %s (%s) is active with its delivery pending: a secret nobody has", what, k.id, k.name)
		}
		if k.name == "manual" || k.name == "test env" {
			if k.rotTo.Valid {
				t.Errorf("%s: key %s (%s) was rotated, but the recipe does not select it", what, k.id, k.name)
			}
		}
	}
	s, err := sqlite.Open(store, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, old := range selected {
		row := st.keys[old.ID]
		if row == nil || !row.rotTo.Valid {
			t.Errorf("%s: key %s (%s) was not rotated", what, old.ID, old.Name)
			continue
		}
		delivered := 0
		for _, k := range st.keys {
			if k.rotatedFrom.String == old.ID && k.delivery.String == keystore.DeliveryDelivered {
				delivered++
			}
		}
		if delivered != 1 {
			t.Errorf("%s: key %s (%s) has %d delivered successors, want 1", what, old.ID, old.Name, delivered)
		}
		secret, err := os.ReadFile(filepath.Join(ghDir, old.Metadata["github_secret"]))
		if err != nil {
			t.Errorf("%s: key %s (%s): %v", what, old.ID, old.Name, err)
			continue
		}
		v, err := s.Verify(context.Background(), string(secret), nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !v.Valid:
			t.Errorf("%s: the GitHub secret %s does not verify: %s", what, old.Metadata["github_secret"], v.Code)
		case v.Key.ID != row.rotTo.String || v.Key.Delivery == nil || *v.Key.Delivery != keystore.DeliveryDelivered:
			t.Errorf("%s: the GitHub secret %s is key %s (delivery %v), want %s's delivered successor %s",
				what, old.Metadata["github_secret"], v.Key.ID, v.Key.Delivery, old.ID, row.rotTo.String)
		}
	}
}

// recipeCmd prepares the recipe as its own process group, so that a
// signal reaches the shell, keyctl and the command keyctl runs, as a
// cancelled CI job's would.
func recipeCmd(env []string, script string) (*exec.Cmd, *strings.Builder, *strings.Builder) {
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	return cmd, &out, &errOut
}

func recipeRun(t *testing.T, env []string, script string) (int, string, string) {
	t.Helper()
	cmd, out, errOut := recipeCmd(env, script)
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// when is the moment of a kill: once the file calls has more than after
// lines, and extra later.
type when struct {
	calls string
	after int
	extra time.Duration
}

func (w when) String() string { return fmt.Sprintf("at delivery %d + %v", w.after, w.extra) }

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// killRecipe runs the recipe and sends sig to its process group at the
// moment at, unless it is done by then; after SIGINT it must end within
// 10 seconds.
func killRecipe(t *testing.T, env []string, script string, at when, sig syscall.Signal) (code int, killed bool) {
	t.Helper()
	cmd, _, errOut := recipeCmd(env, script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exitCode := func(err error) int {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	}
	for countLines(at.calls) < at.after {
		select {
		case err := <-done:
			return exitCode(err), false
		case <-time.After(2 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		return exitCode(err), false
	case <-time.After(at.extra):
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case err := <-done:
		if sig == syscall.SIGINT && err != nil {
			if c := exitCode(err); c != 130 && c != -1 && !strings.Contains(errOut.String(), "interrupted") {
				t.Logf("after SIGINT the recipe exited %d: %s", c, errOut.String())
			}
		}
		return exitCode(err), true
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("the recipe still ran 10 seconds after %v", sig)
	}
	return 0, true
}

// serveStoreChild runs keyctl serve on store, as a child process on loopback,
// until the test ends, and returns its API base URL.
func serveStoreChild(t *testing.T, env []string, store string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd, _, stderr := keyctlCmd(t, env, "", "--store", store, "serve", "--addr", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr + "/v1"
			}
		}
		select {
		case err := <-done:
			t.Fatalf("keyctl serve ended: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("keyctl serve did not answer within 10 seconds")
		}
	}
}
