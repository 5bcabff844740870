package keystore

import (
	"errors"
	"fmt"
)

// Error codes. The server maps each to an HTTP status and the remote client
// maps the status back, so a command sees the same error from every store.
const (
	ECONFLICT     = "conflict"     // the change contradicts the key's state
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EINVALID      = "invalid"      // bad input: a usage error
	ENOTFOUND     = "not_found"    // no such key
	EUNAUTHORIZED = "unauthorized" // the caller's key is not valid
	EFORBIDDEN    = "forbidden"    // the caller's key lacks a scope
	ERATELIMITED  = "rate_limited" // too many requests
	ETOOLARGE     = "too_large"    // request body over the limit
	EUNAVAILABLE  = "unavailable"  // the store cannot be reached or opened
)

// Error is the one error type of the domain. Message is safe to show a user:
// it never contains a secret.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EINTERNAL for a non-nil error that is
// not an *Error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
