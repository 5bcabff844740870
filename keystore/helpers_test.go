package keystore_test

import (
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// seeded returns a deterministic random reader.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// refChecksum is written from DESIGN.md, independently of the package: CRC32
// (IEEE) of the body in base62 (0-9A-Za-z), left-padded with 0 to 6 chars.
func refChecksum(body string) string {
	v := uint64(crc32.ChecksumIEEE([]byte(body)))
	var digits []byte
	for v > 0 {
		digits = append([]byte{base62[v%62]}, digits...)
		v /= 62
	}
	return strings.Repeat("0", 6-len(digits)) + string(digits)
}

// wantCode fails the test unless err is a *keystore.Error with code.
func wantCode(t testing.TB, err error, code string) *keystore.Error {
	t.Helper()
	var e *keystore.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *keystore.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error code = %q, want %q (message %q)", e.Code, code, e.Message)
	}
	return e
}
