package sqlstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

var testDialect = Dialect{
	Time:        func(t time.Time) any { return t.Unix() },
	JSONText:    func(column, field string) string { return column + "." + field },
	AnyScope:    func(scopes []string) (string, []any) { return "scopes IN (?, ?)", []any{scopes[0], scopes[1]} },
	HasMetadata: func(m map[string]string) (string, []any, error) { return "meta = ?", []any{m["team"]}, nil },
	IDPrefix:    func(prefix string) (string, []any) { return "id LIKE ?", []any{prefix + "%"} },
}

func TestKeysNumbersThePlaceholders(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := keystore.ListFilter{Status: keystore.StatusActive, Scope: "bots:*", Metadata: map[string]string{"team": "a"},
		ExpiringBefore: now.Add(1500 * time.Millisecond), IDPrefix: "key_a"}
	for _, numbered := range []bool{false, true} {
		d := testDialect
		d.Numbered = numbered
		cond, args, err := Keys(d, f, now)
		if err != nil {
			t.Fatal(err)
		}
		want := " WHERE (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND disabled_at IS NULL) AND (scopes IN (?, ?)) AND (meta = ?)" +
			" AND (revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at > ? AND expires_at < ?) AND (id LIKE ?)"
		if numbered {
			want = " WHERE (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND disabled_at IS NULL) AND (scopes IN ($2, $3)) AND (meta = $4)" +
				" AND (revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at > $5 AND expires_at < $6) AND (id LIKE $7)"
		}
		if cond != want {
			t.Errorf("numbered %t:\n got %s\nwant %s", numbered, cond, want)
		}
		// The cut is rounded up to a whole second.
		wantArgs := []any{now.Unix(), "bots:read", "bots:write", "a", now.Unix(), now.Unix() + 2, "key_a%"}
		if !reflect.DeepEqual(args, wantArgs) {
			t.Errorf("numbered %t: args %v, want %v", numbered, args, wantArgs)
		}
	}
}

func TestNoFilterNoClause(t *testing.T) {
	if cond, args, err := Keys(testDialect, keystore.ListFilter{}, time.Now()); cond != "" || args != nil || err != nil {
		t.Errorf("Keys(no filter) = %q %v %v", cond, args, err)
	}
	if cond, args, err := Events(testDialect, keystore.EventFilter{}); cond != "" || args != nil || err != nil {
		t.Errorf("Events(no filter) = %q %v %v", cond, args, err)
	}
}

func TestEvents(t *testing.T) {
	d := testDialect
	d.Numbered = true
	since := time.Unix(1_700_000_000, 1)
	cond, args, err := Events(d, keystore.EventFilter{KeyID: "key_0123456789ABCDEF", Since: since, Action: keystore.ActionRotate})
	if err != nil {
		t.Fatal(err)
	}
	want := " WHERE (key_id = $1 OR (action = 'rotate' AND details.new_key_id = $2)) AND (at >= $3) AND (action = $4)"
	wantArgs := []any{"key_0123456789ABCDEF", "key_0123456789ABCDEF", since.Unix() + 1, keystore.ActionRotate}
	if cond != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("Events = %s %v\nwant %s %v", cond, args, want, wantArgs)
	}
}

func TestBadFilters(t *testing.T) {
	for _, f := range []keystore.ListFilter{{Status: "gone"}, {Environment: "prod"}, {Scope: "nope:*"}, {IDPrefix: "key-"}} {
		if _, _, err := Keys(testDialect, f, time.Now()); keystore.ErrorCode(err) != keystore.EINVALID {
			t.Errorf("Keys(%+v) = %v, want invalid", f, err)
		}
	}
	if _, _, err := Events(testDialect, keystore.EventFilter{Action: "explode"}); keystore.ErrorCode(err) != keystore.EINVALID {
		t.Errorf("Events(bad action) = %v, want invalid", err)
	}
}
