package remote_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/remote"
)

// retryLog records what a client reports through OnRetry and waits,
// without sleeping.
type retryLog struct {
	whys  []string
	nexts []int
	max   int
}

func (l *retryLog) opts(o remote.Options) remote.Options {
	o.OnRetry = func(next, max int, wait time.Duration, why string) {
		l.whys = append(l.whys, why)
		l.nexts = append(l.nexts, next)
		l.max = max
	}
	o.Sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	return o
}

// A refused connection is retried, but at most 4 attempts in all (not for
// the whole timeout), and each retry is reported.
func TestRefusedConnectionRetriesAreBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	var l retryLog
	c, err := remote.Open(url, "sk_live_000000000000000000000000000000002UYg5A", l.opts(remote.Options{Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Count(t.Context(), keystore.ListFilter{})
	wantErr(t, err, keystore.EUNAVAILABLE, "cannot reach key service at "+url+": ")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("gave up after %v", took)
	}
	if len(l.whys) != 3 || l.max != remote.DefaultMaxAttempts || l.nexts[0] != 2 || l.nexts[2] != 4 {
		t.Fatalf("OnRetry calls: next %v of %d, why %q; want attempts 2 to 4 of 4", l.nexts, l.max, l.whys)
	}
	if !strings.Contains(l.whys[0], "connection refused") {
		t.Errorf("why %q, want connection refused", l.whys[0])
	}
}

// Replies that cannot change on a second try are not retried; 408, 429 and
// 5xx but 501 are.
func TestRetriedStatuses(t *testing.T) {
	for status, want := range map[int]int{
		400: 1, 403: 1, 404: 1, 409: 1, 413: 1, 418: 1,
		501: 1,
		408: 4, 429: 4, 500: 4, 502: 4, 503: 4, 504: 4,
	} {
		s := newService(t)
		s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write([]byte(`{"error": {"code": "x", "message": "no", "request_id": "r"}}`))
			return true
		}
		_, err := s.client(remote.Options{}).Get(t.Context(), s.reader.ID)
		if err == nil {
			t.Fatalf("HTTP %d: no error", status)
		}
		if s.requests != want {
			t.Errorf("HTTP %d: %d requests, want %d", status, s.requests, want)
		}
	}
}

// A certificate that does not verify is not retried, and the error says
// how to trust a private CA; with it in RootCAs, the service is reached.
// Plain HTTP where https:// was asked for is not retried either.
func TestTLSFailuresAreNotRetried(t *testing.T) {
	s := newService(t)
	var requests atomic.Int32
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		s.api.ServeHTTP(w, r)
	}))
	defer tlsSrv.Close()

	var l retryLog
	c, err := remote.Open(tlsSrv.URL+"/v1", s.admin.Secret, l.opts(remote.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(t.Context(), s.reader.ID)
	e := wantErr(t, err, keystore.EUNAVAILABLE, "TLS certificate of key service at "+tlsSrv.URL+"/v1 not trusted: ")
	if !strings.Contains(e.Message, "--ca-cert") {
		t.Errorf("message %q, want a hint at --ca-cert", e.Message)
	}
	if len(l.whys) != 0 {
		t.Errorf("retried a certificate failure: %q", l.whys)
	}

	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	c, err = remote.Open(tlsSrv.URL+"/v1", s.admin.Secret, remote.Options{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.Get(t.Context(), s.reader.ID); err != nil || k.ID != s.reader.ID {
		t.Fatalf("Get with the CA trusted: %+v, %v", k, err)
	}

	plain := strings.Replace(s.front.URL, "http://", "https://", 1) + "/v1"
	l = retryLog{}
	c, err = remote.Open(plain, s.admin.Secret, l.opts(remote.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(t.Context(), s.reader.ID)
	wantErr(t, err, keystore.EUNAVAILABLE, "key service at "+plain+" does not speak TLS")
	if len(l.whys) != 0 {
		t.Errorf("retried a plain HTTP server: %q", l.whys)
	}
}

func TestUserAgent(t *testing.T) {
	s := newService(t)
	var got atomic.Value
	s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		got.Store(r.Header.Get("User-Agent"))
		return false
	}
	if _, err := s.client(remote.Options{UserAgent: "keyctl/v1.2.3 (linux/amd64)"}).Get(t.Context(), s.reader.ID); err != nil {
		t.Fatal(err)
	}
	if ua := got.Load(); ua != "keyctl/v1.2.3 (linux/amd64)" {
		t.Errorf("User-Agent %q", ua)
	}
}
