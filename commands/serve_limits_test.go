//go:build linux

package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// Under a low limit of open files, a burst of clients gets only 2xx and 503
// replies with Retry-After, never a 500 (a store that could not open a
// file), and after the burst the server holds few descriptors again.
func TestServeShedsLoadUnderFileLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	home := t.TempDir()
	path := filepath.Join(home, "keys.db")
	keys := seedStore(t, path, time.Now().Add(-time.Minute), 1, keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	admin := keys[0]
	const nofile = 400
	srv := startServeChild(t, path, childEnv(home), []string{prlimit, fmt.Sprintf("--nofile=%d:%d", nofile, nofile)}, "--rate-limit", "0")

	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, MaxIdleConns: -1},
	}
	const burst = 2000
	statuses := make([]int, burst)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	start := make(chan struct{})
	for i := range burst {
		wg.Go(func() {
			<-start
			var req *http.Request
			switch i % 4 {
			case 0: // a write: the store's connections
				req, _ = http.NewRequest("POST", srv.url+"/v1/api-keys", strings.NewReader(fmt.Sprintf(`{"name": "burst %d", "scopes": ["bots:read"]}`, i)))
			case 1: // a read of the store
				req, _ = http.NewRequest("GET", srv.url+"/v1/api-keys?per_page=5", nil)
			default:
				req, _ = http.NewRequest("POST", srv.url+"/v1/api-keys/verify", strings.NewReader(`{"key": "`+admin.Secret+`"}`))
			}
			req.Header.Set("Authorization", "Bearer "+admin.Secret)
			resp, err := client.Do(req)
			if err != nil {
				mu.Lock()
				problems = append(problems, err.Error())
				mu.Unlock()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
			if resp.StatusCode == 503 {
				var env struct{ Error struct{ Code string } }
				if json.Unmarshal(body, &env) != nil || env.Error.Code != "overloaded" || resp.Header.Get("Retry-After") == "" {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("503 without the envelope or Retry-After: %s %v", body, resp.Header))
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()

	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	t.Logf("burst of %d under a limit of %d files: %v", burst, nofile, count)
	for st, n := range count {
		if st != 200 && st != 201 && st != 503 {
			t.Errorf("%d replies of status %d, want only 2xx and 503", n, st)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d requests failed, first: %s", len(problems), problems[0])
	}

	// The burst's connections are gone: the server keeps no more than its
	// reserve of descriptors.
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	n := fds()
	for deadline := time.Now().Add(10 * time.Second); n > server.FDReserve() && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n = fds()
	}
	if n > server.FDReserve() {
		t.Errorf("%d descriptors open after the burst, want at most %d", n, server.FDReserve())
	}
}
