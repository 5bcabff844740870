package commands

import (
	"bytes"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/output"
)

// A key service that refuses connections: keyctl gives up after 4 attempts,
// well within --timeout, and on a terminal says that it retries; in a pipe
// it prints only the error.
func TestRetryNoticeOnTerminal(t *testing.T) {
	webhookEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	t.Setenv("CHATBOT_API_KEY", "sk_live_000000000000000000000000000000002UYg5A")

	for _, tty := range []bool{true, false} {
		var out, errOut bytes.Buffer
		io := output.Test(strings.NewReader(""), &out, &errOut)
		io.SetTTY(tty)
		began := time.Now()
		code := run(io, time.Now, []string{"--api-url", api, "--timeout", "30s", "list"})
		took := time.Since(began)
		if code != exitError || took > 15*time.Second {
			t.Errorf("tty %v: exit %d after %v, want 1 well before the 30s timeout", tty, code, took)
		}
		notices := regexp.MustCompile(`(?m)^key service at `+regexp.QuoteMeta(api)+`: .*connection refused; retrying in \S+ \(attempt (\d) of 4\)$`).FindAllStringSubmatch(errOut.String(), -1)
		want := map[bool]int{true: 3, false: 0}[tty]
		if len(notices) != want {
			t.Errorf("tty %v: %d retry notices, want %d:\n%s", tty, len(notices), want, errOut.String())
		}
		if !strings.Contains(errOut.String(), "error: cannot reach key service at "+api) {
			t.Errorf("tty %v: stderr %q", tty, errOut.String())
		}
	}
}
