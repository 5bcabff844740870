package keystore_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

func at(d time.Duration) *time.Time {
	t := now.Add(d)
	return &t
}

func TestStatusAt(t *testing.T) {
	for _, tc := range []struct {
		name             string
		expires, revoked *time.Time
		want             string
	}{
		{"no expiry", nil, nil, keystore.StatusActive},
		{"expires later", at(time.Hour), nil, keystore.StatusActive},
		{"expires now", at(0), nil, keystore.StatusExpired},
		{"expired", at(-time.Nanosecond), nil, keystore.StatusExpired},
		{"revoked now", nil, at(0), keystore.StatusRevoked},
		{"revoked", nil, at(-time.Hour), keystore.StatusRevoked},
		// A revoked_at ahead of the clock is a revocation by a replica
		// whose clock is ahead: revoked all the same.
		{"revoked by a clock ahead", nil, at(time.Hour), keystore.StatusRevoked},
		{"revoked and expired", at(-2 * time.Hour), at(-time.Hour), keystore.StatusRevoked},
		{"revoked after it expired", at(-time.Hour), at(-2 * time.Hour), keystore.StatusRevoked},
		{"expired, revoked by a clock ahead", at(-time.Hour), at(time.Hour), keystore.StatusRevoked},
	} {
		k := &keystore.Key{ExpiresAt: tc.expires, RevokedAt: tc.revoked}
		if got := k.StatusAt(now); got != tc.want {
			t.Errorf("%s: StatusAt = %q, want %q", tc.name, got, tc.want)
		}
		if !keystore.ValidStatus(tc.want) {
			t.Errorf("ValidStatus(%q) = false", tc.want)
		}
	}
	for _, s := range []string{"", "Active", "deleted", "rotated"} {
		if keystore.ValidStatus(s) {
			t.Errorf("ValidStatus(%q) = true", s)
		}
	}
}

func TestJudge(t *testing.T) {
	key := func(scopes []string, expires, revoked *time.Time) *keystore.Key {
		return &keystore.Key{ID: "key_0123456789ABCDEF", Scopes: scopes, ExpiresAt: expires, RevokedAt: revoked}
	}
	for _, tc := range []struct {
		name     string
		key      *keystore.Key
		required []string
		code     string
		missing  []string
	}{
		{"unknown secret", nil, []string{"bots:read"}, keystore.CodeNotFound, []string{}},
		{"valid, nothing required", key([]string{"bots:read"}, nil, nil), nil, keystore.CodeValid, []string{}},
		{"valid with scope", key([]string{"bots:read", "bots:write"}, at(time.Hour), nil), []string{"bots:write"}, keystore.CodeValid, []string{}},
		{"admin grants all", key([]string{"admin"}, nil, nil), canonical, keystore.CodeValid, []string{}},
		{"write does not imply read", key([]string{"bots:write"}, nil, nil), []string{"bots:read", "bots:write"}, keystore.CodeInsufficientScope, []string{"bots:read"}},
		{"admin required", key(canonical[:10], nil, nil), []string{"admin"}, keystore.CodeInsufficientScope, []string{"admin"}},
		{"missing in asked order", key(nil, nil, nil), []string{"channels:write", "bots:read"}, keystore.CodeInsufficientScope, []string{"channels:write", "bots:read"}},
		{"revoked", key([]string{"admin"}, nil, at(-time.Second)), []string{"bots:read"}, keystore.CodeRevoked, []string{}},
		{"revoked now", key([]string{"admin"}, nil, at(0)), nil, keystore.CodeRevoked, []string{}},
		{"revoked by a clock ahead", key([]string{"admin"}, nil, at(time.Second)), nil, keystore.CodeRevoked, []string{}},
		{"expired", key([]string{"admin"}, at(-time.Second), nil), nil, keystore.CodeExpired, []string{}},
		{"expired, lacking scope", key(nil, at(0), nil), []string{"bots:read"}, keystore.CodeExpired, []string{}},
		{"revoked and expired", key(nil, at(-time.Second), at(-time.Second)), nil, keystore.CodeRevoked, []string{}},
	} {
		v := keystore.Judge(tc.key, now, tc.required)
		if v.Code != tc.code || v.Valid != (tc.code == keystore.CodeValid) {
			t.Errorf("%s: Judge = %q valid=%v, want %q", tc.name, v.Code, v.Valid, tc.code)
		}
		if v.Key != tc.key {
			t.Errorf("%s: Judge returned key %p, want %p", tc.name, v.Key, tc.key)
		}
		if v.MissingScopes == nil || !slices.Equal(v.MissingScopes, tc.missing) {
			t.Errorf("%s: missing scopes = %#v, want %q", tc.name, v.MissingScopes, tc.missing)
		}
	}
}

