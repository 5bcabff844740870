package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// A verify body that decodeBody reads is one that encoding/json reads the
// same way: the strict parser reads nothing differently, it only refuses
// more (other letter cases, repeated members, unknown members, bad UTF-8).
func checkVerifyBody(t *testing.T, body []byte) {
	var strict apiv1.VerifyRequest
	if err := decodeBody(body, &strict, false); err != nil {
		if keystore.ErrorCode(err) != keystore.EINVALID || strings.Contains(err.Error(), "\n") {
			t.Fatalf("body %q: error %v, want one line of EINVALID", body, err)
		}
		return
	}
	if !json.Valid(body) {
		t.Fatalf("decodeBody read %q, which is not JSON", body)
	}
	var loose apiv1.VerifyRequest
	if err := json.Unmarshal(body, &loose); err != nil {
		t.Fatalf("decodeBody read %q, which encoding/json refuses: %v", body, err)
	}
	if !reflect.DeepEqual(strict, loose) {
		t.Fatalf("body %q: decodeBody read %#v, encoding/json %#v", body, strict, loose)
	}
}

var verifyBodies = []string{
	`{"key":"sk_live_x","scopes":["bots:read"]}`, `{"key":"k","scopes":["bots:read","bots:write","x"]}`,
	` { "scopes" : [ "a" , "b" ] , "key" : "k" } `,
	`{"key":"k"}`, `{"scopes":[]}`, `{}`, `{"key":"é日本"}`, `{"key":"\u00e9\ud83d\ude00"}`,
	`{"key":"k","key":"l"}`, `{"KEY":"k"}`, `{"key":"a\"b"}`, `{"key":null}`, `{"scopes":null}`,
	`{"key":"k"} {}`, `{"key":"k",}`, `{"scopes":["a",]}`, `{"key":1}`, `{"key":"\xff"}`, `{"key":"a` + "\t" + `"}`,
	`{"key":"\ud800"}`, `[]`, ``, `{`, `{"key":"k"`, `{"other":"x"}`,
}

func TestVerifyBodies(t *testing.T) {
	for _, b := range verifyBodies {
		checkVerifyBody(t, []byte(b))
	}
	var req apiv1.VerifyRequest
	if err := decodeBody([]byte(`{"key":"k","scopes":["a"]}`), &req, false); err != nil || req.Key != "k" || len(req.Scopes) != 1 {
		t.Errorf("the usual body: %#v, %v", req, err)
	}
	for _, b := range []string{`{"KEY":"k"}`, `{"key":"k","key":"l"}`, `{"key":"\xff"}`, `{"other":"x"}`, `{"key":"\ud800"}`} {
		if err := decodeBody([]byte(b), &req, false); err == nil {
			t.Errorf("decodeBody read %q", b)
		}
	}
}

func FuzzVerifyBody(f *testing.F) {
	for _, b := range verifyBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(checkVerifyBody)
}

// referenceKey is a key record as encoding/json writes it from the Go
// type, without keystore's writer: what every reply must hold.
type referenceKey keystore.Key

func reference(k *keystore.Key) *referenceKey {
	if k == nil {
		return nil
	}
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC().Truncate(time.Second)
		return &u
	}
	p := referenceKey(*k)
	p.CreatedAt = p.CreatedAt.UTC().Truncate(time.Second)
	p.ExpiresAt, p.RevokedAt, p.DisabledAt, p.LastUsedAt = utc(p.ExpiresAt), utc(p.RevokedAt), utc(p.DisabledAt), utc(p.LastUsedAt)
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	if p.UsedScopes == nil {
		p.UsedScopes = []string{}
	}
	uses := map[string]time.Time{}
	for s, t := range p.ScopesLastUsed {
		uses[s] = t.UTC().Truncate(time.Second)
	}
	p.ScopesLastUsed = uses
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return &p
}

