package keystore

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf8"
)

const (
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	tokenRandomLen = 32
	tokenCheckLen  = 6
	// TokenLen is the length of every secret: "sk_live_" or "sk_test_",
	// 32 random characters and a 6-character checksum.
	TokenLen = len("sk_live_") + tokenRandomLen + tokenCheckLen

	idPrefix    = "key_"
	idRandomLen = 16
	// IDLen is the length of a public key ID.
	IDLen = len(idPrefix) + idRandomLen
)

// Environments a key can belong to.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// ValidEnv reports whether env is a known environment.
func ValidEnv(env string) bool { return env == EnvLive || env == EnvTest }

// randomBase62 returns n characters drawn uniformly from base62, using
// rejection sampling so that no character is more likely than another.
func randomBase62(r io.Reader, n int) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", Errorf(EINTERNAL, "read random bytes: %v", err)
		}
		for _, b := range buf {
			if b < 248 { // 248 = 4*62: keeps the draw uniform
				out = append(out, base62[b%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out), nil
}

// checksum is CRC32 (IEEE) of s in base62, left-padded with 0 to 6 chars.
func checksum(s string) string {
	b := checksumOf(s)
	return string(b[:])
}

// checksumOf is checksum without allocating: Verify runs it on every
// request of the HTTP API, and crc32.ChecksumIEEE needs a []byte, which
// escapes. It computes CRC32 (IEEE) eight bytes at a time
// ("slicing-by-8"), as hash/crc32 does without CLMUL.
func checksumOf(s string) (b [tokenCheckLen]byte) {
	t := &crcSlicing8
	v := ^uint32(0)
	for len(s) >= 8 {
		v ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		v = t[0][s[7]] ^ t[1][s[6]] ^ t[2][s[5]] ^ t[3][s[4]] ^
			t[4][v>>24] ^ t[5][v>>16&0xff] ^ t[6][v>>8&0xff] ^ t[7][v&0xff]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		v = t[0][byte(v)^s[i]] ^ v>>8
	}
	v = ^v
	for i := tokenCheckLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return b
}

// crcSlicing8 are the tables of checksumOf: crcSlicing8[0] is the usual
// CRC32 (IEEE) table, crcSlicing8[k] advances it by k more zero bytes.
var crcSlicing8 = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for i := range 256 {
		v := t[0][i]
		for k := 1; k < 8; k++ {
			v = t[0][v&0xff] ^ v>>8
			t[k][i] = v
		}
	}
	return t
}()

// NewToken returns a fresh secret for env, reading randomness from r
// (crypto/rand when r is nil).
func NewToken(env string, r io.Reader) (string, error) {
	if !ValidEnv(env) {
		return "", Errorf(EINVALID, "unknown environment %s (want live or test)", Quote(env))
	}
	random, err := randomBase62(r, tokenRandomLen)
	if err != nil {
		return "", err
	}
	body := "sk_" + env + "_" + random
	return body + checksum(body), nil
}

// NewID returns a fresh public key ID, reading randomness from r.
func NewID(r io.Reader) (string, error) {
	random, err := randomBase62(r, idRandomLen)
	if err != nil {
		return "", err
	}
	return idPrefix + random, nil
}

// base62Set marks the bytes of base62: a table, since ParseToken runs on
// every request of the HTTP API.
var base62Set = func() (t [256]bool) {
	for i := range len(base62) {
		t[base62[i]] = true
	}
	return t
}()

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base62Set[s[i]] {
			return false
		}
	}
	return true
}

// ParseToken checks a secret strictly, offline: prefix, environment,
// character set, length and checksum. It returns the environment. The error
// never repeats the token.
func ParseToken(token string) (env string, err error) {
	bad := func(why string) (string, error) {
		return "", Errorf(EINVALID, "wrong key format: %s", why)
	}
	switch {
	case strings.HasPrefix(token, "sk_live_"):
		env = EnvLive
	case strings.HasPrefix(token, "sk_test_"):
		env = EnvTest
	default:
		return bad("a key starts with sk_live_ or sk_test_")
	}
	if len(token) != TokenLen {
		return bad("a key is 46 characters long")
	}
	rest := token[len("sk_live_"):]
	if !isBase62(rest) {
		return bad("unexpected character")
	}
	body, check := token[:TokenLen-tokenCheckLen], token[TokenLen-tokenCheckLen:]
	if sum := checksumOf(body); string(sum[:]) != check {
		return bad("checksum does not match (mistyped or truncated key?)")
	}
	return env, nil
}

// ValidID reports whether id has the shape of a public key ID.
func ValidID(id string) bool {
	return len(id) == IDLen && strings.HasPrefix(id, idPrefix) && isBase62(id[len(idPrefix):])
}

// CheckID returns an EINVALID error for a malformed key ID. The message
// shows the start of the ID, unless it is a secret given by mistake: the
// first 40 characters of a secret are all of it but its checksum.
func CheckID(id string) error {
	if ValidID(id) {
		return nil
	}
	if strings.Contains(id, "sk_") {
		return Errorf(EINVALID, "malformed key id: that is a secret key, not its ID (want key_ and 16 letters or digits)")
	}
	return Errorf(EINVALID, "malformed key id %s (want key_ and 16 letters or digits)", Quote(id))
}

// HashToken is what a store keeps instead of the secret.
func HashToken(token string) [32]byte {
	var buf [TokenLen]byte
	if len(token) <= len(buf) { // a copy on the stack spares an allocation
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// Hint is the display form of a secret: its first 12 and last 4 characters.
func Hint(token string) string {
	if len(token) < 16 {
		return "…"
	}
	return token[:12] + "…" + token[len(token)-4:]
}

// Truncate shortens s to at most n bytes plus "…", cutting on a character
// boundary so that a message never shows half a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
