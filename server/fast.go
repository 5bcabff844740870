package server

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
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
func parseVerifyFast(body []byte, req *apiv1.VerifyRequest, room []string) bool {
	p := plainjson.NewScanner(body)
	p.Space()
	if !p.Take('{') {
		return false
	}
	var haveKey, haveScopes bool
	p.Space()
	if p.Take('}') {
		return p.End()
	}
	for {
		name, ok := p.Name()
		if !ok {
			return false
		}
		switch {
		case string(name) == "key" && !haveKey:
			haveKey = true
			req.Key, ok = p.Str()
		case string(name) == "scopes" && !haveScopes:
			haveScopes = true
			req.Scopes, ok = readScopes(&p, room)
		default:
			return false
		}
		if !ok {
			return false
		}
		if more, ok := p.Next('}'); !ok || !more {
			return ok && p.End()
		}
	}
}

// readScopes reads an array of strings into room, if they fit, with no
// copy of a known scope. The array may be empty, never null.
func readScopes(p *plainjson.Scanner, room []string) ([]string, bool) {
	if !p.Take('[') {
		return nil, false
	}
	scopes := room[:0:len(room)]
	if scopes == nil {
		scopes = []string{}
	}
	p.Space()
	if p.Take(']') {
		return scopes, true
	}
	for {
		b, ok := p.Raw()
		if !ok {
			return nil, false
		}
		s, known := knownScope(b)
		if !known {
			s = string(b)
		}
		scopes = append(scopes, s)
		if more, ok := p.Next(']'); !ok || !more {
			return scopes, ok
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
	if !plain(v.Code) {
		return b, false
	}
	for _, sc := range v.MissingScopes {
		if !plain(sc) {
			return b, false
		}
	}
	if v.Valid {
		b = append(b, `{"valid":true,"code":`...)
	} else {
		b = append(b, `{"valid":false,"code":`...)
	}
	b = plainjson.AppendString(b, v.Code)
	if k := v.Key; k == nil {
		b = append(b, `,"key":null`...)
	} else {
		b = append(b, `,"key":{"id":`...)
		b = plainjson.AppendString(b, k.ID)
		b = append(b, `,"name":`...)
		b = plainjson.AppendString(b, k.Name)
		b = append(b, `,"environment":`...)
		b = plainjson.AppendString(b, k.Environment)
		b = append(b, `,"scopes":[`...)
		for i, sc := range k.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = plainjson.AppendString(b, sc)
		}
		b = append(b, `],"hint":`...)
		b = plainjson.AppendString(b, k.Hint)
		b = append(b, `,"status":`...)
		b = plainjson.AppendString(b, k.Status)
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
		b = append(b, `,"disabled_at":`...)
		if b, ok = appendJSONTime(b, k.DisabledAt); !ok {
			return b, false
		}
		b = append(b, `,"last_used_at":`...)
		if b, ok = appendJSONTime(b, k.LastUsedAt); !ok {
			return b, false
		}
		b = append(b, `,"used_scopes":[`...)
		for i, sc := range k.UsedScopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = plainjson.AppendString(b, sc)
		}
		b = append(b, `],"scopes_last_used":`...)
		if len(k.ScopesLastUsed) == 0 {
			b = append(b, "{}"...)
		} else {
			names := make([]string, 0, len(k.ScopesLastUsed))
			for n := range k.ScopesLastUsed {
				names = append(names, n)
			}
			slices.Sort(names)
			for i, n := range names {
				if i == 0 {
					b = append(b, '{')
				} else {
					b = append(b, ',')
				}
				b = plainjson.AppendString(b, n)
				b = append(b, ':')
				t := k.ScopesLastUsed[n]
				if b, ok = appendJSONTime(b, &t); !ok {
					return b, false
				}
			}
			b = append(b, '}')
		}
		b = append(b, `,"rotated_from":`...)
		b = appendJSONOptString(b, k.RotatedFrom)
		b = append(b, `,"rotated_to":`...)
		b = appendJSONOptString(b, k.RotatedTo)
		b = append(b, `,"delivery":`...)
		b = appendJSONOptString(b, k.Delivery)
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
				b = plainjson.AppendString(b, n)
				b = append(b, ':')
				b = plainjson.AppendString(b, k.Metadata[n])
			}
			b = append(b, '}')
		}
		if k.Secret != "" {
			b = append(b, `,"key":`...)
			b = plainjson.AppendString(b, k.Secret)
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
		b = plainjson.AppendString(b, sc)
	}
	return append(b, "]}"...), true
}

// plain reports whether s needs no escaping in a JSON string, HTML
// characters included.
func plain(s string) bool { return plainjson.PlainPrefix(s, true) == len(s) }

func appendJSONOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return plainjson.AppendString(b, *s)
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
