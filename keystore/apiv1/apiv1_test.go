package apiv1_test

import (
	"net/http"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// TestStatusCodeRoundTrip: a client reads back the code that the server
// sent as a status, for every code of the table.
func TestStatusCodeRoundTrip(t *testing.T) {
	for _, code := range []string{keystore.EINVALID, keystore.EUNAUTHORIZED, keystore.EFORBIDDEN,
		keystore.ENOTFOUND, keystore.ECONFLICT, keystore.ETOOLARGE, keystore.ERATELIMITED} {
		st := apiv1.Status(code)
		if st < 400 || st >= 500 {
			t.Errorf("Status(%s) = %d, want a 4xx", code, st)
		}
		if got := apiv1.Code(st); got != code {
			t.Errorf("Code(Status(%s)) = %s", code, got)
		}
	}
	for code, want := range map[string]int{keystore.EINTERNAL: 500, keystore.EUNAVAILABLE: 500, "": 500} {
		if got := apiv1.Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
	for st, want := range map[int]string{500: keystore.EUNAVAILABLE, 503: keystore.EUNAVAILABLE,
		http.StatusMethodNotAllowed: keystore.EINVALID, http.StatusTeapot: keystore.EINVALID} {
		if got := apiv1.Code(st); got != want {
			t.Errorf("Code(%d) = %s, want %s", st, got, want)
		}
	}
}

func TestReplyBodies(t *testing.T) {
	if got, want := string(apiv1.AppendReply(nil, []byte(`[]`), []byte(`{"page":1}`))), `{"data":[],"meta":{"page":1}}`+"\n"; got != want {
		t.Errorf("AppendReply = %q, want %q", got, want)
	}
	if got, want := string(apiv1.AppendReply(nil, []byte(`{}`), nil)), `{"data":{}}`+"\n"; got != want {
		t.Errorf("AppendReply = %q, want %q", got, want)
	}
	if got, want := string(apiv1.ErrorBody("invalid", "a <b>", "req_1")), `{"error":{"code":"invalid","message":"a \u003cb\u003e","request_id":"req_1"}}`+"\n"; got != want {
		t.Errorf("ErrorBody = %q, want %q", got, want)
	}
}
