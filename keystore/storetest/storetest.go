// Package storetest is the contract suite that every keystore.Store must
// pass, so that commands behave alike whichever store they talk to. It uses
// only the keystore.Store interface.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Harness is a store under test and what the suite must know about it.
type Harness struct {
	Store keystore.Store

	// Actor returns the actor that the audit log records for a change made
	// with a context naming actor (keystore.WithActor). Nil means actor
	// itself; a store behind the HTTP API records the calling key's ID.
	Actor func(actor string) string
}

// Run runs the suite. Each subtest gets a fresh, empty store from newStore,
// which must read the time from clock; Run closes the store when the subtest
// ends.
func Run(t *testing.T, newStore func(t *testing.T, clock *Clock) keystore.Store) {
	RunHarness(t, func(t *testing.T, clock *Clock) Harness {
		return Harness{Store: newStore(t, clock)}
	})
}

// RunHarness runs the suite on the harness that newHarness makes for each
// subtest. Its store must read the time from clock, and may hold keys and
// audit events already (such as the key a remote store authenticates
// with): the suite ignores them in every list, count and audit log. Such
// keys must be created before Start, so that they list after the suite's.
// RunHarness closes the store when the subtest ends.
func RunHarness(t *testing.T, newHarness func(t *testing.T, clock *Clock) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *subject, clock *Clock)
	}{
		{"create", testCreate},
		{"create_defaults", testCreateDefaults},
		{"create_validation", testCreateValidation},
		{"get", testGet},
		{"list", testList},
		{"list_paging", testListPaging},
		{"list_many", testListMany},
		{"list_bad_filter", testListBadFilter},
		{"rotate", testRotate},
		{"rotate_grace", testRotateGrace},
		{"rotate_expiry", testRotateExpiry},
		{"rotate_concurrent", testRotateConcurrent},
		{"rotate_delivery", testRotateDelivery},
		{"rotate_delivery_rerun", testRotateDeliveryRerun},
		{"revoke_undelivered", testRevokeUndelivered},
		{"list_metadata", testListMetadata},
		{"revoke", testRevoke},
		{"verify", testVerify},
		{"verify_scopes", testVerifyScopes},
		{"verify_invalid_format", testVerifyInvalidFormat},
		{"verify_last_used", testVerifyLastUsed},
		{"expiry", testExpiry},
		{"lookup", testLookup},
		{"scope_uses", testScopeUses},
		{"audit", testAudit},
		{"import", testImport},
		{"import_duplicates", testImportDuplicates},
		{"import_audit", testImportAudit},
		{"import_refused", testImportRefused},
		{"import_large", testImportLarge},
		{"import_session", testImportSession},
		{"export_restore", testExportRestore},
		{"update", testUpdate},
		{"disable_enable", testDisableEnable},
		{"delete", testDelete},
		{"events", testEvents},
		{"list_lifecycle_filters", testListLifecycleFilters},
		{"idempotency", testIdempotency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &Clock{}
			h := newHarness(t, clock)
			t.Cleanup(func() {
				if err := h.Store.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			sub := newSubject(t, h)
			sub.another = func() keystore.Store {
				h2 := newHarness(t, clock)
				t.Cleanup(func() { h2.Store.Close() })
				return h2.Store
			}
			tt.fn(t, sub, clock)
		})
	}
}

// subject is the store under test as the suite sees it: without the keys
// and events it held when the subtest started.
type subject struct {
	keystore.Store
	actor      func(string) string
	baseKeys   map[string]bool
	baseEvents map[string]bool

	// another makes a second, empty store of the same kind, on the same
	// clock, closed when the subtest ends.
	another func() keystore.Store
}

func newSubject(t *testing.T, h Harness) *subject {
	s := &subject{Store: h.Store, actor: h.Actor, baseKeys: map[string]bool{}, baseEvents: map[string]bool{}}
	for k, err := range h.Store.List(ctx(t), keystore.ListOptions{}) {
		if err != nil {
			t.Fatalf("List (baseline): %v", err)
		}
		if !k.CreatedAt.Before(Start) {
			t.Fatalf("the store starts with key %s created at %v, not before storetest.Start", k.ID, k.CreatedAt)
		}
		s.baseKeys[k.ID] = true
	}
	events, err := h.Store.Audit(ctx(t), "")
	if err != nil {
		t.Fatalf("Audit (baseline): %v", err)
	}
	for _, e := range events {
		s.baseEvents[e.ID] = true
	}
	return s
}

// recorded is the actor the audit log shows for a change made as actor.
func (s *subject) recorded(actor string) string {
	if s.actor == nil {
		return actor
	}
	return s.actor(actor)
}

// List leaves out the baseline keys. They list after every key of the suite,
// so offsets and limits keep their meaning.
func (s *subject) List(ctx context.Context, opts keystore.ListOptions) iter.Seq2[*keystore.Key, error] {
	return func(yield func(*keystore.Key, error) bool) {
		for k, err := range s.Store.List(ctx, opts) {
			if err == nil && s.baseKeys[k.ID] {
				continue
			}
			if !yield(k, err) {
				return
			}
		}
	}
}

// Count leaves out the baseline keys that match f.
func (s *subject) Count(ctx context.Context, f keystore.ListFilter) (int, error) {
	n, err := s.Store.Count(ctx, f)
	if err != nil || len(s.baseKeys) == 0 {
		return n, err
	}
	for k, err := range s.Store.List(ctx, keystore.ListOptions{ListFilter: f}) {
		if err != nil {
			return 0, err
		}
		if s.baseKeys[k.ID] {
			n--
		}
	}
	return n, nil
}

// Audit leaves out the baseline events.
func (s *subject) Audit(ctx context.Context, keyID string) ([]keystore.Event, error) {
	events, err := s.Store.Audit(ctx, keyID)
	if err != nil {
		return events, err
	}
	out := []keystore.Event{}
	for _, e := range events {
		if !s.baseEvents[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

func testCreate(t *testing.T, s *subject, clock *Clock) {
	expires := clock.Now().Add(90 * 24 * time.Hour)
	p := keystore.CreateParams{
		Name:        "ci deploy",
		Scopes:      []string{"bots:read", "channels:write"},
		Environment: keystore.EnvTest,
		ExpiresAt:   &expires,
		Metadata:    map[string]string{"team": "platform", "ticket": "OPS-1"},
	}
	k := mustCreate(t, s, p)

	if !keystore.ValidID(k.ID) {
		t.Errorf("ID %q is not a key ID", k.ID)
	}
	if k.Name != p.Name || k.Environment != keystore.EnvTest {
		t.Errorf("name, environment = %q, %q; want %q, test", k.Name, k.Environment, p.Name)
	}
	if !slices.Equal(k.Scopes, p.Scopes) {
		t.Errorf("scopes = %q, want %q", k.Scopes, p.Scopes)
	}
	if !maps.Equal(k.Metadata, p.Metadata) {
		t.Errorf("metadata = %v, want %v", k.Metadata, p.Metadata)
	}
	if k.Status != keystore.StatusActive {
		t.Errorf("status = %q, want active", k.Status)
	}
	if !k.CreatedAt.Equal(clock.Now()) {
		t.Errorf("created_at = %v, want %v", k.CreatedAt, clock.Now())
	}
	wantTime(t, "expires_at", k.ExpiresAt, &expires)
	wantTime(t, "revoked_at", k.RevokedAt, nil)
	wantTime(t, "last_used_at", k.LastUsedAt, nil)
	if k.RotatedFrom != nil || k.RotatedTo != nil {
		t.Errorf("rotated_from, rotated_to = %v, %v; want null", k.RotatedFrom, k.RotatedTo)
	}

	if len(k.Secret) != keystore.TokenLen || !strings.HasPrefix(k.Secret, "sk_test_") {
		t.Errorf("secret %q: want sk_test_ and %d characters", k.Secret, keystore.TokenLen)
	}
	if env, err := keystore.ParseToken(k.Secret); err != nil || env != keystore.EnvTest {
		t.Errorf("ParseToken(secret) = %q, %v; want test", env, err)
	}
	if k.Hint != keystore.Hint(k.Secret) || !strings.HasPrefix(k.Hint, k.Secret[:12]) {
		t.Errorf("hint = %q, want %q", k.Hint, keystore.Hint(k.Secret))
	}

	// The key must not share memory with the caller's params.
	p.Scopes[0] = "admin"
	p.Metadata["team"] = "changed"
	got := mustGet(t, s, k.ID)
	if got.Scopes[0] != "bots:read" || got.Metadata["team"] != "platform" {
		t.Errorf("changing the params after Create changed the key: %q %v", got.Scopes, got.Metadata)
	}

	other := mustCreate(t, s, keystore.CreateParams{Name: p.Name, Scopes: []string{"bots:read"}})
	if other.ID == k.ID || other.Secret == k.Secret {
		t.Errorf("two keys share an ID or secret: %s %s", k.ID, other.ID)
	}
}

func testCreateDefaults(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}})
	if k.Environment != keystore.EnvLive || !strings.HasPrefix(k.Secret, "sk_live_") {
		t.Errorf("environment %q, secret %.8s…: want live by default", k.Environment, k.Secret)
	}
	if k.ExpiresAt != nil {
		t.Errorf("expires_at = %v, want none by default", k.ExpiresAt)
	}
	if len(k.Metadata) != 0 {
		t.Errorf("metadata = %v, want empty", k.Metadata)
	}
	if k.Status != keystore.StatusActive {
		t.Errorf("status = %q, want active", k.Status)
	}
	// Names are counted in characters, not bytes.
	long := mustCreate(t, s, keystore.CreateParams{Name: strings.Repeat("é", 100), Scopes: []string{"admin"}})
	if got := mustGet(t, s, long.ID).Name; got != long.Name {
		t.Errorf("name came back as %q", got)
	}
}

