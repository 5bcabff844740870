package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatbotplatform/keyctl/keystore/postgres/pgtest"
)

// Several `keyctl serve` processes on one store, as replicas behind a load
// balancer: on one PostgreSQL database, and on one SQLite file (two
// processes on one machine).

// replica is a keyctl serve child process.
type replica struct {
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
	done chan struct{}
}

// startReplica runs keyctl serve on store until the test ends.
func startReplica(t *testing.T, env []string, store string) *replica {
	t.Helper()
	cmd, _, _ := keyctlCmd(t, env, "", "serve", "--store", store, "--addr", "127.0.0.1:0", "--rate-limit", "0")
	r := &replica{cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	re := regexp.MustCompile(`"msg":"listening on (http://127\.0\.0\.1:\d+)"`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(r.logs.String()); m != nil {
			r.url = m[1]
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("keyctl serve exited:\n%s", r.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", r.logs)
		}
	}
}

// stop ends the replica gracefully, as a load balancer's rollout would.
func (r *replica) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// call sends a request to the replica with token as the bearer and
// decodes the reply's data into out, if given; it returns the status.
func (r *replica) call(method, path, token, body string, out any) (int, error) {
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		env := struct{ Data any }{Data: out}
		if err := json.Unmarshal(b, &env); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 500 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

type apiKey struct {
	ID          string  `json:"id"`
	Key         string  `json:"key"`
	Status      string  `json:"status"`
	RotatedFrom *string `json:"rotated_from"`
	RotatedTo   *string `json:"rotated_to"`
}

func (r *replica) create(t *testing.T, admin, name string) apiKey {
	t.Helper()
	var k apiKey
	if st, err := r.call("POST", "/v1/api-keys", admin, `{"name":"`+name+`","scopes":["bots:read"]}`, &k); err != nil || st != 201 {
		t.Fatalf("create on %s: %d %v", r.url, st, err)
	}
	return k
}

// verify reports the code the replica gives secret.
func (r *replica) verify(admin, secret string) (string, error) {
	var v struct{ Code string }
	st, err := r.call("POST", "/v1/api-keys/verify", admin, `{"key":"`+secret+`"}`, &v)
	if err == nil && st != 200 {
		err = fmt.Errorf("verify: status %d", st)
	}
	return v.Code, err
}

// replicaStores are the stores that the replica tests run on: a SQLite
// file always, a PostgreSQL database when the server is configured.
func replicaStores(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "keys.db") },
		"postgres": func(t *testing.T) string { return pgtest.DSN(t) },
	}
}

// setupReplicas makes a store with an admin key and starts n replicas on it.
func setupReplicas(t *testing.T, store string, n int) (env []string, admin string, rs []*replica) {
	env = childEnv(t.TempDir())
	admin = strings.TrimSpace(mustRun(t, env, "create", "--store", store, "--name", "admin", "--scope", "admin", "-q"))
	for range n {
		rs = append(rs, startReplica(t, env, store))
	}
	return env, admin, rs
}

// Replicas agree: a key made through one verifies on the others, and a
// revocation or a rotation made through one, or a revocation by the CLI
// straight on the store, is
// refused by the others within 100 ms at p99, also while a replica's
// notification connection is cut (PostgreSQL: pg_terminate_backend).
func TestReplicasAgree(t *testing.T) {
	for name, newStore := range replicaStores(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			env, admin, rs := setupReplicas(t, store, 2)
			a, b := rs[0], rs[1]

			const rounds = 40
			var lags []time.Duration
			for i := range rounds {
				k := a.create(t, admin, fmt.Sprint("k", i))
				// Each replica has seen the key valid (and cached it, if it
				// caches).
				for _, r := range rs {
					if code, err := r.verify(admin, k.Key); err != nil || code != "valid" {
						t.Fatalf("round %d: verify on %s = %q, %v; want valid", i, r.url, code, err)
					}
				}
				switch {
				case i%4 == 3:
					mustRun(t, env, "revoke", "--store", store, "--yes", k.ID)
				case i%4 == 2:
					// A rotation without grace ends the old key at once.
					if st, err := b.call("POST", "/v1/api-keys/"+k.ID+"/rotate", admin, `{}`, nil); err != nil || st != 201 {
						t.Fatalf("rotate on b: %d %v", st, err)
					}
				case i%2 == 1:
					if st, err := a.call("DELETE", "/v1/api-keys/"+k.ID, admin, "", nil); err != nil || st != 200 {
						t.Fatalf("revoke on a: %d %v", st, err)
					}
				default:
					if st, err := b.call("DELETE", "/v1/api-keys/"+k.ID, admin, "", nil); err != nil || st != 200 {
						t.Fatalf("revoke on b: %d %v", st, err)
					}
				}
				if name == "postgres" && i == rounds/2 {
					cutFeeds(t, store)
				}
				revoked := time.Now()
				watched := a
				if i%2 == 1 {
					watched = b
				}
				for {
					code, err := watched.verify(admin, k.Key)
					if err != nil {
						t.Fatal(err)
					}
					if code == "revoked" {
						lags = append(lags, time.Since(revoked))
						break
					}
					if time.Since(revoked) > 5*time.Second {
						t.Fatalf("round %d: %s still says %q 5 s after the revocation", i, watched.url, code)
					}
					time.Sleep(time.Millisecond)
				}
			}
			slices.Sort(lags)
			p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
			t.Logf("%s: revocation seen by the other replica: p50 %v, p99 %v, max %v (%d rounds)", name, p50, p99, lags[len(lags)-1], rounds)
			if p99 > 100*time.Millisecond {
				t.Errorf("revocation p99 %v, want at most 100 ms", p99)
			}
			for _, r := range rs {
				if st, err := r.call("GET", "/readyz", "", "", nil); err != nil || st != 200 {
					t.Errorf("readyz on %s: %d %v", r.url, st, err)
				}
			}
		})
	}
}

