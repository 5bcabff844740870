package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ReplayTTL is how long a reply to a request with an Idempotency-Key is
// kept: a retry within it gets the first reply instead of a second key.
const ReplayTTL = 24 * time.Hour

// SecretReplayTTL is how long the server holds the secret of a reply in its
// memory, so that a retry to the same process within it gets the secret
// too. The store never holds it: a retry answered from the store gets the
// first reply with the secret left out, and the header
// Idempotent-Secret: withheld.
const SecretReplayTTL = 10 * time.Minute

// PurgeInterval is how often expired idempotent replies are purged.
const PurgeInterval = 10 * time.Minute

// claimTimeout is how long a request waits for another that holds its
// Idempotency-Key; a claim pending longer than staleClaim belongs to a
// request that died with its server.
const (
	claimTimeout = 30 * time.Second
	staleClaim   = 2 * time.Minute
)

// maxIdempotencyKey bounds the length of an Idempotency-Key header.
const maxIdempotencyKey = 255

// serveIdempotent answers a request that carries an Idempotency-Key. The
// key is claimed in the store (or in memory, for a store that cannot): the
// request that claims it runs fn; a request with the same key and body
// waits for it and replays its reply; a request with the same key and
// another body gets 409.
func (s *Server) serveIdempotent(w http.ResponseWriter, c *call, fn func(*call) (result, error)) {
	r := c.r
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > maxIdempotencyKey || !printable(idem) {
		s.writeError(w, r, keystore.Errorf(keystore.EINVALID, "Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey))
		return
	}
	lookup := replayLookup(c.callerID, idem)
	reqHash := requestHash(r.Method, r.URL.Path, c.body)

	ctx, cancel := context.WithTimeout(r.Context(), claimTimeout)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		// Read first: a retry, and a request that waits for another, need
		// no write (on SQLite, the store's one write lock); claim only a
		// key that nobody holds.
		now := s.now()
		since := now.Add(-ReplayTTL)
		rec, found, err := s.claims.GetIdempotency(ctx, lookup, since)
		if err == nil && !found {
			var claimed bool
			rec, claimed, err = s.claims.ClaimIdempotency(ctx, lookup, reqHash, now, since)
			if err == nil && claimed {
				s.runClaimed(w, c, fn, lookup)
				return
			}
		}
		if err != nil {
			s.writeError(w, r, claimError(r.Context(), err))
			return
		}
		if rec.Request != reqHash {
			s.writeError(w, r, keystore.Errorf(keystore.ECONFLICT,
				"this Idempotency-Key was already used for another request in the last 24 hours; use a new key for a new request"))
			return
		}
		if !rec.Pending() {
			s.replay(w, rec, lookup, reqHash)
			return
		}
		if now.Sub(rec.CreatedAt) > staleClaim {
			s.writeError(w, r, keystore.Errorf(keystore.ECONFLICT,
				"the first request with this Idempotency-Key did not finish (its server stopped); check whether it made a key, then use a new Idempotency-Key"))
			return
		}
		// Another request with this key runs, in this process or another:
		// wait for its reply, or for its claim to go if it fails.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.writeError(w, r, claimError(r.Context(), ctx.Err()))
			return
		}
	}
}

// replay answers a retry with the reply kept for the first request: whole
// from memory if this server made it lately, else without its secret.
func (s *Server) replay(w http.ResponseWriter, rec keystore.IdempotencyRecord, lookup, reqHash [32]byte) {
	w.Header().Set("Idempotent-Replayed", "true")
	if full, ok := s.secrets.get(lookup, reqHash, s.now()); ok {
		s.writeRaw(w, rec.Status, full)
		return
	}
	if rec.Withheld {
		w.Header().Set("Idempotent-Secret", "withheld")
	}
	s.writeRaw(w, rec.Status, rec.Body)
}

// claimError is the error of a request that could not claim its key or
// wait for it.
func claimError(reqCtx context.Context, err error) error {
	if reqCtx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return keystore.Errorf(keystore.ECONFLICT, "another request with this Idempotency-Key is still running; retry later")
	}
	return err
}

// runClaimed runs fn for the request that claimed lookup, and keeps its
// reply without the secret in the store and with the secret in memory.
func (s *Server) runClaimed(w http.ResponseWriter, c *call, fn func(*call) (result, error), lookup [32]byte) {
	r := c.r
	// Whatever happens to the request, its claim is completed or released:
	// a claim left pending would hold its key until staleClaim.
	bg, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	completed := false
	defer func() {
		if !completed {
			if err := s.claims.ReleaseIdempotency(bg, lookup); err != nil {
				s.log.Error("cannot release an Idempotency-Key", "request_id", stateOf(w).id, "error", err.Error())
			}
		}
	}()

	res, err := fn(c)
	if err != nil {
		// Errors are not kept: a retry tries again.
		s.writeError(w, r, err)
		return
	}
	body, err := appendReply(nil, res.value)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	kept, withheld, err := replyWithoutSecret(res.value)
	if err == nil {
		err = s.claims.CompleteIdempotency(bg, lookup, keystore.IdempotentReply{Status: res.status, Body: kept, Withheld: withheld})
	}
	if err != nil {
		// The key exists: losing its secret would be worse than a retry
		// that makes another. The log says what went wrong.
		st := stateOf(w)
		st.err = errors.Join(st.err, err)
		s.log.Error("cannot keep the reply to an idempotent request", "request_id", st.id, "error", err.Error())
	} else {
		completed = true
		if withheld {
			s.secrets.put(lookup, requestHash(r.Method, r.URL.Path, c.body), body, s.now())
		}
	}
	s.writeRaw(w, res.status, body)
}