func testCreateValidation(t *testing.T, s *subject, clock *Clock) {
	past := clock.Now().Add(-time.Second)
	now := clock.Now()
	// A well-formed secret of no key: it must be refused wherever text goes.
	secret, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    keystore.CreateParams
	}{
		{"empty name", keystore.CreateParams{Name: "", Scopes: []string{"bots:read"}}},
		{"101-character name", keystore.CreateParams{Name: strings.Repeat("n", 101), Scopes: []string{"bots:read"}}},
		{"no scope", keystore.CreateParams{Name: "x"}},
		{"unknown scope", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read", "bots:admin"}}},
		{"pattern scope", keystore.CreateParams{Name: "x", Scopes: []string{"bots:*"}}},
		{"past expiry", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, ExpiresAt: &past}},
		{"expiry now", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, ExpiresAt: &now}},
		{"bad environment", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Environment: "prod"}},
		{"empty metadata key", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Metadata: map[string]string{"": "v"}}},
		{"secret as name", keystore.CreateParams{Name: secret, Scopes: []string{"bots:read"}}},
		{"secret in metadata", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Metadata: map[string]string{"k": "was " + secret}}},
		{"invalid UTF-8 name", keystore.CreateParams{Name: "bad\xffname", Scopes: []string{"bots:read"}}},
		{"U+FFFD name", keystore.CreateParams{Name: "bad\ufffdname", Scopes: []string{"bots:read"}}},
		{"invisible name", keystore.CreateParams{Name: "\ufeff\u200b", Scopes: []string{"bots:read"}}},
		{"bidi override name", keystore.CreateParams{Name: "ab\u202ecd", Scopes: []string{"bots:read"}}},
		{"escape in metadata", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Metadata: map[string]string{"k": "\x1b]0;pwned\a"}}},
		{"NUL in metadata", keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}, Metadata: map[string]string{"k": "a\x00b"}}},
	}
	for _, tt := range tests {
		k, err := s.Create(ctx(t), tt.p)
		wantCode(t, "Create with "+tt.name, err, keystore.EINVALID)
		if err != nil && strings.Contains(err.Error(), secret[:20]) {
			t.Errorf("Create with %s: error repeats the secret: %v", tt.name, err)
		}
		if k != nil {
			t.Errorf("Create with %s returned a key", tt.name)
		}
	}
	if n := mustCount(t, s, keystore.ListFilter{}); n != 0 {
		t.Errorf("refused creates left %d keys", n)
	}
	if events := mustAudit(t, s, ""); len(events) != 0 {
		t.Errorf("refused creates left %d audit events", len(events))
	}
}

func testGet(t *testing.T, s *subject, clock *Clock) {
	created := mustCreate(t, s, keystore.CreateParams{
		Name: "get me", Scopes: []string{"bots:read", "admin"}, Metadata: map[string]string{"a": "b"},
	})
	got := mustGet(t, s, created.ID)
	if got.Secret != "" {
		t.Errorf("Get returned the secret")
	}
	wantSameKey(t, "Get", got, created)

	unknown := "key_" + strings.Repeat("0", 16)
	_, err := s.Get(ctx(t), unknown)
	wantCode(t, "Get of an unknown key", err, keystore.ENOTFOUND)
	for _, id := range []string{"", "nope", "key_short", created.ID + "x", "key_" + strings.Repeat("!", 16), created.Secret} {
		_, err := s.Get(ctx(t), id)
		wantCode(t, "Get("+id+")", err, keystore.EINVALID)
	}
}

