package remote_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/remote"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/server"
)

// service is a real server over a real SQLite file, reached through a
// front that can inject faults before or after the server's work.
type service struct {
	t      *testing.T
	local  *sqlite.Store
	admin  *keystore.Key
	reader *keystore.Key
	api    http.Handler
	front  *httptest.Server

	mu       sync.Mutex
	requests int
	idem     []string // the Idempotency-Key of each request
	fault    func(n int, w http.ResponseWriter, r *http.Request) bool
	sleeps   []time.Duration
}

func newService(t *testing.T) *service {
	t.Helper()
	local, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, local: local, api: server.New(local, server.Options{})}
	for _, k := range []**keystore.Key{&s.admin, &s.reader} {
		scope := "admin"
		if k == &s.reader {
			scope = "bots:read"
		}
		if *k, err = local.Create(context.Background(), keystore.CreateParams{Name: scope, Scopes: []string{scope}}); err != nil {
			t.Fatal(err)
		}
	}
	s.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		n := s.requests
		s.idem = append(s.idem, r.Header.Get("Idempotency-Key"))
		fault := s.fault
		s.mu.Unlock()
		if fault == nil || !fault(n, w, r) {
			s.api.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { s.front.Close(); local.Close() })
	return s
}

// client opens a remote store through the front with the admin key. Its
// waits between attempts are recorded, not slept.
func (s *service) client(opts remote.Options) *remote.Store {
	s.t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error {
			s.mu.Lock()
			s.sleeps = append(s.sleeps, d)
			s.mu.Unlock()
			return ctx.Err()
		}
	}
	c, err := remote.Open(s.front.URL+"/v1", s.admin.Secret, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func (s *service) count() int {
	s.t.Helper()
	n, err := s.local.Count(context.Background(), keystore.ListFilter{})
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

// afterServing lets the server do its work, then drops the reply.
func (s *service) afterServing(w http.ResponseWriter, r *http.Request) {
	s.api.ServeHTTP(httptest.NewRecorder(), r)
}

// hangUp closes the connection without a reply.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

var params = keystore.CreateParams{Name: "retried", Scopes: []string{"bots:read"}}

func TestRetryDroppedConnections(t *testing.T) {
	s := newService(t)
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n <= 2 {
			s.afterServing(w, r) // the key is made, the reply lost
			hangUp(t, w)
			return true
		}
		return false
	}
	k, err := s.client(remote.Options{}).Create(t.Context(), params)
	if err != nil {
		t.Fatalf("Create through dropped connections: %v", err)
	}
	if s.requests != 3 || s.count() != 3 {
		t.Errorf("%d requests made %d keys; want 3 requests and one new key", s.requests, s.count()-2)
	}
	if got, err := s.local.Verify(t.Context(), k.Secret, nil); err != nil || !got.Valid || got.Key.ID != k.ID {
		t.Errorf("the secret returned after retries does not verify as %s: %+v, %v", k.ID, got, err)
	}
	wantSameIdempotencyKey(t, s.idem)
}

func TestRetry503(t *testing.T) {
	s := newService(t)
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n <= 3 {
			s.afterServing(w, r)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error": {"code": "internal", "message": "try later", "request_id": "r"}}`))
			return true
		}
		return false
	}
	c := s.client(remote.Options{BackoffBase: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	if _, err := c.Create(t.Context(), params); err != nil {
		t.Fatalf("Create through 503s: %v", err)
	}
	if s.requests != 4 || s.count() != 3 {
		t.Errorf("%d requests, %d keys; want 4 requests and one new key", s.requests, s.count())
	}
	wantSameIdempotencyKey(t, s.idem)
	// Exponential backoff with full jitter: attempt i waits at most
	// base*2^i, capped.
	if len(s.sleeps) != 3 {
		t.Fatalf("waits %v, want 3", s.sleeps)
	}
	for i, d := range s.sleeps {
		if ceiling := min(300*time.Millisecond, 100*time.Millisecond<<i); d < 0 || d > ceiling {
			t.Errorf("wait %d = %v, want at most %v", i, d, ceiling)
		}
	}

	// A second call has a key of its own.
	s.idem = nil
	if _, err := c.Create(t.Context(), params); err != nil {
		t.Fatal(err)
	}
	if len(s.idem) != 1 || s.idem[0] == "" {
		t.Errorf("second create sent %q", s.idem)
	}
}

func TestRetryAfter(t *testing.T) {
	s := newService(t)
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n <= 2 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error": {"code": "rate_limited", "message": "slow down", "request_id": "r"}}`))
			return true
		}
		return false
	}
	if _, err := s.client(remote.Options{}).Create(t.Context(), params); err != nil {
		t.Fatalf("Create through 429s: %v", err)
	}
	if len(s.sleeps) != 2 || s.sleeps[0] != time.Second || s.sleeps[1] != time.Second {
		t.Errorf("waits %v, want 1s twice (Retry-After)", s.sleeps)
	}
	if s.count() != 3 {
		t.Errorf("%d keys, want 3", s.count())
	}
}

