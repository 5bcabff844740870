// Package server is keyctl's HTTP API, an http.Handler over any
// keystore.Store: what `keyctl serve` serves and keystore/remote talks to.
//
// Every request but GET /healthz carries `Authorization: Bearer <key>`, which
// is verified through the store on each request; the store may answer from
// a cache only if it stays exact (keystore/sqlite's does), so a revoked key
// stops working at once. Managing keys and reading
// the audit log need the admin scope; verifying a key needs any valid key,
// and so do reading and rotating the calling key itself (/v1/api-keys/self),
// confirming the delivery of its successor, or revoking that successor
// while it awaits delivery.
package server

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// Options configure a Server. The zero value logs nothing, does not limit
// the request rate, and keeps idempotent replies in the store when it can.
type Options struct {
	// Logger gets one line per request: method, path, status,
	// duration_ms, request_id and the caller's key_id. Never a secret or
	// a body. Nil logs nothing.
	Logger *slog.Logger

	// RateLimit is the number of requests per second allowed per API key,
	// with bursts of as many; 0 turns limiting off. Replies to requests
	// with a bearer carry X-RateLimit-Limit (the burst),
	// X-RateLimit-Remaining and X-RateLimit-Reset (seconds until the
	// bucket is full again); a 429 carries Retry-After in seconds.
	RateLimit float64

	// Now is the clock of rate limits and idempotent replies; nil means
	// time.Now. Keys take their times from the store.
	Now func() time.Time

	// TestKeysManageLive lets a test key (sk_test_) with the admin scope
	// create, rotate, revoke and import live keys. By default a test key
	// manages test keys only: a test key is handed to developers and CI
	// more freely than a live one, and must not be a way to make one.
	TestKeysManageLive bool

	// Shed, when set, tells whether to refuse a request because the
	// server is at its limit (keyctl serve: the connection came in over
	// its connection limit). Such a request gets 503 with Retry-After: 1
	// and its connection is closed; GET /healthz is always answered.
	Shed func(r *http.Request) bool

	// Idempotency claims the Idempotency-Keys of requests and keeps their
	// replies, without secrets. Nil means the store itself when it is a
	// keystore.IdempotencyStore (as the SQLite store is, so that several
	// servers on one file agree and replies survive a restart), and
	// memory otherwise.
	Idempotency keystore.IdempotencyStore
}

// Server serves the HTTP API over a store. It is safe for concurrent use.
type Server struct {
	store   keystore.Store
	log     *slog.Logger
	now     func() time.Time
	limiter *limiter // nil: no rate limit
	claims  keystore.IdempotencyStore
	shed    func(*http.Request) bool
	secrets heldSecrets // replies with their secrets, for a while

	testKeysManageLive bool
	mux                *http.ServeMux

	verifyHandler http.Handler // the mux's handler of verifyPattern
}

var _ http.Handler = (*Server)(nil)

