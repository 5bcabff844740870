package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTimer is a LogBuffer's timer, fired by the test.
type fakeTimer struct {
	f       func()
	d       time.Duration
	armed   bool
	resets  int
	stopped bool
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.armed
	t.d, t.armed = d, true
	t.resets++
	return was
}

func (t *fakeTimer) Stop() bool {
	was := t.armed
	t.armed, t.stopped = false, true
	return was
}

func (t *fakeTimer) fire() {
	t.armed = false
	t.f()
}

// writes records each call to Write, so that a test sees how lines were
// batched.
type writes struct{ calls []string }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writes) String() string { return strings.Join(w.calls, "") }

func newTestLogBuffer(w *writes, every time.Duration) (*LogBuffer, **fakeTimer) {
	b := NewLogBuffer(w, every)
	var timer *fakeTimer
	b.afterFunc = func(d time.Duration, f func()) logTimer {
		timer = &fakeTimer{f: f, d: d, armed: true}
		return timer
	}
	return b, &timer
}

// Request lines wait for the timer, which the first line held arms; the
// timer writes them in one call.
func TestLogBufferTimer(t *testing.T) {
	var w writes
	b, tp := newTestLogBuffer(&w, 100*time.Millisecond)
	h := NewLogger(b).Handler().(*logHandler)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if *tp != nil {
		t.Fatal("timer made before any line")
	}
	h.request(at, "POST", "/v1/api-keys/verify", 200, 100, "req_1", "key_a")
	h.request(at, "POST", "/v1/api-keys/verify", 200, 100, "req_2", "key_a")
	timer := *tp
	if timer == nil || !timer.armed || timer.d != 100*time.Millisecond {
		t.Fatalf("timer %+v, want one armed for 100ms", timer)
	}
	if len(w.calls) != 0 {
		t.Fatalf("lines written before the timer fired: %q", w.calls)
	}
	timer.fire()
	if len(w.calls) != 1 || strings.Count(w.calls[0], "\n") != 2 || !strings.Contains(w.calls[0], `"request_id":"req_1"`) {
		t.Fatalf("after the timer: %q, want both lines in one write", w.calls)
	}
	// The next line arms the timer again; with nothing held, firing
	// writes nothing.
	h.request(at, "GET", "/healthz", 200, 100, "req_3", "")
	if !timer.armed || timer.resets != 1 {
		t.Fatalf("timer not armed again: %+v", timer)
	}
	timer.fire()
	timer.fire()
	if len(w.calls) != 2 || !strings.Contains(w.calls[1], "req_3") {
		t.Fatalf("writes %q", w.calls)
	}
	// Flush writes what is held without waiting for the timer.
	h.request(at, "GET", "/healthz", 200, 100, "req_4", "")
	if err := b.Flush(); err != nil || len(w.calls) != 3 || !strings.Contains(w.calls[2], "req_4") {
		t.Fatalf("after Flush (%v): writes %q", err, w.calls)
	}
}

// Every other line is written at once, after the request lines held, so
// that the log keeps its order; so is the line of a request answered with
// 5xx.
func TestLogBufferOrder(t *testing.T) {
	var w writes
	b, _ := newTestLogBuffer(&w, time.Hour)
	l := NewLogger(b)
	h := l.Handler().(*logHandler)
	at := time.Now()
	h.request(at, "POST", "/v1/api-keys", 201, 1, "req_1", "key_a")
	l.Info("shutting down")
	if got := w.String(); !strings.Contains(got, "req_1") || strings.Index(got, "req_1") > strings.Index(got, "shutting down") {
		t.Fatalf("log %q, want the request line, then shutting down", got)
	}
	n := len(w.calls)
	s := New(nil, Options{Logger: l})
	r := httptest.NewRequest("GET", "/v1/api-keys", nil)
	s.logRequest(r, &reqState{id: "req_2", err: fmt.Errorf("disk on fire")}, 500, at, time.Millisecond)
	if len(w.calls) != n+1 || !strings.Contains(w.calls[n], `"level":"ERROR"`) || !strings.Contains(w.calls[n], "disk on fire") {
		t.Fatalf("a 5xx line was held: %q", w.calls[n:])
	}
	// slog.Logger.Handler's other uses (http.Server's ErrorLog) write at once.
	slog.NewLogLogger(l.Handler(), slog.LevelWarn).Print("http: TLS handshake error")
	if !strings.Contains(w.calls[len(w.calls)-1], "TLS handshake error") {
		t.Fatalf("a warning was held: %q", w.calls)
	}
}

// A full buffer is written in one call of whole lines; a line larger
// than the buffer is written on its own.
func TestLogBufferFull(t *testing.T) {
	var w writes
	b, _ := newTestLogBuffer(&w, time.Hour)
	h := NewLogger(b).Handler().(*logHandler)
	at := time.Now()
	lines := 0
	for len(w.calls) == 0 {
		h.request(at, "POST", "/v1/api-keys/verify", 200, 100, fmt.Sprintf("req_%d", lines), "key_a")
		lines++
	}
	if len(w.calls[0]) > LogBufferSize || !strings.HasSuffix(w.calls[0], "}\n") || strings.Count(w.calls[0], "\n") != lines-1 {
		t.Fatalf("first write of %d bytes, %d lines, after %d lines", len(w.calls[0]), strings.Count(w.calls[0], "\n"), lines)
	}
	long := strings.Repeat("x", LogBufferSize)
	h.request(at, "GET", "/"+long, 404, 100, "req_long", "")
	if len(w.calls) != 3 || !strings.Contains(w.calls[2], long) || !strings.Contains(w.calls[1], fmt.Sprintf("req_%d", lines-1)) {
		t.Fatalf("%d writes after a long line", len(w.calls))
	}
}

// Close writes what is held and stops the timer; lines after it are
// written at once.
func TestLogBufferClose(t *testing.T) {
	var w writes
	b, tp := newTestLogBuffer(&w, time.Hour)
	h := NewLogger(b).Handler().(*logHandler)
	at := time.Now()
	h.request(at, "POST", "/v1/api-keys/verify", 200, 100, "req_1", "key_a")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if timer := *tp; !timer.stopped || timer.armed {
		t.Errorf("timer after Close: %+v", timer)
	}
	if w.String() == "" || !strings.Contains(w.String(), "req_1") {
		t.Fatalf("Close did not write the line held: %q", w.calls)
	}
	h.request(at, "POST", "/v1/api-keys/verify", 200, 100, "req_2", "key_a")
	if !strings.Contains(w.calls[len(w.calls)-1], "req_2") {
		t.Fatalf("a line after Close was held: %q", w.calls)
	}
}

// The real timer writes a line held within about its interval.
func TestLogBufferRealTimer(t *testing.T) {
	var out syncWriter
	b := NewLogBuffer(&out, 10*time.Millisecond)
	defer b.Close()
	h := NewLogger(b).Handler().(*logHandler)
	h.request(time.Now(), "POST", "/v1/api-keys/verify", 200, 100, "req_1", "key_a")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "req_1"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written by the timer")
		}
	}
}

// syncWriter is written by the timer's goroutine while the test reads it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