// referenceReply is the reply that encoding/json writes for v, the key
// record with HTML escaped (as json.Marshal escapes it), the rest not.
func referenceReply(v *keystore.Verification) ([]byte, error) {
	key, err := json.Marshal(reference(v.Key))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(envelope{Data: struct {
		Valid         bool            `json:"valid"`
		Code          string          `json:"code"`
		Key           json.RawMessage `json:"key"`
		MissingScopes []string        `json:"missing_scopes"`
	}{v.Valid, v.Code, key, v.MissingScopes}})
	return buf.Bytes(), err
}

// checkReply checks that the reply the server writes for v is the one
// encoding/json writes, or that both refuse it. plain says that v's code
// and missing scopes need no escaping, as a verification's always do
// (keystore's writer escapes HTML in them, which encoding/json here does
// not).
func checkReply(t *testing.T, v *keystore.Verification, plain bool) {
	t.Helper()
	s := New(nil, Options{Idempotency: newMemoryClaims()})
	got := bytesWriter{h: http.Header{}}
	s.writeJSON(&got, httptest.NewRequest("POST", verifyPath, nil), 200, envelope{Data: v})
	want, err := referenceReply(v)
	if err != nil {
		if !strings.Contains(got.b.String(), `"code":"internal"`) {
			t.Errorf("wrote %q, encoding/json fails: %v", got.b.String(), err)
		}
		return
	}
	if plain && !bytes.Equal(got.b.Bytes(), want) {
		t.Errorf("reply\n%s\nwant\n%s", got.b.Bytes(), want)
	}
}

// The reply to a verification is what encoding/json writes.
func TestVerifyReply(t *testing.T) {
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
		checkReply(t, v, true)
	}
}

// Every field of a key record, in every shape, is written as encoding/json
// writes it, whatever second was written last.
func TestVerifyReplyRecords(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", -7*3600))
	later, earlier := at.Add(time.Second), at.Add(-time.Hour)
	from, to := "key_aaaaaaaaaaaaaaaa", "key_bbbbbbbbbbbbbbbb"
	names := []string{"plain", "", "é日本 …", "a\u2028b\u2029", "bad \xff utf-8", "ctl \x00\x1f\b\f\n\r\t", `q"b\s`, "<&>"}
	for i, name := range names {
		k := &keystore.Key{ID: "key_0123456789abcdef", Name: name, Environment: "test", Scopes: []string{"bots:read", name},
			Hint: "sk_test_abcd…wxyz", Status: keystore.StatusActive, CreatedAt: earlier, ExpiresAt: &later, RevokedAt: &at, DisabledAt: &later,
			LastUsedAt: &at, RotatedFrom: &from, RotatedTo: &to, Delivery: &from, Metadata: map[string]string{name: name, "b": "2", "a": "1"}, Secret: name}
		if i%2 == 1 {
			k.Scopes, k.ExpiresAt, k.RevokedAt, k.DisabledAt, k.RotatedFrom, k.Metadata, k.Secret = nil, nil, nil, nil, nil, nil, ""
		} else {
			k.SetScopeUses(map[string]time.Time{"bots:read": later, name: earlier.In(time.FixedZone("x", 3600))})
		}
		for _, used := range []time.Time{at, later, earlier, at} {
			k.LastUsedAt = &used
			checkReply(t, keystore.Judge(k, at, []string{"bots:read", "admin"}), true)
			checkReply(t, &keystore.Verification{Code: name, Key: k}, false)
		}
	}
	for _, bad := range []time.Time{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		checkReply(t, keystore.Judge(&keystore.Key{CreatedAt: at, LastUsedAt: &bad}, at, nil), true)
		checkReply(t, keystore.Judge(&keystore.Key{CreatedAt: at, ExpiresAt: &bad}, at, nil), true)
	}
}