// New returns a Server over store. The caller keeps ownership of store.
func New(store keystore.Store, opts Options) *Server {
	s := &Server{store: store, log: opts.Logger, now: opts.Now, claims: opts.Idempotency, shed: opts.Shed, testKeysManageLive: opts.TestKeysManageLive}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.RateLimit > 0 {
		s.limiter = newLimiter(opts.RateLimit, s.now)
	}
	if s.claims == nil {
		if is, ok := keystore.As[keystore.IdempotencyStore](store); ok {
			s.claims = is
		} else {
			s.claims = newMemoryClaims()
		}
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, envelope{Data: map[string]string{"status": "ok"}})
	})
	m.HandleFunc("GET /readyz", s.ready)
	m.Handle("POST /v1/api-keys", s.endpoint(needAdmin|idempotent, s.create))
	m.Handle("GET /v1/api-keys", s.endpoint(needAdmin, s.list))
	s.verifyHandler = s.endpoint(0, s.verify)
	m.Handle(verifyPattern, s.verifyHandler)
	m.Handle("POST /v1/api-keys/import", s.endpoint(needAdmin|idempotent, s.importKeys))
	m.Handle("GET /v1/api-keys/self", s.endpoint(0, s.self))
	m.Handle("POST /v1/api-keys/self/rotate", s.endpoint(selfOrAdmin|idempotent, s.rotateSelf))
	m.Handle("GET /v1/api-keys/{id}", s.endpoint(needAdmin, s.show))
	m.Handle("GET /v1/api-keys/by-hash/{sha256}", s.endpoint(needAdmin, s.lookup))
	m.Handle("POST /v1/api-keys/{id}/rotate", s.endpoint(needAdmin|idempotent, s.rotate))
	m.Handle("POST /v1/api-keys/{id}/confirm-delivery", s.endpoint(selfOrAdmin, s.confirmDelivery))
	m.Handle("DELETE /v1/api-keys/{id}", s.endpoint(selfOrAdmin, s.revoke))
	m.Handle("PATCH /v1/api-keys/{id}", s.endpoint(needAdmin, s.update))
	m.Handle("POST /v1/api-keys/{id}/disable", s.endpoint(needAdmin, s.keyAction("disable", keystore.Store.Disable)))
	m.Handle("POST /v1/api-keys/{id}/enable", s.endpoint(needAdmin, s.keyAction("enable", keystore.Store.Enable)))
	m.Handle("POST /v1/api-keys/{id}/delete", s.endpoint(needAdmin, s.keyAction("delete", keystore.Store.Delete)))
	m.Handle("GET /v1/audit-events", s.endpoint(needAdmin, s.audit))
	s.mux = m
}

// readyTimeout bounds the store's readiness check: a load balancer's
// health check must get an answer, not wait.
const readyTimeout = 2 * time.Second

// ready answers GET /readyz, without a key: 200 while the store answers,
// 503 otherwise, so that a load balancer drains a replica that cannot
// reach its database. The cause goes to the log, not to the caller.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if rs, ok := keystore.As[keystore.Readier](s.store); ok {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := rs.Ready(ctx); err != nil {
			st := stateOf(w)
			st.err = err
			s.writeRaw(w, http.StatusServiceUnavailable, errorBody(keystore.EUNAVAILABLE, "the key service cannot reach its store; the server log has the details under this request_id", st.id))
			return
		}
	}
	s.writeJSON(w, r, http.StatusOK, envelope{Data: map[string]string{"status": "ready"}})
}

// reqState is what the log line of a request needs to know, filled in as
// the request is handled.
type reqState struct {
	id    string
	keyID string // the caller's key, once verified
	err   error  // the cause of a 5xx reply
}

// stateOf returns the state of the request that w answers. Every handler
// of the mux gets the replyWriter that ServeHTTP made, which holds it.
func stateOf(w http.ResponseWriter) *reqState {
	if rw, ok := w.(*replyWriter); ok {
		return &rw.st
	}
	return &reqState{}
}

// The verify endpoint is on the hot path of every API request of the
// platform: ServeHTTP routes it without the mux (see ServeHTTP).
const (
	verifyPattern = "POST /v1/api-keys/verify"
	verifyPath    = "/v1/api-keys/verify"
)