// Retries are bounded by Timeout: a Retry-After past the deadline ends the
// call at once with the server's error.
func TestRateLimitedAfterRetries(t *testing.T) {
	s := newService(t)
	s.api = server.New(s.local, server.Options{RateLimit: 1})
	c := s.client(remote.Options{Timeout: 500 * time.Millisecond})
	if _, err := c.Count(t.Context(), keystore.ListFilter{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Count(t.Context(), keystore.ListFilter{})
	wantErr(t, err, keystore.ERATELIMITED, "rate limit")
	if len(s.sleeps) != 0 {
		t.Errorf("waited %v although Retry-After passes the deadline", s.sleeps)
	}
}

func TestTimeoutOnStall(t *testing.T) {
	s := newService(t)
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	}
	c := s.client(remote.Options{Timeout: 300 * time.Millisecond, Sleep: nil})
	start := time.Now()
	_, err := c.Get(t.Context(), s.reader.ID)
	if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v, want about 300ms", took)
	}
	e := wantErr(t, err, keystore.EUNAVAILABLE, "cannot reach key service at "+s.front.URL+"/v1")
	if !strings.Contains(e.Message, "no reply within 300ms") {
		t.Errorf("message %q", e.Message)
	}
	if strings.Contains(err.Error(), s.admin.Secret) {
		t.Errorf("the error holds the API key")
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	key := "sk_live_000000000000000000000000000000002UYg5A"
	// A generous timeout with few attempts: the refusal, not a slow
	// machine's clock, must end the call.
	c, err := remote.Open(url, key, remote.Options{Timeout: 10 * time.Second, MaxAttempts: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(t.Context(), params)
	e := wantErr(t, err, keystore.EUNAVAILABLE, "cannot reach key service at "+url+": ")
	if !strings.Contains(e.Message, "refused") || strings.Contains(e.Message, key[8:]) {
		t.Errorf("message %q", e.Message)
	}
}

func TestUnexpectedReplies(t *testing.T) {
	for _, tt := range []struct {
		name, ctype, body string
		status            int
		want              string
	}{
		{"html error page", "text/html; charset=utf-8", "<html><body>Bad Gateway</body></html>", 502, "(HTTP 502, text/html)"},
		{"html page", "text/html", "<html>Welcome to nginx</html>", 200, "(HTTP 200, text/html)"},
		{"garbage", "application/json", "\x00\x01garbage", 200, "(HTTP 200, application/json)"},
		{"no content type", "", "", 404, "(HTTP 404, "},
		{"other JSON", "application/json", `{"keys": []}`, 200, "(HTTP 200, application/json)"},
		{"error with 200", "application/json", `{"error": {"code": "x", "message": "m"}}`, 200, "(HTTP 200 with an error body)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t)
			s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
				return true
			}
			_, err := s.client(remote.Options{MaxAttempts: 3}).Get(t.Context(), s.reader.ID)
			e := wantErr(t, err, keystore.EUNAVAILABLE, "unexpected reply from key service at "+s.front.URL+"/v1 ")
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q, want %q in it", e.Message, tt.want)
			}
			if want := map[bool]int{true: 3, false: 1}[tt.status >= 500]; s.requests != want {
				t.Errorf("%d requests, want %d", s.requests, want)
			}
		})
	}
}

