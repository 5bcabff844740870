package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the server's
// watched by w.
func tcpPair(t *testing.T, w *deadlineWatch) (server net.Conn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := w.listener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// readTimesOut reads from c and checks that it times out after about
// want, at most tick (and some slack) later.
func readTimesOut(t *testing.T, what string, c net.Conn, start time.Time, want, tick time.Duration) {
	t.Helper()
	guard := time.AfterFunc(want+10*time.Second, func() { c.Close() }) // if the deadline is not kept
	defer guard.Stop()
	_, err := c.Read(make([]byte, 1))
	elapsed := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read error %v, want a timeout", what, err)
	}
	if elapsed < want || elapsed > want+tick+time.Second {
		t.Errorf("%s: timed out after %v, want %v to %v", what, elapsed, want, want+tick)
	}
}

// The deadlines asked for hold, to within a tick, however often they move.
func TestWatchedConnReadDeadlines(t *testing.T) {
	const tick = 10 * time.Millisecond
	w := watchDeadlines(tick)
	defer w.Stop()
	c, peer := tcpPair(t, w)

	start := time.Now()
	c.SetReadDeadline(start.Add(100 * time.Millisecond))
	readTimesOut(t, "a deadline", c, start, 100*time.Millisecond, tick)

	// Moved later before it passes: the later one holds.
	start = time.Now()
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	c.SetReadDeadline(start.Add(250 * time.Millisecond))
	readTimesOut(t, "a deadline moved later", c, start, 250*time.Millisecond, tick)

	// Moved sooner: the sooner one holds.
	start = time.Now()
	c.SetReadDeadline(start.Add(time.Hour))
	c.SetReadDeadline(start.Add(100 * time.Millisecond))
	readTimesOut(t, "a deadline moved sooner", c, start, 100*time.Millisecond, tick)

	// No deadline: data that comes after the last one passed is read.
	c.SetReadDeadline(time.Time{})
	time.AfterFunc(3*tick, func() { peer.Write([]byte("x")) })
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("without a deadline: read %d, %v", n, err)
	}

	// A deadline in the past interrupts a read in progress at once, as
	// net/http does to stop its background read; a later one undoes it.
	c.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(5 * tick)
	start = time.Now()
	c.SetReadDeadline(deadlinePast)
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("interrupted read: %v after %v", err, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not interrupt the read")
	}
	c.SetReadDeadline(time.Time{})
	peer.Write([]byte("y"))
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("after the interrupt: read %d, %v", n, err)
	}

	// A deadline that passed fails the next read at once, until moved.
	c.SetReadDeadline(time.Now().Add(tick))
	time.Sleep(5 * tick)
	start = time.Now()
	readTimesOut(t, "a deadline that passed", c, start, 0, tick)
	c.SetReadDeadline(time.Now().Add(time.Hour))
	peer.Write([]byte("z"))
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("after moving a deadline that passed: read %d, %v", n, err)
	}
}

// A write to a client that does not read times out at the write deadline.
func TestWatchedConnWriteDeadline(t *testing.T) {
	const tick = 10 * time.Millisecond
	w := watchDeadlines(tick)
	defer w.Stop()
	c, _ := tcpPair(t, w)
	start := time.Now()
	c.SetWriteDeadline(start.Add(200 * time.Millisecond))
	c.SetWriteDeadline(start.Add(300 * time.Millisecond))         // moved later
	guard := time.AfterFunc(10*time.Second, func() { c.Close() }) // if the deadline is not kept
	defer guard.Stop()
	buf := make([]byte, 1<<20)
	total := 0
	for {
		n, err := c.Write(buf)
		total += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write error %v, want a timeout", err)
			}
			break
		}
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond || elapsed > 300*time.Millisecond+tick+time.Second {
		t.Errorf("timed out after %v (%d bytes written), want 300ms", elapsed, total)
	}
}

// A closed connection leaves the watch; a stopped watch stops.
func TestDeadlineWatchForgetsClosed(t *testing.T) {
	w := watchDeadlines(time.Millisecond)
	c, peer := tcpPair(t, w)
	c.SetDeadline(time.Now().Add(time.Hour))
	w.mu.Lock()
	n := len(w.conns)
	w.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d connections watched, want 1", n)
	}
	c.Close()
	w.mu.Lock()
	n = len(w.conns)
	w.mu.Unlock()
	if n != 0 {
		t.Errorf("%d connections watched after Close, want 0", n)
	}
	w.Stop()
	w.Stop()
	if _, err := io.ReadAll(peer); err != nil {
		t.Errorf("the peer of a closed connection: %v", err)
	}
}

// Deadlines moved from several goroutines while the watch ticks end in the
// state the last one asked for.
func TestWatchedConnConcurrent(t *testing.T) {
	w := watchDeadlines(time.Millisecond)
	defer w.Stop()
	c, peer := tcpPair(t, w)
	for round := range 20 {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					switch (i + g) % 4 {
					case 0:
						c.SetReadDeadline(deadlinePast)
					case 1:
						c.SetReadDeadline(time.Now().Add(time.Duration(i%3) * time.Millisecond))
					case 2:
						c.SetDeadline(time.Time{})
					case 3:
						c.SetWriteDeadline(time.Now().Add(time.Hour))
					}
				}
			}()
		}
		wg.Wait()
		c.SetDeadline(time.Now().Add(time.Hour))
		time.Sleep(3 * time.Millisecond) // some ticks
		peer.Write([]byte{byte(round)})
		if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Fatalf("round %d: read %d, %v after the last deadline was an hour away", round, n, err)
		}
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatalf("round %d: write: %v", round, err)
		}
		peer.Read(make([]byte, 1))
	}
}
