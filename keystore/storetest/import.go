package storetest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// importLine is an import record as a line of an import file. secret goes
// in key, or, with hashed, its SHA-256 in key_sha256.
func importLine(name, secret string, hashed bool, extra string) string {
	field := `"key":"` + secret + `"`
	if hashed {
		sum := keystore.HashToken(secret)
		field = `"key_sha256":"` + hex.EncodeToString(sum[:]) + `"`
	}
	return `{"name":"` + name + `","scopes":["bots:*","channels:read"],` + field + extra + `}`
}

// mustParse parses import lines as keyctl import does, at time now.
func mustParse(t *testing.T, now time.Time, lines ...string) []keystore.ImportKey {
	t.Helper()
	var keys []keystore.ImportKey
	for _, line := range lines {
		k, err := keystore.ParseImportRecord([]byte(line), now)
		if err != nil {
			t.Fatalf("ParseImportRecord(%.40s…): %v", line, err)
		}
		keys = append(keys, *k)
	}
	return keys
}

func mustImport(t *testing.T, s keystore.Store, keys []keystore.ImportKey) keystore.ImportResult {
	t.Helper()
	res, err := s.Import(ctx(t), keys)
	if err != nil {
		t.Fatalf("Import(%d keys): %v", len(keys), err)
	}
	return res
}

func wantCounts(t *testing.T, what string, res keystore.ImportResult, imported, skipped, failed int) {
	t.Helper()
	if res.Imported != imported || res.Skipped != skipped || res.Failed != failed || len(res.Errors) != failed {
		t.Errorf("%s = imported %d, skipped %d, failed %d, errors %v; want %d, %d, %d",
			what, res.Imported, res.Skipped, res.Failed, res.Errors, imported, skipped, failed)
	}
}

