package keystore

import (
	"time"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
)

// decodeRecordFast decodes the usual import record without encoding/json,
// whose reflection was most of the cost of reading a record: one JSON
// object, each field at most once under its exact name and of its own
// type, strings without escapes, nothing after the object but white
// space. It reports false for anything else, and for any value it is not
// sure of, and the caller then decodes the line with encoding/json, which
// gives the answer or the error. When it reports true, r holds what
// encoding/json would have decoded (a test and a fuzz target hold them
// equal).
func decodeRecordFast(line []byte, r *ImportRecord) bool {
	d := plainjson.NewScanner(line)
	d.Space()
	if !d.Take('{') {
		return false
	}
	d.Space()
	if d.Take('}') {
		return d.End()
	}
	var seen uint16
	for {
		name, ok := d.Name()
		if !ok {
			return false
		}
		var bit uint16
		switch string(name) {
		case "name":
			bit = 1 << 0
			r.Name, ok = d.Str()
		case "scopes":
			bit = 1 << 1
			r.Scopes, ok = readStrings(&d)
		case "environment":
			bit = 1 << 2
			r.Environment, ok = d.Str()
		case "created_at":
			bit = 1 << 3
			r.CreatedAt, ok = readTime(&d)
		case "expires_at":
			bit = 1 << 4
			r.ExpiresAt, ok = readTime(&d)
		case "metadata":
			bit = 1 << 5
			r.Metadata, ok = readStrMap(&d)
		case "key":
			bit = 1 << 6
			r.Key, ok = d.Str()
		case "key_sha256":
			bit = 1 << 7
			r.KeySHA256, ok = d.Str()
		case "hint":
			bit = 1 << 8
			r.Hint, ok = d.Str()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if more, ok := d.Next('}'); !ok || !more {
			return ok && d.End()
		}
	}
}

// readStrings reads an array of strings.
func readStrings(d *plainjson.Scanner) ([]string, bool) {
	if !d.Take('[') {
		return nil, false
	}
	out := make([]string, 0, 4)
	d.Space()
	if d.Take(']') {
		return out, true
	}
	for {
		s, ok := d.Str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if more, ok := d.Next(']'); !ok || !more {
			return out, ok
		}
	}
}

// readStrMap reads an object of strings, each name at most once.
func readStrMap(d *plainjson.Scanner) (map[string]string, bool) {
	if !d.Take('{') {
		return nil, false
	}
	out := map[string]string{}
	d.Space()
	if d.Take('}') {
		return out, true
	}
	for {
		name, ok := d.Name()
		if !ok {
			return nil, false
		}
		k := string(name)
		v, ok := d.Str()
		if !ok {
			return nil, false
		}
		if _, dup := out[k]; dup {
			return nil, false
		}
		out[k] = v
		if more, ok := d.Next('}'); !ok || !more {
			return out, ok
		}
	}
}

// readTime reads a time as encoding/json does: through time.Time's
// UnmarshalJSON, given the string with its quotes.
func readTime(d *plainjson.Scanner) (*time.Time, bool) {
	s, ok := d.Quoted()
	if !ok {
		return nil, false
	}
	t := new(time.Time)
	if t.UnmarshalJSON(s) != nil || !strictRFC3339(s[1:len(s)-1]) {
		return nil, false
	}
	return t, true
}

// strictRFC3339 holds a time that package time parsed to the checks that
// the strict decoder adds (time is looser than RFC 3339, go.dev/issue/57912):
// a two-digit hour, a period before a fraction, a zone offset in range.
func strictRFC3339(b []byte) bool {
	dec2 := func(b []byte) int { return int(b[0]-'0')*10 + int(b[1]-'0') }
	switch {
	case b[len("2006-01-02T")+1] == ':':
		return false
	case b[len("2006-01-02T15:04:05")] == ',':
		return false
	case b[len(b)-1] != 'Z':
		return dec2(b[len(b)-len("07:00"):]) < 24 && dec2(b[len(b)-len("00"):]) < 60
	}
	return true
}
