package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// killedRun starts keyctl, sends it SIGKILL after delay unless it is done
// by then, and returns what it printed and whether it was killed.
func killedRun(t *testing.T, env []string, delay time.Duration, args ...string) (stdout string, killed bool) {
	t.Helper()
	cmd, out, _ := keyctlCmd(t, env, "", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("keyctl %s, not killed: %v", strings.Join(args, " "), err)
		}
		return out.String(), false
	case <-time.After(delay):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := <-done
	return out.String(), err != nil // a process that exited just before the kill succeeded
}

// timeRun is how long a keyctl that opens the store and reads one key
// takes: the part of every command before it changes anything.
func timeRun(t *testing.T, env []string) time.Duration {
	best := time.Hour
	for range 3 {
		began := time.Now()
		mustRun(t, env, "list", "--limit", "1")
		best = min(best, time.Since(began))
	}
	return best
}

// SIGKILL at any moment of create, rotate and batch rotate, on a store of
// hundreds of keys and on a store being created, leaves a store that
// passes integrity_check, with every rotation whole or absent, exactly one
// live key per rotation chain, every change in the audit log, and every
// result a killed process printed in the store. A batch rotation rerun
// after the kills finishes the job and rotates no key twice.
func TestKilledProcessesLeaveStoreConsistent(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)
	old := time.Now().Add(-2 * time.Hour)
	params := keystore.CreateParams{Name: "svc", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "a"}}
	seedStore(t, store, old, 300, params)

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	base := timeRun(t, env)
	t.Logf("a keyctl process takes %v to open the store", base)
	delay := func(extra time.Duration) time.Duration {
		return time.Duration(rng.Int64N(int64(base + extra)))
	}

	// unrotated lists the old keys that a batch rotation still has to do:
	// those not rotated, or rotated to a successor not yet delivered.
	unrotated := func(st storeState) []string {
		var ids []string
		for id, k := range st.keys {
			if k.createdAt <= old.Unix() && !k.revokedAt.Valid && (!k.rotTo.Valid || st.keys[k.rotTo.String].pending()) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	check := func(what string) storeState {
		t.Helper()
		st := stateAt(t, store)
		checkConsistent(t, st)
		checkChains(t, st)
		if t.Failed() {
			t.Fatalf("after %s", what)
		}
		return st
	}

	kills := map[string]int{}
	var batchKills []int // how many keys each killed batch had rotated
	st := check("seeding")
	for i := range 30 {
		var (
			args  []string
			extra time.Duration
		)
		// Each kill rotates some keys; keep enough for the next ones.
		if n := len(unrotated(st)); n < 150 {
			seedStore(t, store, old, 150-n, params)
			st = check("seeding")
		}
		switch i % 5 {
		case 0, 1:
			args, extra = []string{"rotate", "--older-than", "1h", "--delivery-timeout", "1s", "-o", "jsonl"}, 60*time.Millisecond
		case 2:
			todo := unrotated(st)
			args, extra = []string{"rotate", todo[rng.IntN(len(todo))], "--delivery-timeout", "1s", "-o", "json"}, 5*time.Millisecond
		case 3:
			args, extra = []string{"create", "--name", fmt.Sprint("crash-", i), "--scope", "bots:*", "-o", "json"}, 5*time.Millisecond
		case 4:
			// A store that does not exist yet: killed while keyctl
			// creates the file and its schema.
			fresh := filepath.Join(dir, fmt.Sprint("fresh-", i), "keys.db")
			d := delay(10 * time.Millisecond)
			_, killed := killedRun(t, env, d, "--store", fresh, "create", "--name", "first", "--scope", "bots:read")
			if killed {
				kills["create on a new store"]++
			}
			if r := keyctlRun(t, env, "", "--store", fresh, "create", "-q", "--name", "next", "--scope", "bots:read"); r.code != 0 {
				t.Fatalf("store killed at %v while being made: the next create exits %d: %s", d, r.code, r.stderr)
			}
			fst := stateAt(t, fresh)
			checkConsistent(t, fst)
			if n := len(fst.keys); n != 1 && n != 2 {
				t.Errorf("fresh store has %d keys after a killed and a whole create", n)
			}
			continue
		}
		d := delay(extra)
		out, killed := killedRun(t, env, d, args...)
		if killed {
			kills[args[0]+map[bool]string{true: " (batch)"}[len(args) > 1 && args[1] == "--older-than"]]++
		}
		st = check(fmt.Sprintf("keyctl %s killed after %v", strings.Join(args, " "), d))

		// What a process printed before it died is in the store.
		switch {
		case args[0] == "rotate" && args[1] == "--older-than":
			if killed {
				batchKills = append(batchKills, strings.Count(out, "\n"))
			}
			for line := range strings.Lines(out) {
				if !strings.HasSuffix(line, "\n") {
					break // cut short by the kill
				}
				var r rotation
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("batch output %q: %v", line, err)
				}
				if k := st.keys[r.ID]; r.Result != "rotated" || k == nil || k.rotTo.String != r.NewKey.ID {
					t.Errorf("batch printed %s, the store does not have it", line)
				}
			}
		case strings.HasSuffix(out, "}\n"):
			var k keystore.Key
			if err := json.Unmarshal([]byte(out), &k); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if st.keys[k.ID] == nil {
				t.Errorf("keyctl %s printed key %s, which is not in the store", args[0], k.ID)
			}
		}
	}
	t.Logf("processes killed: %v; killed batches had printed %v rotations", kills, batchKills)

	// The rerun rotates exactly the keys the killed batches left, once.
	todo := unrotated(st)
	res := keyctlRun(t, env, "", "rotate", "--older-than", "1h", "--delivery-timeout", "1s", "-o", "jsonl")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("rerun: exit %d: %s", res.code, res.stderr)
	}
	var done []string
	for line := range strings.Lines(res.stdout) {
		var r rotation
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Result != "rotated" {
			t.Fatalf("rerun printed %q (%v), want only rotations", line, err)
		}
		done = append(done, r.ID)
	}
	slices.Sort(done)
	if !slices.Equal(done, todo) {
		t.Errorf("the rerun rotated %d keys, want the %d that were left", len(done), len(todo))
	}
	st = check("the rerun")
	if left := unrotated(st); len(left) > 0 {
		t.Errorf("%d old keys are still not rotated after the rerun", len(left))
	}
	if _, err := os.Stat(store); err != nil {
		t.Fatal(err)
	}
}