func newSecret(t *testing.T, env string) string {
	t.Helper()
	secret, err := keystore.NewToken(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func testImport(t *testing.T, s *subject, clock *Clock) {
	plain, hashed, bare := newSecret(t, keystore.EnvLive), newSecret(t, keystore.EnvTest), newSecret(t, keystore.EnvLive)
	created := Start.Add(-48 * time.Hour)
	expires := Start.Add(time.Hour)
	keys := mustParse(t, clock.Now(),
		importLine("plain", plain, false, `,"created_at":"`+created.Format(time.RFC3339)+`","expires_at":"`+expires.Format(time.RFC3339)+`","metadata":{"team":"a"}`),
		importLine("hashed", hashed, true, `,"environment":"test","hint":"`+keystore.Hint(hashed)+`","created_at":"`+created.Add(24*time.Hour).Format(time.RFC3339)+`"`),
		importLine("bare", bare, true, ""),
	)
	// A record without created_at is created at the import, by the store's
	// clock, not when it was read.
	clock.Advance(time.Minute)
	imported := clock.Now()
	res := mustImport(t, s, keys)
	wantCounts(t, "Import", res, 3, 0, 0)

	want := []struct {
		secret, name, env, hint string
		created                 time.Time
		expires                 *time.Time
		meta                    map[string]string
	}{
		{bare, "bare", keystore.EnvLive, "sk_live_…", imported, nil, map[string]string{}},
		{hashed, "hashed", keystore.EnvTest, keystore.Hint(hashed), created.Add(24 * time.Hour), nil, map[string]string{}},
		{plain, "plain", keystore.EnvLive, keystore.Hint(plain), created, &expires, map[string]string{"team": "a"}},
	}
	var ids []*keystore.Key
	for _, w := range want {
		// Imported keys verify with their secret, whether the import
		// carried the secret or only its hash.
		v := wantVerify(t, s, w.secret, []string{"bots:read", "bots:write", "channels:read"}, keystore.CodeValid)
		if v.Key == nil {
			continue
		}
		k := mustGet(t, s, v.Key.ID)
		if !keystore.ValidID(k.ID) || k.Name != w.name || k.Environment != w.env || k.Hint != w.hint ||
			!slices.Equal(k.Scopes, []string{"bots:read", "bots:write", "channels:read"}) ||
			!maps.Equal(k.Metadata, w.meta) || k.Status != keystore.StatusActive ||
			k.RotatedFrom != nil || k.RotatedTo != nil || k.RevokedAt != nil || k.Secret != "" {
			t.Errorf("imported %s = %+v", w.name, k)
		}
		wantTime(t, w.name+" created_at", &k.CreatedAt, &w.created)
		wantTime(t, w.name+" expires_at", k.ExpiresAt, w.expires)
		ids = append(ids, k)
	}
	// Listed newest first by their created_at.
	wantIDs(t, "List after import", mustList(t, s, keystore.ListOptions{}), ids...)
	if n := mustCount(t, s, keystore.ListFilter{}); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
	if len(ids) == 3 {
		wantIDs(t, "List(created before start)", mustList(t, s, keystore.ListOptions{ListFilter: keystore.ListFilter{CreatedBefore: Start}}), ids[1], ids[2])
	}

	// An imported expiry works as any other.
	clock.Advance(time.Hour)
	wantVerify(t, s, plain, nil, keystore.CodeExpired)
	wantVerify(t, s, hashed, nil, keystore.CodeValid)
}

func testImportDuplicates(t *testing.T, s *subject, clock *Clock) {
	existing := mustCreate(t, s, keystore.CreateParams{Name: "existing", Scopes: []string{"admin"}})
	a, b := newSecret(t, keystore.EnvLive), newSecret(t, keystore.EnvLive)
	keys := mustParse(t, clock.Now(),
		importLine("a", a, false, ""),
		importLine("a again", a, true, ""), // the same key, by its hash
		importLine("existing", existing.Secret, false, ""),
		importLine("b", b, true, ""),
	)
	wantCounts(t, "Import", mustImport(t, s, keys), 2, 2, 0)
	wantCounts(t, "Import again", mustImport(t, s, keys), 0, 4, 0)

	if n := mustCount(t, s, keystore.ListFilter{}); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
	// The first of two equal keys wins; an existing key is left alone.
	if v := wantVerify(t, s, a, nil, keystore.CodeValid); v.Key != nil && v.Key.Name != "a" {
		t.Errorf("key a is named %q, want a", v.Key.Name)
	}
	if v := wantVerify(t, s, existing.Secret, nil, keystore.CodeValid); v.Key == nil || v.Key.ID != existing.ID || v.Key.Name != "existing" {
		t.Errorf("the existing key changed: %+v", v.Key)
	}
	wantVerify(t, s, b, nil, keystore.CodeValid)
	if n := countActions(mustAudit(t, s, ""), keystore.ActionImport); n != 2 {
		t.Errorf("%d import events, want 2 (none for skipped keys)", n)
	}
}

func testImportAudit(t *testing.T, s *subject, clock *Clock) {
	plain, hashed := newSecret(t, keystore.EnvTest), newSecret(t, keystore.EnvLive)
	keys := mustParse(t, clock.Now(),
		importLine("plain", plain, false, ""),
		importLine("hashed", hashed, true, ""),
	)
	clock.Advance(time.Minute)
	at := clock.Now()
	res, err := s.Import(keystore.WithActor(t.Context(), "alice"), keys)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "Import", res, 2, 0, 0)
	plainKey := wantVerify(t, s, plain, nil, keystore.CodeValid).Key
	hashedKey := wantVerify(t, s, hashed, nil, keystore.CodeValid).Key
	if plainKey == nil || hashedKey == nil {
		t.FailNow()
	}

	events := mustAudit(t, s, "")
	if len(events) != 2 {
		t.Fatalf("Audit() = %d events, want 2: %+v", len(events), events)
	}
	for i, w := range []struct {
		key     *keystore.Key
		sources []string
	}{
		// The remote store sends only hashes: its service records key_sha256.
		{plainKey, []string{keystore.ImportSourceKey, keystore.ImportSourceSHA256}},
		{hashedKey, []string{keystore.ImportSourceSHA256}},
	} {
		e := events[i]
		if e.Action != keystore.ActionImport || e.KeyID != w.key.ID || e.Actor != s.recorded("alice") || !e.At.Equal(at) ||
			!strings.HasPrefix(e.ID, "evt_") {
			t.Errorf("event %d = %s %v %q %q %s, want an import of %s by %q at %v", i, e.ID, e.At, e.Actor, e.Action, e.KeyID, w.key.ID, s.recorded("alice"), at)
		}
		d := e.Details
		if d["name"] != w.key.Name || d["environment"] != w.key.Environment || !sameStrings(d["scopes"], w.key.Scopes) ||
			!slices.Contains(w.sources, fmt.Sprint(d["source"])) {
			t.Errorf("event %d details = %v, want name, environment, scopes and source (%v) of %s", i, d, w.sources, w.key.ID)
		}
		if got := mustAudit(t, s, w.key.ID); len(got) != 1 || got[0].ID != e.ID {
			t.Errorf("Audit(%s) = %+v, want its import event", w.key.ID, got)
		}
	}

	js, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{plain, hashed} {
		sum := keystore.HashToken(secret)
		random := secret[len("sk_live_"):]
		if strings.Contains(string(js), random[:16]) || strings.Contains(string(js), random[16:]) ||
			strings.Contains(strings.ToLower(string(js)), hex.EncodeToString(sum[:])[:16]) {
			t.Errorf("the audit log holds (part of) a secret or its hash: %s", js)
		}
	}
}

func testImportRefused(t *testing.T, s *subject, clock *Clock) {
	good := mustParse(t, clock.Now(),
		importLine("good", newSecret(t, keystore.EnvLive), false, ""),
		importLine("also good", newSecret(t, keystore.EnvLive), true, ""),
	)
	secret := newSecret(t, keystore.EnvLive)
	base := func(name string) keystore.ImportKey {
		return keystore.ImportKey{
			Params: keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}},
			Hash:   keystore.HashToken(newSecret(t, keystore.EnvLive)),
		}
	}
	pattern := base("pattern")
	pattern.Params.Scopes = []string{"bots:*"}
	leaky := base("leaky")
	leaky.Hint = secret // a hint must never hold a secret
	future := base("future")
	future.CreatedAt = clock.Now().Add(time.Hour)
	expired := base("expired")
	expired.Params.ExpiresAt = ptr(clock.Now())
	unnamed := base("")

	keys := []keystore.ImportKey{good[0], pattern, leaky, future, expired, unnamed, good[1]}
	res := mustImport(t, s, keys)
	wantCounts(t, "Import", res, 2, 0, 5)
	wants := []struct {
		line int
		msg  string
	}{{2, "unknown scope"}, {3, "hint"}, {4, "created_at is in the future"}, {5, "not in the future"}, {6, "name"}}
	for i, w := range wants {
		if i >= len(res.Errors) {
			break
		}
		e := res.Errors[i]
		if e.Line != w.line || !strings.Contains(e.Message, w.msg) {
			t.Errorf("error %d = line %d %q, want line %d with %q", i, e.Line, e.Message, w.line, w.msg)
		}
		if strings.Contains(e.Message, secret[8:20]) {
			t.Errorf("error %q shows the secret", e.Message)
		}
	}
	if n := mustCount(t, s, keystore.ListFilter{}); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}

	// A batch is at most MaxImportBatch keys; a larger one stores nothing.
	large := make([]keystore.ImportKey, keystore.MaxImportBatch+1)
	for i := range large {
		large[i] = base(fmt.Sprint("k", i))
	}
	_, err := s.Import(ctx(t), large)
	wantCode(t, "Import of a batch too large", err, keystore.EINVALID)
	res = mustImport(t, s, nil)
	wantCounts(t, "Import of nothing", res, 0, 0, 0)
	if n := mustCount(t, s, keystore.ListFilter{}); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
	if n := len(mustAudit(t, s, "")); n != 2 {
		t.Errorf("%d audit events, want 2", n)
	}
}

