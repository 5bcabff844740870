package keystore_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// exportOf writes store's export, as keyctl export does: the header, every
// key, every event (oldest first).
func exportOf(t *testing.T, s *sqlite.Store) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.Encode(keystore.ExportHeader{Type: keystore.ExportTypeHeader, Format: keystore.ExportFormat, Version: keystore.ExportVersion, ExportedAt: time.Now().UTC()})
	for k, err := range s.ExportKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		enc.Encode(k)
	}
	events, err := s.Audit(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		enc.Encode(keystore.ExportedEvent{Type: keystore.ExportTypeEvent, Event: e})
	}
	return b.Bytes()
}

func openSQLite(t *testing.T, name string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), name), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRestoreExport restores an export in batches of two: keys, then the
// rotation links between keys of different batches, then the events; a
// second restore skips everything.
func TestRestoreExport(t *testing.T) {
	ctx := context.Background()
	a := openSQLite(t, "a.db")
	var first *keystore.Key
	for _, name := range []string{"one", "two", "three"} {
		k, err := a.Create(ctx, keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}})
		if err != nil {
			t.Fatal(err)
		}
		first = cmp.Or(first, k)
	}
	// The first key's successor is restored in the second batch.
	if _, err := a.Rotate(ctx, first.ID, keystore.RotateOptions{Grace: time.Hour}); err != nil {
		t.Fatal(err)
	}
	export := exportOf(t, a)

	checked, err := keystore.CheckExport(bytes.NewReader(export), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer checked.Close()
	if checked.Lines() != 4+4 {
		t.Errorf("Lines = %d, want 8 (4 keys, 4 events)", checked.Lines())
	}
	b := openSQLite(t, "b.db")
	var progress []int
	sum, err := checked.Restore(ctx, b, 2, func(done int, _ keystore.RestoreCounts) { progress = append(progress, done) })
	if err != nil {
		t.Fatal(err)
	}
	if want := (keystore.RestoreCounts{Keys: 4, Events: 4}); sum != want {
		t.Errorf("Restore = %+v, want %+v", sum, want)
	}
	if !slices.Equal(progress, []int{2, 4, 6, 8}) {
		t.Errorf("progress = %v, want after each batch", progress)
	}
	if got, want := exportOf(t, b), export; !bytes.Equal(afterHeader(got), afterHeader(want)) {
		t.Errorf("the restored store exports\n%s\nwant\n%s", afterHeader(got), afterHeader(want))
	}

	checked, err = keystore.CheckExport(bytes.NewReader(export), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer checked.Close()
	if sum, err := checked.Restore(ctx, b, 100, nil); err != nil || sum != (keystore.RestoreCounts{KeysSkipped: 4, EventsSkipped: 4}) {
		t.Errorf("Restore again = %+v, %v; want everything skipped", sum, err)
	}
}

func afterHeader(export []byte) []byte {
	_, rest, _ := bytes.Cut(export, []byte("\n"))
	return rest
}

// TestCheckExportBadLine: the first bad line stops the check, by its
// number, and what is wrong is said without the line's values.
func TestCheckExportBadLine(t *testing.T) {
	header := `{"type":"header","format":"keyctl-export","version":1,"exported_at":"2026-01-01T00:00:00Z"}`
	secret := "sk_live_" + strings.Repeat("Ab3", 12) + "Ab"
	for _, tc := range []struct{ line, want string }{
		{`not json`, "not a JSON line of an export"},
		{`{"type":"secret"}`, `unknown line type "secret" in an export`},
		{`{"type":"key","type":"event"}`, `malformed JSON: member "type" given twice`},
		{`{"type":"key","id":"key_AAAAAAAAAAAAAAAA","name":"a","name":"b"}`, `not a key of an export: malformed JSON: member "name" given twice`},
		{`{"type":"key","NAME":"a"}`, `not a key of an export: unknown field "NAME"`},
		{`{"type":"key","` + secret + `":1}`, "not a key of an export: unknown field"},
		{`{"type":"event","id":"evt_x","at":"` + secret + `"}`, "not an event of an export"},
	} {
		in := header + "\n\n" + tc.line + "\n"
		_, err := keystore.CheckExport(strings.NewReader(in), nil)
		var le *keystore.ImportLineError
		if !errors.As(err, &le) || le.Line != 3 || !strings.Contains(le.Err.Error(), tc.want) {
			t.Errorf("CheckExport(%s) = %v, want line 3: %s", tc.line, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[8:20]) {
			t.Errorf("CheckExport(%s) repeats the secret: %v", tc.line, err)
		}
	}
}

// FuzzDecodeExportLine: any line is a key, an event or an error; what is
// accepted is valid, and encodes to a line that decodes to the same.
func FuzzDecodeExportLine(f *testing.F) {
	f.Add([]byte(`{"type":"key","id":"key_AAAAAAAAAAAAAAAA","name":"a","environment":"live","scopes":["bots:read"],"hint":"sk_live_AAAA…AAAA","status":"active","created_at":"2026-01-01T00:00:00Z","expires_at":null,"revoked_at":null,"last_used_at":null,"rotated_from":null,"rotated_to":null,"metadata":{},"key_sha256":"` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`{"type":"event","id":"evt_AAAAAAAAAAAAAAAA","at":"2026-01-01T00:00:00Z","actor":"cli","action":"create","key_id":"key_AAAAAAAAAAAAAAAA","details":{"name":"a"}}`))
	f.Add([]byte(`{"type":"key","name":"a","name":"b"}`))
	f.Add([]byte(`{"type":"event","Type":"key"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		k, e, err := keystore.DecodeExportLine(line)
		if err != nil {
			if k != nil || e != nil {
				t.Fatalf("an error and a value: %v", err)
			}
			return
		}
		if (k == nil) == (e == nil) {
			t.Fatalf("want one of a key and an event, got %v and %v", k, e)
		}
		var v any = k
		if e != nil {
			v = e
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		k2, e2, err := keystore.DecodeExportLine(again)
		if err != nil {
			t.Fatalf("%s decodes, its encoding %s does not: %v", line, again, err)
		}
		if k != nil && (k2 == nil || k2.ID != k.ID || k2.KeySHA256 != k.KeySHA256) || e != nil && (e2 == nil || e2.ID != e.ID) {
			t.Fatalf("%s and its encoding %s decode differently", line, again)
		}
	})
}
