package keystore_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatbotplatform/keyctl/keystore"
)

func mustToken(t testing.TB, env string, r io.Reader) string {
	t.Helper()
	tok, err := keystore.NewToken(env, r)
	if err != nil {
		t.Fatalf("NewToken(%q): %v", env, err)
	}
	return tok
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return false
		}
	}
	return true
}

func TestNewTokenShape(t *testing.T) {
	for _, env := range []string{keystore.EnvLive, keystore.EnvTest} {
		for name, r := range map[string]io.Reader{"crypto/rand": nil, "seeded": seeded(1)} {
			tok := mustToken(t, env, r)
			if len(tok) != 46 || keystore.TokenLen != 46 {
				t.Errorf("%s: len(%q) = %d, TokenLen = %d, want 46", name, tok, len(tok), keystore.TokenLen)
			}
			if want := "sk_" + env + "_"; !strings.HasPrefix(tok, want) {
				t.Errorf("%s: token %q does not start with %q", name, tok, want)
			}
			if !isBase62(tok[8:]) {
				t.Errorf("%s: token %q has characters outside base62 after the prefix", name, tok)
			}
			if got := tok[40:]; got != refChecksum(tok[:40]) {
				t.Errorf("%s: token %q check = %q, want %q", name, tok, got, refChecksum(tok[:40]))
			}
			got, err := keystore.ParseToken(tok)
			if err != nil || got != env {
				t.Errorf("%s: ParseToken(%q) = %q, %v; want %q, nil", name, tok, got, err, env)
			}
		}
	}
}

func TestNewTokenFreshEachTime(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := mustToken(t, keystore.EnvLive, nil)
		if seen[tok] {
			t.Fatalf("NewToken returned %q twice", tok)
		}
		seen[tok] = true
	}
}