// ServeHTTP gives every reply an X-Request-Id, turns a panic into a 500 and
// logs one line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// One allocation holds the writer, the request's state, the value of
	// its X-Request-Id header and the endpoint's call.
	rw := &replyWriter{ResponseWriter: w, r: r, srv: s}
	st := &rw.st
	var given string
	if v := r.Header["X-Request-Id"]; len(v) > 0 { // as Header.Get, without canonicalizing the name
		given = v[0]
	}
	st.id = requestID(given)
	rw.idHeader[0] = st.id
	w.Header()["X-Request-Id"] = rw.idHeader[:]
	if r.Body != nil && (r.ContentLength < 0 || r.ContentLength > apiv1.MaxBodyBytes) {
		// A body of a declared length within the limit needs no guard:
		// net/http reads no more than that length. A handler does not
		// change the request it is given: the guard goes on a copy.
		r = r.WithContext(r.Context())
		r.Body = http.MaxBytesReader(w, r.Body, apiv1.MaxBodyBytes)
		rw.r = r
	}
	defer func() {
		if p := recover(); p != nil {
			st.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			if !rw.wroteHeader {
				s.writeError(rw, r, keystore.Errorf(keystore.EINTERNAL, "panic"))
			}
		}
		status := rw.status
		if !rw.wroteHeader {
			status = http.StatusOK // what net/http sends for a handler that wrote nothing
		}
		// One reading of the monotonic clock: the time of the log line is
		// the start's plus the duration.
		d := time.Since(start)
		s.logRequest(r, st, status, start.Add(d), d)
	}()
	if s.shed != nil && r.URL.Path != "/healthz" && s.shed(r) {
		h := w.Header()
		h.Set("Retry-After", "1")
		h.Set("Connection", "close")
		s.writeRaw(rw, http.StatusServiceUnavailable, errorBody(apiv1.EOVERLOADED,
			"the key service is at its connection limit; retry after the number of seconds in Retry-After", st.id))
		return
	}
	// The mux would pick the same handler for this exact, clean path (it
	// has no other pattern that matches it, and nothing to clean or
	// redirect), at a cost that shows on the hot path.
	if r.Method == http.MethodPost && r.URL.Path == verifyPath && r.URL.RawPath == "" {
		r.Pattern = verifyPattern
		s.verifyHandler.ServeHTTP(rw, r)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

func (s *Server) logRequest(r *http.Request, st *reqState, status int, end time.Time, d time.Duration) {
	if h, ok := s.log.Handler().(*logHandler); ok && status < 500 {
		h.request(end, r.Method, logPath(r.URL.Path), status, d.Microseconds(), st.id, st.keyID)
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", logPath(r.URL.Path)),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("request_id", st.id),
	}
	if st.keyID != "" {
		attrs = append(attrs, slog.String("key_id", st.keyID))
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
		if st.err != nil {
			// Store errors are safe to show (keystore.Error never holds a
			// secret); they stay in the log, not in the reply.
			attrs = append(attrs, slog.String("error", keystore.RedactSecrets(st.err.Error())))
		}
	}
	s.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// logPath is the path as logged and as error messages repeat it: a path
// segment that looks like a secret or part of one (someone put a key in
// the URL by mistake) is not written down.
func logPath(p string) string {
	if len(p) <= 200 && !keystore.LooksSecret(p) {
		return p
	}
	if len(p) > 200 {
		p = keystore.Truncate(p, 200) + "…"
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if keystore.LooksSecret(part) {
			parts[i] = "[redacted]"
		}
	}
	p = strings.Join(parts, "/")
	if keystore.LooksSecret(p) {
		// A secret split by slashes, sk_live_/…
		return "[redacted]"
	}
	return p
}

// requestID echoes a client's request ID when it is a short, plain token
// (and not a secret sent there by mistake), and makes a new one otherwise.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 64 && !keystore.LooksSecret(given) &&
		strings.Trim(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == "" {
		return given
	}
	// 96 random bits from the runtime's generator (ChaCha8, seeded by the
	// system): unique, and as unpredictable as an ID must be that any
	// client may choose for itself; crypto/rand costs several times more.
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	id := [len("req_") + 2*len(b)]byte{'r', 'e', 'q', '_'}
	hex.Encode(id[len("req_"):], b[:])
	return string(id[:])
}

// replyWriter records the status for the log, and turns the plain-text
// replies of http.ServeMux (404, 405, redirects) into JSON errors: only
// writeJSON writes through unchanged.
type replyWriter struct {
	http.ResponseWriter
	r           *http.Request
	srv         *Server
	st          reqState
	idHeader    [1]string
	status      int
	wroteHeader bool
	ours        bool // the reply being written is one of ours
	swallow     bool // discard the body of a reply that was replaced
	call        call // the endpoint's view of the request
}

func (w *replyWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if !w.ours && code >= 300 {
		// A reply of the mux: write ours instead. Redirects (to a cleaned
		// path or a trailing slash) are not followed by API clients: 404.
		w.swallow = true
		h := w.Header()
		h.Del("Location")
		h.Del("Content-Length")
		status, errCode := http.StatusNotFound, keystore.ENOTFOUND
		msg := fmt.Sprintf("no such endpoint: %s %s", w.r.Method, logPath(w.r.URL.Path))
		if allow := h.Get("Allow"); allow != "" && code == http.StatusMethodNotAllowed {
			status, errCode = http.StatusMethodNotAllowed, apiv1.EMETHODNOTALLOWED
			msg = fmt.Sprintf("method %s not allowed for %s (allowed: %s)", w.r.Method, logPath(w.r.URL.Path), allow)
		}
		w.setJSONHeaders()
		w.status, w.wroteHeader = status, true
		w.ResponseWriter.WriteHeader(status)
		w.ResponseWriter.Write(errorBody(errCode, msg, w.st.id))
		return
	}
	w.status, w.wroteHeader = code, true
	w.ResponseWriter.WriteHeader(code)
}

func (w *replyWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *replyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The values of the headers of every JSON reply, shared by all replies
// (net/http only reads them): setting them allocates nothing.
var (
	headerJSON    = []string{"application/json"}
	headerNoSniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
)

func (w *replyWriter) setJSONHeaders() {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNoSniff
	// Replies may hold a new secret: no cache may keep them.
	h["Cache-Control"] = headerNoStore
}

// envelope is the shape of every successful reply.
type envelope struct {
	Data any `json:"data"`
	Meta any `json:"meta,omitempty"`
}

// errorBody is the body of an error reply.
func errorBody(code, msg, requestID string) []byte { return apiv1.ErrorBody(code, msg, requestID) }

// writeJSON writes a reply of ours.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, env envelope) {
	buf := replyBuffers.Get().(*[]byte)
	body, err := appendReply((*buf)[:0], env)
	if err != nil {
		s.writeError(w, r, err)
	} else {
		s.writeRaw(w, status, body)
		*buf = body
	}
	replyBuffers.Put(buf)
}

// replyBuffers recycles the buffers of replies.
var replyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (s *Server) writeRaw(w http.ResponseWriter, status int, body []byte) {
	if rw, ok := w.(*replyWriter); ok {
		rw.ours = true
		rw.setJSONHeaders()
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(body)
}

// appendReply appends env as the body of a reply (apiv1.AppendReply).
func appendReply(b []byte, env envelope) ([]byte, error) {
	b, err := apiv1.AppendReply(b, env.Data, env.Meta)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return b, nil
}

// writeError writes err as an error reply. The message of a 5xx reply is
// generic: the cause goes to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(w)
	code := keystore.ErrorCode(err)
	status := apiv1.Status(code)
	msg := err.Error()
	if status >= 500 {
		st.err = errors.Join(st.err, err)
		code = keystore.EINTERNAL
		msg = "internal error in the key service; the server log has the details under this request_id"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyctl"`)
	}
	s.writeRaw(w, status, errorBody(code, msg, st.id))
}

// readBody reads a request body whole, refusing one over apiv1.MaxBodyBytes.
// A body of a declared length that fits in room is read into it.
func readBody(r *http.Request, room []byte) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n > 0 && n <= apiv1.MaxBodyBytes {
		// The usual case, in room or one allocation of the right size.
		if n <= int64(len(room)) {
			b = room[:n]
		} else {
			b = make([]byte, n)
		}
		if _, err = io.ReadFull(r.Body, b); err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	} else {
		b, err = io.ReadAll(r.Body)
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, keystore.Errorf(keystore.ETOOLARGE, "request body over the limit of %d bytes", apiv1.MaxBodyBytes)
	}
	if err != nil {
		return nil, keystore.Errorf(keystore.EINVALID, "cannot read the request body: %v", err)
	}
	return b, nil
}
