// Package plainjson reads and writes, without reflection, the plain JSON
// of keyctl's hot paths: import records, verify requests, key records and
// log lines. Its Scanner takes only what encoding/json reads the same way
// (strings without escapes, of valid UTF-8) and reports anything else, so
// that a caller can fall back to encoding/json for the answer or the error.
package plainjson

import "unicode/utf8"

// Scanner reads the tokens of one JSON text, a call at a time.
type Scanner struct {
	b []byte
	i int
}

// NewScanner returns a Scanner at the start of b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Space skips white space.
func (s *Scanner) Space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Take reads c if it comes next.
func (s *Scanner) Take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// End reports whether only white space is left.
func (s *Scanner) End() bool {
	s.Space()
	return s.i == len(s.b)
}

// Quoted reads a string that encoding/json keeps byte for byte: no
// escape, no control character, valid UTF-8. It returns the string with
// its quotes, without a copy.
func (s *Scanner) Quoted() ([]byte, bool) {
	b, start := s.b, s.i
	if start >= len(b) || b[start] != '"' {
		return nil, false
	}
	i := start + 1
	i += PlainPrefix(b[i:], false)
	ascii := true // so far: PlainPrefix takes printable ASCII only
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			q := b[start : i+1]
			if !ascii && !utf8.Valid(q) {
				return nil, false // encoding/json would replace the bad bytes
			}
			s.i = i + 1
			return q, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// Raw is Quoted without the quotes.
func (s *Scanner) Raw() ([]byte, bool) {
	q, ok := s.Quoted()
	if !ok {
		return nil, false
	}
	return q[1 : len(q)-1], true
}

// Str is Raw copied into a string.
func (s *Scanner) Str() (string, bool) {
	b, ok := s.Raw()
	return string(b), ok
}

// Name reads an object member's name and the colon after it, with the
// white space around them. It returns the name without a copy, as Raw.
func (s *Scanner) Name() ([]byte, bool) {
	s.Space()
	name, ok := s.Raw()
	if !ok {
		return nil, false
	}
	s.Space()
	if !s.Take(':') {
		return nil, false
	}
	s.Space()
	return name, true
}

// Next reads what follows a value in an array or object that close ends:
// white space, then a comma and white space (more) or close (not more).
// ok is false for anything else.
func (s *Scanner) Next(close byte) (more, ok bool) {
	s.Space()
	if s.Take(',') {
		s.Space()
		return true, true
	}
	return false, s.Take(close)
}
