package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore/cache"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// startServe runs ListenAndServe on a new store, with the timeouts to
// (zero: the defaults), until the test ends, and returns its address.
func startServe(t *testing.T, to Timeouts) string {
	t.Helper()
	file, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.New(file, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, store, Config{Addr: "127.0.0.1:0", Log: logs, Timeouts: to}) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`"msg":"listening on http://(127\.0\.0\.1:\d+)"`).FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", logs)
		}
	}
}

// lockedBuffer is written by the server's goroutines while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// closedWithin sends req on a new connection to addr, reads until the
// server closes it, and checks that it did so after about want.
func closedWithin(t *testing.T, addr, req string, want time.Duration) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", elapsed)
	}
	if elapsed < want*3/4 || elapsed > want+3*time.Second {
		t.Errorf("connection closed after %v, want about %v", elapsed, want)
	}
	return string(got)
}

// A client that sends its headers a byte at a time must not hold a
// connection open: the server closes it after the header timeout.
func TestServeClosesSlowHeaders(t *testing.T) {
	addr := startServe(t, Timeouts{ReadHeader: 300 * time.Millisecond, Read: 30 * time.Second, Write: time.Minute, Idle: 2 * time.Minute})
	closedWithin(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 300*time.Millisecond)
}

// Nor one that sends its body slowly: it is cut off at the read timeout.
// The handler has answered (401: no API key) before reading the body; the
// server then waits for the rest of the body, as long as the read timeout.
func TestServeClosesSlowBody(t *testing.T) {
	addr := startServe(t, Timeouts{ReadHeader: 200 * time.Millisecond, Read: 600 * time.Millisecond, Write: time.Minute, Idle: 2 * time.Minute})
	got := closedWithin(t, addr, "POST /v1/api-keys/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":", 600*time.Millisecond)
	if !strings.HasPrefix(got, "HTTP/1.1 401 ") {
		t.Errorf("reply %q, want a 401", got)
	}
}

// Nor an idle keep-alive connection, after the idle timeout.
func TestServeClosesIdle(t *testing.T) {
	addr := startServe(t, Timeouts{ReadHeader: 200 * time.Millisecond, Read: 200 * time.Millisecond, Write: time.Minute, Idle: 700 * time.Millisecond})
	got := closedWithin(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 700*time.Millisecond)
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || strings.Contains(got, "Connection: close") {
		t.Errorf("reply %q, want a 200 on a connection kept alive", got)
	}
}
