package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ReplayTTL is how long a reply to a request with an Idempotency-Key is
// kept: a retry within it gets the first reply instead of a second key.
const ReplayTTL = 24 * time.Hour

// ReplayStore keeps sealed replies to requests that carried an
// Idempotency-Key. A record is opaque to the store: the server seals it
// under a key derived from the Idempotency-Key, which is never stored, so
// the secrets in it cannot be read from the store. keystore/sqlite's Store
// is one, so replies outlive a restart of the server.
type ReplayStore interface {
	// SaveReplay keeps record under lookup, replacing any record there.
	SaveReplay(ctx context.Context, lookup [32]byte, record []byte, at time.Time) error
	// LoadReplay returns the record under lookup saved at or after since,
	// or nil.
	LoadReplay(ctx context.Context, lookup [32]byte, since time.Time) ([]byte, error)
	// PruneReplays deletes the records saved before t.
	PruneReplays(ctx context.Context, before time.Time) error
}

// maxIdempotencyKey bounds the length of an Idempotency-Key header.
const maxIdempotencyKey = 255

// replay is the plaintext of a sealed record.
type replay struct {
	Request string          `json:"request"` // hex SHA-256 of method, path and body
	Status  int             `json:"status"`
	Body    json.RawMessage `json:"body"`
}

// serveIdempotent answers a request that carries an Idempotency-Key: with
// the first reply if the caller sent the same request with the same key
// within ReplayTTL, with 409 if the key came with another request, and by
// running fn otherwise. Requests with the same key wait for each other, so
// that concurrent retries make one key.
func (s *Server) serveIdempotent(w http.ResponseWriter, c *call, fn func(*call) (result, error)) {
	r := c.r
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > maxIdempotencyKey || !printable(idem) {
		s.writeError(w, r, keystore.Errorf(keystore.EINVALID, "Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey))
		return
	}
	lookup := replayLookup(c.callerID, idem)
	unlock := s.locks.lock(lookup)
	defer unlock()

	reqHash := requestHash(r.Method, r.URL.Path, c.body)
	now := s.now()
	record, err := s.replays.LoadReplay(r.Context(), lookup, now.Add(-ReplayTTL))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if record != nil {
		prev, err := openReplay(c.callerID, idem, lookup, record)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if prev.Request != reqHash {
			s.writeError(w, r, keystore.Errorf(keystore.ECONFLICT,
				"this Idempotency-Key was already used for another request in the last 24 hours; use a new key for a new request"))
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		s.writeRaw(w, prev.Status, prev.Body)
		return
	}

	res, err := fn(c)
	if err != nil {
		// Errors are not kept: a retry tries again.
		s.writeError(w, r, err)
		return
	}
	body, err := marshal(res.value)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The change is made: keep its reply even if the client has gone away,
	// since its retry is exactly what the record is for.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	sealed, err := sealReplay(c.callerID, idem, lookup, replay{reqHash, res.status, body})
	if err == nil {
		err = s.replays.SaveReplay(ctx, lookup, sealed, now)
	}
	if err == nil {
		err = s.replays.PruneReplays(ctx, now.Add(-ReplayTTL))
	}
	if err != nil {
		// The key exists: losing its secret would be worse than a retry
		// that makes another. The log says what went wrong.
		st := stateOf(w)
		st.err = errors.Join(st.err, err)
		s.log.Error("cannot keep the reply to an idempotent request", "request_id", st.id, "error", err.Error())
	}
	s.writeRaw(w, res.status, body)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// replayLookup names a record: a hash of the caller and the Idempotency-Key,
// under a label of its own so that it is not the sealing key.
func replayLookup(callerID, idem string) [32]byte {
	return sha256.Sum256([]byte("keyctl idempotency lookup v1\x00" + callerID + "\x00" + idem))
}

func requestHash(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method + "\x00" + path + "\x00"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// replayAEAD is AES-256-GCM under a key derived (HKDF-SHA-256) from the
// Idempotency-Key and the caller: only a retry of the request can read it.
func replayAEAD(callerID, idem string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(idem), []byte(callerID), "keyctl idempotent reply v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealReplay returns nonce || ciphertext, bound to lookup.
func sealReplay(callerID, idem string, lookup [32]byte, rp replay) ([]byte, error) {
	plain, err := json.Marshal(rp)
	if err != nil {
		return nil, err
	}
	aead, err := replayAEAD(callerID, idem)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, lookup[:]), nil
}

func openReplay(callerID, idem string, lookup [32]byte, sealed []byte) (*replay, error) {
	aead, err := replayAEAD(callerID, idem)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, keystore.Errorf(keystore.EINTERNAL, "stored idempotent reply is damaged")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], lookup[:])
	if err != nil {
		return nil, keystore.Errorf(keystore.EINTERNAL, "stored idempotent reply is damaged")
	}
	var rp replay
	if err := json.Unmarshal(plain, &rp); err != nil {
		return nil, keystore.Errorf(keystore.EINTERNAL, "stored idempotent reply is damaged")
	}
	return &rp, nil
}

// keyLocks is a mutex per lookup, made on demand and dropped when unused.
type keyLocks struct {
	mu sync.Mutex
	m  map[[32]byte]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

func (l *keyLocks) lock(id [32]byte) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[[32]byte]*keyLock{}
	}
	k := l.m[id]
	if k == nil {
		k = &keyLock{}
		l.m[id] = k
	}
	k.users++
	l.mu.Unlock()

	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// maxMemoryReplays bounds memoryReplays.
const maxMemoryReplays = 10000

// memoryReplays is the ReplayStore of a store that is not one: replies
// last as long as the process.
type memoryReplays struct {
	mu sync.Mutex
	m  map[[32]byte]memoryReplay
}

type memoryReplay struct {
	record []byte
	at     time.Time
}

func newMemoryReplays() *memoryReplays {
	return &memoryReplays{m: map[[32]byte]memoryReplay{}}
}

func (m *memoryReplays) SaveReplay(_ context.Context, lookup [32]byte, record []byte, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[lookup]; !ok && len(m.m) >= maxMemoryReplays {
		// Full even after pruning: drop the oldest record.
		var oldest [32]byte
		first := true
		for id, r := range m.m {
			if first || r.at.Before(m.m[oldest].at) {
				oldest, first = id, false
			}
		}
		delete(m.m, oldest)
	}
	m.m[lookup] = memoryReplay{append([]byte(nil), record...), at}
	return nil
}

func (m *memoryReplays) LoadReplay(_ context.Context, lookup [32]byte, since time.Time) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.m[lookup]
	if !ok || r.at.Before(since) {
		return nil, nil
	}
	return r.record, nil
}

func (m *memoryReplays) PruneReplays(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.m {
		if r.at.Before(before) {
			delete(m.m, id)
		}
	}
	return nil
}