// SIGKILL at any moment of an import leaves whole batches: each batch is
// one transaction, so the store holds the keys of the batches that
// committed, each with its one event, and an import run again afterwards
// stores the rest and skips what is there.
func TestKilledImportLeavesWholeBatches(t *testing.T) {
	const n, batch = 25_000, keystore.MaxImportBatch
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)
	records := filepath.Join(dir, "keys.jsonl")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"name": "imported %d", "scopes": ["bots:read"], "key_sha256": "%064x", "hint": "sk_live_abcd…wxyz"}`+"\n", i, i+1)
	}
	if err := os.WriteFile(records, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Make the store: list would not, on a store that does not exist.
	made, err := sqlite.Open(store, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	made.Close()

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	began := time.Now()
	mustRun(t, env, "--store", filepath.Join(dir, "timing.db"), "import", records)
	whole := time.Since(began)
	t.Logf("a whole import takes %v", whole)

	kills := 0
	for range 6 {
		d := time.Duration(rng.Int64N(int64(whole)))
		if _, killed := killedRun(t, env, d, "import", records); killed {
			kills++
		}
		st := stateAt(t, store)
		checkConsistent(t, st)
		if got := len(st.keys); got%batch != 0 && got != n {
			t.Fatalf("after a kill at %v the store holds %d keys: not whole batches of %d", d, got, batch)
		}
	}
	t.Logf("imports killed: %d of 6", kills)

	before := len(stateAt(t, store).keys)
	out := mustRun(t, env, "import", "-o", "json", records)
	var sum struct{ Imported, Skipped, Failed int }
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Imported != n-before || sum.Skipped != before || sum.Failed != 0 {
		t.Errorf("the rerun printed %+v with %d keys stored before, want %d imported and %d skipped", sum, before, n-before, before)
	}
	st := stateAt(t, store)
	checkConsistent(t, st)
	if len(st.keys) != n {
		t.Errorf("the store holds %d keys after the rerun, want %d", len(st.keys), n)
	}
}
