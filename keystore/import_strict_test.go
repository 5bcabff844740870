package keystore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// checkRecord holds the strict parser of import records to encoding/json:
// a line it reads is one that encoding/json reads to the same record; it
// only refuses more (other letter cases, repeated members, unknown
// members, invalid UTF-8, a time that RFC 3339 does not allow).
func checkRecord(t *testing.T, line []byte) bool {
	t.Helper()
	var strict ImportRecord
	if err := DecodeStrict(line, &strict); err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("line %q: error of more than one line: %v", line, err)
		}
		return false
	}
	var loose ImportRecord
	if err := json.Unmarshal(line, &loose); err != nil {
		t.Fatalf("strict parser read %q, which encoding/json refuses: %v", line, err)
	}
	if !reflect.DeepEqual(strict, loose) {
		t.Fatalf("line %q:\nstrict        %+v\nencoding/json %+v", line, strict, loose)
	}
	return true
}

var recordSeeds = []string{
	`{"name":"bench key 1","scopes":["bots:read","bots:write","conversations:read"],"key":"sk_live_abc"}`,
	` { "name" : "x" , "scopes" : [ ] , "key_sha256" : "ab" , "hint" : "sk_live_…" } ` + "\t\r\n",
	`{"name":"Ünïcode ✓","scopes":["admin"],"environment":"test","metadata":{"team":"a","k":""},"key":"k"}`,
	`{"name":"t","scopes":["admin"],"created_at":"2025-06-01T00:00:00Z","expires_at":"2027-01-01T12:30:00.5+02:00"}`,
	`{"name":"m","metadata":{}}`,
	`{}`,
	`{"name":"","scopes":[""],"key":""}`,
	// Escapes and nulls, which it reads, and what it refuses.
	`{"Name":"case folded","scopes":["admin"]}`,
	`{"name":"a","name":"twice"}`,
	`{"name":"esc\"aped","scopes":["admin"]}`,
	`{"name":"\u00e9"}`,
	"{\"name\":\"bad utf-8 \xff\"}",
	"{\"name\":\"control \x01\"}",
	`{"name":null}`,
	`{"scopes":"admin"}`,
	`{"scopes":["admin",1]}`,
	`{"metadata":{"a":"b","a":"c"}}`,
	`{"metadata":{"a":1}}`,
	`{"created_at":"yesterday"}`,
	`{"created_at":"2025-06-01"}`,
	`{"expires_at":null}`,
	`{"colour":"red"}`,
	`{"name":"x"} {}`,
	`{"name":"x"}}`,
	`{"name":"x",}`,
	`{"name":"x"`,
	`[]`,
	``,
	`{"name":"x" "scopes":[]}`,
}

func TestDecodeRecordStrict(t *testing.T) {
	read := 0
	for _, s := range recordSeeds {
		if checkRecord(t, []byte(s)) {
			read++
		}
	}
	if read < 7 {
		t.Errorf("the strict parser read %d of the usual records, want 7", read)
	}
	if _, err := DecodeImportRecord([]byte(`{"name":"x","key_sha256":"` + strings.Repeat("ab", 32) + `","scopes":"admin"}`)); err == nil ||
		!strings.Contains(err.Error(), "field scopes must be a list of strings") {
		t.Errorf("DecodeImportRecord = %v, want the wrong type of scopes", err)
	}
}

func FuzzDecodeRecordStrict(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkRecord(t, line)
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
