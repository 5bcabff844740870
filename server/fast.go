package server

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatbotplatform/keyctl/keystore"
)

// The verify endpoint is on the hot path of every API request of the
// platform: its body is read and its reply written without encoding/json
// when they have their usual plain shape. Anything else goes through
// encoding/json, so that the answers (and the errors) stay the same.

// parseVerifyFast reads a verify body such as {"key":"sk_…","scopes":["a"]}
// into req, as decodeBody would, putting the scopes in room if they fit.
// It reports false, leaving req unusable, for anything it does not read
// exactly as encoding/json would: escapes, other member names or letter
// cases, repeated members, nulls.
func parseVerifyFast(body []byte, req *verifyRequest, room []string) bool {
	p := fastParser{b: body}
	p.space()
	if !p.byte('{') {
		return false
	}
	var haveKey, haveScopes bool
	p.space()
	if p.byte('}') {
		return p.end()
	}
	for {
		p.space()
		name, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if !p.byte(':') {
			return false
		}
		p.space()
		switch {
		case name == "key" && !haveKey:
			haveKey = true
			if req.Key, ok = p.str(); !ok {
				return false
			}
		case name == "scopes" && !haveScopes:
			haveScopes = true
			if !p.byte('[') {
				return false
			}
			req.Scopes = room[:0:len(room)]
			if req.Scopes == nil {
				req.Scopes = []string{}
			}
			p.space()
			if !p.byte(']') {
				for {
					p.space()
					b, ok := p.raw()
					if !ok {
						return false
					}
					s, known := knownScope(b) // no copy for a known scope
					if !known {
						s = string(b)
					}
					req.Scopes = append(req.Scopes, s)
					p.space()
					if p.byte(']') {
						break
					}
					if !p.byte(',') {
						return false
					}
				}
			}
		default:
			return false
		}
		p.space()
		if p.byte('}') {
			return p.end()
		}
		if !p.byte(',') {
			return false
		}
	}
}

// knownScope returns the scope that b spells, if it is one.
func knownScope(b []byte) (string, bool) {
	for _, s := range keystore.AllScopes {
		if len(s) == len(b) && string(b) == s {
			return s, true
		}
	}
	return "", false
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// str reads a string without escapes, of valid UTF-8.
func (p *fastParser) str() (string, bool) {
	b, ok := p.raw()
	return string(b), ok
}

// strPlain marks the bytes that a JSON string holds as they are and that
// need no check for UTF-8: printable ASCII but " and \. jsonPlain also
// leaves out <, > and &, which encoding/json escapes.
var strPlain, jsonPlain = func() (str, json [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		str[c] = c != '"' && c != '\\'
		json[c] = str[c] && c != '<' && c != '>' && c != '&'
	}
	return str, json
}()

// plainPrefix returns the length of the longest prefix of s that strPlain
// (with html, jsonPlain) marks. It looks at eight bytes at a time: strings
// of keys, IDs and paths are mostly plain, and this is on the hot path.
func plainPrefix[T string | []byte](s T, html bool) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	// zero sets the high bit of a byte that is zero (and maybe of bytes
	// above it): enough to tell whether any is.
	zero := func(x uint64) uint64 { return (x - ones) &^ x }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// Below 0x20 (the first term, if no byte below borrows) or at or
		// above 0x80 (the second), a quote or a backslash.
		bad := (x - ones*0x20) | x | zero(x^(ones*'"')) | zero(x^(ones*'\\'))
		if html {
			bad |= zero(x^(ones*'<')) | zero(x^(ones*'>')) | zero(x^(ones*'&'))
		}
		if bad&high != 0 {
			break
		}
	}
	table := &strPlain
	if html {
		table = &jsonPlain
	}
	for i < len(s) && table[s[i]] {
		i++
	}
	return i
}

