package keystore

import (
	"strconv"
	"strings"
)

// quoteMax is how much of a value Quote shows, in bytes.
const quoteMax = 40

// randomRun is the length of a run of letters and digits, mixed, from which
// Quote takes a value for a secret or a part of one. A key's display hint
// shows 4 of its random characters; a secret's random part is 32 long.
const randomRun = 16

// Quote is how an error message repeats a value that it was given: quoted
// (Go syntax, so that control characters and bidi overrides show as
// escapes), at most 40 bytes of it, and never a value that looks like a
// secret key or a large part of one, which it names instead. Every message
// that echoes input goes through Quote: a secret pasted in the wrong place
// must not come back in a reply, a log line or a terminal.
func Quote(s string) string {
	const hidden = "(a value shaped like a secret key, not shown)"
	if LooksSecret(s) {
		return hidden
	}
	q := strconv.Quote(Truncate(s, quoteMax))
	if LooksSecret(q) {
		return hidden // escapes made a run of letters and digits
	}
	return q
}

// LooksSecret reports whether s holds what could be a keyctl secret or a
// part of one that says more than its display hint: a key prefix (sk_live_,
// sk_test_, in any case) followed by a letter or digit, or a run of at
// least 16 letters and digits that mixes letters with digits or both
// letter cases, as a secret's random part does (hexadecimal, such as a
// request ID or a hash, is not taken for one: a secret is base62).
func LooksSecret(s string) bool {
	if secretStart(s) >= 0 {
		return true
	}
	run, classes, hex := 0, 0, true
	for i := 0; i <= len(s); i++ {
		var class int
		if i < len(s) {
			switch c := s[i]; {
			case c >= '0' && c <= '9':
				class = 1
			case c >= 'a' && c <= 'z':
				class = 2
				hex = hex && c <= 'f'
			case c >= 'A' && c <= 'Z':
				class = 4
				hex = hex && c <= 'F'
			}
		}
		if class == 0 {
			if run >= randomRun && classes&(classes-1) != 0 && !(hex && classes&6 != 6) && !keyID(s, i-run, run) {
				return true
			}
			run, classes, hex = 0, 0, true
			continue
		}
		run++
		classes |= class
	}
	return false
}

// keyID reports whether the run of n characters at s[i:] is the random part
// of a key ID (key_ and 16 characters), which is not a secret.
func keyID(s string, i, n int) bool {
	return n == IDLen-len(idPrefix) && i >= len(idPrefix) && s[i-len(idPrefix):i] == idPrefix
}

// secretStart returns the index of the first key prefix in s, in any
// letter case, with at least one letter or digit after it, or -1.
func secretStart(s string) int {
	for i := 0; i+len("sk_live_") < len(s); i++ {
		if s[i] != 's' && s[i] != 'S' {
			continue
		}
		p := s[i : i+len("sk_live_")]
		if (strings.EqualFold(p, "sk_live_") || strings.EqualFold(p, "sk_test_")) && base62Set[s[i+len(p)]] {
			return i
		}
	}
	return -1
}

// RedactSecrets shortens every key-like word in text (sk_live_ or sk_test_
// and more than 4 letters or digits) to its first 12 characters, as a
// key's display hint shows them: for any text that may repeat input, such
// as a message of another library.
func RedactSecrets(text string) string {
	var b strings.Builder
	rest := text
	for {
		i := strings.Index(rest, "sk_")
		if i < 0 {
			break
		}
		j := i + len("sk_live_")
		if j > len(rest) || (rest[i:j] != "sk_live_" && rest[i:j] != "sk_test_") {
			b.WriteString(rest[:i+len("sk_")])
			rest = rest[i+len("sk_"):]
			continue
		}
		n := 0
		for j+n < len(rest) && base62Set[rest[j+n]] {
			n++
		}
		if n <= 4 {
			b.WriteString(rest[:j+n])
		} else {
			b.WriteString(rest[:j+4])
			b.WriteString("…")
		}
		rest = rest[j+n:]
	}
	if b.Len() == 0 {
		return text
	}
	b.WriteString(rest)
	return b.String()
}
