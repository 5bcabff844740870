package keystore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"iter"
	"strings"
	"time"
)

// An export (keyctl export) moves a whole store to another store, of any
// kind, losslessly: JSON Lines, a header first, then every key oldest
// first, then every audit event in the log's order. A key is written with
// the SHA-256 of its secret, never the secret, which no store holds.
const (
	ExportFormat  = "keyctl-export"
	ExportVersion = 1
)

// Line types of an export.
const (
	ExportTypeHeader = "header"
	ExportTypeKey    = "key"
	ExportTypeEvent  = "event"
)

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Type       string    `json:"type"` // ExportTypeHeader
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	ExportedAt time.Time `json:"exported_at"`
}

// ExportedKey is a key as an export holds it: its whole record, with the
// SHA-256 of its secret in hex. Status is written for people reading the
// file; a store derives it again.
type ExportedKey struct {
	Type        string     `json:"type"` // ExportTypeKey
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Environment string     `json:"environment"`
	Scopes      []string   `json:"scopes"`
	Hint        string     `json:"hint"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	DisabledAt  *time.Time `json:"disabled_at,omitempty"` // absent: not disabled (and in older exports)
	LastUsedAt  *time.Time `json:"last_used_at"`
	RotatedFrom *string    `json:"rotated_from"`
	RotatedTo   *string    `json:"rotated_to"`
	Delivery    *string    `json:"delivery,omitempty"` // absent: none (and in older exports)
	// ScopesLastUsed: when each scope was last asked of the key; absent:
	// no recorded use (and in older exports).
	ScopesLastUsed map[string]time.Time `json:"scopes_last_used,omitempty"`
	Metadata       map[string]string    `json:"metadata"`
	KeySHA256      string               `json:"key_sha256"`
}

// ExportedEvent is an audit event as an export holds it.
type ExportedEvent struct {
	Type string `json:"type"` // ExportTypeEvent
	Event
}

// NewExportedKey is k with the SHA-256 of its secret.
func NewExportedKey(k *Key, hash []byte) *ExportedKey {
	return &ExportedKey{
		Type: ExportTypeKey, ID: k.ID, Name: k.Name, Environment: k.Environment,
		Scopes: k.Scopes, Hint: k.Hint, Status: k.Status, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, DisabledAt: k.DisabledAt, LastUsedAt: k.LastUsedAt,
		RotatedFrom: k.RotatedFrom, RotatedTo: k.RotatedTo, Delivery: k.Delivery, Metadata: k.Metadata,
		ScopesLastUsed: k.ScopesLastUsed, KeySHA256: hex.EncodeToString(hash),
	}
}

// Hash returns the SHA-256 of the key's secret.
func (k *ExportedKey) Hash() [32]byte {
	var h [32]byte
	hex.Decode(h[:], []byte(k.KeySHA256))
	return h
}

// Validate checks an exported key read from a file, and cuts its times to
// whole seconds, as stores keep them. It does not judge the times against
// a clock: the key is restored as it was.
func (k *ExportedKey) Validate() error {
	if err := CheckID(k.ID); err != nil {
		return err
	}
	if err := CheckName(k.Name); err != nil {
		return err
	}
	if !ValidEnv(k.Environment) {
		return Errorf(EINVALID, "unknown environment %q (want live or test)", Truncate(k.Environment, 20))
	}
	if len(k.Scopes) == 0 {
		return Errorf(EINVALID, "a key needs at least one scope")
	}
	for _, s := range k.Scopes {
		if err := CheckScope(s); err != nil {
			return err
		}
	}
	if !validStoredHint(k.Hint, k.Environment) {
		return Errorf(EINVALID, "hint must look like sk_%s_AbCd…WxYz (at most 4 characters either side of the …)", k.Environment)
	}
	if b, err := hex.DecodeString(k.KeySHA256); err != nil || len(b) != 32 {
		return Errorf(EINVALID, "key_sha256 must be 64 hexadecimal characters")
	}
	if err := CheckMetadata(k.Metadata); err != nil {
		return err
	}
	if k.Metadata == nil {
		k.Metadata = map[string]string{}
	}
	for _, id := range []*string{k.RotatedFrom, k.RotatedTo} {
		if id != nil {
			if err := CheckID(*id); err != nil {
				return err
			}
		}
	}
	if d := k.Delivery; d != nil && *d != DeliveryPending && *d != DeliveryDelivered {
		return Errorf(EINVALID, "unknown delivery %q (want pending, delivered or null)", Truncate(*d, 20))
	}
	if k.CreatedAt.IsZero() {
		return Errorf(EINVALID, "a key needs created_at")
	}
	k.CreatedAt = k.CreatedAt.UTC().Truncate(time.Second)
	for _, t := range []*time.Time{k.ExpiresAt, k.RevokedAt, k.DisabledAt, k.LastUsedAt} {
		if t != nil {
			*t = t.UTC().Truncate(time.Second)
		}
	}
	for scope, t := range k.ScopesLastUsed {
		if err := CheckScope(scope); err != nil {
			return err
		}
		k.ScopesLastUsed[scope] = t.UTC().Truncate(time.Second)
	}
	return nil
}

// Validate checks an exported event read from a file.
func (e *ExportedEvent) Validate() error {
	if !ValidEventID(e.ID) {
		return Errorf(EINVALID, "invalid event ID %q", Truncate(e.ID, 40))
	}
	if err := CheckID(e.KeyID); err != nil {
		return err
	}
	if e.Action == "" || e.At.IsZero() {
		return Errorf(EINVALID, "an event needs an action and a time")
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.At = e.At.UTC().Truncate(time.Second)
	return nil
}

// ValidEventID reports whether id has the shape of an event ID: evt_ and
// what follows key_ in a key ID.
func ValidEventID(id string) bool {
	rest, ok := strings.CutPrefix(id, "evt_")
	return ok && ValidID("key_"+rest)
}

// DecodeExportHeader reports whether line is the header of an export, and
// of a version this build reads.
func DecodeExportHeader(line []byte) (ok bool, err error) {
	var h ExportHeader
	if json.Unmarshal(line, &h) != nil || h.Type != ExportTypeHeader || h.Format != ExportFormat {
		return false, nil
	}
	if h.Version < 1 || h.Version > ExportVersion {
		return true, Errorf(EINVALID, "export format version %d, this build reads up to %d; upgrade keyctl", h.Version, ExportVersion)
	}
	return true, nil
}

// Exporter is a Store that can write every key with the hash of its
// secret: the SQLite and PostgreSQL stores (the HTTP API never gives out
// hashes).
type Exporter interface {
	// ExportKeys yields every key, oldest first (ties in the order they
	// were stored), streaming.
	ExportKeys(ctx context.Context) iter.Seq2[*ExportedKey, error]
}

// Restorer is a Store that takes keys and events as an export holds them,
// with their IDs, times and states, each batch in one transaction. A key
// whose ID or hash the store holds already, or an event whose ID it holds,
// is skipped and counted. Restoring writes no audit event of its own: the
// export's events are the log.
type Restorer interface {
	// RestoreKeys stores keys without their rotation links, which may
	// name keys of later batches. EINVALID for a batch over
	// MaxImportBatch.
	RestoreKeys(ctx context.Context, keys []ExportedKey) (RestoreResult, error)
	// RestoreLinks sets rotated_from and rotated_to of the given keys
	// where they are unset and the key they name is in the store.
	RestoreLinks(ctx context.Context, keys []ExportedKey) error
	// RestoreEvents appends events to the audit log in the given order.
	RestoreEvents(ctx context.Context, events []Event) (RestoreResult, error)
}

// RestoreResult counts what a restore did.
type RestoreResult struct {
	Restored int `json:"restored"`
	Skipped  int `json:"skipped"`
}
