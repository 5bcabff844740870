package apiv1_test

import (
	"net/http"
	"testing"
	"time"

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
	for _, tt := range []struct {
		data, meta any
		want       string
	}{
		{[]*keystore.Key{}, apiv1.ListMeta{Page: 1, PerPage: 20, Total: 0}, `{"data":[],"meta":{"page":1,"per_page":20,"total":0}}`},
		{map[string]string{"status": "<ok>"}, nil, `{"data":{"status":"<ok>"}}`},
		{[]*keystore.Key(nil), nil, `{"data":null}`},
		{(*keystore.Key)(nil), nil, `{"data":null}`},
	} {
		got, err := apiv1.AppendReply([]byte("x"), tt.data, tt.meta)
		if err != nil || string(got) != "x"+tt.want+"\n" {
			t.Errorf("AppendReply(%#v, %#v) = %q, %v, want %q", tt.data, tt.meta, got, err, tt.want)
		}
	}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, data := range []any{&keystore.Key{CreatedAt: far}, []*keystore.Key{{}, {LastUsedAt: &far}},
		&keystore.Verification{Key: &keystore.Key{ScopesLastUsed: map[string]time.Time{"admin": far}}}} {
		if got, err := apiv1.AppendReply(nil, data, nil); err == nil {
			t.Errorf("AppendReply(%#v) = %q, want an error for the year 10000", data, got)
		}
	}
	if got, want := string(apiv1.ErrorBody("invalid", "a <b>", "req_1")), `{"error":{"code":"invalid","message":"a \u003cb\u003e","request_id":"req_1"}}`+"\n"; got != want {
		t.Errorf("ErrorBody = %q, want %q", got, want)
	}
}
