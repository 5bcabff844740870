package keystore

import (
	"context"
	"time"
)

// Change is one committed change to the keys, as a store's change feed
// reports it: the audit event the change wrote.
type Change struct {
	Action string // the audit action; one this build does not know means anything may have changed
	KeyID  string // the key the event names
	// Other is a second key the change affected, or "": the predecessor
	// that a delivery ends, or that the revocation of an undelivered
	// successor unlinks.
	Other string
}

// ChangeFeed is a store whose committed changes, by any process, can be
// read in commit order: what keystore/cache invalidates its entries by.
// Uses of keys (last_used_at) are not changes.
type ChangeFeed interface {
	// Changes returns the changes committed after position since, in
	// commit order, and the position they lead to. When more than limit
	// changes (or changes that name no key) came after since, it
	// returns none, complete false, and the latest position: the caller
	// must then forget everything it knows. Changes(ctx, 0, 0) is the
	// way to read the latest position.
	Changes(ctx context.Context, since int64, limit int) (changes []Change, pos int64, complete bool, err error)
}

// ChangeNotifier is a ChangeFeed that tells when changes may have come
// (PostgreSQL's LISTEN/NOTIFY): keystore/cache then reads the feed at
// once rather than at its next poll, which stays the fallback.
type ChangeNotifier interface {
	// ChangeNotify returns a channel closed when a change newer than the
	// call may have committed; nil when the store cannot tell.
	ChangeNotify() <-chan struct{}
}

// UseRecorder is a store that queues uses of keys and writes them in
// batches, at most one write per key per interval, showing them on its
// reads meanwhile; Close writes the rest. keystore/cache records the uses
// it serves from memory through it.
type UseRecorder interface {
	// RecordUse queues a use of key id at t (the store's clock), and of
	// scopes at t. A use older than the one recorded changes nothing.
	RecordUse(id string, t time.Time, scopes []string)
}
