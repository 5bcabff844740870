package keystore

import (
	"time"
	"unicode/utf8"
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
	d := fastDecoder{b: line}
	d.space()
	if !d.take('{') {
		return false
	}
	d.space()
	if d.take('}') {
		return d.end()
	}
	var seen uint16
	for {
		name, ok := d.str()
		if !ok {
			return false
		}
		d.space()
		if !d.take(':') {
			return false
		}
		d.space()
		var bit uint16
		switch name {
		case "name":
			bit = 1 << 0
			r.Name, ok = d.str()
		case "scopes":
			bit = 1 << 1
			r.Scopes, ok = d.strings()
		case "environment":
			bit = 1 << 2
			r.Environment, ok = d.str()
		case "created_at":
			bit = 1 << 3
			r.CreatedAt, ok = d.time()
		case "expires_at":
			bit = 1 << 4
			r.ExpiresAt, ok = d.time()
		case "metadata":
			bit = 1 << 5
			r.Metadata, ok = d.strMap()
		case "key":
			bit = 1 << 6
			r.Key, ok = d.str()
		case "key_sha256":
			bit = 1 << 7
			r.KeySHA256, ok = d.str()
		case "hint":
			bit = 1 << 8
			r.Hint, ok = d.str()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		d.space()
		if d.take(',') {
			d.space()
			continue
		}
		if d.take('}') {
			return d.end()
		}
		return false
	}
}

type fastDecoder struct {
	b []byte
	i int
}

// space skips JSON white space.
func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) take(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *fastDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// raw reads a string that encoding/json would keep byte for byte: no
// escape, no control character, valid UTF-8. It returns it with its
// quotes.
func (d *fastDecoder) raw() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	ascii := true
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[d.i : j+1]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			d.i = j + 1
			return s, true
		case c == '\\' || c < ' ':
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (d *fastDecoder) str() (string, bool) {
	s, ok := d.raw()
	if !ok {
		return "", false
	}
	return string(s[1 : len(s)-1]), true
}

func (d *fastDecoder) strings() ([]string, bool) {
	if !d.take('[') {
		return nil, false
	}
	out := make([]string, 0, 4)
	d.space()
	if d.take(']') {
		return out, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		d.space()
		if d.take(']') {
			return out, true
		}
		if !d.take(',') {
			return nil, false
		}
		d.space()
	}
}

func (d *fastDecoder) strMap() (map[string]string, bool) {
	if !d.take('{') {
		return nil, false
	}
	out := map[string]string{}
	d.space()
	if d.take('}') {
		return out, true
	}
	for {
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if !d.take(':') {
			return nil, false
		}
		d.space()
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		if _, dup := out[k]; dup {
			return nil, false
		}
		out[k] = v
		d.space()
		if d.take('}') {
			return out, true
		}
		if !d.take(',') {
			return nil, false
		}
		d.space()
	}
}

// time reads a time as encoding/json does: through time.Time's
// UnmarshalJSON, given the string with its quotes.
func (d *fastDecoder) time() (*time.Time, bool) {
	s, ok := d.raw()
	if !ok {
		return nil, false
	}
	t := new(time.Time)
	if t.UnmarshalJSON(s) != nil {
		return nil, false
	}
	return t, true
}
