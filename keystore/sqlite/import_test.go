package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

func importKey(t *testing.T, name string) keystore.ImportKey {
	t.Helper()
	secret, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keystore.ImportKey{
		Params: keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}},
		Hash:   keystore.HashToken(secret), Hint: keystore.Hint(secret), Source: keystore.ImportSourceKey,
	}
}

// A batch is written in its own order, with IDs drawn for it in sorted
// order: failures and duplicates keep their positions, and keys and events
// come out of List and Audit in the order of the batch.
func TestImportBatchOrder(t *testing.T) {
	ctx := context.Background()
	s := openPlain(t, filepath.Join(t.TempDir(), "keys.db"), nil)
	existing := mustCreate(t, s, keystore.CreateParams{Name: "existing"})

	var keys []keystore.ImportKey
	for i := range 40 {
		keys = append(keys, importKey(t, fmt.Sprint("k", i+1)))
	}
	keys[4].Params.Scopes = []string{"nope"}            // refused: line 5
	keys[9].Hash = keys[2].Hash                         // the same key again: skipped
	keys[17].Hash = keystore.HashToken(existing.Secret) // held already: skipped
	keys[30].Params.Name = ""                           // refused: line 31
	res, err := s.Import(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 36 || res.Skipped != 2 || res.Failed != 2 || len(res.Errors) != 2 ||
		res.Errors[0].Line != 5 || !strings.Contains(res.Errors[0].Message, "unknown scope") ||
		res.Errors[1].Line != 31 || !strings.Contains(res.Errors[1].Message, "name") {
		t.Fatalf("Import = %+v", res)
	}

	var want []string // names in the order of the batch
	for i, k := range keys {
		if i != 4 && i != 9 && i != 17 && i != 30 {
			want = append(want, k.Params.Name)
		}
	}
	var names, ids []string
	for k, err := range s.List(ctx, keystore.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if k.ID != existing.ID {
			names, ids = append(names, k.Name), append(ids, k.ID)
		}
	}
	slices.Reverse(names) // List is newest first: ties by insertion, last first
	slices.Reverse(ids)
	if !slices.Equal(names, want) {
		t.Errorf("listed %q, want the order of the batch %q", names, want)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("IDs %q are not in sorted order", ids)
	}
	for _, id := range ids {
		if !keystore.ValidID(id) || id[:4+batchIDShared] != ids[0][:4+batchIDShared] || id == existing.ID {
			t.Errorf("ID %s: want a valid ID, sharing %d characters with the batch's first %s", id, batchIDShared, ids[0])
		}
	}
	if k := verifyCode(t, s, existing.Secret).Key; k == nil || k.ID != existing.ID || k.Name != "existing" {
		t.Errorf("the existing key changed: %+v", k)
	}

	events, err := s.Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	events = events[1:] // the create
	if len(events) != len(ids) {
		t.Fatalf("%d events, want %d", len(events), len(ids))
	}
	var eventIDs []string
	for i, e := range events {
		if e.Action != keystore.ActionImport || e.KeyID != ids[i] || e.Details["name"] != want[i] {
			t.Errorf("event %d = %+v, want the import of %s (%s)", i, e, ids[i], want[i])
		}
		eventIDs = append(eventIDs, e.ID)
	}
	if !slices.IsSorted(eventIDs) || !strings.HasPrefix(eventIDs[0], "evt_") {
		t.Errorf("event IDs %q are not evt_ IDs in sorted order", eventIDs)
	}
}

// A session keeps one connection, with a large cache, for many batches,
// and gives the connection's own cache size back at Close.
func TestImportSession(t *testing.T) {
	ctx := context.Background()
	s := openPlain(t, filepath.Join(t.TempDir(), "keys.db"), nil)
	s.db.SetMaxOpenConns(1) // so that the session's connection is the one asked after
	cacheSize := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		var n int
		if err := q.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := cacheSize(s.db)

	is, err := s.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	im := is.(*importSession)
	if got := cacheSize(im.conn); got != -importCacheKiB {
		t.Errorf("cache_size in the session = %d, want %d", got, -importCacheKiB)
	}
	a, b := importKey(t, "a"), importKey(t, "b")
	for i, batch := range [][]keystore.ImportKey{{a}, {b, a}} {
		res, err := is.Import(ctx, batch)
		if err != nil || res.Imported != 1 || res.Skipped != i {
			t.Errorf("batch %d: Import = %+v, %v; want 1 imported, %d skipped", i+1, res, err, i)
		}
	}
	if err := is.Close(); err != nil {
		t.Fatal(err)
	}
	if got := cacheSize(s.db); got != before {
		t.Errorf("cache_size after the session = %d, want %d again", got, before)
	}
	if _, err := is.Import(ctx, []keystore.ImportKey{importKey(t, "c")}); err == nil {
		t.Error("Import after Close succeeded")
	}
	if err := is.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n, err := s.Count(ctx, keystore.ListFilter{}); err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
}

// The details and metadata written by hand are the bytes json.Marshal
// wrote.
func TestImportJSONAsMarshal(t *testing.T) {
	for _, k := range []keystore.ImportKey{
		{Params: keystore.CreateParams{Name: `<b>"x" & y</b>` + "\u2028\t\xff", Environment: "live", Scopes: []string{"bots:read", "admin"},
			Metadata: map[string]string{"z": "ünï", "a": "<&>", "": "\"\\"}}, Source: keystore.ImportSourceKey},
		{Params: keystore.CreateParams{Name: "n", Environment: "test"}, Source: ""},
	} {
		want, err := json.Marshal(importDetails{k.Params.Name, k.Params.Environment, k.Params.Scopes,
			map[string]string{"": "key_sha256", "key": "key"}[k.Source]})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendImportDetails(nil, &k); string(got) != string(want) {
			t.Errorf("details\n%s, want\n%s", got, want)
		}
		if len(k.Params.Metadata) == 0 {
			continue
		}
		want, err = json.Marshal(k.Params.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMetadata(nil, k.Params.Metadata); string(got) != string(want) {
			t.Errorf("metadata\n%s, want\n%s", got, want)
		}
	}
}

// importDetails is the reference shape of an import event's details.
type importDetails struct {
	Name        string   `json:"name"`
	Environment string   `json:"environment"`
	Scopes      []string `json:"scopes"`
	Source      string   `json:"source"`
}