// listFixture makes keys of every kind, newest first:
//
//	k6  live  [channels:read]           successor of k4 (active)
//	k5  live  [bots:read]               active, expires at start+4h
//	k4  live  [channels:read]           rotated to k6, expires at start+3h (expired)
//	k3  live  [admin]                   active
//	k2  test  [bots:write]              active
//	k1  live  [bots:read bots:write]    revoked
//
// k3 and k4 are created in the same second, as are k5 and k6. The clock
// ends at start+3h.
func listFixture(t *testing.T, s *subject, clock *Clock) []*keystore.Key {
	start := clock.Now()
	k1 := mustCreate(t, s, keystore.CreateParams{Name: "k1", Scopes: []string{"bots:read", "bots:write"}})
	clock.Advance(time.Hour)
	k2 := mustCreate(t, s, keystore.CreateParams{Name: "k2", Scopes: []string{"bots:write"}, Environment: keystore.EnvTest})
	clock.Advance(time.Hour)
	k3 := mustCreate(t, s, keystore.CreateParams{Name: "k3", Scopes: []string{"admin"}})
	k4 := mustCreate(t, s, keystore.CreateParams{Name: "k4", Scopes: []string{"channels:read"}, ExpiresAt: ptr(start.Add(10 * time.Hour))})
	clock.Advance(time.Minute)
	k5 := mustCreate(t, s, keystore.CreateParams{Name: "k5", Scopes: []string{"bots:read"}, ExpiresAt: ptr(start.Add(4 * time.Hour))})
	k6, err := s.Rotate(ctx(t), k4.ID, keystore.RotateOptions{Grace: time.Hour - time.Minute})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if _, err := s.Revoke(ctx(t), k1.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	clock.Advance(time.Hour - time.Minute)
	return []*keystore.Key{k6, k5, k4, k3, k2, k1}
}

func testList(t *testing.T, s *subject, clock *Clock) {
	keys := listFixture(t, s, clock)
	k6, k5, k4, k3, k2, k1 := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5]
	start := k1.CreatedAt
	all := mustList(t, s, keystore.ListOptions{})
	wantIDs(t, "List()", all, keys...)
	for _, k := range all {
		if k.Secret != "" {
			t.Errorf("List returned the secret of %s", k.ID)
		}
	}
	wantStatus := map[string]string{
		k6.ID: keystore.StatusActive, k5.ID: keystore.StatusActive, k4.ID: keystore.StatusExpired,
		k3.ID: keystore.StatusActive, k2.ID: keystore.StatusActive, k1.ID: keystore.StatusRevoked,
	}
	for _, k := range all {
		if k.Status != wantStatus[k.ID] {
			t.Errorf("List: %s (%s) has status %q, want %q", k.ID, k.Name, k.Status, wantStatus[k.ID])
		}
	}

	tests := []struct {
		name string
		f    keystore.ListFilter
		want []*keystore.Key
	}{
		{"status active", keystore.ListFilter{Status: keystore.StatusActive}, []*keystore.Key{k6, k5, k3, k2}},
		{"status expired", keystore.ListFilter{Status: keystore.StatusExpired}, []*keystore.Key{k4}},
		{"status revoked", keystore.ListFilter{Status: keystore.StatusRevoked}, []*keystore.Key{k1}},
		{"env test", keystore.ListFilter{Environment: keystore.EnvTest}, []*keystore.Key{k2}},
		{"env live", keystore.ListFilter{Environment: keystore.EnvLive}, []*keystore.Key{k6, k5, k4, k3, k1}},
		// admin grants every scope; :write does not imply :read.
		{"scope bots:read", keystore.ListFilter{Scope: "bots:read"}, []*keystore.Key{k5, k3, k1}},
		{"scope bots:write", keystore.ListFilter{Scope: "bots:write"}, []*keystore.Key{k3, k2, k1}},
		{"scope channels:read", keystore.ListFilter{Scope: "channels:read"}, []*keystore.Key{k6, k4, k3}},
		{"scope admin", keystore.ListFilter{Scope: "admin"}, []*keystore.Key{k3}},
		{"scope agent-loops:write", keystore.ListFilter{Scope: "agent-loops:write"}, []*keystore.Key{k3}},
		// A pattern matches keys granted any scope it covers.
		{"scope bots:*", keystore.ListFilter{Scope: "bots:*"}, []*keystore.Key{k5, k3, k2, k1}},
		{"scope *:read", keystore.ListFilter{Scope: "*:read"}, []*keystore.Key{k6, k5, k4, k3, k1}},
		{"scope channels:*", keystore.ListFilter{Scope: "channels:*"}, []*keystore.Key{k6, k4, k3}},
		{"created before start", keystore.ListFilter{CreatedBefore: start}, nil},
		{"created before start+1s", keystore.ListFilter{CreatedBefore: start.Add(time.Second)}, []*keystore.Key{k1}},
		{"created before k2", keystore.ListFilter{CreatedBefore: k2.CreatedAt}, []*keystore.Key{k1}},
		{"created before k3", keystore.ListFilter{CreatedBefore: k3.CreatedAt}, []*keystore.Key{k2, k1}},
		{"created before k3+1s", keystore.ListFilter{CreatedBefore: k3.CreatedAt.Add(time.Second)}, []*keystore.Key{k4, k3, k2, k1}},
		{"rotatable", keystore.ListFilter{Rotatable: true}, []*keystore.Key{k6, k5, k3, k2}},
		{"live, active", keystore.ListFilter{Environment: keystore.EnvLive, Status: keystore.StatusActive}, []*keystore.Key{k6, k5, k3}},
		{"live, bots:read, before k5", keystore.ListFilter{Environment: keystore.EnvLive, Scope: "bots:read", CreatedBefore: k5.CreatedAt}, []*keystore.Key{k3, k1}},
	}
	for _, tt := range tests {
		got := mustList(t, s, keystore.ListOptions{ListFilter: tt.f})
		wantIDs(t, "List("+tt.name+")", got, tt.want...)
		if n := mustCount(t, s, tt.f); n != len(tt.want) {
			t.Errorf("Count(%s) = %d, want %d", tt.name, n, len(tt.want))
		}
	}
	if n := mustCount(t, s, keystore.ListFilter{}); n != len(keys) {
		t.Errorf("Count() = %d, want %d", n, len(keys))
	}

	// Time moves statuses: k5 expires at start+4h.
	clock.Advance(time.Hour)
	got := mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Status: keystore.StatusExpired}})
	wantIDs(t, "List(status expired) an hour later", got, k5, k4)
	if n := mustCount(t, s, keystore.ListFilter{Status: keystore.StatusActive}); n != 3 {
		t.Errorf("Count(status active) an hour later = %d, want 3", n)
	}
}

func testListPaging(t *testing.T, s *subject, clock *Clock) {
	var keys []*keystore.Key
	for i := range 7 {
		keys = append(keys, mustCreate(t, s, keystore.CreateParams{Name: "page", Scopes: []string{"bots:read"}}))
		if i%3 == 0 {
			clock.Advance(time.Second) // some keys share a second, others not
		}
	}
	slices.Reverse(keys)
	var paged []*keystore.Key
	for offset := 0; ; offset += 3 {
		if offset > 3*len(keys) {
			t.Fatalf("List in pages of 3 does not end: got %d keys so far", len(paged))
		}
		page := mustList(t, s, keystore.ListOptions{Offset: offset, Limit: 3})
		if len(page) > 3 {
			t.Fatalf("List(offset %d, limit 3) yielded %d keys", offset, len(page))
		}
		paged = append(paged, page...)
		if len(page) < 3 {
			break
		}
	}
	wantIDs(t, "List in pages of 3", paged, keys...)
	wantIDs(t, "List(offset 2, limit 1)", mustList(t, s, keystore.ListOptions{Offset: 2, Limit: 1}), keys[2])
	wantIDs(t, "List(offset 5)", mustList(t, s, keystore.ListOptions{Offset: 5}), keys[5:]...)
	wantIDs(t, "List(offset 7)", mustList(t, s, keystore.ListOptions{Offset: 7}))
	wantIDs(t, "List(limit 100)", mustList(t, s, keystore.ListOptions{Limit: 100}), keys...)

	// Stopping early is allowed, and leaves the store usable.
	n := 0
	for _, err := range s.List(ctx(t), keystore.ListOptions{}) {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if n++; n == 2 {
			break
		}
	}
	mustCreate(t, s, keystore.CreateParams{Name: "after break", Scopes: []string{"bots:read"}})
	if n := mustCount(t, s, keystore.ListFilter{}); n != 8 {
		t.Errorf("Count() = %d, want 8", n)
	}
}

// testListMany lists more keys than a remote store fetches in one page.
func testListMany(t *testing.T, s *subject, clock *Clock) {
	const n = 230
	keys := make([]*keystore.Key, 0, n)
	for i := range n {
		env := keystore.EnvLive
		if i%3 == 0 {
			env = keystore.EnvTest
		}
		keys = append(keys, mustCreate(t, s, keystore.CreateParams{Name: fmt.Sprint("many ", i), Scopes: []string{"bots:read"}, Environment: env}))
		if i%7 == 0 {
			clock.Advance(time.Second)
		}
	}
	slices.Reverse(keys)
	wantIDs(t, "List() of many", mustList(t, s, keystore.ListOptions{}), keys...)
	wantIDs(t, "List(offset 95, limit 110)", mustList(t, s, keystore.ListOptions{Offset: 95, Limit: 110}), keys[95:205]...)
	wantIDs(t, "List(offset 199)", mustList(t, s, keystore.ListOptions{Offset: 199}), keys[199:]...)
	wantIDs(t, "List(limit 101)", mustList(t, s, keystore.ListOptions{Limit: 101}), keys[:101]...)
	var test []*keystore.Key
	for _, k := range keys {
		if k.Environment == keystore.EnvTest {
			test = append(test, k)
		}
	}
	f := keystore.ListFilter{Environment: keystore.EnvTest}
	wantIDs(t, "List(env test) of many", mustList(t, s, keystore.ListOptions{ListFilter: f}), test...)
	if got := mustCount(t, s, f); got != len(test) {
		t.Errorf("Count(env test) = %d, want %d", got, len(test))
	}
	if got := mustCount(t, s, keystore.ListFilter{}); got != n {
		t.Errorf("Count() = %d, want %d", got, n)
	}
}

func testListBadFilter(t *testing.T, s *subject, clock *Clock) {
	mustCreate(t, s, keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}})
	for _, f := range []keystore.ListFilter{
		{Status: "deleted"},
		{Environment: "prod"},
		{Scope: "bots:rea"},
		{Scope: "robots:*"},
		{Metadata: map[string]string{"": "x"}},
		{Metadata: map[string]string{strings.Repeat("k", 41): "x"}},
	} {
		var errs []error
		for k, err := range s.List(ctx(t), keystore.ListOptions{ListFilter: f}) {
			if err == nil {
				t.Errorf("List(%+v) yielded key %s", f, k.ID)
			}
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			t.Errorf("List(%+v): no error", f)
		} else {
			wantCode(t, "List with a bad filter", errs[0], keystore.EINVALID)
		}
		_, err := s.Count(ctx(t), f)
		wantCode(t, "Count with a bad filter", err, keystore.EINVALID)
	}
}

