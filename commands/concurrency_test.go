package commands

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// workerReport is what one worker's keyctl processes said they did.
type workerReport struct {
	created  []*keystore.Key   // with secrets
	rotated  map[string]string // old ID -> new ID, single rotations
	graced   string            // the old key rotated with --grace
	revoked  []string
	batch    map[string]string // old ID -> new ID, from rotate --older-than
	skipped  int               // batch results "skipped"
	failures []string
}

// Eight workers, each a series of real keyctl processes, create, rotate
// (one by one and in batches that contend for the same keys), revoke,
// verify, list and read the audit log of one store at the same time. No
// process may fail; afterwards every key a process reported exists once,
// nothing else does, every change has its audit event, and rotation links
// are whole.
func TestConcurrentProcesses(t *testing.T) {
	const (
		workers   = 8
		perWorker = 5
		poolSize  = 48
	)
	dir := t.TempDir()
	store := filepath.Join(dir, "keys.db")
	env := childEnv(filepath.Join(dir, "home"), "KEYCTL_STORE="+store)

	// Test keys made two hours ago: every worker's batch rotation goes for
	// all of them at once, and each must be rotated exactly once.
	pool := seedStore(t, store, time.Now().Add(-2*time.Hour), poolSize,
		keystore.CreateParams{Name: "pool", Scopes: []string{"bots:read"}, Environment: keystore.EnvTest})

	reports := make([]*workerReport, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		reports[w] = &workerReport{rotated: map[string]string{}, batch: map[string]string{}}
		wg.Go(func() {
			<-start
			runWorker(t, env, w, perWorker, reports[w])
		})
	}
	keyctlPath(t) // fail here, not in a worker, if keyctl is missing
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d workers done in %v", workers, time.Since(began).Round(time.Millisecond))
	for w, r := range reports {
		for _, f := range r.failures {
			t.Errorf("worker %d: %s", w, f)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	st := stateAt(t, store)
	checkConsistent(t, st)

	// Every key reported exists exactly once, and no other key does.
	want := map[string]string{} // ID -> who reported it
	report := func(id, by string) {
		if prev, dup := want[id]; dup {
			t.Errorf("key %s reported by %s and by %s", id, prev, by)
		}
		want[id] = by
	}
	for _, k := range pool {
		report(k.ID, "the seed")
	}
	batchRotated := map[string]int{}
	events := map[string]int{}
	for w, r := range reports {
		for _, k := range r.created {
			report(k.ID, fmt.Sprintf("worker %d create", w))
		}
		for _, n := range r.rotated {
			report(n, fmt.Sprintf("worker %d rotate", w))
		}
		for o, n := range r.batch {
			report(n, fmt.Sprintf("worker %d batch rotate", w))
			batchRotated[o]++
		}
		events[keystore.ActionCreate] += len(r.created)
		events[keystore.ActionRotate] += len(r.rotated) + len(r.batch)
		// Each rotation through keyctl is confirmed delivered.
		events[keystore.ActionDeliver] += len(r.rotated) + len(r.batch)
		events[keystore.ActionRevoke] += len(r.revoked)

		for o, n := range r.rotated {
			if k := st.keys[o]; k == nil || k.rotTo.String != n {
				t.Errorf("worker %d rotated %s to %s, the store disagrees", w, o, n)
			} else if o == r.graced {
				if k.revokedAt.Valid || !k.expiresAt.Valid {
					t.Errorf("key %s rotated with grace: revoked %v, expires %v; want expiring, not revoked", o, k.revokedAt, k.expiresAt)
				}
			} else if !k.revokedAt.Valid {
				t.Errorf("key %s rotated without grace is not revoked", o)
			}
		}
		for _, id := range r.revoked {
			if k := st.keys[id]; k == nil || !k.revokedAt.Valid {
				t.Errorf("worker %d revoked %s, the store disagrees", w, id)
			}
		}
	}
	events[keystore.ActionCreate] += poolSize
	for id, k := range st.keys {
		if want[id] == "" {
			t.Errorf("key %s (%s) is in the store, but no process reported it", id, k.name)
		}
	}
	if len(st.keys) != len(want) {
		t.Errorf("the store holds %d keys, processes reported %d", len(st.keys), len(want))
	}

	// The contending batches rotated each pool key once between them.
	for _, k := range pool {
		if batchRotated[k.ID] != 1 {
			t.Errorf("pool key %s rotated %d times by the batches, want 1", k.ID, batchRotated[k.ID])
		}
	}
	skipped := 0
	for _, r := range reports {
		skipped += r.skipped
	}
	t.Logf("batches: %d rotated, %d skipped as rotated meanwhile", len(batchRotated), skipped)

	got := map[string]int{}
	for _, e := range st.events {
		got[e.action]++
	}
	for action, n := range events {
		if got[action] != n {
			t.Errorf("%d %s events, want %d", got[action], action, n)
		}
	}
	if len(st.events) != events[keystore.ActionCreate]+events[keystore.ActionRotate]+events[keystore.ActionDeliver]+events[keystore.ActionRevoke] {
		t.Errorf("%d events in all, want %v", len(st.events), events)
	}
}

// runWorker is one worker's series of keyctl processes. It records what
// they reported, and any failure, in r.
func runWorker(t *testing.T, env []string, w, n int, r *workerReport) {
	run := func(args ...string) (string, bool) {
		res, err := keyctlExec(t, env, "", args...)
		if err != nil {
			r.failures = append(r.failures, err.Error())
			return "", false
		}
		if res.code != 0 || res.stderr != "" {
			r.failures = append(r.failures, fmt.Sprintf("keyctl %s: exit %d: %s", strings.Join(args, " "), res.code, res.stderr))
			return "", false
		}
		return res.stdout, true
	}
	decode := func(out string, v any) bool {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			r.failures = append(r.failures, fmt.Sprintf("decode %q: %v", out, err))
			return false
		}
		return true
	}

	// All batches start together, so they contend for the same keys.
	out, ok := run("rotate", "--older-than", "1h", "--env", "test", "-o", "jsonl")
	if !ok {
		return
	}
	for line := range strings.Lines(out) {
		var res rotation
		if !decode(line, &res) {
			return
		}
		switch res.Result {
		case "rotated":
			r.batch[res.ID] = res.NewKey.ID
		case "skipped":
			r.skipped++
		default:
			r.failures = append(r.failures, "batch rotation: "+line)
		}
	}

	for j := range n {
		out, ok = run("create", "--name", fmt.Sprintf("w%d-%d", w, j), "--scope", "bots:read", "--meta", fmt.Sprint("worker=", w), "-o", "json")
		var k keystore.Key
		if !ok || !decode(out, &k) {
			return
		}
		r.created = append(r.created, &k)
	}
	rotate := func(id string, extra ...string) string {
		out, ok := run(append([]string{"rotate", id, "-o", "json"}, extra...)...)
		var k keystore.Key
		if !ok || !decode(out, &k) {
			return ""
		}
		r.rotated[id] = k.ID
		return k.ID
	}
	successor := rotate(r.created[0].ID)
	rotate(r.created[1].ID, "--grace", "1h")
	r.graced = r.created[1].ID
	for _, id := range []string{r.created[2].ID, successor} {
		if _, ok := run("revoke", "--yes", id, "-o", "json"); ok {
			r.revoked = append(r.revoked, id)
		}
	}
	if out, ok := run("verify", r.created[3].Secret, "-o", "json"); ok && !strings.Contains(out, `"valid": true`) {
		r.failures = append(r.failures, "verify: "+out)
	}

	run("list", "--all", "-o", "jsonl")
	run("audit", "-o", "json")
}
