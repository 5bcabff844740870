package keystore

import (
	"io"
	"maps"
	"time"
)

// Key statuses. A key's status follows from its revoked_at, expires_at and
// disabled_at, in that order: a revoked key is revoked whatever else, an
// expired key that is also disabled is expired.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
	StatusExpired  = "expired"
	StatusRevoked  = "revoked"
)

// ValidStatus reports whether s is a key status.
func ValidStatus(s string) bool {
	return s == StatusActive || s == StatusDisabled || s == StatusExpired || s == StatusRevoked
}

// Key is an API key's record. Its JSON field names are a public contract.
// Secret is set only in the reply to Create and Rotate.
type Key struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Environment string     `json:"environment"`
	Scopes      []string   `json:"scopes"`
	Hint        string     `json:"hint"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	DisabledAt  *time.Time `json:"disabled_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	// UsedScopes are the scopes that verifications asked this key for,
	// in canonical order; ScopesLastUsed says when each was last asked.
	// Set them with SetScopeUses.
	UsedScopes     []string             `json:"used_scopes"`
	ScopesLastUsed map[string]time.Time `json:"scopes_last_used"`
	RotatedFrom    *string              `json:"rotated_from"`
	RotatedTo      *string              `json:"rotated_to"`
	Delivery       *string              `json:"delivery"` // DeliveryPending, DeliveryDelivered, or nil: not tracked
	Metadata       map[string]string    `json:"metadata"`
	Secret         string               `json:"key,omitempty"`
}

// StatusAt is the key's status at time now. A key is revoked once its
// revoked_at is set, whatever the clock says: a replica whose clock is
// behind the one that revoked it must not take it for active.
func (k *Key) StatusAt(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return StatusRevoked
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return StatusExpired
	case k.DisabledAt != nil:
		return StatusDisabled
	default:
		return StatusActive
	}
}

// MarshalJSON writes the key record as AppendJSON does: times as RFC 3339
// in UTC, to the second. It refuses a key with a time that RFC 3339
// cannot write (CheckTimes).
func (k Key) MarshalJSON() ([]byte, error) {
	if err := k.CheckTimes(); err != nil {
		return nil, err
	}
	return k.AppendJSON(nil), nil
}

// Event is one entry of the audit log. Details never hold a secret.
type Event struct {
	ID      string         `json:"id"`
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	KeyID   string         `json:"key_id"`
	Details map[string]any `json:"details"`
}

// Audit actions.
const (
	ActionCreate  = "create"
	ActionRotate  = "rotate"
	ActionRevoke  = "revoke"
	ActionImport  = "import"
	ActionUpdate  = "update"
	ActionDisable = "disable"
	ActionEnable  = "enable"
	ActionDelete  = "delete"
	// ActionDeliver: the secret of a key made by a rotation that awaited
	// delivery was confirmed delivered, and the old key's end began.
	ActionDeliver = "deliver"
)

// Delivery states of a key made by a rotation with
// RotateOptions.AwaitDelivery. A key made otherwise has none (null): its
// secret was handed out in the reply that made it.
const (
	DeliveryPending   = "pending"   // nobody confirmed having the secret yet
	DeliveryDelivered = "delivered" // ConfirmDelivery was called
)

// Actions lists the audit actions, in the order of a key's life.
var Actions = []string{ActionCreate, ActionImport, ActionUpdate, ActionDisable, ActionEnable, ActionRotate, ActionDeliver, ActionRevoke, ActionDelete}

// Verification result codes.
const (
	CodeValid             = "valid"
	CodeInvalidFormat     = "invalid_format"
	CodeNotFound          = "not_found"
	CodeRevoked           = "revoked"
	CodeExpired           = "expired"
	CodeDisabled          = "disabled"
	CodeInsufficientScope = "insufficient_scope"
)

// Verification is the result of checking a secret.
type Verification struct {
	Valid         bool     `json:"valid"`
	Code          string   `json:"code"`
	Key           *Key     `json:"key"`
	MissingScopes []string `json:"missing_scopes"`
}

// NewKey makes the record of a new key, with a fresh ID and secret drawn
// from r, and stores nothing: every store makes its keys and rotation
// successors with it.
func NewKey(r io.Reader, name, env string, scopes []string, expires *time.Time, metadata map[string]string, now time.Time) (*Key, error) {
	id, err := NewID(r)
	if err != nil {
		return nil, err
	}
	secret, err := NewToken(env, r)
	if err != nil {
		return nil, err
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	k := &Key{
		ID:          id,
		Name:        name,
		Environment: env,
		Scopes:      append([]string(nil), scopes...),
		Hint:        Hint(secret),
		CreatedAt:   now,
		ExpiresAt:   expires,
		Metadata:    maps.Clone(metadata),
		Secret:      secret,
	}
	k.Status = k.StatusAt(now)
	return k, nil
}