func TestServerErrorsMapBack(t *testing.T) {
	s := newService(t)
	admin := s.client(remote.Options{})
	unknown := "key_" + strings.Repeat("0", 16)

	_, err := admin.Get(t.Context(), unknown)
	wantErr(t, err, keystore.ENOTFOUND, "key "+unknown+" not found")
	_, err = admin.Create(t.Context(), keystore.CreateParams{Name: "", Scopes: []string{"bots:read"}})
	wantErr(t, err, keystore.EINVALID, "a key needs a name")
	_, err = admin.Rotate(t.Context(), s.reader.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Rotate(t.Context(), s.reader.ID, keystore.RotateOptions{})
	wantErr(t, err, keystore.ECONFLICT, "key "+s.reader.ID+" was already rotated to key_")

	reader, err := remote.Open(s.front.URL+"/v1", s.admin.Secret[:8]+strings.Repeat("x", 38), remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reader.Count(t.Context(), keystore.ListFilter{})
	wantErr(t, err, keystore.EUNAUTHORIZED, "invalid API key")

	other, _ := s.local.Create(t.Context(), keystore.CreateParams{Name: "not admin", Scopes: []string{"bots:read"}})
	notAdmin, err := remote.Open(s.front.URL+"/v1/", other.Secret, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = notAdmin.Revoke(t.Context(), s.reader.ID)
	e := wantErr(t, err, keystore.EFORBIDDEN, "API key "+other.ID+" lacks the admin scope")
	if strings.Contains(e.Message, other.Secret) {
		t.Errorf("the error holds the API key")
	}
	// Any valid key may verify.
	v, err := notAdmin.Verify(t.Context(), s.admin.Secret, []string{"admin"})
	if err != nil || !v.Valid {
		t.Errorf("Verify with a key without admin = %+v, %v", v, err)
	}

	// A wrong base path reaches no endpoint: a 404 of the service is not a
	// missing key.
	wrong, _ := remote.Open(s.front.URL+"/api", s.admin.Secret, remote.Options{})
	_, err = wrong.Get(t.Context(), s.reader.ID)
	wantErr(t, err, keystore.ENOTFOUND, "no such endpoint: GET /api/api-keys/")
}

func TestOpenChecks(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://host/v1", "http://", "http://user:pw@host/v1", "https://host/v1?x=1", "://"} {
		_, err := remote.Open(u, "sk_live_x", remote.Options{})
		if e := wantErr(t, err, keystore.EINVALID, "invalid key service URL"); strings.Contains(e.Message, "pw@") {
			t.Errorf("message %q shows the credentials", e.Message)
		}
	}
	_, err := remote.Open("http://127.0.0.1:1/v1", "", remote.Options{})
	wantErr(t, err, keystore.EUNAUTHORIZED, "no API key")
}

func wantSameIdempotencyKey(t *testing.T, keys []string) {
	t.Helper()
	for _, k := range keys {
		if k == "" || k != keys[0] {
			t.Errorf("Idempotency-Key of each attempt: %q, want one key sent with every attempt", keys)
			return
		}
	}
}

func wantErr(t *testing.T, err error, code, prefix string) *keystore.Error {
	t.Helper()
	var e *keystore.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a keystore.Error %s", err, err, code)
	}
	if e.Code != code || !strings.HasPrefix(e.Message, prefix) {
		t.Errorf("error %s %q, want %s starting %q", e.Code, e.Message, code, prefix)
	}
	return e
}

// A broken or hostile server must not reach the user's terminal with escape
// sequences or a screenful of text through its error messages.
func TestServerMessagesArePrintable(t *testing.T) {
	s := newService(t)
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error": {"code": "conflict", "message": "bad\u001b[31m red\nnext line ` + strings.Repeat("x", 1000) + `"}}`))
		return true
	}
	_, err := s.client(remote.Options{}).Get(t.Context(), s.reader.ID)
	e := wantErr(t, err, keystore.ECONFLICT, "bad")
	if strings.ContainsAny(e.Message, "\x1b\n") || len([]rune(e.Message)) > 301 {
		t.Errorf("message not made printable: %q", e.Message)
	}
}

// A create whose reply is lost and whose retry reaches another server on
// the same store (which never held the secret) fails with an error that
// names the key that was made, rather than returning a key without its
// secret or making a second one.
func TestRetryWithheldSecret(t *testing.T) {
	s := newService(t)
	other := server.New(s.local, server.Options{})
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			s.afterServing(w, r) // the key is made, the reply lost
			hangUp(t, w)
			return true
		}
		other.ServeHTTP(w, r) // the retry reaches another server
		return true
	}
	k, err := s.client(remote.Options{}).Create(t.Context(), params)
	if err == nil || k != nil {
		t.Fatalf("Create = %+v, %v; want an error", k, err)
	}
	if s.count() != 3 {
		t.Errorf("%d keys, want 3: the retry must not make another", s.count())
	}
	var made string
	for k, err := range s.local.List(t.Context(), keystore.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		made = k.ID
	}
	if msg := err.Error(); !strings.Contains(msg, made) || !strings.Contains(msg, "withholds the secret") {
		t.Errorf("error %q does not name key %s and the withheld secret", msg, made)
	}
}