func TestNewTokenUsesReader(t *testing.T) {
	a := mustToken(t, keystore.EnvLive, seeded(7))
	b := mustToken(t, keystore.EnvLive, seeded(7))
	c := mustToken(t, keystore.EnvLive, seeded(8))
	if a != b {
		t.Errorf("same seed gave %q and %q", a, b)
	}
	if a == c {
		t.Errorf("different seeds gave the same token %q", a)
	}

	// Byte 5 is base62 "5"; 5+62 and 5+124 map to it as well.
	tok := mustToken(t, keystore.EnvLive, bytes.NewReader(bytes.Repeat([]byte{5, 67, 129}, 100)))
	if want := "sk_live_" + strings.Repeat("5", 32); tok[:40] != want {
		t.Errorf("token from a fixed reader = %q, want body %q", tok, want)
	}

	// Bytes of 248 and above must be skipped, not folded into the alphabet
	// (250%62 would be "2" and bias the draw towards 0-7).
	tok = mustToken(t, keystore.EnvTest, bytes.NewReader(bytes.Repeat([]byte{250, 10, 255}, 100)))
	if want := "sk_test_" + strings.Repeat("A", 32); tok[:40] != want {
		t.Errorf("token from a reader with rejected bytes = %q, want body %q", tok, want)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

func TestNewTokenErrors(t *testing.T) {
	for _, env := range []string{"", "prod", "LIVE", "live ", "tes"} {
		_, err := keystore.NewToken(env, nil)
		wantCode(t, err, keystore.EINVALID)
	}
	_, err := keystore.NewToken(keystore.EnvLive, errReader{})
	wantCode(t, err, keystore.EINTERNAL)

	// A reader that only yields rejected bytes must end in an error, not a hang.
	_, err = keystore.NewToken(keystore.EnvLive, bytes.NewReader(bytes.Repeat([]byte{255}, 4096)))
	wantCode(t, err, keystore.EINTERNAL)
	_, err = keystore.NewID(bytes.NewReader(make([]byte, 5)))
	wantCode(t, err, keystore.EINTERNAL)
}

// countChars tallies the random part of n tokens drawn from r.
func countChars(t *testing.T, r io.Reader, n int) map[byte]int {
	counts := map[byte]int{}
	for range n {
		tok := mustToken(t, keystore.EnvTest, r)
		for i := 8; i < 40; i++ {
			counts[tok[i]]++
		}
	}
	return counts
}

// checkUniform fails unless counts look like uniform draws over base62. With
// 640,000 draws a character is expected 10,323 times (sd about 100), so the
// ±6% band is 6 standard deviations; a modulo bias (5/4 for 0-7) is 25%.
// The chi-square bound of 150 on 61 degrees of freedom has p < 1e-8.
func checkUniform(t *testing.T, counts map[byte]int, draws int) {
	t.Helper()
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want 62: %v", len(counts), counts)
	}
	expected := float64(draws) / 62
	var chi2 float64
	for i := 0; i < len(base62); i++ {
		c := float64(counts[base62[i]])
		chi2 += (c - expected) * (c - expected) / expected
		if math.Abs(c-expected) > 0.06*expected {
			t.Errorf("character %q drawn %v times, want %.0f ± 6%%", base62[i], c, expected)
		}
	}
	if chi2 > 150 {
		t.Errorf("chi-square = %.1f over 61 degrees of freedom, want < 150", chi2)
	}
}

func TestNewTokenUniform(t *testing.T) {
	const n = 20000
	t.Run("seeded", func(t *testing.T) { checkUniform(t, countChars(t, seeded(42), n), n*32) })
	t.Run("crypto/rand", func(t *testing.T) { checkUniform(t, countChars(t, nil, n), n*32) })
}

func TestChecksumGolden(t *testing.T) {
	// Computed with Python's zlib.crc32, independently of this package.
	for _, tok := range []string{
		"sk_live_000000000000000000000000000000002UYg5A",
		"sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0z02M7",
	} {
		if refChecksum(tok[:40]) != tok[40:] {
			t.Fatalf("refChecksum disagrees with the golden token %q", tok)
		}
		if _, err := keystore.ParseToken(tok); err != nil {
			t.Errorf("ParseToken(%q): %v", tok, err)
		}
	}
}

// wantWrongFormat checks that ParseToken rejects bad, as a mutation of the
// valid token orig, with an EINVALID error that repeats neither.
func wantWrongFormat(t *testing.T, bad, orig string) {
	t.Helper()
	env, err := keystore.ParseToken(bad)
	if err == nil {
		t.Fatalf("ParseToken(%q) accepted a mutation of %q (env %q)", bad, orig, env)
	}
	if env != "" {
		t.Errorf("ParseToken(%q) returned env %q with an error", bad, env)
	}
	e := wantCode(t, err, keystore.EINVALID)
	if !strings.HasPrefix(e.Message, "wrong key format") {
		t.Fatalf("ParseToken(%q) message = %q, want prefix \"wrong key format\"", bad, e.Message)
	}
	if e.Error() != e.Message {
		t.Fatalf("Error() = %q, Message = %q", e.Error(), e.Message)
	}
	// Neither the input nor any 6-character run of the secret may appear.
	if len(bad) > 8 && strings.Contains(e.Message, bad) {
		t.Fatalf("ParseToken(%q) message %q repeats the input", bad, e.Message)
	}
	secret := orig[8:]
	for i := 0; i+6 <= len(secret); i++ {
		if strings.Contains(e.Message, secret[i:i+6]) {
			t.Fatalf("ParseToken(%q) message %q repeats part of the key", bad, e.Message)
		}
	}
}

func sampleTokens(t *testing.T, n int) []string {
	r := seeded(3)
	toks := make([]string, n)
	for i := range toks {
		env := keystore.EnvLive
		if i%2 == 1 {
			env = keystore.EnvTest
		}
		toks[i] = mustToken(t, env, r)
	}
	return toks
}

func TestParseTokenCatchesEverySubstitution(t *testing.T) {
	alphabet := base62 + "_"
	for _, tok := range sampleTokens(t, 50) {
		for pos := 0; pos < len(tok); pos++ {
			for j := 0; j < len(alphabet); j++ {
				if c := alphabet[j]; c != tok[pos] {
					wantWrongFormat(t, tok[:pos]+string(c)+tok[pos+1:], tok)
				}
			}
		}
	}
}

func TestParseTokenCatchesPrefixChanges(t *testing.T) {
	for _, tok := range sampleTokens(t, 50) {
		rest := tok[8:]
		for _, prefix := range []string{
			"sk_live_", "sk_test_", "sk_prod_", "sk_Live_", "SK_live_", "sk_LIVE_", "rk_live_",
			"pk_test_", "sk-live_", "sk_live-", "sk_tset_", "sk_lvie_", "sk__ive_",
		} {
			if prefix != tok[:8] {
				wantWrongFormat(t, prefix+rest, tok)
			}
		}
	}
}

func TestParseTokenCatchesEveryAdjacentSwap(t *testing.T) {
	for _, tok := range sampleTokens(t, 50) {
		for i := 0; i+1 < len(tok); i++ {
			if tok[i] == tok[i+1] {
				continue
			}
			b := []byte(tok)
			b[i], b[i+1] = b[i+1], b[i]
			wantWrongFormat(t, string(b), tok)
		}
	}
}

func TestParseTokenCatchesTruncationAndExtension(t *testing.T) {
	for _, tok := range sampleTokens(t, 50) {
		for n := 0; n < len(tok); n++ {
			wantWrongFormat(t, tok[:n], tok)                    // truncated
			wantWrongFormat(t, tok[n+1:], tok)                  // front cut off
			wantWrongFormat(t, tok[:n]+tok[n+1:], tok)          // one character dropped
			wantWrongFormat(t, tok[:n]+"0"+tok[n:], tok)        // one inserted
			wantWrongFormat(t, tok[:n]+tok[n:n+1]+tok[n:], tok) // one doubled
		}
		for j := 0; j < len(base62); j++ {
			wantWrongFormat(t, tok+base62[j:j+1], tok)
		}
		wantWrongFormat(t, tok+tok, tok)
	}
}

func TestParseTokenRejects(t *testing.T) {
	good := "sk_live_000000000000000000000000000000002UYg5A"
	body := good[8:40]
	withChecksum := func(b string) string { return b + refChecksum(b) }
	for name, bad := range map[string]string{
		"empty":                 "",
		"prefix only":           "sk_live_",
		"no prefix":             good[8:],
		"sk_prod_":              withChecksum("sk_prod_" + body),
		"sk_":                   withChecksum("sk_" + body + "00000"),
		"upper case prefix":     withChecksum("SK_LIVE_" + body),
		"no underscore":         withChecksum("sklive_" + body + "0"),
		"one short":             good[:45],
		"one long":              good + "0",
		"leading space":         " " + good,
		"trailing space":        good + " ",
		"trailing newline":      good + "\n",
		"space in body":         withChecksum("sk_live_" + body[:10] + " " + body[11:]),
		"dash in body":          withChecksum("sk_live_" + body[:10] + "-" + body[11:]),
		"underscore in body":    withChecksum("sk_live_" + body[:10] + "_" + body[11:]),
		"NUL in body":           withChecksum("sk_live_" + body[:10] + "\x00" + body[11:]),
		"underscore first":      withChecksum("sk_live__" + body[1:]),
		"dash first":            withChecksum("sk_live_-" + body[1:]),
		"dot last":              withChecksum("sk_live_" + body[:31] + "."),
		"unicode last":          withChecksum("sk_live_" + body[:30] + "é"),
		"unicode, 46 bytes":     withChecksum("sk_live_" + body[:10] + "é" + body[12:]),
		"unicode, 46 runes":     withChecksum("sk_live_" + body[:10] + "é" + body[11:]),
		"fullwidth digit":       withChecksum("sk_live_" + body[:10] + "０" + body[13:]),
		"invalid utf-8":         withChecksum("sk_live_" + body[:10] + "\xff" + body[11:]),
		"bad checksum":          good[:40] + "000000",
		"non-ASCII in checksum": good[:40] + "2UYg5Å"[:6],
		"dash in checksum":      good[:40] + "2UYg-A",
		"lower case checksum":   good[:40] + strings.ToLower(good[40:]),
		"bearer prefix":         "Bearer " + good,
	} {
		t.Run(name, func(t *testing.T) { wantWrongFormat(t, bad, good) })
	}
}

func TestNewIDAndValidID(t *testing.T) {
	r := seeded(9)
	seen := map[string]bool{}
	for range 200 {
		id, err := keystore.NewID(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 20 || keystore.IDLen != 20 || !strings.HasPrefix(id, "key_") || !isBase62(id[4:]) {
			t.Fatalf("NewID = %q, want key_ and 16 base62 characters", id)
		}
		if !keystore.ValidID(id) || keystore.CheckID(id) != nil {
			t.Fatalf("ValidID/CheckID rejects NewID's %q: %v", id, keystore.CheckID(id))
		}
		if seen[id] {
			t.Fatalf("NewID returned %q twice", id)
		}
		seen[id] = true
	}
	a, _ := keystore.NewID(seeded(5))
	b, _ := keystore.NewID(seeded(5))
	if a != b {
		t.Errorf("NewID with the same seed gave %q and %q", a, b)
	}
	id, _ := keystore.NewID(bytes.NewReader(bytes.Repeat([]byte{61}, 64)))
	if id != "key_zzzzzzzzzzzzzzzz" {
		t.Errorf("NewID from a fixed reader = %q, want key_zzzzzzzzzzzzzzzz", id)
	}
}

func TestCheckIDRejects(t *testing.T) {
	for _, id := range []string{
		"",
		"key_",
		"key_0123456789ABCDE",   // 15
		"key_0123456789ABCDEFG", // 17
		"Key_0123456789ABCDEF",
		"KEY_0123456789ABCDEF",
		"kex_0123456789ABCDEF",
		"key-0123456789ABCDEF",
		"keyy0123456789ABCDEF",
		"0123456789ABCDEFGHIJ",
		"key_0123456789ABCDE_",
		"key_0123456789ABCDE-",
		"key_0123456789ABCDE ",
		" key_0123456789ABCDE",
		"key_0123456789ABCDé",
		"key_0123456789ABCD\x00E",
		"sk_live_000000000000000000000000000000002UYg5A",
		strings.Repeat("x", 10000),
	} {
		if keystore.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
		err := keystore.CheckID(id)
		e := wantCode(t, err, keystore.EINVALID)
		if !strings.Contains(e.Message, "malformed key id") {
			t.Errorf("CheckID(%q) message = %q", id, e.Message)
		}
		if len(e.Message) > 200 {
			t.Errorf("CheckID message is %d bytes long: a long id must be shortened", len(e.Message))
		}
	}
	for _, id := range []string{"key_0123456789ABCDEF", "key_zzzzzzzzzzzzzzzz", "key_0000000000000000"} {
		if !keystore.ValidID(id) || keystore.CheckID(id) != nil {
			t.Errorf("ValidID/CheckID rejects %q", id)
		}
	}
}

// A secret pasted where an ID belongs must not be echoed: its first 40
// characters are the whole secret but for the checksum, which anyone can
// compute.
func TestCheckIDDoesNotEchoSecrets(t *testing.T) {
	secret, err := keystore.NewToken(keystore.EnvLive, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{secret, secret[:30], " " + secret[:20], "sk_test_" + secret[8:]} {
		e := wantCode(t, keystore.CheckID(id), keystore.EINVALID)
		if strings.Contains(e.Message, secret[8:16]) {
			t.Errorf("CheckID(%q) message %q shows the secret", id, e.Message)
		}
		if !strings.HasPrefix(e.Message, "malformed key id") {
			t.Errorf("CheckID(%q) message = %q", id, e.Message)
		}
	}
}

func TestCheckIDShortensOnRuneBoundary(t *testing.T) {
	// A long ID is cut in the message; the cut must not split a character
	// into escaped bytes like "\xe2\x82".
	err := keystore.CheckID(strings.Repeat("€", 30))
	e := wantCode(t, err, keystore.EINVALID)
	if strings.Contains(e.Message, `\x`) || !utf8.ValidString(e.Message) {
		t.Errorf("message %q splits a character", e.Message)
	}
	if !strings.Contains(e.Message, "€€€…") {
		t.Errorf("message %q does not show the start of the id", e.Message)
	}
}

func TestHint(t *testing.T) {
	tok := "sk_live_3nF8000000000000000000000000000000a9Qz"
	if got, want := keystore.Hint(tok), "sk_live_3nF8…a9Qz"; got != want {
		t.Errorf("Hint(%q) = %q, want %q", tok, got, want)
	}
	for _, tok := range sampleTokens(t, 20) {
		h := keystore.Hint(tok)
		if h != tok[:12]+"…"+tok[42:] {
			t.Errorf("Hint(%q) = %q", tok, h)
		}
		if strings.Contains(h, tok[12:42]) || utf8.RuneCountInString(h) != 17 {
			t.Errorf("Hint(%q) = %q shows too much", tok, h)
		}
	}
	if h := keystore.Hint("sk_live_abc"); strings.Contains(h, "abc") {
		t.Errorf("Hint of a short string = %q, shows it", h)
	}
}

func TestHashToken(t *testing.T) {
	a := keystore.HashToken("sk_live_000000000000000000000000000000002UYg5A")
	b := keystore.HashToken("sk_live_000000000000000000000000000000002UYg5B")
	if a == b || a == [32]byte{} {
		t.Errorf("HashToken gives %x and %x", a, b)
	}
	// SHA-256 of "abc" (FIPS 180-2 test vector).
	if got := keystore.HashToken("abc"); got[0] != 0xba || got[31] != 0xad {
		t.Errorf("HashToken(abc) = %x, want SHA-256", got)
	}
}

func FuzzParseToken(f *testing.F) {
	r := seeded(11)
	for range 4 {
		f.Add(mustToken(f, keystore.EnvLive, r))
		f.Add(mustToken(f, keystore.EnvTest, r))
	}
	for _, s := range []string{
		"", "sk_", "sk_live_", "sk_test_", "sk_prod_000000000000000000000000000000002UYg5A",
		"sk_live_000000000000000000000000000000002UYg5A",
		"sk_live_000000000000000000000000000000002UYg5",
		"sk_live_000000000000000000000000000000002UYg5A0",
		"sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0z02M7",
		"sk_live_0000000000é00000000000000000002UYg5A",
		"sk_live_\xff\xfe", "key_0123456789ABCDEF",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := keystore.ParseToken(s)
		wantOK := len(s) == 46 && (strings.HasPrefix(s, "sk_live_") || strings.HasPrefix(s, "sk_test_")) &&
			isBase62(s[8:]) && refChecksum(s[:40]) == s[40:]
		if err != nil {
			if wantOK {
				t.Fatalf("ParseToken(%q) rejected a well-formed key: %v", s, err)
			}
			e := wantCode(t, err, keystore.EINVALID)
			if !strings.HasPrefix(e.Message, "wrong key format") || env != "" {
				t.Fatalf("ParseToken(%q) = %q, %q", s, env, e.Message)
			}
			if len(s) > 8 && (strings.HasPrefix(s, "sk_live_") || strings.HasPrefix(s, "sk_test_")) &&
				strings.Contains(e.Message, s) {
				t.Fatalf("ParseToken(%q) message %q repeats the key", s, e.Message)
			}
			return
		}
		if !wantOK {
			t.Fatalf("ParseToken(%q) accepted a malformed key as %q", s, env)
		}
		if len(s) != 46 || !keystore.ValidEnv(env) || s[3:3+len(env)] != env || s[3+len(env)] != '_' {
			t.Fatalf("ParseToken(%q) = %q", s, env)
		}
	})
}

// The checksum must be CRC32 (IEEE) of any input, not only of a key's
// 40 bytes.
func TestChecksumAnyLength(t *testing.T) {
	r := seeded(9)
	for n := range 100 {
		b := make([]byte, n)
		r.Read(b)
		body := string(b)
		if got, want := keystore.ChecksumForTest(body), refChecksum(body); got != want {
			t.Fatalf("checksum of %d bytes = %q, want %q", n, got, want)
		}
	}
}
