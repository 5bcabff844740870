package keystore_test

import (
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

// BenchmarkDecodeImportRecord reads one usual import record, as keyctl
// import does for each line of a file and the server for each record of a
// request.
func BenchmarkDecodeImportRecord(b *testing.B) {
	line := []byte(`{"name":"billing-worker","scopes":["bots:read","bots:write"],"environment":"live",` +
		`"created_at":"2026-01-02T03:04:05Z","metadata":{"team":"billing"},` +
		`"key_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`)
	for b.Loop() {
		if _, err := keystore.DecodeImportRecord(line); err != nil {
			b.Fatal(err)
		}
	}
}