func FuzzVerifyReply(f *testing.F) {
	f.Add("n", "bots:read", "k", "v", int64(1767323045), int64(0), true)
	f.Add("<é\u2028\xff>", "", "", "\x00", int64(-62135596800), int64(253402300799), false)
	f.Fuzz(func(t *testing.T, name, scope, mk, mv string, created, used int64, valid bool) {
		c, u := time.Unix(created, 0), time.Unix(used, 0)
		k := &keystore.Key{ID: "key_0123456789abcdef", Name: name, Scopes: []string{scope}, CreatedAt: c, LastUsedAt: &u,
			Metadata: map[string]string{mk: mv}}
		checkReply(t, &keystore.Verification{Valid: valid, Code: scope, Key: k, MissingScopes: []string{name}}, false)
		checkReply(t, &keystore.Verification{Valid: valid, Code: keystore.CodeValid, Key: k, MissingScopes: []string{}}, true)
	})
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
		h.request(time.Now(), "POST", "/v1/api-keys/verify\n", 200, 123, "req_1", keyID)
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

// The request line's time and duration are written as slog writes them.
func TestRequestLineTimesAndDurations(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 0), time.FixedZone("", 5*3600+30*60),
		time.FixedZone("", -(3*3600 + 30*60)), time.FixedZone("", -1), time.FixedZone("", 14*3600)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		zones = append(zones, ny)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{time.Now(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 100, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	for range 2000 {
		times = append(times, time.Unix(rnd.Int64N(1<<36)-1<<35, rnd.Int64N(1e9)))
	}
	for _, at := range times {
		for _, z := range zones {
			at := at.In(z)
			if got, want := string(appendRFC3339Nano(nil, at)), at.Format(time.RFC3339Nano); got != want {
				t.Errorf("%v: %s, want %s", at, got, want)
			}
		}
	}
	micros := []int64{0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1010, 1100, 123456, 999999999, 1e15 - 1, 1e15, 1 << 62, -1, -1500}
	for range 5000 {
		micros = append(micros, rnd.Int64N(1e12), rnd.Int64N(1e6))
	}
	for _, us := range micros {
		if got, want := string(appendMillis(nil, us)), string(appendJSONFloat(nil, float64(us)/1000)); got != want {
			t.Errorf("%d µs: %s, want %s", us, got, want)
		}
	}
}

// ServeHTTP routes POST /v1/api-keys/verify without the mux only when the
// mux would pick the same handler (and not a redirect to it).
func TestVerifyRoute(t *testing.T) {
	s := New(nil, Options{Idempotency: newMemoryClaims()})
	for _, tt := range []struct{ method, target string }{
		{"POST", "/v1/api-keys/verify"}, {"POST", "/v1/api-keys/verify/"}, {"POST", "/v1/api-keys//verify"},
		{"POST", "/v1/api-keys/./verify"}, {"POST", "/v1/api-keys/%76erify"}, {"POST", "/v1/api-keys/verify?x=1"},
		{"GET", "/v1/api-keys/verify"}, {"PUT", "/v1/api-keys/verify"}, {"POST", "/v1/api-keys/verify2"},
		{"POST", "/v1/API-keys/verify"}, {"HEAD", "/v1/api-keys/verify"},
	} {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		fast := r.Method == http.MethodPost && r.URL.Path == verifyPath && r.URL.RawPath == ""
		h, pattern := s.mux.Handler(r)
		_, endpoint := h.(http.HandlerFunc)
		if fast && (pattern != verifyPattern || !endpoint) {
			t.Errorf("%s %s: routed without the mux, which would pick %q (%T)", tt.method, tt.target, pattern, h)
		}
		if want := tt.method == "POST" && (tt.target == verifyPath || tt.target == verifyPath+"?x=1"); want != fast {
			t.Errorf("%s %s: routed without the mux %v, want %v", tt.method, tt.target, fast, want)
		}
	}
}

// BenchmarkDecodeVerifyBody is the strict parser on the usual verify
// body, the one parser of every request body.
func BenchmarkDecodeVerifyBody(b *testing.B) {
	secret, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"key":"` + secret + `","scopes":["bots:read"]}`)
	for b.Loop() {
		var req apiv1.VerifyRequest
		if err := decodeBody(body, &req, false); err != nil {
			b.Fatal(err)
		}
	}
}
