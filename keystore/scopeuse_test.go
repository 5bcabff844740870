package keystore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestScopeUsesRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	uses := map[string]time.Time{"bots:read": at, "admin": at.Add(time.Hour)}
	enc := keystore.EncodeScopeUses(uses)
	if enc != `{"admin":1796122800,"bots:read":1796119200}` {
		t.Fatalf("EncodeScopeUses = %s", enc)
	}
	back, err := keystore.DecodeScopeUses([]byte(enc))
	if err != nil || len(back) != 2 || !back["admin"].Equal(at.Add(time.Hour)) {
		t.Fatalf("DecodeScopeUses = %v, %v", back, err)
	}
	for _, empty := range []string{"", "{}"} {
		if m, err := keystore.DecodeScopeUses([]byte(empty)); m != nil || err != nil {
			t.Errorf("DecodeScopeUses(%q) = %v, %v", empty, m, err)
		}
	}
	if _, err := keystore.DecodeScopeUses([]byte(`{"a":"x"}`)); err == nil {
		t.Error("DecodeScopeUses took a string for a time")
	}
	var k keystore.Key
	k.SetScopeUses(map[string]time.Time{"admin": at, "zz:new": at, "channels:write": at, "bots:read": at})
	if want := []string{"bots:read", "channels:write", "admin", "zz:new"}; !slices.Equal(k.UsedScopes, want) {
		t.Errorf("UsedScopes = %q, want %q (canonical order, unknown last)", k.UsedScopes, want)
	}
}

func TestWithScopeUses(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	uses := map[string]time.Time{"bots:read": t0}
	same, changed := keystore.WithScopeUses(uses, []string{"bots:read"}, t0)
	if changed || len(same) != 1 {
		t.Fatalf("the same second changed the uses: %v", same)
	}
	out, changed := keystore.WithScopeUses(uses, []string{"bots:read", "admin"}, t0.Add(time.Second))
	if !changed || !out["bots:read"].Equal(t0.Add(time.Second)) || !out["admin"].Equal(t0.Add(time.Second)) {
		t.Fatalf("WithScopeUses = %v", out)
	}
	if !uses["bots:read"].Equal(t0) || len(uses) != 1 {
		t.Fatal("WithScopeUses changed its argument (a record shared with a cache)")
	}
	// An older use changes nothing.
	if _, changed := keystore.WithScopeUses(out, []string{"admin"}, t0); changed {
		t.Error("an older use moved a time back")
	}
}

func TestNarrowScopes(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	since := now.Add(-30 * 24 * time.Hour)
	key := func(scopes []string, uses map[string]time.Time) *keystore.Key {
		k := &keystore.Key{ID: "key_0123456789abcdef", Scopes: scopes}
		k.SetScopeUses(uses)
		return k
	}
	tests := []struct {
		name          string
		k             *keystore.Key
		kept, dropped []string
		unused        []string
		conflict      bool
	}{
		{"some used", key([]string{"bots:read", "bots:write", "channels:read"}, map[string]time.Time{"bots:read": now}),
			[]string{"bots:read"}, []string{"bots:write", "channels:read"}, []string{"bots:write", "channels:read"}, false},
		{"all used", key([]string{"bots:read", "channels:read"}, map[string]time.Time{"bots:read": now, "channels:read": since}),
			[]string{"bots:read", "channels:read"}, nil, nil, false},
		{"used before the period", key([]string{"bots:read", "channels:read"}, map[string]time.Time{"bots:read": now, "channels:read": since.Add(-time.Second)}),
			[]string{"bots:read"}, []string{"channels:read"}, []string{"channels:read"}, false},
		{"admin used for one scope", key([]string{"admin"}, map[string]time.Time{"conversations:read": now}),
			[]string{"conversations:read"}, []string{"admin"}, []string{"admin"}, false},
		{"admin used as admin", key([]string{"admin"}, map[string]time.Time{"admin": now, "bots:read": now}),
			[]string{"bots:read", "admin"}, nil, nil, false},
		{"a used scope no longer granted", key([]string{"channels:read"}, map[string]time.Time{"bots:read": now}),
			nil, nil, []string{"channels:read"}, true},
		{"never used", key([]string{"bots:read"}, nil), nil, nil, []string{"bots:read"}, true},
		{"not in the period", key([]string{"bots:read"}, map[string]time.Time{"bots:read": since.Add(-time.Hour)}), nil, nil, []string{"bots:read"}, true},
	}
	for _, tt := range tests {
		kept, dropped, err := keystore.NarrowScopes(tt.k, since)
		if tt.conflict {
			if keystore.ErrorCode(err) != keystore.ECONFLICT {
				t.Errorf("%s: err %v, want a conflict", tt.name, err)
			}
		} else if err != nil || !slices.Equal(kept, tt.kept) || !slices.Equal(dropped, tt.dropped) {
			t.Errorf("%s: kept %q dropped %q (%v), want %q and %q", tt.name, kept, dropped, err, tt.kept, tt.dropped)
		}
		if got := keystore.UnusedScopes(tt.k, since); !slices.Equal(got, tt.unused) {
			t.Errorf("%s: unused %q, want %q", tt.name, got, tt.unused)
		}
	}
}
