package commands

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/output"
	"github.com/chatbotplatform/keyctl/webhook"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// delivery is what a test receiver got.
type delivery struct {
	method string
	path   string
	header http.Header
	body   []byte
	spools []os.FileMode // modes of keyctl's spool files while the request was in flight
}

// receiver is a webhook receiver on loopback that records every delivery
// and replies with status.
type receiver struct {
	*httptest.Server
	mu         sync.Mutex
	deliveries []delivery
}

func newReceiver(t *testing.T, status int, reply string) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		d := delivery{method: req.Method, path: req.URL.Path, header: req.Header.Clone(), body: body}
		spools, _ := filepath.Glob(filepath.Join(os.TempDir(), "keyctl-webhook-*"))
		for _, name := range spools {
			if info, err := os.Stat(name); err == nil {
				d.spools = append(d.spools, info.Mode().Perm())
			}
		}
		r.mu.Lock()
		r.deliveries = append(r.deliveries, d)
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) only(t *testing.T) delivery {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deliveries) != 1 {
		t.Fatalf("receiver got %d deliveries, want 1", len(r.deliveries))
	}
	return r.deliveries[0]
}

// webhookEnv isolates a test from the user's config and environment, and
// gives keyctl a temporary folder of its own to spool into.
func webhookEnv(t *testing.T) (tmp string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local", "share"))
	for _, name := range []string{webhookSecretEnv, "KEYCTL_SECRET", "KEYCTL_OUTPUT", "KEYCTL_TIMEOUT", "KEYCTL_SCHEME", "KEYCTL_SEND", "KEYCTL_CONFIG", "KEYCTL_PROFILE"} {
		t.Setenv(name, "")
	}
	tmp = t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

// runKeyctl runs keyctl in-process, streams not terminals.
func runKeyctl(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errOut bytes.Buffer
	code = run(output.Test(stdin, &out, &errOut), func() time.Time { return testNow }, args)
	return code, out.String(), errOut.String()
}

// testPayload is large enough to take many reads, and ends without a newline.
func testPayload(t *testing.T) (path string, data []byte) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"type": "bot.created", "data": [`)
	for i := 0; b.Len() < 300<<10; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`{"id": "bot_123", "note": "é\u00e9 \\n"}`)
	}
	b.WriteString("]}")
	path = filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}

func checkDelivered(t *testing.T, d delivery, want []byte, opts webhook.VerifyOptions) {
	t.Helper()
	if d.method != http.MethodPost || d.path != "/webhook" {
		t.Errorf("receiver got %s %s, want POST /webhook", d.method, d.path)
	}
	if !bytes.Equal(d.body, want) {
		t.Errorf("receiver got %d bytes that differ from the %d of the payload", len(d.body), len(want))
	}
	if opts.Now.IsZero() {
		opts.Now = testNow
	}
	if err := webhook.Verify(bytes.NewReader(d.body), d.header, opts); err != nil {
		t.Errorf("delivery does not verify: %v (headers %v)", err, d.header)
	}
	if got := d.header.Get("User-Agent"); got != "keyctl" {
		t.Errorf("User-Agent = %q, want keyctl", got)
	}
}

func TestSignWebhookSend(t *testing.T) {
	webhookEnv(t)
	path, data := testPayload(t)
	rcv := newReceiver(t, http.StatusOK, "ok")

	code, stdout, stderr := runKeyctl(t, nil, "sign-webhook", "--secret", testWebhookSecret, "--send", rcv.URL+"/webhook", path)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	d := rcv.only(t)
	checkDelivered(t, d, data, webhook.VerifyOptions{Secrets: []string{testWebhookSecret}})
	if got := d.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := d.header.Get("Content-Length"); got == "" {
		t.Errorf("no Content-Length: the payload was sent chunked")
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 4 || lines[3] != "200 OK" {
		t.Fatalf("stdout = %q, want three header lines and 200 OK", stdout)
	}
	for i, name := range webhook.HeaderNames(webhook.Standard) {
		if want := name + ": " + d.header.Get(name); lines[i] != want {
			t.Errorf("stdout line %d = %q, want %q", i+1, lines[i], want)
		}
	}
}

func TestSignWebhookSendJSON(t *testing.T) {
	webhookEnv(t)
	path, data := testPayload(t)
	rcv := newReceiver(t, http.StatusAccepted, "")

	code, stdout, stderr := runKeyctl(t, nil, "sign-webhook", "--scheme", "stripe", "--secret", "whsec_stripe_test_secret",
		"--content-type", "application/json; charset=utf-8", "--send", rcv.URL+"/webhook", "-o", "json", path)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	d := rcv.only(t)
	checkDelivered(t, d, data, webhook.VerifyOptions{Scheme: webhook.Stripe, Secrets: []string{"whsec_stripe_test_secret"}})
	if got := d.header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	var out struct {
		Headers map[string]string `json:"headers"`
		Status  int               `json:"status"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if out.Status != 202 || out.Headers["Stripe-Signature"] != d.header.Get("Stripe-Signature") || len(out.Headers) != 1 {
		t.Errorf("stdout = %s, want the Stripe-Signature sent and status 202", stdout)
	}
}

// From stdin the payload is spooled to a private temporary file, removed
// afterwards, so that it can be read twice.
func TestSignWebhookSendStdin(t *testing.T) {
	tmp := webhookEnv(t)
	_, data := testPayload(t)
	rcv := newReceiver(t, http.StatusNoContent, "")

	code, stdout, stderr := runKeyctl(t, bytes.NewReader(data), "sign-webhook", "--scheme", "github", "--secret", "It's a Secret to Everybody",
		"--send", rcv.URL+"/webhook", "-")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	d := rcv.only(t)
	checkDelivered(t, d, data, webhook.VerifyOptions{Scheme: webhook.GitHub, Secrets: []string{"It's a Secret to Everybody"}})
	if !strings.HasSuffix(stdout, "\n204 No Content\n") {
		t.Errorf("stdout = %q, want it to end with the reply status", stdout)
	}
	if len(d.spools) != 1 || d.spools[0] != 0o600 {
		t.Errorf("spool files during the send: modes %v, want one 0600 file", d.spools)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

func TestSignWebhookSendEmptyPayload(t *testing.T) {
	webhookEnv(t)
	rcv := newReceiver(t, http.StatusOK, "")
	code, _, stderr := runKeyctl(t, nil, "sign-webhook", "--secret", testWebhookSecret, "--send", rcv.URL+"/webhook", "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkDelivered(t, rcv.only(t), nil, webhook.VerifyOptions{Secrets: []string{testWebhookSecret}})
}

func TestSignWebhookSendRefused(t *testing.T) {
	webhookEnv(t)
	path, data := testPayload(t)
	rcv := newReceiver(t, http.StatusInternalServerError, "boom\nstack trace")

	code, stdout, stderr := runKeyctl(t, nil, "sign-webhook", "--secret", testWebhookSecret, "--send", rcv.URL+"/webhook", path)
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	checkDelivered(t, rcv.only(t), data, webhook.VerifyOptions{Secrets: []string{testWebhookSecret}})
	want := "error: send webhook to " + rcv.URL + "/webhook: the receiver replied 500 Internal Server Error: boom\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	if !strings.HasSuffix(stdout, "\n500 Internal Server Error\n") {
		t.Errorf("stdout = %q, want the headers and the reply status", stdout)
	}
}

// A redirect is the receiver's answer: it is not followed, which would turn
// the POST into a GET of another URL.
func TestSignWebhookSendRedirect(t *testing.T) {
	webhookEnv(t)
	target := newReceiver(t, http.StatusOK, "")
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/webhook", http.StatusFound))
	defer redirect.Close()

	code, _, stderr := runKeyctl(t, nil, "sign-webhook", "--secret", testWebhookSecret, "--send", redirect.URL+"/webhook", "-")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr, "the receiver replied 302 Found\nhint: webhooks are not redirected; send to "+target.URL+"/webhook") {
		t.Errorf("stderr = %q", stderr)
	}
	if len(target.deliveries) != 0 {
		t.Errorf("the redirect was followed")
	}
}

func TestSignWebhookSendUnreachable(t *testing.T) {
	webhookEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/webhook"
	ln.Close()

	code, stdout, stderr := runKeyctl(t, strings.NewReader("{}"), "sign-webhook", "--secret", testWebhookSecret, "--send", url, "-")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if !strings.HasPrefix(stderr, "error: send webhook to "+url+": dial tcp ") || !strings.Contains(stderr, "connection refused") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line naming the URL and the refused connection", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestSignWebhookSendTimeout(t *testing.T) {
	tmp := webhookEnv(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	code, _, stderr := runKeyctl(t, strings.NewReader("{}"), "--timeout", "200ms", "sign-webhook", "--secret", testWebhookSecret, "--send", slow.URL, "-")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	want := "error: send webhook to " + slow.URL + ": no reply within 200ms\nhint: allow longer with --timeout\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

// A password in the URL never reaches an error message.
func TestSignWebhookSendRedactsURL(t *testing.T) {
	webhookEnv(t)
	rcv := newReceiver(t, http.StatusUnauthorized, "")
	url := strings.Replace(rcv.URL, "http://", "http://hook:s3cret-pw@", 1) + "/webhook"

	code, _, stderr := runKeyctl(t, nil, "sign-webhook", "--secret", testWebhookSecret, "--send", url, "-")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if strings.Contains(stderr, "s3cret-pw") || !strings.Contains(stderr, "hook:xxxxx@") {
		t.Errorf("stderr = %q, want the password redacted", stderr)
	}
	if user, pw, _ := basicAuth(rcv.only(t).header); user != "hook" || pw != "s3cret-pw" {
		t.Errorf("the receiver did not get the URL's credentials")
	}
}

func basicAuth(h http.Header) (user, pw string, ok bool) {
	r := &http.Request{Header: h}
	return r.BasicAuth()
}

// The flags resolve to the library's options; the run half is not reached.
func TestSignWebhookOptions(t *testing.T) {
	webhookEnv(t)
	tests := []struct {
		line    string
		want    webhook.SignOptions
		wantErr string
	}{
		{line: "--secret " + testWebhookSecret + " event.json",
			want: webhook.SignOptions{Scheme: webhook.Standard, Secrets: []string{testWebhookSecret}, Timestamp: testNow}},
		{line: "--secret a --scheme stripe --timestamp 1614265330 -",
			want: webhook.SignOptions{Scheme: webhook.Stripe, Secrets: []string{"a"}, Timestamp: time.Unix(1614265330, 0)}},
		{line: "--secret a --scheme github -",
			want: webhook.SignOptions{Scheme: webhook.GitHub, Secrets: []string{"a"}}},
		{line: "--secret a --secret b --scheme github -", wantErr: "github webhooks carry one signature: give one secret, not 2"},
		{line: "--secret a --scheme github --timestamp 1 -", wantErr: "github webhook signatures carry no timestamp"},
		{line: "--secret a --timestamp 1e9 -", wantErr: `invalid --timestamp "1e9"`},
		{line: "--secret a --scheme stripe --send http://[::1 -", wantErr: "--send needs an http:// or https:// URL"},
		{line: "--new-secret --send http://127.0.0.1/ ", wantErr: "drop --send"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got *SignWebhookOptions
			cmd := NewCmdSignWebhook(testFactory(false), func(o *SignWebhookOptions) error { got = o; return nil })
			err := parse(t, cmd, tt.line)
			if tt.wantErr != "" {
				checkUsageError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := got.Sign; g.Scheme != tt.want.Scheme || strings.Join(g.Secrets, " ") != strings.Join(tt.want.Secrets, " ") || !g.Timestamp.Equal(tt.want.Timestamp) || g.ID != tt.want.ID {
				t.Errorf("Sign = %+v, want %+v", g, tt.want)
			}
		})
	}
}
