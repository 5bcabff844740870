package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// testExportRestore moves a store's keys and audit log into a second, empty
// store of the same kind, when the store can (keystore.Exporter and
// keystore.Restorer): every key lists the same, in the same order, the
// audit log is the same, the secrets verify alike, and a second restore
// skips everything.
func testExportRestore(t *testing.T, s *subject, clock *Clock) {
	ex, ok := s.Store.(keystore.Exporter)
	if !ok {
		t.Skip("the store does not export")
	}
	if _, ok := s.Store.(keystore.Restorer); !ok {
		t.Skip("the store does not restore")
	}
	alice := keystore.WithActor(t.Context(), "alice")
	expires := clock.Now().Add(48 * time.Hour)
	a, err := s.Create(alice, keystore.CreateParams{Name: "a", Scopes: []string{"bots:read", "admin"},
		ExpiresAt: &expires, Metadata: map[string]string{"team": "core", "ticket": "OPS-1"}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	b := mustCreate(t, s, keystore.CreateParams{Name: "b", Scopes: []string{"channels:write"}, Environment: keystore.EnvTest})
	c := mustCreate(t, s, keystore.CreateParams{Name: "c", Scopes: []string{"bots:read"}}) // same second as b
	clock.Advance(time.Minute)
	b2, err := s.Rotate(alice, b.ID, keystore.RotateOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(alice, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Disable(alice, b2.ID); err != nil { // disabled_at goes too
		t.Fatal(err)
	}
	wantVerify(t, s, a.Secret, []string{"bots:read"}, keystore.CodeValid) // a last use and a scope use
	hashed := newSecret(t, keystore.EnvLive)
	mustImport(t, s, mustParse(t, clock.Now(), importLine("hashed", hashed, true, "")))
	clock.Advance(time.Minute)

	var keys []keystore.ExportedKey
	for k, err := range ex.ExportKeys(t.Context()) {
		if err != nil {
			t.Fatalf("ExportKeys: %v", err)
		}
		keys = append(keys, *k)
	}
	if len(keys) != 5 {
		t.Fatalf("exported %d keys, want 5", len(keys))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i].CreatedAt.Before(keys[i-1].CreatedAt) {
			t.Errorf("export not oldest first: %s before %s", keys[i-1].ID, keys[i].ID)
		}
	}
	for _, k := range keys {
		if want := keystore.HashToken(map[string]string{a.ID: a.Secret, b.ID: b.Secret, c.ID: c.Secret, b2.ID: b2.Secret}[k.ID]); k.Name != "hashed" && k.Hash() != want {
			t.Errorf("key %s: exported hash is not the SHA-256 of its secret", k.ID)
		}
	}
	events := mustAudit(t, s, "")

	dst := s.another()
	re := dst.(keystore.Restorer)
	// Restoring in two batches: links may name a key of a later batch.
	for _, batch := range [][]keystore.ExportedKey{keys[:2], keys[2:]} {
		if _, err := re.RestoreKeys(t.Context(), batch); err != nil {
			t.Fatalf("RestoreKeys: %v", err)
		}
	}
	if err := re.RestoreLinks(t.Context(), keys); err != nil {
		t.Fatalf("RestoreLinks: %v", err)
	}
	if res, err := re.RestoreEvents(t.Context(), events); err != nil || res.Restored != len(events) {
		t.Fatalf("RestoreEvents = %+v, %v; want %d restored", res, err, len(events))
	}

	listJSON := func(st keystore.Store) string {
		var all []*keystore.Key
		for k, err := range st.List(t.Context(), keystore.ListOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, k)
		}
		b, _ := json.Marshal(all)
		return string(b)
	}
	if got, want := listJSON(dst), listJSON(s); got != want {
		t.Errorf("keys after the restore:\n%s\nwant\n%s", got, want)
	}
	gotEvents, err := dst.Audit(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := fmt.Sprint(jsonOf(gotEvents)), fmt.Sprint(jsonOf(events)); g != w {
		t.Errorf("audit after the restore:\n%s\nwant\n%s", g, w)
	}
	for secret, code := range map[string]string{a.Secret: keystore.CodeValid, b.Secret: keystore.CodeValid,
		b2.Secret: keystore.CodeDisabled, c.Secret: keystore.CodeRevoked, hashed: keystore.CodeValid} {
		if v, err := dst.Verify(t.Context(), secret, nil); err != nil || v.Code != code {
			t.Errorf("Verify on the restored store = %+v, %v; want %s", v, err, code)
		}
	}
	if _, err := dst.Rotate(t.Context(), b.ID, keystore.RotateOptions{}); keystore.ErrorCode(err) != keystore.ECONFLICT {
		t.Errorf("rotating the restored rotated key: %v, want a conflict", err)
	}

	if res, err := re.RestoreKeys(t.Context(), keys); err != nil || res.Skipped != len(keys) || res.Restored != 0 {
		t.Errorf("RestoreKeys again = %+v, %v; want all skipped", res, err)
	}
	if res, err := re.RestoreEvents(t.Context(), events); err != nil || res.Skipped != len(events) {
		t.Errorf("RestoreEvents again = %+v, %v; want all skipped", res, err)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