func testRotate(t *testing.T, s *subject, clock *Clock) {
	old := mustCreate(t, s, keystore.CreateParams{
		Name: "deploy bot", Scopes: []string{"bots:read", "integrations:write"},
		Environment: keystore.EnvTest, Metadata: map[string]string{"owner": "ops"},
	})
	clock.Advance(time.Minute)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}

	if nk.ID == old.ID || !keystore.ValidID(nk.ID) {
		t.Errorf("new key ID %q (old %q)", nk.ID, old.ID)
	}
	if nk.Secret == "" || nk.Secret == old.Secret {
		t.Errorf("the new key needs a new secret")
	}
	if env, err := keystore.ParseToken(nk.Secret); err != nil || env != keystore.EnvTest {
		t.Errorf("ParseToken(new secret) = %q, %v; want test", env, err)
	}
	if nk.Hint != keystore.Hint(nk.Secret) {
		t.Errorf("new hint %q, want %q", nk.Hint, keystore.Hint(nk.Secret))
	}
	if nk.Name != old.Name || nk.Environment != old.Environment || !slices.Equal(nk.Scopes, old.Scopes) || !maps.Equal(nk.Metadata, old.Metadata) {
		t.Errorf("new key %q %q %q %v does not carry over %q %q %q %v",
			nk.Name, nk.Environment, nk.Scopes, nk.Metadata, old.Name, old.Environment, old.Scopes, old.Metadata)
	}
	if nk.RotatedFrom == nil || *nk.RotatedFrom != old.ID || nk.RotatedTo != nil {
		t.Errorf("new key rotated_from %v, rotated_to %v; want %s, null", nk.RotatedFrom, nk.RotatedTo, old.ID)
	}
	if nk.Status != keystore.StatusActive || !nk.CreatedAt.Equal(clock.Now()) || nk.ExpiresAt != nil || nk.RevokedAt != nil {
		t.Errorf("new key status %q created %v expires %v revoked %v", nk.Status, nk.CreatedAt, nk.ExpiresAt, nk.RevokedAt)
	}
	wantSameKey(t, "Get(new key)", mustGet(t, s, nk.ID), nk)

	got := mustGet(t, s, old.ID)
	if got.RotatedTo == nil || *got.RotatedTo != nk.ID {
		t.Errorf("old key rotated_to = %v, want %s", got.RotatedTo, nk.ID)
	}
	if got.Status != keystore.StatusRevoked {
		t.Errorf("old key status %q, want revoked", got.Status)
	}
	wantTime(t, "old key revoked_at", got.RevokedAt, ptr(clock.Now()))
	wantVerify(t, s, old.Secret, nil, keystore.CodeRevoked)
	wantVerify(t, s, nk.Secret, nil, keystore.CodeValid)

	_, err = s.Rotate(ctx(t), old.ID, keystore.RotateOptions{})
	wantCode(t, "rotating a rotated key", err, keystore.ECONFLICT)
	if err != nil && !strings.Contains(err.Error(), old.ID) {
		t.Errorf("the conflict should name the key: %v", err)
	}

	// A successor can be rotated in turn.
	clock.Advance(time.Minute)
	third, err := s.Rotate(ctx(t), nk.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate(successor): %v", err)
	}
	if third.RotatedFrom == nil || *third.RotatedFrom != nk.ID {
		t.Errorf("third key rotated_from = %v, want %s", third.RotatedFrom, nk.ID)
	}

	revoked := mustCreate(t, s, keystore.CreateParams{Name: "gone", Scopes: []string{"bots:read"}})
	if _, err := s.Revoke(ctx(t), revoked.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	_, err = s.Rotate(ctx(t), revoked.ID, keystore.RotateOptions{})
	wantCode(t, "rotating a revoked key", err, keystore.ECONFLICT)

	_, err = s.Rotate(ctx(t), "key_"+strings.Repeat("Z", 16), keystore.RotateOptions{})
	wantCode(t, "rotating an unknown key", err, keystore.ENOTFOUND)
	_, err = s.Rotate(ctx(t), "key_bad", keystore.RotateOptions{})
	wantCode(t, "rotating a malformed ID", err, keystore.EINVALID)
	_, err = s.Rotate(ctx(t), third.ID, keystore.RotateOptions{Grace: -time.Hour})
	wantCode(t, "rotating with a negative grace", err, keystore.EINVALID)

	if n := mustCount(t, s, keystore.ListFilter{}); n != 4 {
		t.Errorf("Count() = %d after the refused rotations, want 4", n)
	}
}

func testRotateGrace(t *testing.T, s *subject, clock *Clock) {
	old := mustCreate(t, s, keystore.CreateParams{Name: "web", Scopes: []string{"bots:read"}})
	clock.Advance(time.Hour)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{Grace: 24 * time.Hour})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	end := clock.Now().Add(24 * time.Hour)
	got := mustGet(t, s, old.ID)
	if got.Status != keystore.StatusActive || got.RevokedAt != nil {
		t.Errorf("during grace the old key is %q, revoked_at %v; want active", got.Status, got.RevokedAt)
	}
	wantTime(t, "old key expires_at", got.ExpiresAt, &end)
	if got.RotatedTo == nil || *got.RotatedTo != nk.ID {
		t.Errorf("old key rotated_to = %v, want %s", got.RotatedTo, nk.ID)
	}
	wantVerify(t, s, old.Secret, nil, keystore.CodeValid)

	_, err = s.Rotate(ctx(t), old.ID, keystore.RotateOptions{Grace: time.Hour})
	wantCode(t, "rotating a key in its grace period", err, keystore.ECONFLICT)

	clock.Advance(24*time.Hour - time.Second)
	wantVerify(t, s, old.Secret, nil, keystore.CodeValid)
	clock.Advance(time.Second)
	wantVerify(t, s, old.Secret, nil, keystore.CodeExpired)
	if st := mustGet(t, s, old.ID).Status; st != keystore.StatusExpired {
		t.Errorf("after grace the old key is %q, want expired", st)
	}
	wantVerify(t, s, nk.Secret, nil, keystore.CodeValid)

	// Grace never extends a key's life.
	soon := clock.Now().Add(time.Hour)
	short := mustCreate(t, s, keystore.CreateParams{Name: "short", Scopes: []string{"bots:read"}, ExpiresAt: &soon})
	if _, err := s.Rotate(ctx(t), short.ID, keystore.RotateOptions{Grace: 24 * time.Hour}); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	wantTime(t, "expires_at after a grace past the expiry", mustGet(t, s, short.ID).ExpiresAt, &soon)

	// Revoking a key in its grace period stops it at once.
	clock.Advance(time.Minute)
	if _, err := s.Revoke(ctx(t), short.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantVerify(t, s, short.Secret, nil, keystore.CodeRevoked)
}

// testRotateExpiry checks the successor's expiry: none when the old key had
// none, otherwise the old key's lifetime again, counted from the rotation.
func testRotateExpiry(t *testing.T, s *subject, clock *Clock) {
	expires := clock.Now().Add(30 * 24 * time.Hour)
	old := mustCreate(t, s, keystore.CreateParams{Name: "monthly", Scopes: []string{"bots:read"}, ExpiresAt: &expires})
	clock.Advance(10 * 24 * time.Hour)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	wantTime(t, "successor expires_at", nk.ExpiresAt, ptr(clock.Now().Add(30*24*time.Hour)))
	wantTime(t, "successor expires_at (Get)", mustGet(t, s, nk.ID).ExpiresAt, nk.ExpiresAt)

	// An expired key can still be rotated: its successor gets a fresh lifetime.
	clock.Advance(30 * 24 * time.Hour)
	wantVerify(t, s, nk.Secret, nil, keystore.CodeExpired)
	third, err := s.Rotate(ctx(t), nk.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate(expired key): %v", err)
	}
	wantVerify(t, s, third.Secret, nil, keystore.CodeValid)
}

