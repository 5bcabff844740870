package storetest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Events leaves out the baseline events. They are older than every event
// of the suite, so they come last and offsets keep their meaning.
func (s *subject) Events(ctx context.Context, f keystore.EventFilter) ([]keystore.Event, error) {
	events, err := s.Store.Events(ctx, f)
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

// CountEvents leaves out the baseline events that match f.
func (s *subject) CountEvents(ctx context.Context, f keystore.EventFilter) (int, error) {
	n, err := s.Store.CountEvents(ctx, f)
	if err != nil || len(s.baseEvents) == 0 {
		return n, err
	}
	f.Offset, f.Limit = 0, 0
	all, err := s.Store.Events(ctx, f)
	if err != nil {
		return 0, err
	}
	for _, e := range all {
		if s.baseEvents[e.ID] {
			n--
		}
	}
	return n, nil
}

func testUpdate(t *testing.T, s *subject, clock *Clock) {
	expires := clock.Now().Add(30 * 24 * time.Hour)
	k := mustCreate(t, s, keystore.CreateParams{
		Name: "ci", Scopes: []string{"bots:read", "bots:write"}, ExpiresAt: &expires,
		Metadata: map[string]string{"team": "platform", "old": "x"},
	})
	clock.Advance(time.Minute)
	later := clock.Now().Add(60 * 24 * time.Hour)
	got, err := s.Update(keystore.WithActor(t.Context(), "alice"), k.ID, keystore.UpdateParams{
		Name:           ptr("ci deploy"),
		Scopes:         []string{"channels:read", "bots:read"},
		ExpiresAt:      &later,
		Metadata:       map[string]string{"team": "infra", "ticket": "OPS-2"},
		RemoveMetadata: []string{"old"},
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.ID != k.ID || got.Name != "ci deploy" || got.Secret != "" || got.Hint != k.Hint || got.Status != keystore.StatusActive {
		t.Errorf("Update returned %s name %q hint %q status %q secret %t", got.ID, got.Name, got.Hint, got.Status, got.Secret != "")
	}
	if want := []string{"bots:read", "channels:read"}; !slices.Equal(got.Scopes, want) {
		t.Errorf("scopes = %q, want %q (canonical order)", got.Scopes, want)
	}
	wantTime(t, "expires_at", got.ExpiresAt, &later)
	if want := map[string]string{"team": "infra", "ticket": "OPS-2"}; !maps.Equal(got.Metadata, want) {
		t.Errorf("metadata = %v, want %v", got.Metadata, want)
	}
	wantSameKey(t, "Get after Update", mustGet(t, s, k.ID), got)
	// The secret stays the same and keeps working, with the new scopes.
	wantVerify(t, s, k.Secret, []string{"channels:read"}, keystore.CodeValid)
	wantVerify(t, s, k.Secret, []string{"bots:write"}, keystore.CodeInsufficientScope)

	events := mustAudit(t, s, k.ID)
	if len(events) != 2 || events[1].Action != keystore.ActionUpdate || events[1].Actor != s.recorded("alice") {
		t.Fatalf("audit of %s = %+v, want create and update by alice", k.ID, events)
	}
	d := events[1].Details
	field := func(name string) (before, after any) {
		m, ok := d[name].(map[string]any)
		if !ok {
			t.Errorf("update details lack %s: %v", name, d)
			return nil, nil
		}
		return m["before"], m["after"]
	}
	if b, a := field("name"); b != "ci" || a != "ci deploy" {
		t.Errorf("name before, after = %v, %v", b, a)
	}
	if b, a := field("scopes"); !sameStrings(b, []string{"bots:read", "bots:write"}) || !sameStrings(a, []string{"bots:read", "channels:read"}) {
		t.Errorf("scopes before, after = %v, %v", b, a)
	}
	if b, a := field("expires_at"); b != expires.UTC().Format(time.RFC3339) || a != later.UTC().Format(time.RFC3339) {
		t.Errorf("expires_at before, after = %v, %v", b, a)
	}
	if b, a := field("metadata"); len(b.(map[string]any)) != 2 || a.(map[string]any)["ticket"] != "OPS-2" {
		t.Errorf("metadata before, after = %v, %v", b, a)
	}

	// Clearing the expiry; a change to the same values records nothing.
	got, err = s.Update(ctx(t), k.ID, keystore.UpdateParams{ClearExpiry: true})
	if err != nil || got.ExpiresAt != nil {
		t.Fatalf("Update(clear expiry) = %v, %v; want no expiry", got, err)
	}
	if _, err := s.Update(ctx(t), k.ID, keystore.UpdateParams{Name: ptr("ci deploy"), ClearExpiry: true}); err != nil {
		t.Fatalf("Update(same values): %v", err)
	}
	if n := countActions(mustAudit(t, s, k.ID), keystore.ActionUpdate); n != 2 {
		t.Errorf("%d update events, want 2 (a change to the same values records none)", n)
	}

	bad := []struct {
		name string
		p    keystore.UpdateParams
	}{
		{"nothing", keystore.UpdateParams{}},
		{"empty name", keystore.UpdateParams{Name: ptr(" ")}},
		{"long name", keystore.UpdateParams{Name: ptr(strings.Repeat("n", 101))}},
		{"no scopes", keystore.UpdateParams{Scopes: []string{}}},
		{"unknown scope", keystore.UpdateParams{Scopes: []string{"bots:delete"}}},
		{"pattern", keystore.UpdateParams{Scopes: []string{"bots:*"}}},
		{"past expiry", keystore.UpdateParams{ExpiresAt: ptr(clock.Now().Add(-time.Hour))}},
		{"expiry set and cleared", keystore.UpdateParams{ExpiresAt: ptr(clock.Now().Add(time.Hour)), ClearExpiry: true}},
		{"metadata set and removed", keystore.UpdateParams{Metadata: map[string]string{"a": "1"}, RemoveMetadata: []string{"a"}}},
		{"long metadata", keystore.UpdateParams{Metadata: map[string]string{strings.Repeat("k", 41): "v"}}},
	}
	before := mustGet(t, s, k.ID)
	for _, b := range bad {
		_, err := s.Update(ctx(t), k.ID, b.p)
		wantCode(t, "Update("+b.name+")", err, keystore.EINVALID)
	}
	wantSameKey(t, "Get after refused updates", mustGet(t, s, k.ID), before)

	_, err = s.Update(ctx(t), "key_"+strings.Repeat("a", 16), keystore.UpdateParams{Name: ptr("x")})
	wantCode(t, "updating an unknown key", err, keystore.ENOTFOUND)
	_, err = s.Update(ctx(t), "k1", keystore.UpdateParams{Name: ptr("x")})
	wantCode(t, "updating a malformed ID", err, keystore.EINVALID)
	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx(t), k.ID, keystore.UpdateParams{Name: ptr("x")})
	wantCode(t, "updating a revoked key", err, keystore.ECONFLICT)
}

func testDisableEnable(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "bot", Scopes: []string{"bots:read"}})
	other := mustCreate(t, s, keystore.CreateParams{Name: "other", Scopes: []string{"bots:read"}})
	wantVerify(t, s, k.Secret, nil, keystore.CodeValid) // a store with a cache holds it now
	clock.Advance(time.Minute)
	at := clock.Now()
	got, err := s.Disable(keystore.WithActor(t.Context(), "alice"), k.ID)
	if err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if got.Status != keystore.StatusDisabled || got.Secret != "" {
		t.Errorf("Disable returned status %q secret %t", got.Status, got.Secret != "")
	}
	wantTime(t, "disabled_at", got.DisabledAt, &at)
	wantSameKey(t, "Get after Disable", mustGet(t, s, k.ID), got)
	if v := wantVerify(t, s, k.Secret, nil, keystore.CodeDisabled); v.Valid || v.Key == nil || v.Key.ID != k.ID {
		t.Errorf("verify of a disabled key = %+v", v)
	}
	wantVerify(t, s, other.Secret, nil, keystore.CodeValid)
	wantIDs(t, "List(status disabled)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Status: keystore.StatusDisabled}}), k)
	wantIDs(t, "List(status active)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Status: keystore.StatusActive}}), other)

	clock.Advance(time.Minute)
	again, err := s.Disable(ctx(t), k.ID)
	if err != nil {
		t.Fatalf("disabling again: %v", err)
	}
	wantTime(t, "disabled_at after disabling again", again.DisabledAt, &at)

	got, err = s.Enable(keystore.WithActor(t.Context(), "bob"), k.ID)
	if err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if got.Status != keystore.StatusActive || got.DisabledAt != nil {
		t.Errorf("Enable returned status %q disabled_at %v", got.Status, fmtTime(got.DisabledAt))
	}
	wantVerify(t, s, k.Secret, nil, keystore.CodeValid)
	if _, err := s.Enable(ctx(t), k.ID); err != nil {
		t.Fatalf("enabling an enabled key: %v", err)
	}
	events := mustAudit(t, s, k.ID)
	if len(events) != 3 || events[1].Action != keystore.ActionDisable || events[1].Actor != s.recorded("alice") ||
		events[2].Action != keystore.ActionEnable || events[2].Actor != s.recorded("bob") {
		t.Errorf("audit = %+v, want create, disable by alice, enable by bob (no event for a change to nothing)", events)
	}

	// Revoking stays final: a revoked key is neither disabled nor enabled.
	if _, err := s.Disable(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	wantVerify(t, s, k.Secret, nil, keystore.CodeRevoked)
	_, err = s.Enable(ctx(t), k.ID)
	wantCode(t, "enabling a revoked key", err, keystore.ECONFLICT)
	_, err = s.Disable(ctx(t), k.ID)
	wantCode(t, "disabling a revoked key", err, keystore.ECONFLICT)
	if st := mustGet(t, s, k.ID).Status; st != keystore.StatusRevoked {
		t.Errorf("status %q, want revoked", st)
	}
	_, err = s.Disable(ctx(t), "key_"+strings.Repeat("a", 16))
	wantCode(t, "disabling an unknown key", err, keystore.ENOTFOUND)
	_, err = s.Enable(ctx(t), "nope")
	wantCode(t, "enabling a malformed ID", err, keystore.EINVALID)
}

func testDelete(t *testing.T, s *subject, clock *Clock) {
	k := mustCreate(t, s, keystore.CreateParams{Name: "old", Scopes: []string{"bots:read"}})
	clock.Advance(time.Minute)
	next, err := s.Rotate(ctx(t), k.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live := mustCreate(t, s, keystore.CreateParams{Name: "live", Scopes: []string{"bots:read"}})
	_, err = s.Delete(ctx(t), live.ID)
	wantCode(t, "deleting a key that is not revoked", err, keystore.ECONFLICT)
	mustGet(t, s, live.ID)

	clock.Advance(time.Minute)
	got, err := s.Delete(keystore.WithActor(t.Context(), "alice"), k.ID)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got.ID != k.ID || got.Name != "old" {
		t.Errorf("Delete returned %s %q", got.ID, got.Name)
	}
	_, err = s.Get(ctx(t), k.ID)
	wantCode(t, "Get of a deleted key", err, keystore.ENOTFOUND)
	wantVerify(t, s, k.Secret, nil, keystore.CodeNotFound)
	_, err = s.Delete(ctx(t), k.ID)
	wantCode(t, "deleting it again", err, keystore.ENOTFOUND)
	wantIDs(t, "List after Delete", mustList(t, s, keystore.ListOptions{}), live, next)
	if n := mustCount(t, s, keystore.ListFilter{}); n != 2 {
		t.Errorf("Count after Delete = %d, want 2", n)
	}
	if nk := mustGet(t, s, next.ID); nk.RotatedFrom != nil {
		t.Errorf("the successor still points at the deleted key: rotated_from %s", *nk.RotatedFrom)
	}
	wantVerify(t, s, next.Secret, nil, keystore.CodeValid)

	// Its events stay, and one more records the deletion.
	events := mustAudit(t, s, k.ID)
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	if want := []string{keystore.ActionCreate, keystore.ActionRotate, keystore.ActionDelete}; !slices.Equal(actions, want) {
		t.Errorf("audit of the deleted key = %q, want %q", actions, want)
	}
	if last := events[len(events)-1]; last.Actor != s.recorded("alice") || last.Details["name"] != "old" {
		t.Errorf("delete event = %+v, want actor alice and the key's name", last)
	}
	_, err = s.Delete(ctx(t), "nope")
	wantCode(t, "deleting a malformed ID", err, keystore.EINVALID)
}

func testEvents(t *testing.T, s *subject, clock *Clock) {
	alice := keystore.WithActor(t.Context(), "alice")
	k1 := mustCreate(t, s, keystore.CreateParams{Name: "one", Scopes: []string{"bots:read"}})
	clock.Advance(time.Hour)
	k2 := mustCreate(t, s, keystore.CreateParams{Name: "two", Scopes: []string{"bots:read"}})
	mid := clock.Now()
	clock.Advance(time.Hour)
	if _, err := s.Disable(alice, k1.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	k3, err := s.Rotate(alice, k2.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := s.Revoke(alice, k1.ID); err != nil {
		t.Fatal(err)
	}

	all := mustAudit(t, s, "") // oldest first
	if len(all) != 5 {
		t.Fatalf("Audit() = %d events, want 5", len(all))
	}
	newest := slices.Clone(all)
	slices.Reverse(newest)
	ids := func(events []keystore.Event) []string {
		var out []string
		for _, e := range events {
			out = append(out, e.ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    keystore.EventFilter
		want []keystore.Event
	}{
		{"all, newest first", keystore.EventFilter{}, newest},
		{"limit", keystore.EventFilter{Limit: 2}, newest[:2]},
		{"offset", keystore.EventFilter{Offset: 2, Limit: 2}, newest[2:4]},
		{"offset past the end", keystore.EventFilter{Offset: 9}, nil},
		{"key", keystore.EventFilter{KeyID: k1.ID}, []keystore.Event{newest[0], newest[2], newest[4]}},
		{"key made by a rotation", keystore.EventFilter{KeyID: k3.ID}, newest[1:2]},
		{"action", keystore.EventFilter{Action: keystore.ActionCreate}, newest[3:]},
		{"since", keystore.EventFilter{Since: mid}, newest[:4]},
		{"since, within a second", keystore.EventFilter{Since: mid.Add(time.Millisecond)}, newest[:3]},
		{"since and action", keystore.EventFilter{Since: mid, Action: keystore.ActionCreate}, newest[3:4]},
	}
	for _, c := range cases {
		got, err := s.Events(ctx(t), c.f)
		if err != nil {
			t.Errorf("Events(%s): %v", c.name, err)
			continue
		}
		if !slices.Equal(ids(got), ids(c.want)) {
			t.Errorf("Events(%s) = %v, want %v", c.name, ids(got), ids(c.want))
		}
		f := c.f
		f.Offset, f.Limit = 0, 0
		wantN, _ := s.Events(ctx(t), f)
		n, err := s.CountEvents(ctx(t), c.f)
		if err != nil || n != len(wantN) {
			t.Errorf("CountEvents(%s) = %d, %v; want %d", c.name, n, err, len(wantN))
		}
	}
	for _, f := range []keystore.EventFilter{{KeyID: "k1"}, {Action: "explode"}, {Offset: -1}, {Limit: -1}} {
		_, err := s.Events(ctx(t), f)
		wantCode(t, "Events with a bad filter", err, keystore.EINVALID)
		_, err = s.CountEvents(ctx(t), f)
		if f.Offset >= 0 && f.Limit >= 0 {
			wantCode(t, "CountEvents with a bad filter", err, keystore.EINVALID)
		}
	}
}

func testListLifecycleFilters(t *testing.T, s *subject, clock *Clock) {
	now := clock.Now()
	soon := now.Add(3 * 24 * time.Hour)
	later := now.Add(30 * 24 * time.Hour)
	kSoon := mustCreate(t, s, keystore.CreateParams{Name: "soon", Scopes: []string{"bots:read"}, ExpiresAt: &soon})
	kLater := mustCreate(t, s, keystore.CreateParams{Name: "later", Scopes: []string{"bots:read"}, ExpiresAt: &later})
	kNever := mustCreate(t, s, keystore.CreateParams{Name: "never", Scopes: []string{"bots:read"}})
	kRevoked := mustCreate(t, s, keystore.CreateParams{Name: "revoked", Scopes: []string{"bots:read"}, ExpiresAt: &soon})
	if _, err := s.Revoke(ctx(t), kRevoked.ID); err != nil {
		t.Fatal(err)
	}
	within := func(d time.Duration) keystore.ListFilter {
		return keystore.ListFilter{ExpiringBefore: clock.Now().Add(d)}
	}
	wantIDs(t, "List(expiring within 14d)", mustList(t, s, keystore.ListOptions{ListFilter: within(14 * 24 * time.Hour)}), kSoon)
	wantIDs(t, "List(expiring within 60d)", mustList(t, s, keystore.ListOptions{ListFilter: within(60 * 24 * time.Hour)}), kLater, kSoon)
	if n := mustCount(t, s, within(60*24*time.Hour)); n != 2 {
		t.Errorf("Count(expiring within 60d) = %d, want 2", n)
	}
	clock.Advance(4 * 24 * time.Hour) // kSoon has expired: no longer expiring
	wantIDs(t, "List(expiring within 14d, later)", mustList(t, s, keystore.ListOptions{ListFilter: within(14 * 24 * time.Hour)}), nil...)

	wantIDs(t, "List(revocable)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{Revocable: true}}), kNever, kLater, kSoon)

	for _, k := range []*keystore.Key{kSoon, kLater, kNever, kRevoked} {
		for _, n := range []int{4, 6, len(k.ID)} {
			got := mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{IDPrefix: k.ID[:n]}})
			if !slices.ContainsFunc(got, func(g *keystore.Key) bool { return g.ID == k.ID }) {
				t.Errorf("List(id prefix %q) misses %s", k.ID[:n], k.ID)
			}
			for _, g := range got {
				if !strings.HasPrefix(g.ID, k.ID[:n]) {
					t.Errorf("List(id prefix %q) yields %s", k.ID[:n], g.ID)
				}
			}
		}
	}
	wantIDs(t, "List(id prefix of all)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{IDPrefix: "key_"}}), kRevoked, kNever, kLater, kSoon)
	wantIDs(t, "List(id prefix of none)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{IDPrefix: "kez"}}), nil...)
	for _, p := range []string{"key_%", "key_'", strings.Repeat("k", 21)} {
		_, err := s.Count(ctx(t), keystore.ListFilter{IDPrefix: p})
		wantCode(t, "Count(id prefix "+p+")", err, keystore.EINVALID)
	}
}
