package server

import (
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chatbotplatform/keyctl/keystore"
)

// The verify endpoint is on the hot path of every API request of the
// platform: its body is read and its reply written without encoding/json
// when they have their usual plain shape. Anything else goes through
// encoding/json, so that the answers (and the errors) stay the same.

// parseVerifyFast reads a verify body such as {"key":"sk_…","scopes":["a"]}
// into req, as decodeBody would. It reports false, leaving req unusable,
// for anything it does not read exactly as encoding/json would: escapes,
// other member names or letter cases, repeated members, nulls.
func parseVerifyFast(body []byte, req *verifyRequest) bool {
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
			req.Scopes = []string{}
			p.space()
			if !p.byte(']') {
				for {
					p.space()
					b, ok := p.raw()
					if !ok {
						return false
					}
					s, known := knownScopes[string(b)] // no copy for a known scope
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

// knownScopes maps each scope to itself.
var knownScopes = func() map[string]string {
	m := map[string]string{}
	for _, s := range keystore.AllScopes {
		m[s] = s
	}
	return m
}()

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

// raw is str without the copy.
func (p *fastParser) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// jsonBuffers recycles the buffers of replies written without encoding/json.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeFast writes v as the data of a reply when it has a shape written
// without encoding/json, and reports whether it did.
func (s *Server) writeFast(w http.ResponseWriter, status int, v any) bool {
	env, ok := v.(envelope)
	if !ok || env.Meta != nil {
		return false
	}
	ver, ok := env.Data.(*keystore.Verification)
	if !ok || ver == nil || (ver.Key != nil && !timesEncodable(ver.Key)) {
		return false
	}
	buf := jsonBuffers.Get().(*[]byte)
	b := append((*buf)[:0], `{"data":`...)
	b = ver.AppendJSON(b)
	b = append(b, "}\n"...)
	s.writeRaw(w, status, b)
	*buf = b
	jsonBuffers.Put(buf)
	return true
}

// timesEncodable reports whether encoding/json can write k's times, which
// need a four-digit year; it refuses others, with an error.
func timesEncodable(k *keystore.Key) bool {
	ok := func(t *time.Time) bool {
		if t == nil {
			return true
		}
		y := t.UTC().Year()
		return y >= 0 && y <= 9999
	}
	return ok(&k.CreatedAt) && ok(k.ExpiresAt) && ok(k.RevokedAt) && ok(k.LastUsedAt)
}
