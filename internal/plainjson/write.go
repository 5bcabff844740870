// Package plainjson writes, without reflection, the JSON strings of
// keyctl's records and log lines: exactly as json.Marshal writes them
// (AppendString) or as log/slog's JSONHandler does (AppendSlogString).
// Reading JSON is keystore.DecodeStrict's alone.
package plainjson

import "unicode/utf8"

// strPlain marks the bytes that a JSON string holds as they are and that
// need no check for UTF-8: printable ASCII but " and \. htmlPlain also
// leaves out <, > and &, which json.Marshal escapes.
var strPlain, htmlPlain = func() (str, html [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		str[c] = c != '"' && c != '\\'
		html[c] = str[c] && c != '<' && c != '>' && c != '&'
	}
	return str, html
}()

// PlainPrefix returns the length of the longest prefix of s that a JSON
// string holds as it is: printable ASCII but " and \, and with html but
// <, > and & too. It looks at eight bytes at a time: keys, IDs and paths
// are mostly plain, and this is on the hot path.
func PlainPrefix[T string | []byte](s T, html bool) int {
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
		table = &htmlPlain
	}
	for i < len(s) && table[s[i]] {
		i++
	}
	return i
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, exactly as json.Marshal writes
// it: <, > and & escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and
// U+2029 escaped.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, true) }

// AppendSlogString appends s as log/slog's JSONHandler writes a string:
// as AppendString, but with <, > and & as they are, and \b and \f as
// \u0008 and \u000c.
func AppendSlogString(dst []byte, s string) []byte { return appendString(dst, s, false) }

func appendString(dst []byte, s string, marshal bool) []byte {
	table := &strPlain
	if marshal {
		table = &htmlPlain
	}
	dst = append(dst, '"')
	i := PlainPrefix(s, marshal)
	start := 0
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if table[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case c == '\\' || c == '"':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b' && marshal:
				dst = append(dst, '\\', 'b')
			case c == '\f' && marshal:
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