func testRotateConcurrent(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "race", Scopes: []string{"bots:read"}})
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
		errs []error
	)
	for range n {
		wg.Go(func() {
			nk, err := s.Rotate(ctx(t), k.ID, keystore.RotateOptions{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				wins = append(wins, nk.ID)
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d of %d concurrent rotations of one key succeeded, want 1", len(wins), n)
	}
	for _, err := range errs {
		wantCode(t, "losing concurrent rotation", err, keystore.ECONFLICT)
	}
	if got := mustGet(t, s, k.ID).RotatedTo; got == nil || *got != wins[0] {
		t.Errorf("rotated_to = %v, want %s", got, wins[0])
	}
	if c := mustCount(t, s, keystore.ListFilter{}); c != 2 {
		t.Errorf("Count() = %d, want 2", c)
	}
}

func testRevoke(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "leaked", Scopes: []string{"bots:read"}})
	clock.Advance(time.Minute)
	revokedAt := clock.Now()
	got, err := s.Revoke(ctx(t), k.ID)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got.ID != k.ID || got.Status != keystore.StatusRevoked || got.Secret != "" {
		t.Errorf("Revoke returned %s status %q secret %t", got.ID, got.Status, got.Secret != "")
	}
	wantTime(t, "revoked_at", got.RevokedAt, &revokedAt)
	wantSameKey(t, "Get after Revoke", mustGet(t, s, k.ID), got)
	wantVerify(t, s, k.Secret, nil, keystore.CodeRevoked)

	clock.Advance(time.Minute)
	again, err := s.Revoke(ctx(t), k.ID)
	if err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	wantTime(t, "revoked_at after revoking again", again.RevokedAt, &revokedAt)
	if again.Status != keystore.StatusRevoked {
		t.Errorf("status %q, want revoked", again.Status)
	}
	if n := countActions(mustAudit(t, s, k.ID), keystore.ActionRevoke); n != 1 {
		t.Errorf("%d revoke events, want 1", n)
	}

	_, err = s.Revoke(ctx(t), "key_"+strings.Repeat("a", 16))
	wantCode(t, "revoking an unknown key", err, keystore.ENOTFOUND)
	_, err = s.Revoke(ctx(t), "sk_live_nope")
	wantCode(t, "revoking a malformed ID", err, keystore.EINVALID)
}

func testVerify(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "v", Scopes: []string{"bots:read", "bots:write"}})
	v := wantVerify(t, s, k.Secret, nil, keystore.CodeValid)
	if v.Key == nil || v.Key.ID != k.ID || v.Key.Secret != "" || v.Key.Status != keystore.StatusActive {
		t.Errorf("valid verification key = %+v, want %s without secret", v.Key, k.ID)
	}
	if v.MissingScopes == nil || len(v.MissingScopes) != 0 {
		t.Errorf("missing_scopes = %#v, want empty", v.MissingScopes)
	}
	wantVerify(t, s, k.Secret, []string{"bots:read", "bots:write"}, keystore.CodeValid)

	unknown, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := wantVerify(t, s, unknown, nil, keystore.CodeNotFound); v.Key != nil {
		t.Errorf("not_found came with key %s", v.Key.ID)
	}

	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	// Revoked comes before any scope check.
	if v := wantVerify(t, s, k.Secret, []string{"channels:read"}, keystore.CodeRevoked); v.Key == nil || v.Key.ID != k.ID {
		t.Errorf("revoked verification should name the key")
	}

	_, err = s.Verify(ctx(t), k.Secret, []string{"bots:reed"})
	wantCode(t, "Verify with an unknown scope", err, keystore.EINVALID)
}

func testVerifyScopes(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "writer", Scopes: []string{"bots:write", "channels:read"}})
	v := wantVerify(t, s, k.Secret, []string{"bots:read", "channels:read", "channels:write"}, keystore.CodeInsufficientScope)
	if want := []string{"bots:read", "channels:write"}; !slices.Equal(v.MissingScopes, want) {
		t.Errorf("missing_scopes = %q, want %q (write does not imply read)", v.MissingScopes, want)
	}
	if v.Key == nil || v.Key.ID != k.ID {
		t.Errorf("insufficient_scope should name the key")
	}
	wantVerify(t, s, k.Secret, []string{"bots:write"}, keystore.CodeValid)

	admin := mustCreate(t, s, keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	wantVerify(t, s, admin.Secret, keystore.AllScopes, keystore.CodeValid)
}

func testVerifyInvalidFormat(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "f", Scopes: []string{"bots:read"}})
	changed := []byte(k.Secret)
	if changed[20] == 'a' {
		changed[20] = 'b'
	} else {
		changed[20] = 'a'
	}
	otherEnv := "sk_test_" + k.Secret[len("sk_live_"):]
	for name, secret := range map[string]string{
		"empty":           "",
		"garbage":         "hello world",
		"truncated":       k.Secret[:len(k.Secret)-1],
		"extended":        k.Secret + "0",
		"one char":        string(changed),
		"other env":       otherEnv,
		"upper case":      strings.ToUpper(k.Secret),
		"spaces":          " " + k.Secret,
		"bearer":          "Bearer " + k.Secret,
		"key id":          k.ID,
		"hint":            k.Hint,
		"unknown prefix":  "pk_live_" + k.Secret[len("sk_live_"):],
		"non-ASCII":       k.Secret[:20] + "é" + k.Secret[22:],
		"checksum zeroed": k.Secret[:len(k.Secret)-6] + "000000",
	} {
		v := wantVerify(t, s, secret, nil, keystore.CodeInvalidFormat)
		if v.Key != nil {
			t.Errorf("Verify(%s) named key %s", name, v.Key.ID)
		}
	}
	if got := mustGet(t, s, k.ID); got.LastUsedAt != nil {
		t.Errorf("a wrong secret recorded a use of %s", k.ID)
	}
}

func testVerifyLastUsed(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "used", Scopes: []string{"bots:read"}})
	clock.Advance(time.Minute)
	used := clock.Now()
	v := wantVerify(t, s, k.Secret, nil, keystore.CodeValid)
	wantTime(t, "verification last_used_at", v.Key.LastUsedAt, &used)
	wantTime(t, "last_used_at", mustGet(t, s, k.ID).LastUsedAt, &used)

	// A use with too few scopes is a use.
	clock.Advance(time.Minute)
	used = clock.Now()
	wantVerify(t, s, k.Secret, []string{"bots:write"}, keystore.CodeInsufficientScope)
	wantTime(t, "last_used_at after insufficient_scope", mustGet(t, s, k.ID).LastUsedAt, &used)

	// A revoked key is not used.
	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	clock.Advance(time.Minute)
	wantVerify(t, s, k.Secret, nil, keystore.CodeRevoked)
	wantTime(t, "last_used_at after revoked", mustGet(t, s, k.ID).LastUsedAt, &used)

	if n := len(mustAudit(t, s, k.ID)); n != 2 {
		t.Errorf("%d audit events, want 2 (verify is not a change)", n)
	}
}

