package keystore

import (
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// UpdateParams is a change to a key: only the fields set change. A secret
// never changes through an update; rotate makes a new one.
type UpdateParams struct {
	Name *string
	// Scopes replaces the key's scopes when not nil; they must be scopes,
	// not patterns (UpdateScopes computes them from flags).
	Scopes      []string
	ExpiresAt   *time.Time
	ClearExpiry bool              // the key never expires
	Metadata    map[string]string // entries to set
	// RemoveMetadata names the entries to unset; an absent one is no error.
	RemoveMetadata []string
}

// IsZero reports whether p changes nothing at all.
func (p UpdateParams) IsZero() bool {
	return p.Name == nil && p.Scopes == nil && p.ExpiresAt == nil && !p.ClearExpiry &&
		len(p.Metadata) == 0 && len(p.RemoveMetadata) == 0
}

// Apply checks p and applies it to a copy of k at time now. It returns the
// updated copy and the audit details of the change: for each field that
// changed, {"before": …, "after": …}. No changed field gives empty details.
// ECONFLICT for a revoked key, EINVALID for bad params.
func (p UpdateParams) Apply(k *Key, now time.Time) (*Key, map[string]any, error) {
	if k.RevokedAt != nil {
		return nil, nil, Errorf(ECONFLICT, "key %s is revoked: it cannot change", k.ID)
	}
	if p.IsZero() {
		return nil, nil, Errorf(EINVALID, "nothing to update: give a new name, scopes, expiry or metadata")
	}
	nk := *k
	nk.Secret = ""
	changes := map[string]any{}
	change := func(field string, before, after any) {
		changes[field] = map[string]any{"before": before, "after": after}
	}
	if p.Name != nil {
		if err := CheckName(*p.Name); err != nil {
			return nil, nil, err
		}
		if *p.Name != k.Name {
			nk.Name = *p.Name
			change("name", k.Name, nk.Name)
		}
	}
	if p.Scopes != nil {
		if len(p.Scopes) == 0 {
			return nil, nil, Errorf(EINVALID, "a key needs at least one scope (revoke or disable it instead)")
		}
		for _, s := range p.Scopes {
			if !ValidScope(s) {
				if err := CheckScope(s); err != nil {
					return nil, nil, err
				}
				return nil, nil, Errorf(EINVALID, "unknown scope %q (did you mean %s?)", Truncate(s, 40), NearestScope(s))
			}
		}
		scopes, _ := ExpandScopes(p.Scopes) // canonical order, no duplicates
		if !slices.Equal(scopes, k.Scopes) {
			nk.Scopes = scopes
			change("scopes", nonNilStrings(k.Scopes), scopes)
		}
	}
	if p.ExpiresAt != nil && p.ClearExpiry {
		return nil, nil, Errorf(EINVALID, "set an expiry or clear it, not both")
	}
	if p.ExpiresAt != nil || p.ClearExpiry {
		var e *time.Time
		if p.ExpiresAt != nil {
			t := p.ExpiresAt.UTC().Truncate(time.Second)
			if !t.After(now) {
				return nil, nil, Errorf(EINVALID, "expiry %s is not in the future", t.Format(time.RFC3339))
			}
			e = &t
		}
		if !sameTime(e, k.ExpiresAt) {
			nk.ExpiresAt = e
			change("expires_at", timeValue(k.ExpiresAt), timeValue(e))
		}
	}
	if len(p.Metadata) > 0 || len(p.RemoveMetadata) > 0 {
		m := maps.Clone(k.Metadata)
		if m == nil {
			m = map[string]string{}
		}
		for _, name := range p.RemoveMetadata {
			if _, set := p.Metadata[name]; set {
				return nil, nil, Errorf(EINVALID, "metadata %q is both set and removed", Truncate(name, 40))
			}
			delete(m, name)
		}
		maps.Copy(m, p.Metadata)
		if err := CheckMetadata(m); err != nil {
			return nil, nil, err
		}
		if !maps.Equal(m, k.Metadata) {
			before := k.Metadata
			if before == nil {
				before = map[string]string{}
			}
			nk.Metadata = m
			change("metadata", before, m)
		}
	}
	nk.Status = nk.StatusAt(now)
	return &nk, changes, nil
}

// Apply checks p and makes the key it asks for at now, with a fresh ID and
// secret from random, and the details of its create event. The expiry is
// cut to whole seconds before validation, so that one within the current
// second is refused rather than stored as already past. EINVALID for bad
// params.
func (p CreateParams) Apply(random io.Reader, now time.Time) (*Key, map[string]any, error) {
	if p.ExpiresAt != nil {
		e := p.ExpiresAt.UTC().Truncate(time.Second)
		p.ExpiresAt = &e
	}
	if err := p.Validate(now); err != nil {
		return nil, nil, err
	}
	k, err := NewKey(random, p.Name, p.Environment, p.Scopes, p.ExpiresAt, p.Metadata, now)
	if err != nil {
		return nil, nil, err
	}
	return k, map[string]any{"name": k.Name, "environment": k.Environment, "scopes": k.Scopes}, nil
}

// The rules of the other changes to a key, for every store that keeps keys
// itself: each store reads the key in a transaction, asks one of these what
// to change and to record, writes that, and records it in the same
// transaction.

// DisableAction is the audit action of ApplyDisable.
func DisableAction(disable bool) string {
	if disable {
		return ActionDisable
	}
	return ActionEnable
}

// ApplyDisable disables k at now, or enables it, in memory. It reports
// whether k changed: disabling a disabled key (or enabling an enabled one)
// changes nothing and records nothing. ECONFLICT for a revoked key.
func ApplyDisable(k *Key, disable bool, now time.Time) (changed bool, err error) {
	if k.RevokedAt != nil {
		return false, Errorf(ECONFLICT, "key %s is revoked: revoking is final", k.ID)
	}
	if (k.DisabledAt != nil) == disable {
		return false, nil
	}
	k.DisabledAt = nil
	if disable {
		k.DisabledAt = &now
	}
	k.Status = k.StatusAt(now)
	return true, nil
}

// ApplyDelete checks that k may be deleted and returns the details of the
// delete event. ECONFLICT for a key that is not revoked.
func ApplyDelete(k *Key) (map[string]any, error) {
	if k.RevokedAt == nil {
		return nil, Errorf(ECONFLICT, "key %s is not revoked: revoke it before deleting it", k.ID)
	}
	return map[string]any{"name": k.Name}, nil
}

// ApplyRevoke revokes k at now, in memory. It reports whether k changed (a
// revoked key stays as it is, with no second event), and returns the
// details of the revoke event and the predecessor to unlink: when k is a
// successor whose secret nobody confirmed having, the rotation did not
// happen, and its old key may be rotated again ("" when there is none).
func ApplyRevoke(k *Key, now time.Time) (changed bool, unlinkFrom string, details map[string]any) {
	if k.RevokedAt != nil {
		return false, "", nil
	}
	k.RevokedAt = &now
	k.Status = k.StatusAt(now)
	if k.Delivery != nil && *k.Delivery == DeliveryPending && k.RotatedFrom != nil {
		return true, *k.RotatedFrom, UndeliveredDetails(*k.RotatedFrom)
	}
	return true, "", map[string]any{}
}

// UndeliveredDetails are the details of the revoke event of a successor
// whose secret was not delivered, rotated from the key rotatedFrom.
func UndeliveredDetails(rotatedFrom string) map[string]any {
	return map[string]any{"reason": "undelivered", "rotated_from": rotatedFrom}
}

// Check refuses rotate options no store takes. EINVALID.
func (o RotateOptions) Check() error {
	if o.Grace < 0 {
		return Errorf(EINVALID, "grace period must not be negative")
	}
	if o.AwaitDelivery < 0 {
		return Errorf(EINVALID, "delivery timeout must not be negative")
	}
	return nil
}

// CheckRotate refuses to rotate old while its own secret awaits delivery
// (ECONFLICT). A store calls it first, then ReplaceUndelivered when old was
// rotated already, then NewRotation.
func CheckRotate(old *Key) error {
	if old.Delivery != nil && *old.Delivery == DeliveryPending && old.RevokedAt == nil {
		return Errorf(ECONFLICT, "key %s awaits the delivery of its own secret: confirm it, or revoke it", old.ID)
	}
	return nil
}

// ReplaceUndelivered decides for old, rotated already to a successor whose
// delivery ("" when not tracked), delivery lease due and revocation a
// store read: a successor that still awaits delivery after its lease ran
// out gives way, and old is to be unlinked from it (old.RotatedTo is
// cleared), so that it can be rotated again. revokeSuccessor says that the
// successor is to be revoked too, with UndeliveredDetails. ECONFLICT
// otherwise: the rotation happened, or its lease runs still.
func ReplaceUndelivered(old *Key, delivery string, due *time.Time, revoked bool, now time.Time) (revokeSuccessor bool, err error) {
	succID := *old.RotatedTo
	if delivery != DeliveryPending {
		return false, Errorf(ECONFLICT, "key %s was already rotated to %s", old.ID, succID)
	}
	if !revoked && due != nil && due.After(now) {
		return false, Errorf(ECONFLICT, "key %s is being rotated: the secret of its successor %s awaits delivery until %s",
			old.ID, succID, due.UTC().Format(time.RFC3339))
	}
	old.RotatedTo = nil
	return !revoked, nil
}

// Rotation is what rotating a key makes and changes, for a store to write
// in the transaction that read the old key.
type Rotation struct {
	New *Key // the successor; its Delivery is pending when DeliveryDue is set
	// DeliveryDue is when the successor's delivery lease runs out; nil
	// when the rotation awaits no delivery.
	DeliveryDue  *time.Time
	GraceSeconds int64 // the grace to keep for ConfirmDelivery
	// The old key's revoked_at and expires_at, linked to New only where
	// it was not rotated or revoked meanwhile (else RotatedMeanwhile).
	OldRevokedAt, OldExpiresAt *time.Time
	Details                    map[string]any // of the rotate event
}

// NewRotation makes the successor of old at now, with a new secret from
// random. The successor has no expiry when old had none; otherwise it gets
// old's full lifetime (expires_at - created_at) again, counted from now.
// Awaiting delivery leaves old as it is until ConfirmDelivery; otherwise
// old ends at once, or at the end of the grace unless it expires sooner.
// ECONFLICT for a revoked key.
func NewRotation(random io.Reader, old *Key, opts RotateOptions, now time.Time) (*Rotation, error) {
	if old.RevokedAt != nil {
		return nil, Errorf(ECONFLICT, "key %s is revoked", old.ID)
	}
	var expires *time.Time
	if old.ExpiresAt != nil {
		e := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
		expires = &e
	}
	nk, err := NewKey(random, old.Name, old.Environment, old.Scopes, expires, old.Metadata, now)
	if err != nil {
		return nil, err
	}
	nk.RotatedFrom = &old.ID
	r := &Rotation{New: nk, GraceSeconds: int64(opts.Grace / time.Second)}
	r.Details = map[string]any{"new_key_id": nk.ID, "grace_seconds": r.GraceSeconds}
	if opts.AwaitDelivery > 0 {
		pending := DeliveryPending
		nk.Delivery = &pending
		due := now.Add(opts.AwaitDelivery).Truncate(time.Second)
		r.DeliveryDue = &due
		r.OldRevokedAt, r.OldExpiresAt = old.RevokedAt, old.ExpiresAt
		r.Details["await_delivery_seconds"] = int64(opts.AwaitDelivery / time.Second)
		return r, nil
	}
	r.OldRevokedAt, r.OldExpiresAt = endOf(old, opts.Grace, now)
	return r, nil
}

// RotatedMeanwhile is the error of a rotation whose link to the old key
// found it rotated or revoked by another transaction.
func RotatedMeanwhile(id string) error {
	return Errorf(ECONFLICT, "key %s was rotated or revoked meanwhile", id)
}

// endOf returns the revoked_at and expires_at that end old after grace:
// at once when grace is 0, else at the end of the grace unless it expires
// sooner.
func endOf(old *Key, grace time.Duration, now time.Time) (revokedAt, expiresAt *time.Time) {
	revokedAt, expiresAt = old.RevokedAt, old.ExpiresAt
	if grace == 0 {
		revokedAt = &now
	} else if end := now.Add(grace).Truncate(time.Second); expiresAt == nil || end.Before(*expiresAt) {
		expiresAt = &end
	}
	return revokedAt, expiresAt
}

// ApplyDelivery marks the secret of k delivered, in memory. It reports
// whether k changed: a delivered key stays as it is, with no second event.
// The store then ends k's predecessor (PredecessorEnd). ECONFLICT for a key that awaits no delivery, or that was
// revoked before it was delivered.
func ApplyDelivery(k *Key) (changed bool, err error) {
	switch {
	case k.Delivery == nil:
		return false, Errorf(ECONFLICT, "key %s awaits no delivery: it was not made by a rotation that awaits one", k.ID)
	case *k.Delivery == DeliveryDelivered:
		return false, nil
	case k.RevokedAt != nil:
		return false, Errorf(ECONFLICT, "key %s was revoked before its delivery was confirmed: its rotation did not count; rotate the old key again", k.ID)
	}
	delivered := DeliveryDelivered
	k.Delivery = &delivered
	return true, nil
}

// PredecessorEnd returns the revoked_at and expires_at that end old, the
// predecessor of a key whose delivery was confirmed at now: at once, or
// after the graceSeconds its rotation kept unless it expires sooner. A
// revoked predecessor stays as it is (end is false).
func PredecessorEnd(old *Key, graceSeconds int64, now time.Time) (revokedAt, expiresAt *time.Time, end bool) {
	if old.RevokedAt != nil {
		return nil, nil, false
	}
	revokedAt, expiresAt = endOf(old, time.Duration(graceSeconds)*time.Second, now)
	return revokedAt, expiresAt, true
}

// DeliveryDetails are the details of the deliver event of k, whose rotation
// kept graceSeconds of grace for its predecessor.
func DeliveryDetails(k *Key, graceSeconds int64) map[string]any {
	details := map[string]any{"grace_seconds": graceSeconds}
	if k.RotatedFrom != nil {
		details["rotated_from"] = *k.RotatedFrom
	}
	return details
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// timeValue is a time as the audit details hold it: RFC 3339, or nil.
func timeValue(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// UpdateScopes computes a key's new scopes from its current ones: set (when
// not nil) replaces them, then remove takes scopes away. Both may hold
// patterns (bots:*). Taking a scope from a key that holds admin leaves
// every other scope but admin, since admin grants them all. EINVALID for an
// unknown scope, for removing a scope the key does not hold, and for a
// result without scopes.
func UpdateScopes(current, set, remove []string) ([]string, error) {
	scopes := slices.Clone(current)
	if set != nil {
		var err error
		if scopes, err = ExpandScopes(set); err != nil {
			return nil, err
		}
		if len(scopes) == 0 {
			return nil, Errorf(EINVALID, "a key needs at least one scope (revoke or disable it instead)")
		}
	}
	if len(remove) == 0 {
		return scopes, nil
	}
	rm, err := ExpandScopes(remove)
	if err != nil {
		return nil, err
	}
	if slices.Contains(scopes, ScopeAdmin) && !slices.Contains(rm, ScopeAdmin) {
		scopes = slices.DeleteFunc(slices.Clone(AllScopes), func(s string) bool { return s == ScopeAdmin })
	}
	for _, r := range rm {
		if !slices.Contains(scopes, r) {
			return nil, Errorf(EINVALID, "cannot remove scope %s: the key does not hold it", r)
		}
	}
	scopes = slices.DeleteFunc(scopes, func(s string) bool { return slices.Contains(rm, s) })
	if len(scopes) == 0 {
		return nil, Errorf(EINVALID, "a key needs at least one scope (revoke or disable it instead)")
	}
	return scopes, nil
}

// EventFilter selects audit events. Zero fields select everything.
type EventFilter struct {
	KeyID  string    // the events of this key, and the rotation that made it
	Since  time.Time // events at or after this time
	Action string    // events of this action (one of Actions)
	Offset int
	Limit  int // 0: no limit
}

// Validate checks f. EINVALID for a malformed key ID, an unknown action or
// a negative offset or limit.
func (f EventFilter) Validate() error {
	if f.KeyID != "" {
		if err := CheckID(f.KeyID); err != nil {
			return err
		}
	}
	if f.Action != "" && !slices.Contains(Actions, f.Action) {
		return Errorf(EINVALID, "unknown audit action %q (want one of %s)", Truncate(f.Action, 20), strings.Join(Actions, ", "))
	}
	if f.Offset < 0 || f.Limit < 0 {
		return Errorf(EINVALID, "offset and limit must not be negative")
	}
	return nil
}

// CheckIDPrefix checks the start of a key ID given for completion: at most
// an ID's length, of the characters an ID holds.
func CheckIDPrefix(prefix string) error {
	if len(prefix) > IDLen {
		return Errorf(EINVALID, "key ID prefix too long")
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
			return Errorf(EINVALID, "key ID prefix %q holds a character no ID has", Truncate(prefix, 20))
		}
	}
	return nil
}
