package keystore

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Least privilege from real use: each verification that asks for scopes
// records, per key and scope, when it was last asked for (a valid answer
// only: a scope the key lacks was not used). Stores keep the uses with the
// key's last use, in the same write; they are shown as used_scopes and
// scopes_last_used.

// SetScopeUses sets k's ScopesLastUsed to uses and UsedScopes to their
// scopes in canonical order.
func (k *Key) SetScopeUses(uses map[string]time.Time) {
	k.ScopesLastUsed = uses
	k.UsedScopes = nil
	if len(uses) == 0 {
		return
	}
	k.UsedScopes = make([]string, 0, len(uses))
	for _, s := range AllScopes {
		if _, ok := uses[s]; ok {
			k.UsedScopes = append(k.UsedScopes, s)
		}
	}
	// A scope this build does not know (from a newer store) comes last.
	var other []string
	for s := range uses {
		if !ValidScope(s) {
			other = append(other, s)
		}
	}
	slices.Sort(other)
	k.UsedScopes = append(k.UsedScopes, other...)
}

// WithScopeUses returns a copy of uses with each scope at t or later: the
// uses of a verification at t that asked for scopes. It returns uses
// itself, and false, when nothing changes.
func WithScopeUses(uses map[string]time.Time, scopes []string, t time.Time) (map[string]time.Time, bool) {
	var out map[string]time.Time
	for _, s := range scopes {
		if old, ok := uses[s]; ok && !old.Before(t) {
			continue
		}
		if out == nil {
			out = make(map[string]time.Time, len(uses)+len(scopes))
			for k, v := range uses {
				out[k] = v
			}
		}
		out[s] = t
	}
	if out == nil {
		return uses, false
	}
	return out, true
}

// DecodeScopeUses reads the stored form of scope uses: a JSON object of
// scope names and unix seconds. "" and "{}" are no uses (nil).
func DecodeScopeUses(b []byte) (map[string]time.Time, error) {
	if len(b) == 0 || string(b) == "{}" {
		return nil, nil
	}
	var raw map[string]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	uses := make(map[string]time.Time, len(raw))
	for s, t := range raw {
		uses[s] = time.Unix(t, 0).UTC()
	}
	return uses, nil
}

// EncodeScopeUses writes uses in their stored form (DecodeScopeUses).
func EncodeScopeUses(uses map[string]time.Time) string {
	if len(uses) == 0 {
		return "{}"
	}
	names := make([]string, 0, len(uses))
	for s := range uses {
		names = append(names, s)
	}
	slices.Sort(names)
	b := []byte{'{'}
	for i, s := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, s)
		b = append(b, ':')
		b = strconv.AppendInt(b, uses[s].Unix(), 10)
	}
	return string(append(b, '}'))
}

// UsedSince returns the scopes k was asked for at or after since, in
// canonical order.
func UsedSince(k *Key, since time.Time) []string {
	var out []string
	for _, s := range k.UsedScopes {
		if t, ok := k.ScopesLastUsed[s]; ok && !t.Before(since) {
			out = append(out, s)
		}
	}
	return out
}

// NarrowScopes says what narrowing key k to the scopes it used since
// since would do: kept are the used scopes that its scopes grant, dropped
// the scopes it holds that are not kept. An admin key that was asked only
// for bots:read keeps bots:read and drops admin. ECONFLICT when k has no
// recorded use of a scope it holds in that time: narrowing would leave it
// nothing (revoke it instead, if it is not needed).
func NarrowScopes(k *Key, since time.Time) (kept, dropped []string, err error) {
	for _, s := range UsedSince(k, since) {
		if Grants(k.Scopes, s) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil, nil, Errorf(ECONFLICT, "key %s has no recorded use of its scopes since %s: nothing to narrow it to",
			k.ID, since.UTC().Format(time.RFC3339))
	}
	for _, s := range k.Scopes {
		if !slices.Contains(kept, s) {
			dropped = append(dropped, s)
		}
	}
	return kept, dropped, nil
}

// UnusedScopes returns the scopes k holds that were not asked for since
// since: all of them for a key with no recorded use. An admin key that
// was asked for other scopes only has admin unused.
func UnusedScopes(k *Key, since time.Time) []string {
	used := UsedSince(k, since)
	var out []string
	for _, s := range k.Scopes {
		if !slices.Contains(used, s) {
			out = append(out, s)
		}
	}
	return out
}