// testScopeUses: a valid verification records, per scope asked for, when
// it was last asked; reads show it (used_scopes, scopes_last_used).
func testScopeUses(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "least", Scopes: []string{"bots:read", "bots:write", "channels:read"}})
	if len(k.UsedScopes) != 0 || len(k.ScopesLastUsed) != 0 {
		t.Fatalf("a new key has used scopes %v", k.UsedScopes)
	}
	want := func(what string, used []string, times map[string]time.Time) {
		t.Helper()
		got := mustGet(t, s, k.ID)
		if !slices.Equal(got.UsedScopes, used) || len(got.ScopesLastUsed) != len(times) {
			t.Fatalf("%s: used scopes %q (%v), want %q", what, got.UsedScopes, got.ScopesLastUsed, used)
		}
		for sc, at := range times {
			if !got.ScopesLastUsed[sc].Equal(at) {
				t.Errorf("%s: %s last used %v, want %v", what, sc, got.ScopesLastUsed[sc], at)
			}
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			Used  []string             `json:"used_scopes"`
			Times map[string]time.Time `json:"scopes_last_used"`
		}
		if err := json.Unmarshal(b, &back); err != nil || back.Used == nil || back.Times == nil {
			t.Errorf("%s: JSON used_scopes %v, scopes_last_used %v, %v: want a list and an object", what, back.Used, back.Times, err)
		}
	}

	clock.Advance(time.Minute)
	t1 := clock.Now()
	wantVerify(t, s, k.Secret, nil, keystore.CodeValid)
	want("a verification asking no scope", nil, nil)
	wantVerify(t, s, k.Secret, []string{"bots:read"}, keystore.CodeValid)
	want("bots:read asked", []string{"bots:read"}, map[string]time.Time{"bots:read": t1})

	// A scope the key lacks was not used, nor were the others asked with it.
	clock.Advance(time.Minute)
	wantVerify(t, s, k.Secret, []string{"channels:read", "admin"}, keystore.CodeInsufficientScope)
	want("insufficient_scope", []string{"bots:read"}, map[string]time.Time{"bots:read": t1})

	clock.Advance(time.Minute)
	t2 := clock.Now()
	wantVerify(t, s, k.Secret, []string{"channels:read", "bots:read"}, keystore.CodeValid)
	wantVerify(t, s, k.Secret, []string{"channels:read"}, keystore.CodeValid) // the same second: no change
	want("two scopes", []string{"bots:read", "channels:read"}, map[string]time.Time{"bots:read": t2, "channels:read": t2})

	// An admin key asked for a scope records that scope, not admin.
	a := mustCreate(t, s, keystore.CreateParams{Name: "root", Scopes: []string{"admin"}})
	wantVerify(t, s, a.Secret, []string{"conversations:write"}, keystore.CodeValid)
	if got := mustGet(t, s, a.ID); !slices.Equal(got.UsedScopes, []string{"conversations:write"}) {
		t.Errorf("admin key used scopes %q, want [conversations:write]", got.UsedScopes)
	}

	// A revoked key is not used.
	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	wantVerify(t, s, k.Secret, []string{"bots:write"}, keystore.CodeRevoked)
	want("revoked", []string{"bots:read", "channels:read"}, map[string]time.Time{"bots:read": t2, "channels:read": t2})

	// List and Lookup show the same, and a use is not an audit event.
	for got, err := range s.List(ctx(t), keystore.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if got.ID == k.ID && !slices.Equal(got.UsedScopes, []string{"bots:read", "channels:read"}) {
			t.Errorf("List: used scopes %q", got.UsedScopes)
		}
	}
	if got, err := s.Lookup(ctx(t), keystore.HashToken(k.Secret)); err != nil || !slices.Equal(got.UsedScopes, []string{"bots:read", "channels:read"}) {
		t.Errorf("Lookup: used scopes %v, %v", got, err)
	}
	if n := len(mustAudit(t, s, k.ID)); n != 2 {
		t.Errorf("%d audit events, want 2 (create, revoke)", n)
	}
}

func testLookup(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "found", Scopes: []string{"bots:read"}, ExpiresAt: ptr(clock.Now().Add(time.Hour))})
	got, err := s.Lookup(ctx(t), keystore.HashToken(k.Secret))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	wantSameKey(t, "Lookup", got, k)
	if got.Secret != "" || got.Status != keystore.StatusActive || got.LastUsedAt != nil {
		t.Errorf("Lookup = %+v, want the active key without secret or use", got)
	}
	if got := mustGet(t, s, k.ID); got.LastUsedAt != nil {
		t.Errorf("Lookup recorded a use")
	}

	clock.Advance(2 * time.Hour)
	if got, err := s.Lookup(ctx(t), keystore.HashToken(k.Secret)); err != nil || got.Status != keystore.StatusExpired {
		t.Errorf("Lookup of an expired key = %+v, %v; want status expired", got, err)
	}
	r := mustCreate(t, s, keystore.CreateParams{Name: "gone", Scopes: []string{"bots:read"}})
	if _, err := s.Revoke(ctx(t), r.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx(t), keystore.HashToken(r.Secret)); err != nil || got.Status != keystore.StatusRevoked || got.ID != r.ID {
		t.Errorf("Lookup of a revoked key = %+v, %v; want %s revoked", got, err, r.ID)
	}

	_, err = s.Lookup(ctx(t), keystore.HashToken(newSecret(t, keystore.EnvTest)))
	wantCode(t, "Lookup of an unknown secret", err, keystore.ENOTFOUND)
}

