package keystore

import (
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
// EINVALID for bad params.
func (p UpdateParams) Apply(k *Key, now time.Time) (*Key, map[string]any, error) {
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