// cutFeeds terminates the change-feed connections of every replica on the
// PostgreSQL database of dsn.
func cutFeeds(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'keyctl-feed'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no change-feed connection to cut")
	}
}

// Concurrent rotations of one key through two replicas make exactly one
// successor: one gets 201, the other 409.
func TestReplicasRotateOnce(t *testing.T) {
	for name, newStore := range replicaStores(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			env, admin, rs := setupReplicas(t, store, 2)
			const rounds = 20
			for i := range rounds {
				k := rs[0].create(t, admin, fmt.Sprint("k", i))
				var wg sync.WaitGroup
				statuses := make([]int, 4)
				errs := make([]error, 4)
				for j := range statuses {
					wg.Go(func() {
						statuses[j], errs[j] = rs[j%2].call("POST", "/v1/api-keys/"+k.ID+"/rotate", admin, `{}`, nil)
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				slices.Sort(statuses)
				if !slices.Equal(statuses, []int{201, 409, 409, 409}) {
					t.Fatalf("round %d: statuses %v, want one 201 and three 409", i, statuses)
				}
			}
			var keys []apiKey
			if err := json.Unmarshal([]byte(mustRun(t, env, "list", "--store", store, "--all", "-o", "json")), &keys); err != nil {
				t.Fatal(err)
			}
			successors := map[string]int{}
			for _, k := range keys {
				if k.RotatedFrom != nil {
					successors[*k.RotatedFrom]++
				}
			}
			if len(successors) != rounds {
				t.Errorf("%d keys have a successor, want %d", len(successors), rounds)
			}
			for id, n := range successors {
				if n != 1 {
					t.Errorf("key %s has %d successors", id, n)
				}
			}
		})
	}
}

// A replica killed with SIGKILL while it rotates keys leaves no half
// rotation: every key has at most one successor, linked both ways, with
// one rotate event each, and the other replica carries on.
func TestReplicaKilledMidRotation(t *testing.T) {
	for name, newStore := range replicaStores(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			env, admin, rs := setupReplicas(t, store, 2)
			a, b := rs[0], rs[1]
			var ids []string
			for i := range 200 {
				ids = append(ids, b.create(t, admin, fmt.Sprint("k", i)).ID)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < len(ids); i += 4 {
						select {
						case <-stop:
							return
						default:
						}
						a.call("POST", "/v1/api-keys/"+ids[i]+"/rotate", admin, `{}`, nil)
					}
				})
			}
			time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
			a.cmd.Process.Kill()
			<-a.done
			close(stop)
			wg.Wait()

			// The survivor rotates what is left.
			for _, id := range ids {
				if st, err := b.call("POST", "/v1/api-keys/"+id+"/rotate", admin, `{}`, nil); err != nil || (st != 201 && st != 409) {
					t.Fatalf("rotate %s on the survivor: %d %v", id, st, err)
				}
			}
			var keys []apiKey
			if err := json.Unmarshal([]byte(mustRun(t, env, "list", "--store", store, "--all", "-o", "json")), &keys); err != nil {
				t.Fatal(err)
			}
			byID := map[string]apiKey{}
			for _, k := range keys {
				byID[k.ID] = k
			}
			var events []struct {
				Action  string
				KeyID   string `json:"key_id"`
				Details map[string]any
			}
			if err := json.Unmarshal([]byte(mustRun(t, env, "audit", "--store", store, "-o", "json")), &events); err != nil {
				t.Fatal(err)
			}
			rotations := map[string]string{}
			for _, e := range events {
				if e.Action == "rotate" {
					if _, dup := rotations[e.KeyID]; dup {
						t.Errorf("key %s has two rotate events", e.KeyID)
					}
					rotations[e.KeyID], _ = e.Details["new_key_id"].(string)
				}
			}
			for _, id := range ids {
				k := byID[id]
				if k.RotatedTo == nil {
					t.Errorf("key %s was not rotated", id)
					continue
				}
				succ, ok := byID[*k.RotatedTo]
				if !ok || succ.RotatedFrom == nil || *succ.RotatedFrom != id {
					t.Errorf("key %s: successor %s not linked back", id, *k.RotatedTo)
				}
				if rotations[id] != *k.RotatedTo {
					t.Errorf("key %s: rotate event names %q, record %s", id, rotations[id], *k.RotatedTo)
				}
			}
			if want := 1 + 2*len(ids); len(keys) != want {
				t.Errorf("%d keys, want %d (admin, each key and one successor)", len(keys), want)
			}
		})
	}
}

// A replica's /readyz answers 503 while it cannot reach its database, so
// that a load balancer drains it, and /healthz still 200: the process is up.
func TestReplicaReadyz(t *testing.T) {
	dsn := pgtest.DSN(t)
	_, _, rs := setupReplicas(t, dsn, 1)
	r := rs[0]
	if st, err := r.call("GET", "/readyz", "", "", nil); err != nil || st != 200 {
		t.Fatalf("readyz: %d %v, want 200", st, err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), pgtest.Admin(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "DROP DATABASE "+strings.TrimPrefix(u.Path, "/")+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.call("GET", "/readyz", "", "", nil); st != http.StatusServiceUnavailable {
		t.Errorf("readyz without the database: %d, want 503", st)
	}
	if st, err := r.call("GET", "/healthz", "", "", nil); err != nil || st != 200 {
		t.Errorf("healthz without the database: %d %v, want 200", st, err)
	}
}
