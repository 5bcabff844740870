package keystore_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestErrorCode(t *testing.T) {
	base := keystore.Errorf(keystore.ENOTFOUND, "no key %s", "key_0123456789ABCDEF")
	if base.Error() != "no key key_0123456789ABCDEF" || base.Code != keystore.ENOTFOUND {
		t.Errorf("Errorf = %#v", base)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("disk on fire"), keystore.EINTERNAL},
		{base, keystore.ENOTFOUND},
		{fmt.Errorf("show: %w", base), keystore.ENOTFOUND},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", keystore.Errorf(keystore.EFORBIDDEN, "x"))), keystore.EFORBIDDEN},
		{errors.Join(errors.New("a"), keystore.Errorf(keystore.ECONFLICT, "b")), keystore.ECONFLICT},
	} {
		if got := keystore.ErrorCode(tc.err); got != tc.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
