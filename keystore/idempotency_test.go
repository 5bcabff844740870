package keystore_test

import (
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestKeptReply(t *testing.T) {
	if _, err := (keystore.IdempotentReply{}).Kept(); keystore.ErrorCode(err) != keystore.EINTERNAL {
		t.Errorf("keeping a reply without status: %v, want an internal error", err)
	}
	r, err := keystore.IdempotentReply{Status: 204}.Kept()
	if err != nil || r.Body == nil || len(r.Body) != 0 {
		t.Errorf("Kept(204, no body) = %+v, %v; want an empty body", r, err)
	}
}

func TestKeptIdempotencyRecord(t *testing.T) {
	at := time.Unix(1_700_000_000, 0).In(time.FixedZone("x", 3600))
	request := make([]byte, 32)
	request[0] = 7
	rec := keystore.KeptIdempotencyRecord(request, at, keystore.IdempotentReply{Status: 201})
	if rec.Request[0] != 7 || rec.CreatedAt.Location() != time.UTC || !rec.CreatedAt.Equal(at) || rec.Body == nil || rec.Pending() {
		t.Errorf("completed record read as %+v", rec)
	}
	if rec := keystore.KeptIdempotencyRecord(request, at, keystore.IdempotentReply{}); !rec.Pending() || rec.Body != nil {
		t.Errorf("pending record read as %+v", rec)
	}
}
