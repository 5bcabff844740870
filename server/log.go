package server

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
	"github.com/chatbotplatform/keyctl/keystore"
)

// NewLogger returns the request logger of keyctl serve: JSON lines on w at
// level Info and above, the same bytes as slog.NewJSONHandler(w, nil)
// writes. Records of plain attributes (strings, numbers, booleans), such as
// the line logged for every request, are formatted directly, which costs a
// fraction of the generic handler's time; any other record goes to
// slog.JSONHandler. Each line is written to w in one call, unless w is a
// LogBuffer, which holds the lines of requests answered below 500 and
// writes them in batches.
func NewLogger(w io.Writer) *slog.Logger {
	var sink logSink
	if b, ok := w.(*LogBuffer); ok {
		sink = b
	} else {
		sink = &lockedWriter{w: w}
	}
	return slog.New(&logHandler{w: sink, slow: slog.NewJSONHandler(sink, nil)})
}

// logSink takes whole log lines from both handlers.
type logSink interface {
	// Write writes a line at once, in one call.
	io.Writer
	// request writes the line of a request answered below 500, now or
	// soon.
	request(l requestLine)
}

// lockedWriter writes each log line in one call, one at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) request(line requestLine) {
	buf := logBuffers.Get().(*[]byte)
	b := line.appendTo((*buf)[:0])
	l.Write(b)
	*buf = b
	logBuffers.Put(buf)
}

// LogBufferSize is how many bytes of request lines a LogBuffer holds
// before it writes them.
const LogBufferSize = 64 << 10

// LogBuffer is the destination of a request log (see NewLogger) that
// writes the lines of requests answered below 500 in batches instead of
// one write(2) per request: when LogBufferSize bytes are held, when the
// oldest line held is the given interval old, and at Flush and Close.
// Every other line (start-up, shutdown, warnings, requests answered with
// 5xx) is written at once, after the lines held, so the log keeps its
// order and an error is never late. If the process dies without Close,
// the request lines of the last interval are lost. It is safe for
// concurrent use.
type LogBuffer struct {
	w     io.Writer
	every time.Duration
	// afterFunc is time.AfterFunc; a test replaces it to fire the timer.
	afterFunc func(time.Duration, func()) logTimer

	mu     sync.Mutex
	buf    []byte
	timer  logTimer // nil until first needed
	armed  bool     // the timer will write the lines held
	closed bool     // lines are written at once
}

// logTimer is the part of *time.Timer that LogBuffer uses.
type logTimer interface {
	Reset(time.Duration) bool
	Stop() bool
}

// NewLogBuffer returns a LogBuffer that writes to w, holding a request
// line for at most every.
func NewLogBuffer(w io.Writer, every time.Duration) *LogBuffer {
	return &LogBuffer{
		w:         w,
		every:     every,
		afterFunc: func(d time.Duration, f func()) logTimer { return time.AfterFunc(d, f) },
		buf:       make([]byte, 0, LogBufferSize),
	}
}

// Write writes the lines held and then p, at once.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked() // if that fails, p may still make it
	return b.w.Write(p)
}

// lineRoom is the room a LogBuffer keeps for the next request line: more
// than a usual one takes. A longer line is written at once.
const lineRoom = 4 << 10

// request writes the line of a request into the buffer, or at once when the
// buffer is closed or the line does not fit.
func (b *LogBuffer) request(line requestLine) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.flushLocked()
		b.w.Write(line.appendTo(nil))
		return
	}
	if cap(b.buf)-len(b.buf) < lineRoom {
		b.flushLocked()
	}
	held := len(b.buf)
	buf := line.appendTo(b.buf)
	if cap(buf) != cap(b.buf) {
		// Longer than lineRoom: written after what is held, in a buffer
		// of its own, which the LogBuffer does not keep.
		b.flushLocked()
		b.w.Write(buf[held:])
		return
	}
	b.buf = buf
	if !b.armed {
		b.armed = true
		if b.timer == nil {
			b.timer = b.afterFunc(b.every, b.tick)
		} else {
			b.timer.Reset(b.every)
		}
	}
}

// tick writes the lines held when the timer fires.
func (b *LogBuffer) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	b.flushLocked()
}

// Flush writes the lines held.
func (b *LogBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// Close writes the lines held and stops the timer; lines logged after it
// are written at once. It does not close the underlying writer.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.armed = false
	return b.flushLocked()
}