func testExpiry(t *testing.T, s *subject, clock *Clock) {
	expires := clock.Now().Add(time.Hour)
	k := mustCreate(t, s, keystore.CreateParams{Name: "temp", Scopes: []string{"bots:read"}, ExpiresAt: &expires})
	forever := mustCreate(t, s, keystore.CreateParams{Name: "forever", Scopes: []string{"bots:read"}})

	clock.Advance(time.Hour - time.Second)
	wantVerify(t, s, k.Secret, nil, keystore.CodeValid)
	if st := mustGet(t, s, k.ID).Status; st != keystore.StatusActive {
		t.Errorf("a second before expiry: status %q, want active", st)
	}

	clock.Advance(time.Second)
	wantVerify(t, s, k.Secret, nil, keystore.CodeExpired)
	wantVerify(t, s, k.Secret, []string{"channels:write"}, keystore.CodeExpired)
	wantVerify(t, s, forever.Secret, nil, keystore.CodeValid)
	if st := mustGet(t, s, k.ID).Status; st != keystore.StatusExpired {
		t.Errorf("at expiry: status %q, want expired", st)
	}
	wantIDs(t, "List(status expired)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Status: keystore.StatusExpired}}), k)
	wantIDs(t, "List(status active)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Status: keystore.StatusActive}}), forever)

	// Revoked wins over expired.
	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantVerify(t, s, k.Secret, nil, keystore.CodeRevoked)
}

func testAudit(t *testing.T, s *subject, clock *Clock) {
	alice := keystore.WithActor(t.Context(), "alice")
	bob := keystore.WithActor(t.Context(), "bob")

	k1, err := s.Create(alice, keystore.CreateParams{Name: "one", Scopes: []string{"bots:read", "bots:write"}, Environment: keystore.EnvTest})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()
	clock.Advance(time.Minute)
	k2, err := s.Create(bob, keystore.CreateParams{Name: "two", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	t1 := clock.Now()
	clock.Advance(time.Minute)
	k3, err := s.Rotate(bob, k1.ID, keystore.RotateOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t2 := clock.Now()
	clock.Advance(time.Minute)
	if _, err := s.Revoke(alice, k2.ID); err != nil {
		t.Fatal(err)
	}
	t3 := clock.Now()
	if _, err := s.Revoke(alice, k2.ID); err != nil { // no second event
		t.Fatal(err)
	}
	wantVerify(t, s, k3.Secret, nil, keystore.CodeValid) // not an event

	events := mustAudit(t, s, "")
	type want struct {
		at     time.Time
		actor  string
		action string
		keyID  string
	}
	wants := []want{
		{t0, s.recorded("alice"), keystore.ActionCreate, k1.ID},
		{t1, s.recorded("bob"), keystore.ActionCreate, k2.ID},
		{t2, s.recorded("bob"), keystore.ActionRotate, k1.ID},
		{t3, s.recorded("alice"), keystore.ActionRevoke, k2.ID},
	}
	if len(events) != len(wants) {
		t.Fatalf("Audit() = %d events, want %d: %+v", len(events), len(wants), events)
	}
	seen := map[string]bool{}
	for i, e := range events {
		w := wants[i]
		if !e.At.Equal(w.at) || e.Actor != w.actor || e.Action != w.action || e.KeyID != w.keyID {
			t.Errorf("event %d = %v %q %q %s, want %v %q %q %s", i, e.At, e.Actor, e.Action, e.KeyID, w.at, w.actor, w.action, w.keyID)
		}
		if !strings.HasPrefix(e.ID, "evt_") || seen[e.ID] {
			t.Errorf("event %d has ID %q: want a unique evt_ ID", i, e.ID)
		}
		seen[e.ID] = true
	}

	create := events[0].Details
	if create["name"] != "one" || create["environment"] != keystore.EnvTest || !sameStrings(create["scopes"], k1.Scopes) {
		t.Errorf("create details = %v, want name, environment and scopes of %s", create, k1.ID)
	}
	rotate := events[2].Details
	if rotate["new_key_id"] != k3.ID || !isNumber(rotate["grace_seconds"], 3600) {
		t.Errorf("rotate details = %v, want new_key_id %s and grace_seconds 3600", rotate, k3.ID)
	}

	filtered := []struct {
		id   string
		want []int // indexes into events
	}{
		{k1.ID, []int{0, 2}},
		{k2.ID, []int{1, 3}},
		{k3.ID, []int{2}}, // the rotation that made it
		{"key_" + strings.Repeat("9", 16), nil},
	}
	for _, f := range filtered {
		got := mustAudit(t, s, f.id)
		var gotIDs, wantIDs []string
		for _, e := range got {
			gotIDs = append(gotIDs, e.ID)
		}
		for _, i := range f.want {
			wantIDs = append(wantIDs, events[i].ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("Audit(%s) = %v, want %v", f.id, gotIDs, wantIDs)
		}
	}
	_, err = s.Audit(ctx(t), "k1")
	wantCode(t, "Audit of a malformed ID", err, keystore.EINVALID)

	js, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*keystore.Key{k1, k2, k3} {
		random := k.Secret[len("sk_live_"):]
		if strings.Contains(string(js), random[:16]) || strings.Contains(string(js), random[16:]) {
			t.Errorf("the audit log contains (part of) the secret of %s: %s", k.ID, js)
		}
	}
}

// Helpers. They use only the Store interface.

func ctx(t *testing.T) context.Context {
	return keystore.WithActor(t.Context(), "storetest")
}

func ptr[T any](v T) *T { return &v }

func mustCreate(t *testing.T, s keystore.Store, p keystore.CreateParams) *keystore.Key {
	t.Helper()
	k, err := s.Create(ctx(t), p)
	if err != nil {
		t.Fatalf("Create(%q): %v", p.Name, err)
	}
	if k.Secret == "" {
		t.Fatalf("Create(%q) returned no secret", p.Name)
	}
	return k
}

func mustGet(t *testing.T, s keystore.Store, id string) *keystore.Key {
	t.Helper()
	k, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return k
}

func mustList(t *testing.T, s keystore.Store, opts keystore.ListOptions) []*keystore.Key {
	t.Helper()
	var keys []*keystore.Key
	for k, err := range s.List(ctx(t), opts) {
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func mustCount(t *testing.T, s keystore.Store, f keystore.ListFilter) int {
	t.Helper()
	n, err := s.Count(ctx(t), f)
	if err != nil {
		t.Fatalf("Count(%+v): %v", f, err)
	}
	return n
}

func mustAudit(t *testing.T, s keystore.Store, keyID string) []keystore.Event {
	t.Helper()
	events, err := s.Audit(ctx(t), keyID)
	if err != nil {
		t.Fatalf("Audit(%q): %v", keyID, err)
	}
	return events
}

// wantVerify verifies secret and checks the result's code, and that Valid
// agrees with it.
func wantVerify(t *testing.T, s keystore.Store, secret string, scopes []string, code string) *keystore.Verification {
	t.Helper()
	v, err := s.Verify(ctx(t), secret, scopes)
	if err != nil {
		t.Fatalf("Verify(%.12s…, %q): %v", secret, scopes, err)
	}
	if v.Code != code || v.Valid != (code == keystore.CodeValid) {
		t.Errorf("Verify(%.12s…, %q) = %q valid %t, want %q", secret, scopes, v.Code, v.Valid, code)
	}
	if v.Key != nil && v.Key.Secret != "" {
		t.Errorf("Verify returned the secret")
	}
	return v
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := keystore.ErrorCode(err); got != code {
		t.Errorf("%s: error %q (%v), want %q", what, got, err, code)
	}
}

func wantIDs(t *testing.T, what string, got []*keystore.Key, want ...*keystore.Key) {
	t.Helper()
	name := func(keys []*keystore.Key) []string {
		out := []string{}
		for _, k := range keys {
			out = append(out, k.ID+" ("+k.Name+")")
		}
		return out
	}
	if g, w := name(got), name(want); !slices.Equal(g, w) {
		t.Errorf("%s =\n\t%v\nwant\n\t%v", what, g, w)
	}
}

// wantSameKey compares two records as JSON, the public form, without secrets.
func wantSameKey(t *testing.T, what string, got, want *keystore.Key) {
	t.Helper()
	g, w := *got, *want
	g.Secret, w.Secret = "", ""
	gj, err1 := json.Marshal(g)
	wj, err2 := json.Marshal(w)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if string(gj) != string(wj) {
		t.Errorf("%s =\n\t%s\nwant\n\t%s", what, gj, wj)
	}
}

func wantTime(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	if (got == nil) != (want == nil) || got != nil && !got.Equal(*want) {
		t.Errorf("%s = %s, want %s", what, fmtTime(got), fmtTime(want))
	}
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return t.UTC().Format(time.RFC3339)
}

func countActions(events []keystore.Event, action string) int {
	n := 0
	for _, e := range events {
		if e.Action == action {
			n++
		}
	}
	return n
}

// sameStrings reports whether v, a detail decoded from JSON or not, holds
// the strings want.
func sameStrings(v any, want []string) bool {
	var got []string
	switch v := v.(type) {
	case []string:
		got = v
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return false
			}
			got = append(got, s)
		}
	default:
		return false
	}
	return slices.Equal(got, want)
}

// isNumber reports whether v, a detail decoded from JSON or not, is n.
func isNumber(v any, n int64) bool {
	switch v := v.(type) {
	case int:
		return int64(v) == n
	case int64:
		return v == n
	case float64:
		return v == float64(n)
	case json.Number:
		i, err := v.Int64()
		return err == nil && i == n
	}
	return false
}

func testListMetadata(t *testing.T, s *subject, clock *Clock) {
	a := mustCreate(t, s, keystore.CreateParams{Name: "a", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "platform", "tier": "1"}})
	b := mustCreate(t, s, keystore.CreateParams{Name: "b", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "platform"}})
	c := mustCreate(t, s, keystore.CreateParams{Name: "c", Scopes: []string{"bots:read"}, Metadata: map[string]string{"team": "growth", "x\"y.z": "a'b"}})
	mustCreate(t, s, keystore.CreateParams{Name: "d", Scopes: []string{"bots:read"}})
	tests := []struct {
		meta map[string]string
		want []*keystore.Key
	}{
		{map[string]string{"team": "platform"}, []*keystore.Key{b, a}},
		{map[string]string{"team": "platform", "tier": "1"}, []*keystore.Key{a}},
		{map[string]string{"team": "growth"}, []*keystore.Key{c}},
		{map[string]string{"x\"y.z": "a'b"}, []*keystore.Key{c}},
		{map[string]string{"team": "Platform"}, nil},
		{map[string]string{"tier": ""}, nil},
		{map[string]string{"nobody": "x"}, nil},
	}
	for _, tt := range tests {
		f := keystore.ListFilter{Metadata: tt.meta}
		wantIDs(t, fmt.Sprintf("List(metadata %v)", tt.meta), mustList(t, s, keystore.ListOptions{ListFilter: f}), tt.want...)
		if n := mustCount(t, s, f); n != len(tt.want) {
			t.Errorf("Count(metadata %v) = %d, want %d", tt.meta, n, len(tt.want))
		}
	}
	f := keystore.ListFilter{Metadata: map[string]string{"team": "platform"}, Scope: "bots:*", Rotatable: true}
	wantIDs(t, "List(metadata, scope pattern, rotatable)", mustList(t, s, keystore.ListOptions{ListFilter: f}), b, a)
}

// A rotation that awaits delivery leaves the old key as it was until the
// delivery is confirmed; then the grace counts from the confirmation.
func testRotateDelivery(t *testing.T, s *subject, clock *Clock) {
	old := mustCreate(t, s, keystore.CreateParams{Name: "ci", Scopes: []string{"bots:read"}})
	if old.Delivery != nil {
		t.Errorf("a created key has delivery %q, want null", *old.Delivery)
	}
	clock.Advance(time.Hour)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{Grace: time.Hour, AwaitDelivery: 10 * time.Minute})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if nk.Delivery == nil || *nk.Delivery != keystore.DeliveryPending || nk.Secret == "" {
		t.Errorf("new key delivery %v, secret set %v; want pending, true", nk.Delivery, nk.Secret != "")
	}
	wantSameKey(t, "Get(pending key)", mustGet(t, s, nk.ID), nk)
	got := mustGet(t, s, old.ID)
	if got.RotatedTo == nil || *got.RotatedTo != nk.ID || got.ExpiresAt != nil || got.RevokedAt != nil {
		t.Errorf("old key while pending: rotated_to %v expires %v revoked %v; want %s, null, null", got.RotatedTo, got.ExpiresAt, got.RevokedAt, nk.ID)
	}
	wantVerify(t, s, old.Secret, nil, keystore.CodeValid)
	wantVerify(t, s, nk.Secret, nil, keystore.CodeValid)
	// A pending key is not rotated itself, nor listed as rotatable, and
	// while the lease runs nobody else rotates its predecessor.
	_, err = s.Rotate(ctx(t), nk.ID, keystore.RotateOptions{})
	wantCode(t, "rotating a key that awaits delivery", err, keystore.ECONFLICT)
	_, err = s.Rotate(ctx(t), old.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
	wantCode(t, "rotating a key whose successor's lease runs", err, keystore.ECONFLICT)
	if n := mustCount(t, s, keystore.ListFilter{Rotatable: true}); n != 0 {
		t.Errorf("Count(rotatable) while pending = %d, want 0", n)
	}

	clock.Advance(time.Minute)
	done, err := s.ConfirmDelivery(ctx(t), nk.ID)
	if err != nil {
		t.Fatalf("ConfirmDelivery: %v", err)
	}
	if done.Delivery == nil || *done.Delivery != keystore.DeliveryDelivered || done.Secret != "" {
		t.Errorf("confirmed key delivery %v, secret set %v; want delivered, false", done.Delivery, done.Secret != "")
	}
	got = mustGet(t, s, old.ID)
	wantTime(t, "old key expires_at after delivery", got.ExpiresAt, ptr(clock.Now().Add(time.Hour)))
	if got.RevokedAt != nil {
		t.Errorf("old key revoked at %v, want null (grace)", got.RevokedAt)
	}
	// Confirming twice is not an error and changes nothing.
	clock.Advance(time.Minute)
	if _, err := s.ConfirmDelivery(ctx(t), nk.ID); err != nil {
		t.Errorf("ConfirmDelivery again: %v", err)
	}
	wantTime(t, "old key expires_at after a second confirmation", mustGet(t, s, old.ID).ExpiresAt, got.ExpiresAt)
	if n := countActions(mustAudit(t, s, nk.ID), keystore.ActionDeliver); n != 1 {
		t.Errorf("%d deliver events, want 1", n)
	}
	_, err = s.Rotate(ctx(t), old.ID, keystore.RotateOptions{})
	wantCode(t, "rotating a key whose rotation was delivered", err, keystore.ECONFLICT)

	// Without grace the old key stops at the confirmation.
	third, err := s.Rotate(ctx(t), nk.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
	if err != nil {
		t.Fatalf("Rotate(successor): %v", err)
	}
	wantVerify(t, s, nk.Secret, nil, keystore.CodeValid)
	if _, err := s.ConfirmDelivery(ctx(t), third.ID); err != nil {
		t.Fatalf("ConfirmDelivery(third): %v", err)
	}
	wantVerify(t, s, nk.Secret, nil, keystore.CodeRevoked)
	wantVerify(t, s, third.Secret, nil, keystore.CodeValid)

	// A key made otherwise awaits no delivery.
	plain := mustCreate(t, s, keystore.CreateParams{Name: "plain", Scopes: []string{"bots:read"}})
	_, err = s.ConfirmDelivery(ctx(t), plain.ID)
	wantCode(t, "confirming a created key", err, keystore.ECONFLICT)
	_, err = s.ConfirmDelivery(ctx(t), "key_"+strings.Repeat("Z", 16))
	wantCode(t, "confirming an unknown key", err, keystore.ENOTFOUND)
	_, err = s.ConfirmDelivery(ctx(t), "key_bad")
	wantCode(t, "confirming a malformed ID", err, keystore.EINVALID)
	_, err = s.Rotate(ctx(t), plain.ID, keystore.RotateOptions{AwaitDelivery: -time.Minute})
	wantCode(t, "rotating with a negative delivery timeout", err, keystore.EINVALID)
}

// A rerun after the lease finds the undelivered successor, revokes it and
// rotates the old key again; the late confirmation of the first is refused.
func testRotateDeliveryRerun(t *testing.T, s *subject, clock *Clock) {
	old := mustCreate(t, s, keystore.CreateParams{Name: "ci", Scopes: []string{"bots:read"}})
	clock.Advance(time.Hour)
	lost, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{AwaitDelivery: 10 * time.Minute})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	clock.Advance(10 * time.Minute)
	wantIDs(t, "List(rotatable) after the lease", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Rotatable: true}}), old)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{AwaitDelivery: 10 * time.Minute})
	if err != nil {
		t.Fatalf("Rotate after the lease: %v", err)
	}
	if nk.ID == lost.ID {
		t.Fatalf("the rerun returned the lost key")
	}
	gone := mustGet(t, s, lost.ID)
	if gone.Status != keystore.StatusRevoked || gone.Delivery == nil || *gone.Delivery != keystore.DeliveryPending {
		t.Errorf("the undelivered successor: status %q delivery %v; want revoked, pending", gone.Status, gone.Delivery)
	}
	wantVerify(t, s, lost.Secret, nil, keystore.CodeRevoked)
	if got := mustGet(t, s, old.ID); got.RotatedTo == nil || *got.RotatedTo != nk.ID || got.Status != keystore.StatusActive {
		t.Errorf("old key rotated_to %v status %q; want %s, active", got.RotatedTo, got.Status, nk.ID)
	}
	_, err = s.ConfirmDelivery(ctx(t), lost.ID)
	wantCode(t, "confirming a replaced successor", err, keystore.ECONFLICT)
	if _, err := s.ConfirmDelivery(ctx(t), nk.ID); err != nil {
		t.Fatalf("ConfirmDelivery: %v", err)
	}
	wantVerify(t, s, old.Secret, nil, keystore.CodeRevoked)
	wantVerify(t, s, nk.Secret, nil, keystore.CodeValid)
	if n := mustCount(t, s, keystore.ListFilter{Rotatable: true}); n != 1 {
		t.Errorf("Count(rotatable) after delivery = %d, want 1 (the new key)", n)
	}
	if n := mustCount(t, s, keystore.ListFilter{Status: keystore.StatusActive}); n != 1 {
		t.Errorf("Count(active) after delivery = %d, want 1: no successor left that nobody has", n)
	}
	events := mustAudit(t, s, lost.ID)
	if n := countActions(events, keystore.ActionRevoke); n != 1 {
		t.Errorf("%d revoke events for the undelivered successor, want 1", n)
	}
}

