package storetest

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// testIdempotency runs the IdempotencyStore contract on a store that is one.
func testIdempotency(t *testing.T, s *subject, clock *Clock) {
	ist, ok := s.Store.(keystore.IdempotencyStore)
	if !ok {
		t.Skip("the store does not claim Idempotency-Keys itself (a server claims them in memory)")
	}
	RunIdempotency(t, ist)
}

// RunIdempotency checks an IdempotencyStore, which must be empty: a claim
// is made once, its record read back without change, a released claim may
// be made again, and expired records are replaced and purged.
func RunIdempotency(t *testing.T, ist keystore.IdempotencyStore) {
	c := t.Context()
	t0 := Start.Add(time.Hour)
	since := t0.Add(-24 * time.Hour)
	a, b := sha256.Sum256([]byte("lookup a")), sha256.Sum256([]byte("lookup b"))
	reqA, reqB := sha256.Sum256([]byte("request a")), sha256.Sum256([]byte("request b"))

	if _, found, err := ist.GetIdempotency(c, a, since); err != nil || found {
		t.Fatalf("GetIdempotency before any claim = %t, %v; want nothing", found, err)
	}
	rec, claimed, err := ist.ClaimIdempotency(c, a, reqA, t0, since)
	if err != nil || !claimed || !rec.Pending() || rec.Request != reqA {
		t.Fatalf("first claim = %+v, %t, %v; want a pending claim of request a", rec, claimed, err)
	}
	// A second claim, for any request, finds the first pending.
	rec, claimed, err = ist.ClaimIdempotency(c, a, reqB, t0.Add(time.Second), since)
	if err != nil || claimed || !rec.Pending() || rec.Request != reqA || !rec.CreatedAt.Equal(t0) {
		t.Fatalf("second claim = %+v, %t, %v; want the first claim, pending, made at %v", rec, claimed, err, t0)
	}
	body := []byte(`{"data":{"id":"key_0123456789abcdef"}}` + "\n")
	if err := ist.CompleteIdempotency(c, a, keystore.IdempotentReply{Status: 201, Body: body, Withheld: true}); err != nil {
		t.Fatal(err)
	}
	rec, claimed, err = ist.ClaimIdempotency(c, a, reqA, t0.Add(time.Minute), since)
	if err != nil || claimed || rec.Status != 201 || !bytes.Equal(rec.Body, body) || !rec.Withheld || rec.Request != reqA {
		t.Fatalf("claim after completion = %+v, %t, %v; want the kept reply", rec, claimed, err)
	}
	if got, found, err := ist.GetIdempotency(c, a, since); err != nil || !found || got.Status != 201 || !bytes.Equal(got.Body, body) {
		t.Errorf("GetIdempotency = %+v, %t, %v; want the kept reply", got, found, err)
	}
	// Releasing a completed record does nothing.
	if err := ist.ReleaseIdempotency(c, a); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := ist.GetIdempotency(c, a, since); !found {
		t.Errorf("releasing a completed record dropped it")
	}

	// A released claim may be made again, by another request.
	if _, claimed, err := ist.ClaimIdempotency(c, b, reqA, t0, since); err != nil || !claimed {
		t.Fatalf("claim b = %t, %v", claimed, err)
	}
	if err := ist.ReleaseIdempotency(c, b); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := ist.GetIdempotency(c, b, since); found {
		t.Errorf("a released claim is still there")
	}
	if rec, claimed, err := ist.ClaimIdempotency(c, b, reqB, t0, since); err != nil || !claimed || rec.Request != reqB {
		t.Fatalf("claim after release = %+v, %t, %v; want a new claim", rec, claimed, err)
	}

	// A record made before since has expired: not found, and replaced by
	// a new claim.
	later := t0.Add(25 * time.Hour)
	laterSince := later.Add(-24 * time.Hour)
	if _, found, _ := ist.GetIdempotency(c, a, laterSince); found {
		t.Errorf("an expired record was found")
	}
	if rec, claimed, err := ist.ClaimIdempotency(c, a, reqB, later, laterSince); err != nil || !claimed || rec.Request != reqB {
		t.Fatalf("claim over an expired record = %+v, %t, %v; want a new claim", rec, claimed, err)
	}
	// Purging deletes what was made before the cut, only that.
	n, err := ist.PurgeIdempotency(c, t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("PurgeIdempotency = %d, %v; want 1 (record b)", n, err)
	}
	if _, found, _ := ist.GetIdempotency(c, b, since); found {
		t.Errorf("a purged record is still there")
	}
	if _, found, _ := ist.GetIdempotency(c, a, laterSince); !found {
		t.Errorf("purging dropped a newer record")
	}

	// Of many concurrent claims of one lookup, exactly one wins.
	race := sha256.Sum256([]byte("lookup race"))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, claimed, err := ist.ClaimIdempotency(c, race, reqA, t0, since)
			if err != nil {
				t.Error(err)
			}
			if claimed {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d of 8 concurrent claims won, want 1", n)
	}
}