func TestVerificationJSON(t *testing.T) {
	for _, tc := range []struct {
		v    *keystore.Verification
		want string
	}{
		{keystore.Judge(nil, now, []string{"bots:read"}), `{"valid":false,"code":"not_found","key":null,"missing_scopes":[]}`},
		{keystore.InvalidFormat(), `{"valid":false,"code":"invalid_format","key":null,"missing_scopes":[]}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("JSON = %s, %v; want %s", b, err, tc.want)
		}
	}
	v := keystore.Judge(&keystore.Key{ID: "key_0123456789ABCDEF", Scopes: []string{"bots:write"}, CreatedAt: now}, now, []string{"bots:read"})
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Valid         bool            `json:"valid"`
		Code          string          `json:"code"`
		Key           json.RawMessage `json:"key"`
		MissingScopes []string        `json:"missing_scopes"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Valid || got.Code != "insufficient_scope" || !slices.Equal(got.MissingScopes, []string{"bots:read"}) ||
		!strings.Contains(string(got.Key), `"created_at":"2025-06-01T12:00:00Z"`) || strings.Contains(string(got.Key), `"key"`) {
		t.Errorf("verification JSON = %s", b)
	}
}

var keyFields = []string{
	"id", "name", "environment", "scopes", "hint", "status", "created_at", "expires_at",
	"revoked_at", "disabled_at", "last_used_at", "used_scopes", "scopes_last_used",
	"rotated_from", "rotated_to", "delivery", "metadata",
}

func fields(t *testing.T, v any) (map[string]json.RawMessage, []string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return m, names
}

func TestKeyJSONEmpty(t *testing.T) {
	m, names := fields(t, keystore.Key{ID: "key_0123456789ABCDEF", CreatedAt: now})
	if want := slices.Sorted(slices.Values(keyFields)); !slices.Equal(names, want) {
		t.Fatalf("key JSON fields = %q, want exactly %q", names, want)
	}
	for field, want := range map[string]string{
		"scopes": `[]`, "metadata": `{}`, "expires_at": `null`, "revoked_at": `null`,
		"last_used_at": `null`, "rotated_from": `null`, "rotated_to": `null`, "delivery": `null`,
		"used_scopes": `[]`, "scopes_last_used": `{}`,
		"created_at": `"2025-06-01T12:00:00Z"`, "id": `"key_0123456789ABCDEF"`,
	} {
		if got := string(m[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
	// Empty but not nil marshals the same.
	m, _ = fields(t, &keystore.Key{Scopes: []string{}, Metadata: map[string]string{}})
	if string(m["scopes"]) != `[]` || string(m["metadata"]) != `{}` {
		t.Errorf("scopes = %s, metadata = %s", m["scopes"], m["metadata"])
	}
}

func TestKeyJSONFull(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	created := time.Date(2025, 6, 1, 17, 30, 5, 999_999_999, ist) // 12:00:05.999 UTC
	expires := time.Date(2025, 9, 1, 0, 0, 0, 1, time.UTC)
	revoked := time.Date(2025, 7, 1, 8, 0, 0, 0, time.FixedZone("PDT", -7*3600))
	used := time.Date(2025, 6, 30, 23, 59, 59, 500_000_000, time.UTC)
	from, to, pending := "key_AAAAAAAAAAAAAAAA", "key_BBBBBBBBBBBBBBBB", keystore.DeliveryPending
	k := keystore.Key{
		ID: "key_0123456789ABCDEF", Name: "ci", Environment: "test", Scopes: []string{"bots:read", "admin"},
		Hint: "sk_test_AAAA…M7", Status: keystore.StatusRevoked, CreatedAt: created, ExpiresAt: &expires,
		RevokedAt: &revoked, LastUsedAt: &used, RotatedFrom: &from, RotatedTo: &to, Delivery: &pending,
		Metadata: map[string]string{"team": "infra"}, Secret: "sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0z02M7",
	}
	k.SetScopeUses(map[string]time.Time{"bots:read": used, "admin": created})
	m, names := fields(t, k)
	want := slices.Sorted(slices.Values(append(slices.Clone(keyFields), "key")))
	if !slices.Equal(names, want) {
		t.Fatalf("key JSON fields = %q, want exactly %q", names, want)
	}
	for field, want := range map[string]string{
		"id":               `"key_0123456789ABCDEF"`,
		"name":             `"ci"`,
		"environment":      `"test"`,
		"scopes":           `["bots:read","admin"]`,
		"hint":             `"sk_test_AAAA…M7"`,
		"status":           `"revoked"`,
		"created_at":       `"2025-06-01T12:00:05Z"`,
		"expires_at":       `"2025-09-01T00:00:00Z"`,
		"revoked_at":       `"2025-07-01T15:00:00Z"`,
		"last_used_at":     `"2025-06-30T23:59:59Z"`,
		"rotated_from":     `"key_AAAAAAAAAAAAAAAA"`,
		"rotated_to":       `"key_BBBBBBBBBBBBBBBB"`,
		"delivery":         `"pending"`,
		"metadata":         `{"team":"infra"}`,
		"used_scopes":      `["bots:read","admin"]`,
		"scopes_last_used": `{"admin":"2025-06-01T12:00:05Z","bots:read":"2025-06-30T23:59:59Z"}`,
		"key":              `"sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0z02M7"`,
	} {
		if got := string(m[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
	// Pointer and value marshal alike, and marshalling changes nothing.
	a, _ := json.Marshal(k)
	b, _ := json.Marshal(&k)
	if string(a) != string(b) {
		t.Errorf("Key and *Key marshal differently:\n%s\n%s", a, b)
	}
	if k.CreatedAt != created || k.CreatedAt.Location() != ist || *k.ExpiresAt != expires || k.ExpiresAt != &expires {
		t.Errorf("MarshalJSON changed the key: %v %v", k.CreatedAt, k.ExpiresAt)
	}
	// The JSON reads back to the same instants, to the second.
	var back keystore.Key
	if err := json.Unmarshal(a, &back); err != nil {
		t.Fatal(err)
	}
	if !back.CreatedAt.Equal(created.Truncate(time.Second)) || !back.RevokedAt.Equal(revoked) ||
		*back.RotatedTo != to || back.Secret != k.Secret || back.Metadata["team"] != "infra" {
		t.Errorf("round trip = %+v", back)
	}
	// Without the secret there is no "key" field.
	k.Secret = ""
	if _, names := fields(t, k); slices.Contains(names, "key") {
		t.Errorf("key JSON without a secret has a key field: %q", names)
	}
}