// replyWithoutSecret encodes the reply as it is kept: a new key's secret
// left out, and anything else shaped like a secret redacted. It reports
// whether it left something out.
func replyWithoutSecret(env envelope) (body []byte, withheld bool, err error) {
	if k, ok := env.Data.(*keystore.Key); ok && k != nil && k.Secret != "" {
		c := *k
		c.Secret = ""
		env.Data = &c
		withheld = true
	}
	if body, err = appendReply(nil, env); err != nil {
		return nil, false, err
	}
	if red := keystore.RedactSecrets(string(body)); red != string(body) {
		body, withheld = []byte(red), true
	}
	return body, withheld, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// replayLookup names a record: a hash of the caller and the Idempotency-Key.
func replayLookup(callerID, idem string) [32]byte {
	return sha256.Sum256([]byte("keyctl idempotency lookup v1\x00" + callerID + "\x00" + idem))
}

func requestHash(method, path string, body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(method + "\x00" + path + "\x00"))
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// PurgeReplaysEvery purges expired idempotent replies (PurgeReplays) now
// and every d until ctx ends. keyctl serve runs it every PurgeInterval.
func (s *Server) PurgeReplaysEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if err := s.PurgeReplays(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("cannot purge expired idempotent replies", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeReplays deletes the idempotent replies older than ReplayTTL, and
// forgets the secrets held longer than SecretReplayTTL.
func (s *Server) PurgeReplays(ctx context.Context) error {
	now := s.now()
	s.secrets.purge(now)
	_, err := s.claims.PurgeIdempotency(ctx, now.Add(-ReplayTTL))
	return err
}

// maxHeldSecrets bounds the replies with a secret held in memory.
const maxHeldSecrets = 10000

// heldSecrets are whole replies, secret included, held in memory for
// SecretReplayTTL so that a retry to the same process gets the secret.
type heldSecrets struct {
	mu sync.Mutex
	m  map[[32]byte]heldReply
}

type heldReply struct {
	request [32]byte
	body    []byte
	at      time.Time
}

func (h *heldSecrets) put(lookup, request [32]byte, body []byte, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[[32]byte]heldReply{}
	}
	if len(h.m) >= maxHeldSecrets {
		h.purgeLocked(now)
	}
	if len(h.m) >= maxHeldSecrets {
		return // a retry gets the reply without its secret
	}
	h.m[lookup] = heldReply{request, bytes.Clone(body), now}
}

func (h *heldSecrets) get(lookup, request [32]byte, now time.Time) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.m[lookup]
	if !ok || r.request != request || now.Sub(r.at) > SecretReplayTTL {
		return nil, false
	}
	return r.body, true
}

func (h *heldSecrets) purge(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.purgeLocked(now)
}

func (h *heldSecrets) purgeLocked(now time.Time) {
	for id, r := range h.m {
		if now.Sub(r.at) > SecretReplayTTL {
			clear(r.body)
			delete(h.m, id)
		}
	}
}

// memoryClaims is the IdempotencyStore of a server whose store is not one:
// claims hold within the process, and last as long as it.
type memoryClaims struct {
	mu sync.Mutex
	m  map[[32]byte]keystore.IdempotencyRecord
}

// maxMemoryClaims bounds memoryClaims.
const maxMemoryClaims = 10000

var _ keystore.IdempotencyStore = (*memoryClaims)(nil)

func newMemoryClaims() *memoryClaims {
	return &memoryClaims{m: map[[32]byte]keystore.IdempotencyRecord{}}
}

func (m *memoryClaims) ClaimIdempotency(_ context.Context, lookup, request [32]byte, at, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.m[lookup]; ok && !rec.CreatedAt.Before(since.Truncate(time.Second)) {
		return rec, false, nil
	}
	if len(m.m) >= maxMemoryClaims {
		m.purgeLocked(since)
	}
	if len(m.m) >= maxMemoryClaims {
		// Full even after purging: drop the oldest completed record.
		var oldest [32]byte
		found := false
		for id, r := range m.m {
			if !r.Pending() && (!found || r.CreatedAt.Before(m.m[oldest].CreatedAt)) {
				oldest, found = id, true
			}
		}
		if !found {
			return keystore.IdempotencyRecord{}, false, keystore.Errorf(keystore.EUNAVAILABLE, "too many requests with an Idempotency-Key at once")
		}
		delete(m.m, oldest)
	}
	rec := keystore.IdempotencyRecord{Request: request, CreatedAt: time.Unix(at.Unix(), 0).UTC()}
	m.m[lookup] = rec
	return rec, true, nil
}

func (m *memoryClaims) CompleteIdempotency(_ context.Context, lookup [32]byte, reply keystore.IdempotentReply) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.m[lookup]
	if !ok || !rec.Pending() {
		return nil
	}
	rec.IdempotentReply = reply
	rec.Body = bytes.Clone(reply.Body)
	if rec.Body == nil {
		rec.Body = []byte{}
	}
	m.m[lookup] = rec
	return nil
}

func (m *memoryClaims) ReleaseIdempotency(_ context.Context, lookup [32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.m[lookup]; ok && rec.Pending() {
		delete(m.m, lookup)
	}
	return nil
}

func (m *memoryClaims) GetIdempotency(_ context.Context, lookup [32]byte, since time.Time) (keystore.IdempotencyRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.m[lookup]
	if !ok || rec.CreatedAt.Before(since.Truncate(time.Second)) {
		return keystore.IdempotencyRecord{}, false, nil
	}
	return rec, true, nil
}

func (m *memoryClaims) PurgeIdempotency(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.purgeLocked(before), nil
}

func (m *memoryClaims) purgeLocked(before time.Time) int {
	n := 0
	for id, r := range m.m {
		if r.CreatedAt.Unix() < before.Unix() {
			delete(m.m, id)
			n++
		}
	}
	return n
}
