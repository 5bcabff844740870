package keystore

import (
	"bytes"
	"errors"
	"io"
)

// Finding leaked secrets: a key is "sk_live_" or "sk_test_", 38 base62
// characters and nothing else, so a scanner looks for the prefix and checks
// the checksum of what follows. A string of that shape whose checksum does
// not match is noise (one in some four billion random strings passes): it
// is dropped and counted, never reported.
//
// Keys are matched wherever they stand, with no word boundary on either
// side: inside a URL (?key=sk_live_…), after a JSON escape (\nsk_live_…),
// between base64 characters. The checksum, not the neighbours, says
// whether it is a key. A key broken over lines, as in a wrapped block or
// a string literal continued on the next line ("sk_live_ab" +
// "cd…"), is joined again when the break stands before the key's 38
// characters are complete.

// Leak is one secret found in a stream. Secret is the key itself: the
// caller must not print, log or store it.
type Leak struct {
	Secret string
	Line   int   // 1-based line of the key's first character
	Column int   // 1-based byte column of the key's first character
	Offset int64 // byte offset of the key's first character
}

// ErrBinary is returned by LeakScanner.Scan for a stream that looks binary
// (a NUL byte among its first 8000 bytes, as git and grep judge).
var ErrBinary = errors.New("binary data")

// LeakScanner finds keyctl secrets in a stream. Its memory does not grow
// with the stream's length.
type LeakScanner struct {
	// SkipBinary makes Scan return ErrBinary, having reported nothing,
	// for a stream that looks binary.
	SkipBinary bool

	// Dropped counts the strings of a key's shape whose checksum did not
	// match, over every Scan.
	Dropped int

	buf []byte
}

const (
	leakChunk = 64 << 10
	// binarySniff is how far SkipBinary looks for a NUL byte.
	binarySniff = 8000
	// maxBreaks and maxBreakLen bound the line breaks joined inside one
	// key and the characters of each ("\" +\n\t\t\"").
	maxBreaks   = 4
	maxBreakLen = 24
	// leakSpan is the most bytes a key can take with its line breaks.
	leakSpan = TokenLen + maxBreaks*maxBreakLen
)

const leakMark = "sk_"

// Scan reads r to its end and calls fn for each key found, in order. It
// stops at the first error of r or fn and returns it.
func (s *LeakScanner) Scan(r io.Reader, fn func(Leak) error) error {
	if cap(s.buf) < leakChunk+leakSpan {
		s.buf = make([]byte, 0, leakChunk+leakSpan)
	}
	buf := s.buf[:0]
	var (
		base      int64 // offset of buf[0] in the stream
		line      = 1   // line of buf[counted]
		lineStart int64 // offset of that line's first byte
		counted   int   // newlines before buf[counted] are counted
		from      int   // where the search resumes: buf[:from] was a key
		eof       bool
		first     = true
	)
	// count advances the line count to buf[i].
	count := func(i int) {
		seg := buf[counted:i]
		if n := bytes.Count(seg, []byte{'\n'}); n > 0 {
			line += n
			lineStart = base + int64(counted+bytes.LastIndexByte(seg, '\n')+1)
		}
		counted = i
	}
	for !eof {
		// Fill the buffer; the first time, far enough to judge binary data.
		for len(buf) < cap(buf) {
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return err
			}
			if !first || len(buf) >= binarySniff {
				break
			}
		}
		if first {
			first = false
			if s.SkipBinary && bytes.IndexByte(buf[:min(len(buf), binarySniff)], 0) >= 0 {
				return ErrBinary
			}
		}
		// keep is where the bytes to look at again next round start.
		keep := len(buf)
		if !eof {
			keep = max(0, len(buf)-(len(leakMark)-1))
		}
		for i := from; i+len(leakMark) <= len(buf); {
			// Look for the '_' of "sk_": the rarest of its bytes in text
			// and code, so IndexByte stops least often (faster than
			// bytes.Index(buf, "sk_") on Go source: BENCHMARKS.md).
			u := bytes.IndexByte(buf[i+2:], '_')
			if u < 0 {
				break
			}
			j := i + u // where "sk_" would start
			if buf[j] != 's' || buf[j+1] != 'k' {
				i = j + 1
				continue
			}
			if !eof && len(buf)-j < leakSpan {
				keep = j // a key may start here: look again with more bytes
				break
			}
			secret, end := matchLeak(buf[j:])
			if end == 0 {
				i = j + len(leakMark)
				continue
			}
			if _, err := ParseToken(secret); err != nil {
				s.Dropped++
				i = j + end
				from = i
				continue
			}
			count(j)
			off := base + int64(j)
			if err := fn(Leak{Secret: secret, Line: line, Column: int(off-lineStart) + 1, Offset: off}); err != nil {
				return err
			}
			i = j + end
			from = i
		}
		if eof {
			break
		}
		count(keep)
		from = max(0, from-keep)
		n := copy(buf, buf[keep:])
		buf = buf[:n]
		base += int64(keep)
		counted = 0
	}
	return nil
}

// matchLeak reads a string of a key's shape at the start of b, which starts
// with "sk_": the prefix, then 38 base62 characters, across at most
// maxBreaks line breaks. It returns the string without its breaks and the
// bytes it took, or 0 when b holds no such string.
func matchLeak(b []byte) (string, int) {
	if len(b) < len("sk_live_") || (!bytes.HasPrefix(b[3:], []byte("live_")) && !bytes.HasPrefix(b[3:], []byte("test_"))) {
		return "", 0
	}
	var key [TokenLen]byte
	n := copy(key[:], b[:len("sk_live_")])
	i, breaks := n, 0
	for n < TokenLen {
		if i < len(b) && base62Set[b[i]] {
			key[n] = b[i]
			n++
			i++
			continue
		}
		if n == len("sk_live_") || breaks == maxBreaks {
			return "", 0
		}
		gap := lineBreak(b[i:])
		if gap == 0 {
			return "", 0
		}
		i += gap
		breaks++
	}
	return string(key[:]), i
}

// lineBreak returns the length of a line break inside a key at the start
// of b: white space, quotes, '+' and '\' around exactly one newline, at
// most maxBreakLen bytes, followed by a base62 character; 0 if there is
// none.
func lineBreak(b []byte) int {
	newlines := 0
	for i := 0; i < len(b) && i < maxBreakLen; i++ {
		switch c := b[i]; c {
		case '\n':
			newlines++
			if newlines > 1 {
				return 0
			}
		case '\\':
			// A JSON or C escape: \n is a newline, \r a space.
			if i+1 < len(b) && (b[i+1] == 'n' || b[i+1] == 'r') {
				if b[i+1] == 'n' {
					newlines++
				}
				if newlines > 1 {
					return 0
				}
				i++
			}
		case ' ', '\t', '\r', '"', '\'', '+':
		default:
			if newlines == 1 && base62Set[c] {
				return i
			}
			return 0
		}
	}
	return 0
}
