package keystore

import (
	"reflect"
	"strings"
	"testing"
)

// sameAsJSON checks decodeRecordFast against encoding/json on line: when
// the fast path takes a line, encoding/json must accept it and decode the
// same record. It returns whether the fast path took the line.
func sameAsJSON(t *testing.T, line []byte) bool {
	t.Helper()
	var fast, ref ImportRecord
	if !decodeRecordFast(line, &fast) {
		return false
	}
	if err := decodeRecordJSON(line, &ref); err != nil {
		t.Fatalf("fast path took %q, which encoding/json refuses: %v", line, err)
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("line %q:\nfast path     %+v\nencoding/json %+v", line, fast, ref)
	}
	return true
}

var fastSeeds = []struct {
	line string
	fast bool // taken by the fast path, not passed on to encoding/json
}{
	{`{"name":"bench key 1","scopes":["bots:read","bots:write","conversations:read"],"key":"sk_live_abc"}`, true},
	{` { "name" : "x" , "scopes" : [ ] , "key_sha256" : "ab" , "hint" : "sk_live_…" } ` + "\t\r\n", true},
	{`{"name":"Ünïcode ✓","scopes":["admin"],"environment":"test","metadata":{"team":"a","k":""},"key":"k"}`, true},
	{`{"name":"t","scopes":["admin"],"created_at":"2025-06-01T00:00:00Z","expires_at":"2027-01-01T12:30:00.5+02:00"}`, true},
	{`{"name":"m","metadata":{}}`, true},
	{`{}`, true},
	{`{"name":"","scopes":[""],"key":""}`, true},
	// Passed on to encoding/json, which decides.
	{`{"Name":"case folded","scopes":["admin"]}`, false},
	{`{"name":"a","name":"twice"}`, false},
	{`{"name":"esc\"aped","scopes":["admin"]}`, false},
	{`{"name":"\u00e9"}`, false},
	{"{\"name\":\"bad utf-8 \xff\"}", false},
	{"{\"name\":\"control \x01\"}", false},
	{`{"name":null}`, false},
	{`{"scopes":"admin"}`, false},
	{`{"scopes":["admin",1]}`, false},
	{`{"metadata":{"a":"b","a":"c"}}`, false},
	{`{"metadata":{"a":1}}`, false},
	{`{"created_at":"yesterday"}`, false},
	{`{"created_at":"2025-06-01"}`, false},
	{`{"expires_at":null}`, false},
	{`{"colour":"red"}`, false},
	{`{"name":"x"} {}`, false},
	{`{"name":"x"}}`, false},
	{`{"name":"x",}`, false},
	{`{"name":"x"`, false},
	{`[]`, false},
	{``, false},
	{`{"name":"x" "scopes":[]}`, false},
}

func TestDecodeRecordFast(t *testing.T) {
	for _, s := range fastSeeds {
		if got := sameAsJSON(t, []byte(s.line)); got != s.fast {
			t.Errorf("fast path took %q: %t, want %t", s.line, got, s.fast)
		}
	}
	// A wrong value after a good one leaves nothing behind: the caller
	// decodes the line again from a zero record.
	if _, err := DecodeImportRecord([]byte(`{"name":"x","key_sha256":"` + strings.Repeat("ab", 32) + `","scopes":"admin"}`)); err == nil ||
		!strings.Contains(err.Error(), "field scopes must be a list of strings") {
		t.Errorf("DecodeImportRecord = %v, want the wrong type of scopes", err)
	}
}

func FuzzDecodeRecordFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		sameAsJSON(t, line)
	})
}

func TestExpandNamesSameAsPatterns(t *testing.T) {
	for _, args := range [][]string{
		{"admin"},
		{"bots:write", "bots:read"},
		{"channels:read", "channels:read", "agent-loops:write", "bots:read"},
		AllScopes,
	} {
		fast, ok := expandNames(args)
		ref, err := expandPatterns(args)
		if !ok || err != nil || !reflect.DeepEqual(fast, ref) {
			t.Errorf("expandNames(%q) = %q, %t; expandPatterns = %q, %v", args, fast, ok, ref, err)
		}
	}
	for _, args := range [][]string{nil, {}, {"bots:*"}, {"bots:read, bots:write"}, {" admin"}, {"nope"}} {
		if _, ok := expandNames(args); ok {
			t.Errorf("expandNames(%q) took a pattern, a list or an unknown scope", args)
		}
	}
}
