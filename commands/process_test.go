package commands

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// Helpers for tests that run keyctl as real child processes: the copy of
// the test binary that testscript.Main (in TestMain) puts first in PATH,
// which runs the same run() as cmd/keyctl.

// keyctlPath returns the keyctl that TestMain installed. A keyctl from the
// system (keyutils has one) must not stand in for it.
func keyctlPath(t testing.TB) string {
	p, err := installedKeyctl()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var installedKeyctl = sync.OnceValues(func() (string, error) {
	p, err := exec.LookPath("keyctl")
	if err != nil || !strings.Contains(p, "testscript-main") {
		return "", fmt.Errorf("keyctl from TestMain not first in PATH: %q, %v", p, err)
	}
	return p, nil
})

// childEnv is a clean environment for keyctl under home: nothing of the
// developer's KEYCTL_* or CHATBOT_API_KEY leaks in.
func childEnv(home string, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"USER=tester",
		"NO_COLOR=1",
	}, extra...)
}

// result is what a keyctl process did.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// keyctlCmd prepares keyctl with args, env and stdin.
func keyctlCmd(t testing.TB, env []string, stdin string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(keyctlPath(t), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// keyctlRun runs keyctl to the end; a process that cannot start or is
// killed is a test failure, a non-zero exit status is a result.
func keyctlRun(t testing.TB, env []string, stdin string, args ...string) result {
	t.Helper()
	r, err := keyctlExec(t, env, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keyctlExec is keyctlRun for goroutines other than the test's, which
// must not call t.Fatal: it returns the failure.
func keyctlExec(t testing.TB, env []string, stdin string, args ...string) (result, error) {
	cmd, stdout, stderr := keyctlCmd(t, env, stdin, args...)
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("keyctl %s: %v\nstderr: %s", strings.Join(args, " "), err, r.stderr)
	}
	return r, nil
}

// mustRun runs keyctl and fails the test unless it exits 0 without a word
// on stderr.
func mustRun(t testing.TB, env []string, args ...string) string {
	t.Helper()
	r := keyctlRun(t, env, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("keyctl %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// seedStore creates n keys in the store at path, created at the given
// time, and returns them with their secrets.
func seedStore(t testing.TB, path string, created time.Time, n int, p keystore.CreateParams) []*keystore.Key {
	t.Helper()
	s, err := sqlite.Open(path, sqlite.Options{Now: func() time.Time { return created }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := keystore.WithActor(context.Background(), "seed")
	keys := make([]*keystore.Key, n)
	for i := range keys {
		if keys[i], err = s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// rawStore opens a store as a plain SQLite database, to look at it the way
// keyctl's code does not.
func rawStore(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// storeRow is one key as the store holds it.
type storeRow struct {
	id, name           string
	createdAt          int64
	revokedAt          sql.NullInt64
	expiresAt          sql.NullInt64
	rotatedFrom, rotTo sql.NullString
	delivery           sql.NullString // pending, delivered, or NULL
}

// pending reports whether k's secret awaits delivery.
func (k *storeRow) pending() bool { return k.delivery.String == keystore.DeliveryPending }

// undelivered reports whether k was a successor revoked before its secret
// was delivered: its rotation was undone.
func (k *storeRow) undelivered() bool { return k.pending() && k.revokedAt.Valid }

// storeState is everything a consistency check needs from a store.
type storeState struct {
	keys   map[string]*storeRow
	events []storeEvent
}

type storeEvent struct {
	id, action, keyID, newKeyID string
}

// stateAt reads the store at path through a connection of its own, as the
// next keyctl to open it would find it.
func stateAt(t testing.TB, path string) storeState {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return readState(t, db)
}

func readState(t testing.TB, db *sql.DB) storeState {
	t.Helper()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	var dangling int
	if err := db.QueryRow("SELECT count(*) FROM pragma_foreign_key_check").Scan(&dangling); err != nil || dangling != 0 {
		t.Fatalf("foreign_key_check: %d dangling links, %v", dangling, err)
	}
	st := storeState{keys: map[string]*storeRow{}}
	rows, err := db.Query("SELECT id, name, created_at, revoked_at, expires_at, rotated_from, rotated_to, delivery FROM keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r storeRow
		if err := rows.Scan(&r.id, &r.name, &r.createdAt, &r.revokedAt, &r.expiresAt, &r.rotatedFrom, &r.rotTo, &r.delivery); err != nil {
			t.Fatal(err)
		}
		if st.keys[r.id] != nil {
			t.Fatalf("key %s stored twice", r.id)
		}
		st.keys[r.id] = &r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Query("SELECT id, action, key_id, coalesce(json_extract(details, '$.new_key_id'), '') FROM audit_events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	for evs.Next() {
		var e storeEvent
		if err := evs.Scan(&e.id, &e.action, &e.keyID, &e.newKeyID); err != nil {
			t.Fatal(err)
		}
		st.events = append(st.events, e)
	}
	if err := evs.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkConsistent asserts what must hold in every store, whatever happened
// to the processes that wrote it: rotations are whole (old.rotated_to = new
// exactly when new.rotated_from = old, and the old key ended once the new
// secret was delivered), each key has at most one successor besides
// undelivered ones (revoked, their rotation undone), every key has exactly
// the one event that made it, every rotation, delivery and revocation its
// event, and each chain of rotations (without grace) has exactly one key
// that is not revoked, its newest, or two while the newest awaits delivery.
func checkConsistent(t testing.TB, st storeState) {
	t.Helper()
	successors := map[string]int{}
	for _, k := range st.keys {
		if k.rotTo.Valid {
			n := st.keys[k.rotTo.String]
			switch {
			case n == nil:
				t.Errorf("key %s rotated to %s, which does not exist", k.id, k.rotTo.String)
			case !n.rotatedFrom.Valid || n.rotatedFrom.String != k.id:
				t.Errorf("key %s rotated to %s, whose rotated_from is %v", k.id, n.id, n.rotatedFrom)
			case n.name != k.name:
				t.Errorf("key %s (%s) rotated to %s with another name (%s)", k.id, k.name, n.id, n.name)
			}
			if n != nil && !n.pending() && !k.revokedAt.Valid && !k.expiresAt.Valid {
				t.Errorf("key %s was rotated but neither revoked nor given an end", k.id)
			}
			if n != nil && n.undelivered() {
				t.Errorf("key %s points to %s, revoked undelivered", k.id, n.id)
			}
		}
		if k.rotatedFrom.Valid {
			o := st.keys[k.rotatedFrom.String]
			if o == nil {
				t.Errorf("key %s says it was rotated from %s, which does not exist", k.id, k.rotatedFrom.String)
			} else if k.undelivered() {
				if o.rotTo.String == k.id {
					t.Errorf("key %s points to its undelivered successor %s", o.id, k.id)
				}
			} else {
				successors[k.rotatedFrom.String]++
				if !o.rotTo.Valid || o.rotTo.String != k.id {
					t.Errorf("key %s says it was rotated from %s, which does not point back", k.id, k.rotatedFrom.String)
				}
			}
		}
	}
	for id, n := range successors {
		if n != 1 {
			t.Errorf("key %s has %d successors", id, n)
		}
	}

	made := map[string]int{} // create, import or rotate event that made a key
	rotated := map[string]int{}
	revoked := map[string]int{}
	delivered := map[string]int{}
	eventIDs := map[string]bool{}
	for _, e := range st.events {
		if eventIDs[e.id] {
			t.Errorf("event %s recorded twice", e.id)
		}
		eventIDs[e.id] = true
		switch e.action {
		case keystore.ActionCreate, keystore.ActionImport:
			made[e.keyID]++
		case keystore.ActionRotate:
			made[e.newKeyID]++
			rotated[e.keyID]++
			linked := false
			if k := st.keys[e.keyID]; k != nil && k.rotTo.Valid && k.rotTo.String == e.newKeyID {
				linked = true
			}
			if n := st.keys[e.newKeyID]; !linked && (n == nil || !n.undelivered()) {
				t.Errorf("rotate event %s -> %s, but the store does not link them", e.keyID, e.newKeyID)
			}
		case keystore.ActionRevoke:
			revoked[e.keyID]++
		case keystore.ActionDeliver:
			delivered[e.keyID]++
		default:
			t.Errorf("unexpected event %+v", e)
		}
	}
	for id, k := range st.keys {
		if made[id] != 1 {
			t.Errorf("key %s has %d events that made it, want 1", id, made[id])
		}
		succ := 0 // successors, undelivered ones included
		for _, n := range st.keys {
			if n.rotatedFrom.String == id {
				succ++
			}
		}
		if rotated[id] != succ {
			t.Errorf("key %s has %d rotate events, want %d", id, rotated[id], succ)
		}
		if want := map[bool]int{true: 1}[k.delivery.String == keystore.DeliveryDelivered]; delivered[id] != want {
			t.Errorf("key %s (delivery %q) has %d deliver events, want %d", id, k.delivery.String, delivered[id], want)
		}
		if k.undelivered() && revoked[id] != 1 {
			t.Errorf("undelivered key %s has %d revoke events, want 1", id, revoked[id])
		}
		if revoked[id] > 1 {
			t.Errorf("key %s has %d revoke events", id, revoked[id])
		}
		delete(made, id)
	}
	for id := range made {
		t.Errorf("an event made key %s, which is not in the store", id)
	}
}

// checkChains asserts that each chain of rotations without grace holds
// exactly one key that is not revoked: its newest.
func checkChains(t testing.TB, st storeState) {
	t.Helper()
	for _, k := range st.keys {
		if k.rotatedFrom.Valid {
			continue // not the first of its chain
		}
		var live []string
		n := 0
		for c := k; c != nil; c = st.keys[c.rotTo.String] {
			if !c.revokedAt.Valid {
				live = append(live, c.id)
			}
			if n++; n > len(st.keys) {
				t.Fatalf("rotation chain from %s loops", k.id)
			}
			if !c.rotTo.Valid {
				want := []string{c.id}
				if c.pending() && !c.revokedAt.Valid {
					// The old key works until the delivery.
					want = []string{c.rotatedFrom.String, c.id}
				}
				if !slices.Equal(live, want) {
					t.Errorf("rotation chain from %s has keys %v not revoked, want %v", k.id, live, want)
				}
				break
			}
		}
	}
}
