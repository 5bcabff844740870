package server

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxBuckets bounds the limiter's memory: callers can send any number of
// made-up keys, and each gets a bucket before it is verified.
const maxBuckets = 10000

// limiter is a token bucket per API key, keyed by the SHA-256 of the bearer
// so that it works before (and whether or not) the key verifies, and keeps
// no secret in memory. A bucket holds up to burst tokens and gains rate
// tokens a second; a request takes one.
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[[32]byte]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newLimiter(rate float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: max(1, math.Floor(rate)), now: now, buckets: map[[32]byte]*bucket{}}
}

// allow takes a token for token's bucket and sets the X-RateLimit headers,
// and Retry-After when there is none to take.
func (l *limiter) allow(w http.ResponseWriter, token string) bool {
	id := sha256.Sum256([]byte(token))
	now := l.now()

	l.mu.Lock()
	b := l.buckets[id]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[id] = b
	}
	l.refill(b, now)
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	tokens := b.tokens
	l.mu.Unlock()

	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(int(l.burst)))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(int(math.Floor(tokens))))
	h.Set("X-RateLimit-Reset", strconv.Itoa(l.seconds(l.burst-tokens)))
	if !allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, l.seconds(1-tokens))))
	}
	return allowed
}

// seconds is how many whole seconds (rounded up) it takes to gain n tokens.
func (l *limiter) seconds(n float64) int {
	if n <= 0 {
		return 0
	}
	return int(math.Ceil(n / l.rate))
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}

// makeRoom keeps the number of buckets under maxBuckets. A full bucket is
// the same as no bucket, so those go first; if that is not enough, any go,
// down to 90% so that the sweep is not repeated on every new key.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.buckets) < maxBuckets {
		return
	}
	for id, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, id)
		}
	}
	for id := range l.buckets {
		if len(l.buckets) < maxBuckets*9/10 {
			break
		}
		delete(l.buckets, id)
	}
}
