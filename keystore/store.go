package keystore

import (
	"context"
	"iter"
	"time"
)

// CreateParams describes a new key. Scopes must already be expanded.
type CreateParams struct {
	Name        string            `json:"name"`
	Scopes      []string          `json:"scopes"`
	Environment string            `json:"environment"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	Metadata    map[string]string `json:"metadata"`
}

// Validate checks p and fills its defaults (environment live).
func (p *CreateParams) Validate(now time.Time) error {
	if err := CheckName(p.Name); err != nil {
		return err
	}
	if p.Environment == "" {
		p.Environment = EnvLive
	}
	if !ValidEnv(p.Environment) {
		return Errorf(EINVALID, "unknown environment %s (want live or test)", Quote(p.Environment))
	}
	if len(p.Scopes) == 0 {
		return Errorf(EINVALID, "a key needs at least one scope")
	}
	for _, s := range p.Scopes {
		if !ValidScope(s) {
			return UnknownScope(s)
		}
	}
	if p.ExpiresAt != nil && !p.ExpiresAt.After(now) {
		return Errorf(EINVALID, "expiry %s is not in the future", p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return CheckMetadata(p.Metadata)
}

// ListFilter selects keys. Zero fields select everything.
type ListFilter struct {
	Status        string    // active, disabled, expired or revoked
	Environment   string    // live or test
	Scope         string    // keys granted this scope, or any scope of this pattern (bots:*); admin grants all
	CreatedBefore time.Time // keys created before this time
	// Rotatable selects the keys that Rotate would rotate: not revoked, not
	// awaiting delivery themselves, and either not rotated or rotated to
	// a successor whose delivery is pending past its lease.
	Rotatable bool
	// Delivering selects the keys rotated to a successor whose delivery
	// is pending and whose lease runs still: another run is delivering.
	Delivering bool
	// Metadata selects keys whose metadata holds every one of these pairs.
	Metadata map[string]string

	// ExpiringBefore selects the keys not revoked and not yet expired
	// whose expiry comes before this time.
	ExpiringBefore time.Time
	// IDPrefix selects the keys whose ID starts with it (completion);
	// it may hold only the characters of an ID. EINVALID otherwise.
	IDPrefix string
	// Revocable selects the keys not revoked.
	Revocable bool
}

// ListOptions adds paging to a filter. Keys come newest first.
type ListOptions struct {
	ListFilter
	Offset int
	Limit  int // 0: no limit
}

// RotateOptions controls a rotation.
type RotateOptions struct {
	// Grace keeps the old key working for this long; 0 stops it at once.
	Grace time.Duration

	// AwaitDelivery, when positive, makes the rotation wait for the new
	// secret's delivery: the successor is made with delivery pending, the
	// old key is left as it is, and only ConfirmDelivery ends it (at once,
	// or after Grace counted from then). Until this lease has run out,
	// another Rotate of the old key is refused (ECONFLICT), so that a job
	// still delivering is not overtaken; after it, Rotate revokes the
	// undelivered successor and rotates the old key again.
	AwaitDelivery time.Duration
}

// Store keeps API keys. Every implementation must pass keystore/storetest.
// Errors are *Error values; the codes each method may return are listed.
type Store interface {
	// Create makes a key and returns it with its Secret set.
	// EINVALID for bad params.
	Create(ctx context.Context, p CreateParams) (*Key, error)

	// Get returns the key with the given ID, without its secret.
	// EINVALID for a malformed ID, ENOTFOUND for an unknown one.
	Get(ctx context.Context, id string) (*Key, error)

	// List yields keys newest first. It streams: memory does not grow
	// with the number of keys. EINVALID for a bad filter.
	List(ctx context.Context, opts ListOptions) iter.Seq2[*Key, error]

	// Count returns how many keys match f.
	Count(ctx context.Context, f ListFilter) (int, error)

	// Rotate makes a successor with the same name, scopes, environment and
	// metadata, links the two keys, and ends the old key at once or after
	// the grace period (with AwaitDelivery: at ConfirmDelivery), all in one
	// transaction. It returns the new key with its Secret set. A successor
	// still awaiting delivery past its lease is revoked in the same
	// transaction and replaced. EINVALID, ENOTFOUND, and ECONFLICT when the
	// key was already rotated, is revoked, awaits delivery itself, or has a
	// successor whose delivery lease runs still.
	Rotate(ctx context.Context, id string, opts RotateOptions) (*Key, error)

	// Revoke stops the key at once. Revoking a revoked key is not an error.
	// Revoking a successor whose delivery is pending also undoes its
	// rotation: the old key is no longer rotated and may be rotated again.
	// EINVALID, ENOTFOUND.
	Revoke(ctx context.Context, id string) (*Key, error)

	// Verify checks a secret and, when it belongs to a usable key, records
	// the key's last use. A key that is not valid is a result, not an error.
	Verify(ctx context.Context, secret string, scopes []string) (*Verification, error)

	// Import stores a batch of at most MaxImportBatch keys, each with a new
	// ID and an audit event (action import), in one transaction. The store
	// checks each key with ImportKey.Validate at its own time; a key it
	// refuses is counted in Failed, and named in Errors by its position in
	// keys (from 1), without stopping the others. A key whose hash the
	// store holds already, or that came earlier in the batch, is skipped
	// and counted. EINVALID for a batch that is too large. On any other
	// error nothing of the batch is stored, except through the remote
	// store, which may send a large batch in several requests: the result
	// then counts what the requests before the error stored.
	Import(ctx context.Context, keys []ImportKey) (ImportResult, error)

	// Audit returns events oldest first, only those of keyID when set
	// (including rotations to or from it). EINVALID for a malformed ID.
	Audit(ctx context.Context, keyID string) ([]Event, error)

	// Close releases the store's resources.
	Close() error

	// Update changes a key's name, scopes, expiry or metadata (never its
	// secret) and records the before and after of each changed field in
	// one audit event (action update). A change to nothing records
	// nothing. EINVALID for bad params or an empty change, ENOTFOUND, and
	// ECONFLICT for a revoked key.
	Update(ctx context.Context, id string, p UpdateParams) (*Key, error)

	// Disable stops a key until Enable: it verifies as disabled meanwhile.
	// Disabling a disabled key changes nothing. EINVALID, ENOTFOUND, and
	// ECONFLICT for a revoked key.
	Disable(ctx context.Context, id string) (*Key, error)

	// Enable undoes Disable. Enabling a key that is not disabled changes
	// nothing. EINVALID, ENOTFOUND, and ECONFLICT for a revoked key:
	// revoking stays final.
	Enable(ctx context.Context, id string) (*Key, error)

	// Delete removes a revoked key for good; its audit events stay, and an
	// event (action delete) records the deletion. The keys rotated to or
	// from it lose the link. It returns the key as it was. EINVALID,
	// ENOTFOUND, and ECONFLICT for a key that is not revoked.
	Delete(ctx context.Context, id string) (*Key, error)

	// Events returns the audit events that match f, newest first, from
	// f.Offset, at most f.Limit of them (0: all). EINVALID for a bad
	// filter.
	Events(ctx context.Context, f EventFilter) ([]Event, error)

	// CountEvents returns how many events match f, ignoring its Offset
	// and Limit. EINVALID for a bad filter.
	CountEvents(ctx context.Context, f EventFilter) (int, error)

	// Lookup returns the key whose secret has SHA-256 hash (HashToken),
	// without its secret: it tells what a secret found somewhere is (live,
	// revoked, expired) without sending the secret anywhere. It records no
	// use. ENOTFOUND when no key has that secret.
	Lookup(ctx context.Context, hash [32]byte) (*Key, error)
	// ConfirmDelivery records that the secret of key id, made by a
	// rotation with AwaitDelivery, reached its destination: the key's
	// delivery becomes delivered and its predecessor ends, at once or at
	// the end of the rotation's grace counted from now. Confirming twice
	// is not an error. EINVALID, ENOTFOUND, and ECONFLICT when the key
	// awaits no delivery or was revoked before the confirmation (a later
	// rotation took over).
	ConfirmDelivery(ctx context.Context, id string) (*Key, error)
}

// Caller is a store that acts as one of its own keys: the remote store,
// which authenticates with an API key.
type Caller interface {
	// Self returns the key the store authenticates with. EUNAUTHORIZED
	// when it is not valid.
	Self(ctx context.Context) (*Key, error)
	// RotateSelf rotates the key the store authenticates with, which
	// needs no admin scope. Errors as Rotate.
	RotateSelf(ctx context.Context, opts RotateOptions) (*Key, error)
	// UseSecret makes the store authenticate with secret from now on:
	// after the caller's own key was rotated.
	UseSecret(secret string)
}

// Readier is a store that can tell whether it can serve now (the server's
// GET /readyz): the SQLite store reads its file, the PostgreSQL store asks
// the database and checks its change feed.
type Readier interface {
	// Ready returns nil when the store can serve, the cause otherwise.
	Ready(ctx context.Context) error
}

type actorKey struct{}

// WithActor returns a context that names who makes the changes recorded in
// the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the actor of ctx, or "unknown".
func Actor(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "unknown"
}

type detailsKey struct{}

// WithAuditDetails returns a context whose changes add details to their
// audit events (such as where keyctl scan found a key it revokes). The
// details never hold a secret; a store's own details take precedence.
func WithAuditDetails(ctx context.Context, details map[string]any) context.Context {
	return context.WithValue(ctx, detailsKey{}, details)
}

// AuditDetails returns the details of ctx (WithAuditDetails), or nil.
func AuditDetails(ctx context.Context) map[string]any {
	d, _ := ctx.Value(detailsKey{}).(map[string]any)
	return d
}

// CheckMetadataFilter checks the metadata pairs of a list filter as
// CreateParams.Validate checks a key's metadata. EINVALID.
func CheckMetadataFilter(m map[string]string) error {
	for k, v := range m {
		if k == "" {
			return Errorf(EINVALID, "metadata key must not be empty")
		}
		if len(k) > 40 || len(v) > 500 {
			return Errorf(EINVALID, "metadata %q too long (keys at most 40, values at most 500 bytes)", Truncate(k, 40))
		}
	}
	if len(m) > 50 {
		return Errorf(EINVALID, "too many metadata filters: %d, at most 50", len(m))
	}
	return nil
}

// As finds the first store in the chain of s and the stores it wraps
// (through their Unwrap() Store, as keystore/cache's) that is a T, as
// errors.As does for errors: the optional interfaces of a wrapped store.
func As[T any](s Store) (T, bool) {
	for {
		if t, ok := s.(T); ok {
			return t, true
		}
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			var zero T
			return zero, false
		}
		s = u.Unwrap()
	}
}
