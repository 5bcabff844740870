package keystore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestUpdateScopes(t *testing.T) {
	cases := []struct {
		name                 string
		current, set, remove []string
		want                 []string
		bad                  bool
	}{
		{"unchanged", []string{"bots:read"}, nil, nil, []string{"bots:read"}, false},
		{"replace with patterns", []string{"bots:read"}, []string{"channels:*", "bots:read"}, nil, []string{"bots:read", "channels:read", "channels:write"}, false},
		{"narrow", []string{"bots:read", "bots:write"}, nil, []string{"bots:write"}, []string{"bots:read"}, false},
		{"narrow by pattern", []string{"bots:read", "bots:write", "channels:read"}, nil, []string{"bots:*"}, []string{"channels:read"}, false},
		{"narrow admin", []string{"admin"}, nil, []string{"*:write"}, []string{"bots:read", "integrations:read", "channels:read", "conversations:read", "agent-loops:read"}, false},
		{"drop admin", []string{"admin", "bots:read"}, nil, []string{"admin"}, []string{"bots:read"}, false},
		{"replace then narrow", []string{"admin"}, []string{"bots:*"}, []string{"bots:write"}, []string{"bots:read"}, false},
		{"remove a scope not held", []string{"bots:read"}, nil, []string{"bots:write"}, nil, true},
		{"remove every scope", []string{"bots:read"}, nil, []string{"bots:read"}, nil, true},
		{"set nothing", []string{"bots:read"}, []string{}, nil, nil, true},
		{"unknown scope", []string{"bots:read"}, []string{"bots:delete"}, nil, nil, true},
		{"unknown removal", []string{"bots:read"}, nil, []string{"bot:read"}, nil, true},
	}
	for _, c := range cases {
		got, err := keystore.UpdateScopes(c.current, c.set, c.remove)
		if c.bad {
			if keystore.ErrorCode(err) != keystore.EINVALID {
				t.Errorf("%s: %q, %v; want an EINVALID error", c.name, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestNewRotationEndsTheOldKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	created := now.Add(-48 * time.Hour)
	expires := now.Add(time.Hour)
	old := &keystore.Key{ID: "key_0123456789ABCDEF", Name: "ci", Environment: keystore.EnvLive,
		Scopes: []string{"bots:read"}, CreatedAt: created, ExpiresAt: &expires}
	cases := []struct {
		name                 string
		opts                 keystore.RotateOptions
		revoked, oldExpires  *time.Time
		due                  bool
		wantDetailsAwaitSecs any
	}{
		{"at once", keystore.RotateOptions{}, &now, &expires, false, nil},
		{"after the grace", keystore.RotateOptions{Grace: 90 * time.Second}, nil, ptr(now.Add(90 * time.Second)), false, nil},
		{"grace beyond the expiry", keystore.RotateOptions{Grace: 2 * time.Hour}, nil, &expires, false, nil},
		{"awaiting delivery", keystore.RotateOptions{Grace: time.Minute, AwaitDelivery: time.Minute}, nil, &expires, true, int64(60)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := keystore.NewRotation(seeded(1), old, tc.opts, now)
			if err != nil {
				t.Fatal(err)
			}
			if !sameTimePtr(r.OldRevokedAt, tc.revoked) || !sameTimePtr(r.OldExpiresAt, tc.oldExpires) {
				t.Errorf("old key ends revoked %v expires %v; want %v %v", r.OldRevokedAt, r.OldExpiresAt, tc.revoked, tc.oldExpires)
			}
			if wantExpiry := now.Add(expires.Sub(created)); r.New.ExpiresAt == nil || !r.New.ExpiresAt.Equal(wantExpiry) {
				t.Errorf("successor expires %v, want the old key's lifetime again: %v", r.New.ExpiresAt, wantExpiry)
			}
			if *r.New.RotatedFrom != old.ID || r.Details["new_key_id"] != r.New.ID || r.Details["grace_seconds"] != int64(tc.opts.Grace/time.Second) {
				t.Errorf("successor from %v, details %v", *r.New.RotatedFrom, r.Details)
			}
			if (r.DeliveryDue != nil) != tc.due || (r.New.Delivery != nil) != tc.due || r.Details["await_delivery_seconds"] != tc.wantDetailsAwaitSecs {
				t.Errorf("delivery due %v, successor delivery %v, details %v", r.DeliveryDue, r.New.Delivery, r.Details)
			}
		})
	}
	revoked := *old
	revoked.RevokedAt = &now
	if _, err := keystore.NewRotation(seeded(1), &revoked, keystore.RotateOptions{}, now); keystore.ErrorCode(err) != keystore.ECONFLICT {
		t.Errorf("rotating a revoked key: %v, want a conflict", err)
	}
}

func TestReplaceUndelivered(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	later, earlier := now.Add(time.Minute), now.Add(-time.Minute)
	cases := []struct {
		name     string
		delivery string
		due      *time.Time
		revoked  bool
		revoke   bool
		conflict bool
	}{
		{"delivered", keystore.DeliveryDelivered, nil, false, false, true},
		{"not tracked", "", nil, false, false, true},
		{"lease runs", keystore.DeliveryPending, &later, false, false, true},
		{"lease ran out", keystore.DeliveryPending, &earlier, false, true, false},
		{"lease ends now", keystore.DeliveryPending, &now, false, true, false},
		{"successor revoked", keystore.DeliveryPending, &later, true, false, false},
	}
	for _, tc := range cases {
		succ := "key_SUCCESSOR000000"
		old := &keystore.Key{ID: "key_0123456789ABCDEF", RotatedTo: &succ}
		revoke, err := keystore.ReplaceUndelivered(old, tc.delivery, tc.due, tc.revoked, now)
		if (keystore.ErrorCode(err) == keystore.ECONFLICT) != tc.conflict || revoke != tc.revoke || (old.RotatedTo == nil) == tc.conflict {
			t.Errorf("%s: revoke %t, err %v, rotated_to %v", tc.name, revoke, err, old.RotatedTo)
		}
	}
}

func TestApplyRevokeUnlinksAnUndeliveredSuccessor(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	from, pending := "key_0123456789ABCDEF", keystore.DeliveryPending
	k := &keystore.Key{ID: "key_SUCCESSOR000000", RotatedFrom: &from, Delivery: &pending}
	changed, unlink, details := keystore.ApplyRevoke(k, now)
	if !changed || unlink != from || details["reason"] != "undelivered" || k.Status != keystore.StatusRevoked {
		t.Errorf("revoke: %t %q %v, status %s", changed, unlink, details, k.Status)
	}
	if changed, _, _ := keystore.ApplyRevoke(k, now.Add(time.Hour)); changed || !k.RevokedAt.Equal(now) {
		t.Errorf("second revoke changed the key: %t, revoked at %v", changed, k.RevokedAt)
	}
}

func ptr(t time.Time) *time.Time { return &t }

func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