// testImportLarge imports a full batch, which the remote store sends in
// several requests and PostgreSQL writes in several transactions:
// positions in errors, duplicates across the requests and the order of the
// keys must come out as for one transaction.
func testImportLarge(t *testing.T, s *subject, clock *Clock) {
	keys := make([]keystore.ImportKey, keystore.MaxImportBatch)
	for i := range keys {
		keys[i] = keystore.ImportKey{
			Params: keystore.CreateParams{Name: fmt.Sprint("k", i+1), Scopes: []string{"bots:read"}},
			Hash:   keystore.HashToken(newSecret(t, keystore.EnvLive)),
			Source: keystore.ImportSourceSHA256,
		}
	}
	keys[1500].Hash = keys[10].Hash                                       // a duplicate in a later request
	keys[9000].Hash = keys[100].Hash                                      // and in the last part of a batch
	keys[1199].Params.Scopes = []string{"nope"}                           // refused: position 1200
	keys[len(keys)-1].Params.ExpiresAt = ptr(clock.Now().Add(-time.Hour)) // refused: the last
	res := mustImport(t, s, keys)
	wantCounts(t, "Import", res, len(keys)-4, 2, 2)
	if len(res.Errors) == 2 && (res.Errors[0].Line != 1200 || res.Errors[1].Line != len(keys)) {
		t.Errorf("errors = %+v, want lines 1200 and %d", res.Errors, len(keys))
	}
	// Created in the same second, the keys list newest first: the last
	// of the batch first.
	var want []string
	for i := len(keys) - 1; i >= 0; i-- {
		if i != 1500 && i != 9000 && i != 1199 && i != len(keys)-1 {
			want = append(want, keys[i].Params.Name)
		}
	}
	var got []string
	for _, k := range mustList(t, s, keystore.ListOptions{}) {
		got = append(got, k.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List gave %d keys, not in the order of the batch (first %q, want %q)", len(got), got[:min(3, len(got))], want[:3])
	}
	wantCounts(t, "Import again", mustImport(t, s, keys), 0, len(keys)-2, 2)
}

// testImportSession imports several batches through one session, when the
// store offers them (keystore.BatchImporter): each batch is a transaction
// of its own, and a key imported by one is skipped by the next. A key
// that failed to verify before the import verifies after it, even through
// a cache.
func testImportSession(t *testing.T, s *subject, clock *Clock) {
	bi, ok := s.Store.(keystore.BatchImporter)
	if !ok {
		t.Skip("the store imports one batch at a time")
	}
	a, b, c := newSecret(t, keystore.EnvLive), newSecret(t, keystore.EnvLive), newSecret(t, keystore.EnvTest)
	wantVerify(t, s, c, nil, keystore.CodeNotFound)
	im, err := bi.BeginImport(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	batches := [][]keystore.ImportKey{
		mustParse(t, clock.Now(), importLine("a", a, false, ""), importLine("b", b, true, "")),
		mustParse(t, clock.Now(), importLine("a again", a, false, ""), importLine("c", c, false, "")),
	}
	refused := batches[1][0]
	refused.Params.Scopes = []string{"nope"}
	batches[1] = append(batches[1], refused)
	for i, want := range [][3]int{{2, 0, 0}, {1, 1, 1}} {
		res, err := im.Import(ctx(t), batches[i])
		if err != nil {
			t.Fatalf("batch %d: %v", i+1, err)
		}
		wantCounts(t, fmt.Sprint("batch ", i+1), res, want[0], want[1], want[2])
		if i == 1 && len(res.Errors) == 1 && res.Errors[0].Line != 3 {
			t.Errorf("batch 2 error at line %d, want 3", res.Errors[0].Line)
		}
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, s, keystore.ListFilter{}); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
	if n := countActions(mustAudit(t, s, ""), keystore.ActionImport); n != 3 {
		t.Errorf("%d import events, want 3", n)
	}
	if v := wantVerify(t, s, a, nil, keystore.CodeValid); v.Key != nil && v.Key.Name != "a" {
		t.Errorf("key a is named %q, want a", v.Key.Name)
	}
	wantVerify(t, s, c, nil, keystore.CodeValid)
}