// Revoking a successor that awaits delivery undoes the rotation at once.
func testRevokeUndelivered(t *testing.T, s *subject, clock *Clock) {
	old := mustCreate(t, s, keystore.CreateParams{Name: "ci", Scopes: []string{"bots:read"}})
	clock.Advance(time.Hour)
	nk, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{AwaitDelivery: time.Hour})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if _, err := s.Revoke(ctx(t), nk.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got := mustGet(t, s, old.ID)
	if got.RotatedTo != nil || got.Status != keystore.StatusActive {
		t.Errorf("old key after revoking its undelivered successor: rotated_to %v status %q; want null, active", got.RotatedTo, got.Status)
	}
	wantVerify(t, s, old.Secret, nil, keystore.CodeValid)
	wantIDs(t, "List(rotatable)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Rotatable: true}}), old)
	again, err := s.Rotate(ctx(t), old.ID, keystore.RotateOptions{AwaitDelivery: time.Hour})
	if err != nil {
		t.Fatalf("Rotate again: %v", err)
	}
	if _, err := s.ConfirmDelivery(ctx(t), again.ID); err != nil {
		t.Fatalf("ConfirmDelivery: %v", err)
	}
	// Revoking a delivered successor does not undo its rotation.
	if _, err := s.Revoke(ctx(t), again.ID); err != nil {
		t.Fatalf("Revoke(delivered): %v", err)
	}
	if got := mustGet(t, s, old.ID); got.RotatedTo == nil || *got.RotatedTo != again.ID {
		t.Errorf("old key rotated_to %v after revoking a delivered successor, want %s", got.RotatedTo, again.ID)
	}
}