// flushLocked writes the lines held, which are dropped if the write fails
// (as a line written at once would be). Call with mu held.
func (b *LogBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

type logHandler struct {
	w    logSink
	slow slog.Handler
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler { return h.slow.WithAttrs(as) }

func (h *logHandler) WithGroup(name string) slog.Handler { return h.slow.WithGroup(name) }

var logBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	buf := logBuffers.Get().(*[]byte)
	defer logBuffers.Put(buf)
	b := append((*buf)[:0], '{')
	if !r.Time.IsZero() {
		if y := r.Time.Year(); y < 0 || y >= 10000 {
			return h.slow.Handle(ctx, r)
		}
		b = append(b, `"time":"`...)
		b = r.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = plainjson.AppendSlogString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = plainjson.AppendSlogString(b, r.Message)
	plain := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true // slog leaves out empty attributes
		}
		v := a.Value
		switch v.Kind() {
		case slog.KindString:
			b = appendLogKey(b, a.Key)
			b = plainjson.AppendSlogString(b, v.String())
		case slog.KindInt64:
			b = appendLogKey(b, a.Key)
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindUint64:
			b = appendLogKey(b, a.Key)
			b = strconv.AppendUint(b, v.Uint64(), 10)
		case slog.KindBool:
			b = appendLogKey(b, a.Key)
			b = strconv.AppendBool(b, v.Bool())
		case slog.KindFloat64:
			f := v.Float64()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				plain = false
				return false
			}
			b = appendLogKey(b, a.Key)
			b = appendJSONFloat(b, f)
		default:
			plain = false
			return false
		}
		return true
	})
	if !plain {
		return h.slow.Handle(ctx, r)
	}
	b = append(b, "}\n"...)
	*buf = b
	_, err := h.w.Write(b)
	return err
}

// requestLine is what the line of a request answered below 500 says.
type requestLine struct {
	at                      time.Time
	method, path, id, keyID string
	status                  int
	micros                  int64 // the duration, logged in milliseconds
}

// appendTo appends the line that logRequest would log through slog: the
// same bytes, a fraction of the work.
func (l *requestLine) appendTo(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = appendRFC3339Nano(b, l.at)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = plainjson.AppendSlogString(b, l.method)
	b = append(b, `,"path":`...)
	b = plainjson.AppendSlogString(b, l.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, l.micros)
	b = append(b, `,"request_id":`...)
	b = plainjson.AppendSlogString(b, l.id)
	if l.keyID != "" {
		b = append(b, `,"key_id":`...)
		b = plainjson.AppendSlogString(b, l.keyID)
	}
	return append(b, "}\n"...)
}

// request logs the line of a request answered below 500 without making a
// slog.Record.
func (h *logHandler) request(at time.Time, method, path string, status int, micros int64, id, keyID string) {
	h.w.request(requestLine{at: at, method: method, path: path, id: id, keyID: keyID, status: status, micros: micros})
}

func appendLogKey(b []byte, k string) []byte {
	b = append(b, ',')
	b = plainjson.AppendSlogString(b, k)
	return append(b, ':')
}

// appendJSONFloat writes f as encoding/json (and so slog) does.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendRFC3339Nano writes t as t.AppendFormat(b, time.RFC3339Nano) does,
// in a fraction of its time: the date, clock and zone of the second are
// written once per second, and only the fraction for each line.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	sec := t.Unix()
	m := logSecond.Load()
	if m == nil || m.unix != sec || m.offset != offset {
		var ok bool
		if m, ok = newLogSecondText(t, sec, offset); !ok {
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		logSecond.Store(m)
	}
	b = append(b, m.clock[:]...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, m.zone[:m.zoneLen]...)
}

// logSecondText is a second as appendRFC3339Nano writes it, but for the
// fraction: "2006-01-02T15:04:05" and "Z07:00".
type logSecondText struct {
	unix    int64
	offset  int
	clock   [len("2006-01-02T15:04:05")]byte
	zone    [len("-07:00")]byte
	zoneLen int
}

// logSecond is the second of the last request line.
var logSecond atomic.Pointer[logSecondText]

func newLogSecondText(t time.Time, sec int64, offset int) (*logSecondText, bool) {
	u := time.Unix(sec+int64(offset), 0).UTC() // t's clock, read as UTC
	if year := u.Year(); year < 0 || year > 9999 || offset%60 != 0 {
		return nil, false
	}
	m := &logSecondText{unix: sec, offset: offset}
	var full [len("2006-01-02T15:04:05Z")]byte
	copy(m.clock[:], keystore.AppendRFC3339(full[:0], u)) // but the Z
	two := func(b []byte, n int) { b[0], b[1] = byte('0'+n/10), byte('0'+n%10) }
	if offset == 0 {
		m.zone[0], m.zoneLen = 'Z', 1
		return m, true
	}
	m.zone[0] = '+'
	if offset < 0 {
		m.zone[0], offset = '-', -offset
	}
	two(m.zone[1:], offset/3600)
	m.zone[3] = ':'
	two(m.zone[4:], offset/60%60)
	m.zoneLen = 6
	return m, true
}

// appendMillis writes micros microseconds in milliseconds, as encoding/json
// (and so slog) writes float64(micros)/1000: the float nearest a decimal
// of at most 15 significant digits is written as that decimal.
func appendMillis(b []byte, micros int64) []byte {
	if micros < 0 || micros >= 1e15 {
		return appendJSONFloat(b, float64(micros)/1000)
	}
	b = strconv.AppendInt(b, micros/1000, 10)
	if frac := micros % 1000; frac != 0 {
		b = append(b, '.', byte('0'+frac/100))
		if frac%100 != 0 {
			b = append(b, byte('0'+frac/10%10))
			if frac%10 != 0 {
				b = append(b, byte('0'+frac%10))
			}
		}
	}
	return b
}
