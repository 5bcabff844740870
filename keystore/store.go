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
		return Errorf(EINVALID, "unknown environment %q (want live or test)", Truncate(p.Environment, 20))
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
	Status        string    // active, expired or revoked
	Environment   string    // live or test
	Scope         string    // keys granted this scope (admin grants all)
	CreatedBefore time.Time // keys created before this time
	Rotatable     bool      // only keys not yet rotated and not revoked
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
	// the grace period, all in one transaction. It returns the new key with
	// its Secret set. EINVALID, ENOTFOUND, and ECONFLICT when the key was
	// already rotated or is revoked.
	Rotate(ctx context.Context, id string, opts RotateOptions) (*Key, error)

	// Revoke stops the key at once. Revoking a revoked key is not an error.
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
