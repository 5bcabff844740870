package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// A body the fast path reads must be read as decodeBody reads it.
func checkVerifyFast(t *testing.T, body []byte) {
	var fast verifyRequest
	if !parseVerifyFast(body, &fast) {
		return
	}
	var slow verifyRequest
	if err := decodeBody(body, &slow, false); err != nil {
		t.Fatalf("fast path read %q, which decodeBody refuses: %v", body, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("body %q: fast path read %#v, decodeBody %#v", body, fast, slow)
	}
}

var verifyBodies = []string{
	`{"key":"sk_live_x","scopes":["bots:read"]}`,
	` { "scopes" : [ "a" , "b" ] , "key" : "k" } `,
	`{"key":"k"}`, `{"scopes":[]}`, `{}`, `{"key":"é日本"}`,
	`{"key":"k","key":"l"}`, `{"KEY":"k"}`, `{"key":"a\"b"}`, `{"key":null}`, `{"scopes":null}`,
	`{"key":"k"} {}`, `{"key":"k",}`, `{"scopes":["a",]}`, `{"key":1}`, `{"key":"\xff"}`, `{"key":"a` + "\t" + `"}`,
	`[]`, ``, `{`, `{"key":"k"`, `{"other":"x"}`,
}

func TestParseVerifyFast(t *testing.T) {
	for _, b := range verifyBodies {
		checkVerifyFast(t, []byte(b))
	}
	var req verifyRequest
	if !parseVerifyFast([]byte(`{"key":"k","scopes":["a"]}`), &req) || req.Key != "k" || len(req.Scopes) != 1 {
		t.Errorf("the usual body is not on the fast path: %#v", req)
	}
}

func FuzzParseVerifyFast(f *testing.F) {
	for _, b := range verifyBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(checkVerifyFast)
}

// The fast reply is the reply encoding/json writes.
func TestWriteFast(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	k := &keystore.Key{ID: "key_0123456789abcdef", Name: "a <b> & \"c\"", Scopes: []string{"bots:read"}, CreatedAt: at, LastUsedAt: &at,
		Metadata: map[string]string{"x": "y"}}
	far := at.AddDate(9000, 0, 0)
	for _, v := range []*keystore.Verification{
		keystore.Judge(k, at, []string{"bots:read"}),
		keystore.Judge(k, at, []string{"bots:write"}),
		keystore.Judge(nil, at, nil),
		keystore.InvalidFormat(),
		keystore.Judge(&keystore.Key{CreatedAt: far}, at, nil),
	} {
		s := New(nil, Options{Replays: newMemoryReplays()})
		fast := bytesWriter{h: http.Header{}}
		ok := s.writeFast(&fast, 200, envelope{Data: v})
		want, err := marshal(envelope{Data: v})
		if err != nil {
			if ok {
				t.Errorf("fast path wrote %q, encoding/json fails: %v", fast.b.String(), err)
			}
			continue
		}
		if !ok || !bytes.Equal(fast.b.Bytes(), want) {
			t.Errorf("fast reply (%v)\n%s\nwant\n%s", ok, fast.b.Bytes(), want)
		}
	}
}

type bytesWriter struct {
	h http.Header
	b bytes.Buffer
}

func (w *bytesWriter) Header() http.Header         { return w.h }
func (w *bytesWriter) WriteHeader(int)             {}
func (w *bytesWriter) Write(b []byte) (int, error) { return w.b.Write(b) }

// NewLogger writes what slog.NewJSONHandler writes.
func TestLoggerMatchesSlog(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678900000, time.FixedZone("x", 3600))
	records := []slog.Record{}
	add := func(level slog.Level, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(at, level, msg, 0)
		r.AddAttrs(attrs...)
		records = append(records, r)
	}
	add(slog.LevelInfo, "request", slog.String("method", "POST"), slog.String("path", "/v1/api-keys/verify"),
		slog.Int("status", 200), slog.Float64("duration_ms", 0.123), slog.String("request_id", "req_1"), slog.String("key_id", "key_x"))
	add(slog.LevelError, "request \"quoted\" <&> \x00\x1f\b\f\t\n\r é \u2028 \xff", slog.Float64("f", 0), slog.Float64("g", 1e-7),
		slog.Float64("h", 1e21), slog.Float64("i", -12.5), slog.Uint64("u", math.MaxUint64), slog.Bool("b", true), slog.String("", "empty key"), slog.Attr{})
	add(slog.LevelWarn, "listening on http://x", slog.String("url", "http://x"), slog.Any("any", []int{1}), slog.Group("g", slog.Int("a", 1)))
	add(slog.LevelInfo, "nan", slog.Float64("n", math.NaN()), slog.Duration("d", time.Second), slog.Time("t", at))
	records = append(records, slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0))
	for _, r := range records {
		var got, want bytes.Buffer
		if err := NewLogger(&got).Handler().Handle(context.Background(), r.Clone()); err != nil {
			t.Fatal(err)
		}
		slog.NewJSONHandler(&want, nil).Handle(context.Background(), r.Clone())
		if got.String() != want.String() {
			t.Errorf("log line\n%s\nwant\n%s", got.String(), want.String())
		}
	}
	var out bytes.Buffer
	l := NewLogger(&out)
	l.Debug("not at debug")
	l.With("a", 1).Info("with")
	if strings.Contains(out.String(), "not at debug") || !strings.Contains(out.String(), `"a":1`) {
		t.Errorf("log %q", out.String())
	}
}

// The line of a request, written without slog.Record, is the line slog
// writes for the record logRequest makes.
func TestRequestLineMatchesSlog(t *testing.T) {
	for _, keyID := range []string{"", "key_0123456789abcdef"} {
		var got bytes.Buffer
		h := NewLogger(&got).Handler().(*logHandler)
		h.request("POST", "/v1/api-keys/verify\n", 200, 0.123, "req_1", keyID)
		var line struct{ Time time.Time }
		if err := json.Unmarshal(got.Bytes(), &line); err != nil {
			t.Fatalf("%q: %v", got.String(), err)
		}
		r := slog.NewRecord(line.Time, slog.LevelInfo, "request", 0)
		r.AddAttrs(slog.String("method", "POST"), slog.String("path", "/v1/api-keys/verify\n"), slog.Int("status", 200),
			slog.Float64("duration_ms", 0.123), slog.String("request_id", "req_1"))
		if keyID != "" {
			r.AddAttrs(slog.String("key_id", keyID))
		}
		var want bytes.Buffer
		slog.NewJSONHandler(&want, nil).Handle(context.Background(), r)
		if got.String() != want.String() {
			t.Errorf("request line\n%s\nwant\n%s", got.String(), want.String())
		}
	}
}
