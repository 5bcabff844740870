package keystore

import (
	"context"
	"time"
)

// IdempotencyStore is a Store that claims Idempotency-Keys of the HTTP API
// itself (keystore/sqlite's Store): several servers on one database then
// agree on which request with a key runs, and its reply outlives a restart.
// A server over a store that is not one claims keys in its own memory.
//
// A record never holds a secret: the server keeps the reply without the
// new key's secret. Lookup and Request are hashes made by the server.
type IdempotencyStore interface {
	// ClaimIdempotency claims lookup for a request whose hash is request,
	// at time at. A record made before since has expired and is replaced.
	// It returns the record that holds lookup now and whether this call
	// made it: claimed, the caller runs the request and then completes or
	// releases the claim; otherwise the record is another request's,
	// pending (Status 0) or done.
	ClaimIdempotency(ctx context.Context, lookup, request [32]byte, at, since time.Time) (rec IdempotencyRecord, claimed bool, err error)

	// CompleteIdempotency keeps the reply to the claimed request, whose
	// Status is not 0 and whose Body holds no secret.
	CompleteIdempotency(ctx context.Context, lookup [32]byte, reply IdempotentReply) error

	// ReleaseIdempotency drops a pending claim, so that a retry of a
	// request that failed runs again. A completed record stays.
	ReleaseIdempotency(ctx context.Context, lookup [32]byte) error

	// GetIdempotency returns the record of lookup made at or after since,
	// and false when there is none.
	GetIdempotency(ctx context.Context, lookup [32]byte, since time.Time) (IdempotencyRecord, bool, error)

	// PurgeIdempotency deletes the records made before before, for good
	// (the SQLite store overwrites the deleted bytes), and returns how
	// many it deleted.
	PurgeIdempotency(ctx context.Context, before time.Time) (int, error)
}

// IdempotencyRecord is a claimed Idempotency-Key.
type IdempotencyRecord struct {
	Request   [32]byte  // hash of the request that claimed it
	CreatedAt time.Time // when it was claimed, to the second
	IdempotentReply
}

// IdempotentReply is the reply kept for the retries of a request.
type IdempotentReply struct {
	Status   int    // the HTTP status; 0 while the request runs
	Body     []byte // the reply without its secret; nil while pending
	Withheld bool   // a secret was left out of Body
}

// Pending reports whether the request that claimed the record still runs.
func (r IdempotencyRecord) Pending() bool { return r.Status == 0 }

// Kept is reply as a store keeps it: its Body never nil, so that a
// completed record reads back with a body. EINTERNAL for a reply without a
// status, which would read back as pending.
func (r IdempotentReply) Kept() (IdempotentReply, error) {
	if r.Status == 0 {
		return r, Errorf(EINTERNAL, "complete Idempotency-Key: status 0")
	}
	if r.Body == nil {
		r.Body = []byte{}
	}
	return r, nil
}

// KeptIdempotencyRecord is the record a store read: the hash of the request
// that claimed it, when, to the second, and its reply (Status 0 while
// pending). A completed record has a Body, empty rather than nil.
func KeptIdempotencyRecord(request []byte, createdAt time.Time, reply IdempotentReply) IdempotencyRecord {
	rec := IdempotencyRecord{CreatedAt: createdAt.UTC(), IdempotentReply: reply}
	copy(rec.Request[:], request)
	if rec.Status != 0 && rec.Body == nil {
		rec.Body = []byte{}
	}
	return rec
}
