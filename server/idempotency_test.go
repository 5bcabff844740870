package server

import (
	"testing"

	"github.com/chatbotplatform/keyctl/keystore/storetest"
)

// The claims of a server over a store that keeps none hold the contract of
// keystore.IdempotencyStore too.
func TestMemoryClaims(t *testing.T) {
	storetest.RunIdempotency(t, newMemoryClaims())
}
