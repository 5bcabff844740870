package keystore

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// One validation for every entry point: the CLI, the HTTP API and import
// all reach a store through CreateParams.Validate, which uses these checks.
// Their errors never repeat a value that holds a secret.

// secretPrefixes start every keyctl secret.
var secretPrefixes = [...]string{"sk_live_", "sk_test_"}

// ContainsSecret reports whether s holds a keyctl secret: a whole token that
// ParseToken accepts (prefix, charset, length and checksum), alone or inside
// a longer string. A display hint (sk_live_3nF8…a9Qz) is not a secret.
func ContainsSecret(s string) bool {
	for i := 0; i+TokenLen <= len(s); {
		j := strings.Index(s[i:], "sk_")
		if j < 0 {
			return false
		}
		i += j
		if i+TokenLen > len(s) {
			return false
		}
		for _, p := range secretPrefixes {
			if strings.HasPrefix(s[i:], p) {
				if _, err := ParseToken(s[i : i+TokenLen]); err == nil {
					return true
				}
			}
		}
		i++
	}
	return false
}

// CheckScope is the error for a scope argument that holds a secret: the
// "unknown scope" message would otherwise repeat it. nil for anything else.
func CheckScope(s string) error {
	if ContainsSecret(s) {
		return Errorf(EINVALID, "a scope holds what looks like a secret key (not shown); a scope is a name such as bots:read")
	}
	return nil
}

// CheckText checks free text that a store keeps and shows (what names the
// field in the error): valid UTF-8, no replacement character (what invalid
// UTF-8 becomes once decoded from JSON), no control characters, and no
// secret. The error never repeats the text.
func CheckText(what, s string) error {
	switch {
	case !utf8.ValidString(s):
		return Errorf(EINVALID, "%s is not valid UTF-8 text", what)
	case strings.ContainsRune(s, utf8.RuneError):
		return Errorf(EINVALID, "%s holds U+FFFD, the mark of text that was not valid UTF-8", what)
	case strings.ContainsFunc(s, unicode.IsControl):
		return Errorf(EINVALID, "%s must be text without control characters such as newlines, tabs or escapes", what)
	case ContainsSecret(s):
		return Errorf(EINVALID, "%s holds what looks like a secret key (not shown): a secret never goes in a name, metadata or scope", what)
	}
	return nil
}

// CheckName checks a key's name: CheckText, and no bidirectional override
// or isolate (which make a name display as another), and at least one
// visible character (not only spaces, zero-width or format characters).
func CheckName(name string) error {
	if strings.TrimSpace(name) == "" {
		return Errorf(EINVALID, "a key needs a name (1 to 100 characters)")
	}
	if err := CheckText("name", name); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(name); n > 100 {
		return Errorf(EINVALID, "name too long: %d characters, at most 100", n)
	}
	return checkLabel("name", name)
}

// checkLabel refuses what makes a label display as something else: bidi
// controls, and labels with nothing visible.
func checkLabel(what, s string) error {
	if strings.ContainsFunc(s, IsBidiControl) {
		return Errorf(EINVALID, "%s holds a bidirectional control character (U+202A to U+202E, U+2066 to U+2069), which makes text display as other text", what)
	}
	if !strings.ContainsFunc(s, visible) {
		return Errorf(EINVALID, "%s has no visible character (only spaces, zero-width or format characters)", what)
	}
	return nil
}

// CheckMetadata checks metadata keys and values: keys are labels (as
// names), values text; sizes as documented.
func CheckMetadata(m map[string]string) error {
	if len(m) > 50 {
		return Errorf(EINVALID, "too much metadata: %d entries, at most 50", len(m))
	}
	for k, v := range m {
		if k == "" || strings.TrimSpace(k) == "" {
			return Errorf(EINVALID, "metadata key must not be empty")
		}
		if err := CheckText("a metadata key", k); err != nil {
			return err
		}
		if err := checkLabel("a metadata key", k); err != nil {
			return err
		}
		if err := CheckText("the metadata value of "+quoteLabel(k), v); err != nil {
			return err
		}
		if len(k) > 40 || len(v) > 500 {
			return Errorf(EINVALID, "metadata %s too long (keys at most 40, values at most 500 bytes)", quoteLabel(k))
		}
	}
	return nil
}

// quoteLabel is a checked label for a message: quoted and cut short.
func quoteLabel(s string) string {
	return `"` + Truncate(s, 40) + `"`
}

// IsBidiControl reports whether r is a bidirectional embedding, override or
// isolate (the characters of "Trojan Source" attacks).
func IsBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// visible reports whether r shows as something: not a space, a format
// character (zero-width space, BOM, joiners), a combining mark alone, or a
// blank filler letter.
func visible(r rune) bool {
	switch r {
	case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800', '\u180e', '\u034f':
		return false
	}
	return !unicode.IsSpace(r) && !unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me, unicode.Cc, unicode.Co) && r != utf8.RuneError
}
