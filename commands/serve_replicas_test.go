package commands

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// serveChild is a keyctl serve child process.
type serveChild struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:PORT
	logs *lockedBuffer
}

// startServeChild starts `keyctl serve` on the store at path as a child
// process, prefixed by wrap (such as prlimit and its options) when given,
// and returns it once it listens. It is stopped when the test ends.
func startServeChild(t *testing.T, path string, env []string, wrap []string, args ...string) *serveChild {
	t.Helper()
	argv := append([]string{"--store", path, "serve", "--addr", "127.0.0.1:0"}, args...)
	name := keyctlPath(t)
	if len(wrap) > 0 {
		argv = append(append(wrap[1:], name), argv...)
		name = wrap[0]
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &serveChild{cmd: cmd, logs: &lockedBuffer{}}
	listening := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"msg":"listening on (http://127\.0\.0\.1:\d+)"`)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.logs, line)
			if m := re.FindStringSubmatch(line); m != nil {
				select {
				case listening <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	select {
	case c.url = <-listening:
	case <-time.After(20 * time.Second):
		t.Fatalf("keyctl serve did not listen:\n%s", c.logs)
	}
	return c
}

// Two serve processes on one store, each sent the same create with one
// Idempotency-Key at once, 50 times: one key each time, since the key is
// claimed in the store. On SQLite and, when configured, PostgreSQL.
func TestReplicasIdempotency(t *testing.T) {
	for name, newStore := range replicaStores(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			_, admin, rs := setupReplicas(t, store, 2)

			type reply struct {
				status           int
				id, secret, hdrs string
			}
			post := func(url, idem, body string) (reply, error) {
				req, _ := http.NewRequest("POST", url+"/v1/api-keys", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+admin)
				req.Header.Set("Idempotency-Key", idem)
				resp, err := httpClient.Do(req)
				if err != nil {
					return reply{}, err
				}
				defer resp.Body.Close()
				var env struct{ Data keystore.Key }
				err = json.NewDecoder(resp.Body).Decode(&env)
				return reply{resp.StatusCode, env.Data.ID, env.Data.Secret, resp.Header.Get("Idempotent-Secret")}, err
			}

			const pairs = 50
			var wg sync.WaitGroup
			replies := make([][2]reply, pairs)
			for i := range pairs {
				idem := fmt.Sprintf("pair-%d", i)
				body := fmt.Sprintf(`{"name": "pair %d", "scopes": ["bots:read"]}`, i)
				for j, r := range rs {
					wg.Go(func() {
						rep, err := post(r.url, idem, body)
						if err != nil {
							t.Error(err)
						}
						replies[i][j] = rep
					})
				}
			}
			wg.Wait()

			dups := 0
			for i, pair := range replies {
				for _, r := range pair {
					if r.status != 201 || r.id == "" {
						t.Errorf("pair %d: reply %+v, want 201 with a key", i, r)
					}
					if (r.secret == "") != (r.hdrs == "withheld") {
						t.Errorf("pair %d: secret %t with Idempotent-Secret %q", i, r.secret != "", r.hdrs)
					}
				}
				if pair[0].id != pair[1].id {
					dups++
				}
				// The replica that made the key holds its secret; the other
				// replays the reply kept in the store, without it.
				if pair[0].secret == "" && pair[1].secret == "" {
					t.Errorf("pair %d: no reply has the secret", i)
				}
			}
			if dups != 0 {
				t.Errorf("%d of %d pairs made two keys, want 0", dups, pairs)
			}
			var n int
			if _, err := rs[0].call("GET", "/v1/api-keys?per_page=1", admin, "", nil); err != nil {
				t.Fatal(err)
			}
			var list struct{ Meta struct{ Total int } }
			req, _ := http.NewRequest("GET", rs[1].url+"/v1/api-keys?per_page=1", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if n = list.Meta.Total; n != pairs+1 {
				t.Errorf("%d keys in the store, want %d (the admin and one per pair)", n, pairs+1)
			}
		})
	}
}

// keyctl serve purges expired idempotent replies when it starts (and every
// 10 minutes after).
func TestServePurgesExpiredReplies(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "keys.db")
	seedStore(t, path, time.Now().Add(-time.Minute), 1, keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	db := rawStore(t, path)
	defer db.Close()
	old := time.Now().Add(-server.ReplayTTL - time.Hour).Unix()
	if _, err := db.Exec("INSERT INTO idempotency_claims (lookup, request, created_at, status, body) VALUES (x'01', x'02', ?, 201, x'7b7d'), (x'03', x'04', ?, 201, x'7b7d')",
		old, time.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	startServeChild(t, path, childEnv(home), nil)
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := db.QueryRow("SELECT count(*) FROM idempotency_claims").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 {
		t.Errorf("%d replies kept after serve started, want 1 (the expired one purged)", n)
	}
}
