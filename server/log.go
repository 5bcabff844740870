package server

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// NewLogger returns the request logger of keyctl serve: JSON lines on w at
// level Info and above, the same bytes as slog.NewJSONHandler(w, nil)
// writes. Records of plain attributes (strings, numbers, booleans), such as
// the line logged for every request, are formatted directly, which costs a
// fraction of the generic handler's time; any other record goes to
// slog.JSONHandler.
func NewLogger(w io.Writer) *slog.Logger {
	lw := &lockedWriter{w: w}
	return slog.New(&logHandler{w: lw, slow: slog.NewJSONHandler(lw, nil)})
}

// lockedWriter writes each log line in one call, one at a time, for both
// handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

type logHandler struct {
	w    *lockedWriter
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
	b = appendLogString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = appendLogString(b, r.Message)
	plain := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true // slog leaves out empty attributes
		}
		v := a.Value
		switch v.Kind() {
		case slog.KindString:
			b = appendLogKey(b, a.Key)
			b = appendLogString(b, v.String())
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

// request writes the line that logRequest would log through slog for a
// request answered below 500, without making a slog.Record: the same
// bytes, a fraction of the work.
func (h *logHandler) request(method, path string, status int, ms float64, id, keyID string) {
	buf := logBuffers.Get().(*[]byte)
	defer logBuffers.Put(buf)
	b := append((*buf)[:0], `{"time":"`...)
	b = time.Now().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = appendLogString(b, method)
	b = append(b, `,"path":`...)
	b = appendLogString(b, path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendJSONFloat(b, ms)
	b = append(b, `,"request_id":`...)
	b = appendLogString(b, id)
	if keyID != "" {
		b = append(b, `,"key_id":`...)
		b = appendLogString(b, keyID)
	}
	b = append(b, "}\n"...)
	*buf = b
	h.w.Write(b)
}

func appendLogKey(b []byte, k string) []byte {
	b = append(b, ',')
	b = appendLogString(b, k)
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

// appendLogString writes s as slog's JSON handler does: as encoding/json,
// but without escaping <, > and &, and with \b and \f as \u0008 and \u000c.
func appendLogString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