// raw is str without the copy.
func (p *fastParser) raw() ([]byte, bool) {
	b, i := p.b, p.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	i++
	start := i
	i += plainPrefix(b[i:], false)
	if i < len(b) && b[i] == '"' {
		p.i = i + 1
		return b[start:i], true // ASCII: valid UTF-8
	}
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s := b[start:i]
			p.i = i + 1
			if !utf8.Valid(s) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// jsonBuffers recycles the buffers of replies written without encoding/json.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeFast writes the data of env when it has a shape written without
// encoding/json, and reports whether it did.
func (s *Server) writeFast(w http.ResponseWriter, status int, env envelope) bool {
	if env.Meta != nil {
		return false
	}
	ver, ok := env.Data.(*keystore.Verification)
	if !ok || ver == nil {
		return false
	}
	buf := jsonBuffers.Get().(*[]byte)
	b := append((*buf)[:0], `{"data":`...)
	if b, ok = appendVerification(b, ver); ok {
		b = append(b, "}\n"...)
		s.writeRaw(w, status, b)
	}
	*buf = b
	jsonBuffers.Put(buf)
	return ok
}

// appendVerification appends v as keystore's AppendJSON (and so
// encoding/json) writes it, with fewer and larger appends, which matters
// on the hot path. It reports false, for encoding/json to refuse, if a
// time of the key has a year that RFC 3339 cannot write.
func appendVerification(b []byte, v *keystore.Verification) ([]byte, bool) {
	// The code and missing scopes are written by encoding/json itself,
	// which marshal tells not to escape HTML, unlike the key record's
	// MarshalJSON: they are always plain, and left to it if not.
	if !plainJSON(v.Code) {
		return b, false
	}
	for _, sc := range v.MissingScopes {
		if !plainJSON(sc) {
			return b, false
		}
	}
	if v.Valid {
		b = append(b, `{"valid":true,"code":`...)
	} else {
		b = append(b, `{"valid":false,"code":`...)
	}
	b = appendJSONString(b, v.Code)
	if k := v.Key; k == nil {
		b = append(b, `,"key":null`...)
	} else {
		b = append(b, `,"key":{"id":`...)
		b = appendJSONString(b, k.ID)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, k.Name)
		b = append(b, `,"environment":`...)
		b = appendJSONString(b, k.Environment)
		b = append(b, `,"scopes":[`...)
		for i, sc := range k.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, sc)
		}
		b = append(b, `],"hint":`...)
		b = appendJSONString(b, k.Hint)
		b = append(b, `,"status":`...)
		b = appendJSONString(b, k.Status)
		var ok bool
		b = append(b, `,"created_at":`...)
		if b, ok = appendJSONTime(b, &k.CreatedAt); !ok {
			return b, false
		}
		b = append(b, `,"expires_at":`...)
		if b, ok = appendJSONTime(b, k.ExpiresAt); !ok {
			return b, false
		}
		b = append(b, `,"revoked_at":`...)
		if b, ok = appendJSONTime(b, k.RevokedAt); !ok {
			return b, false
		}
		b = append(b, `,"last_used_at":`...)
		if b, ok = appendJSONTime(b, k.LastUsedAt); !ok {
			return b, false
		}
		b = append(b, `,"rotated_from":`...)
		b = appendJSONOptString(b, k.RotatedFrom)
		b = append(b, `,"rotated_to":`...)
		b = appendJSONOptString(b, k.RotatedTo)
		b = append(b, `,"metadata":`...)
		if len(k.Metadata) == 0 {
			b = append(b, "{}"...)
		} else {
			names := make([]string, 0, len(k.Metadata))
			for n := range k.Metadata {
				names = append(names, n)
			}
			slices.Sort(names)
			for i, n := range names {
				if i == 0 {
					b = append(b, '{')
				} else {
					b = append(b, ',')
				}
				b = appendJSONString(b, n)
				b = append(b, ':')
				b = appendJSONString(b, k.Metadata[n])
			}
			b = append(b, '}')
		}
		if k.Secret != "" {
			b = append(b, `,"key":`...)
			b = appendJSONString(b, k.Secret)
		}
		b = append(b, '}')
	}
	if v.MissingScopes == nil {
		b = append(b, `,"missing_scopes":null}`...)
		return b, true
	}
	b = append(b, `,"missing_scopes":[`...)
	for i, sc := range v.MissingScopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, sc)
	}
	return append(b, "]}"...), true
}

// plainJSON reports whether s is written as it is in a JSON string.
func plainJSON(s string) bool { return plainPrefix(s, true) == len(s) }

// appendJSONString appends s as encoding/json does: at once when it needs
// no escaping, as the strings of a key record mostly do (a hint's "…"
// included), and through keystore.AppendJSONString otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := plainPrefix(s, true); i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if !jsonPlain[c] {
				return keystore.AppendJSONString(b, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			return keystore.AppendJSONString(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendJSONOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendJSONTime appends t as a key record's time: RFC 3339 in UTC, to the
// second, or null. It reports false for a year outside 0 to 9999.
func appendJSONTime(b []byte, t *time.Time) ([]byte, bool) {
	if t == nil {
		return append(b, "null"...), true
	}
	sec := t.Unix()
	if m := lastSecond.Load(); m != nil && m.unix == sec {
		return append(b, m.text[:]...), true // most often a use recorded this second
	}
	var text [len(`"2006-01-02T15:04:05Z"`)]byte
	if !formatSecond(&text, t.UTC()) {
		return b, false
	}
	if m := lastSecond.Load(); m == nil || m.unix < sec {
		lastSecond.Store(&secondText{sec, text})
	}
	return append(b, text[:]...), true
}

// secondText is a second written as appendJSONTime writes it.
type secondText struct {
	unix int64
	text [len(`"2006-01-02T15:04:05Z"`)]byte
}

// lastSecond holds the latest second written, which is written again for
// every key used within it.
var lastSecond atomic.Pointer[secondText]

// formatSecond writes u (in UTC) as "2006-01-02T15:04:05Z", quoted, and
// reports false for a year outside 0 to 9999.
func formatSecond(text *[len(`"2006-01-02T15:04:05Z"`)]byte, u time.Time) bool {
	year, month, day := u.Date()
	if year < 0 || year > 9999 {
		return false
	}
	hour, min, sec := u.Clock()
	two := func(i int, n int) { text[i], text[i+1] = byte('0'+n/10), byte('0'+n%10) }
	text[0] = '"'
	two(1, year/100)
	two(3, year%100)
	text[5] = '-'
	two(6, int(month))
	text[8] = '-'
	two(9, day)
	text[11] = 'T'
	two(12, hour)
	text[14] = ':'
	two(15, min)
	text[17] = ':'
	two(18, sec)
	text[20], text[21] = 'Z', '"'
	return true
}
