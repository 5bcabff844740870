// Package apiv1 is the wire protocol of keyctl's HTTP API, version 1: the
// request and reply bodies, the error envelope, the one table between the
// error codes of package keystore and HTTP statuses, the metadata of a
// list, and the limits of a request. package server speaks it and
// keystore/remote speaks to it; neither writes any of it again.
//
// Every reply is an envelope: {"data":…,"meta":…} for a success (meta only
// on lists), {"error":{"code":…,"message":…,"request_id":…}} otherwise.
// A key record travels as keystore writes it (Key.AppendJSON); AppendReply
// writes the envelope of a reply, Envelope reads it.
package apiv1

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Limits of a request.
const (
	// MaxBodyBytes bounds a request body; a longer one is refused with 413.
	MaxBodyBytes = 1 << 20
	// MaxImportRecords bounds the records of one import request; each
	// request is one transaction of the store.
	MaxImportRecords = 1000
)

// Paging of the lists (GET /v1/api-keys, GET /v1/audit-events), as in the
// platform's other lists.
const (
	DefaultPerPage = 20
	MaxPerPage     = 100
)

// Error codes of the API beyond keystore's.
const (
	// EOVERLOADED: the server shed the request (503, Retry-After).
	EOVERLOADED = "overloaded"
	// EMETHODNOTALLOWED: no such method for the path (405, Allow).
	EMETHODNOTALLOWED = "method_not_allowed"
	// ENOTIMPLEMENTED: a transfer coding the server does not know (501).
	ENOTIMPLEMENTED = "not_implemented"
	// EHTTPVERSION: an HTTP version the server does not speak (505).
	EHTTPVERSION = "http_version_not_supported"
)

// statuses is the one table between keystore's error codes and HTTP
// statuses, both ways.
var statuses = [...]struct {
	code   string
	status int
}{
	{keystore.EINVALID, http.StatusBadRequest},
	{keystore.EUNAUTHORIZED, http.StatusUnauthorized},
	{keystore.EFORBIDDEN, http.StatusForbidden},
	{keystore.ENOTFOUND, http.StatusNotFound},
	{keystore.ECONFLICT, http.StatusConflict},
	{keystore.ETOOLARGE, http.StatusRequestEntityTooLarge},
	{keystore.ERATELIMITED, http.StatusTooManyRequests},
}

// Status is the HTTP status of an error of code: 500 for a code that the
// table does not name (the server then hides the cause).
func Status(code string) int {
	for _, e := range statuses {
		if e.code == code {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// Code is the error code that an error reply's status stands for, as a
// client takes it: the table's, EUNAVAILABLE for a 5xx (the service
// failed, not the request), EINVALID for any other status (the request was
// wrong).
func Code(status int) string {
	for _, e := range statuses {
		if e.status == status {
			return e.code
		}
	}
	if status >= 500 {
		return keystore.EUNAVAILABLE
	}
	return keystore.EINVALID
}

// Envelope is a reply as a client reads it: Data and Meta, or Error.
type Envelope struct {
	Data  keystore.JSONValue `json:"data"`
	Meta  keystore.JSONValue `json:"meta"`
	Error *Error             `json:"error"`
}

// Error is the error of an error reply. Its message never holds a secret;
// RequestID is the reply's X-Request-Id, under which the server logged the
// cause of a 5xx.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// AppendReply appends the body of a successful reply, {"data":…} or
// {"data":…,"meta":…} when meta is not nil, with its final newline. A key
// record, alone, in a list or in a verification, is written as keystore
// writes it (Key.AppendJSON); anything else as encoding/json does, without
// escaping HTML. A key with a time that RFC 3339 cannot write is an error
// (Key.CheckTimes), as any value that encoding/json refuses.
func AppendReply(dst []byte, data, meta any) ([]byte, error) {
	dst = append(dst, `{"data":`...)
	dst, err := appendData(dst, data)
	if err == nil && meta != nil {
		dst = append(dst, `,"meta":`...)
		dst, err = appendData(dst, meta)
	}
	if err != nil {
		return nil, err
	}
	return append(dst, "}\n"...), nil
}

func appendData(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case *keystore.Key:
		if v != nil {
			if err := v.CheckTimes(); err != nil {
				return nil, err
			}
			return v.AppendJSON(b), nil
		}
	case []*keystore.Key:
		if v != nil {
			b = append(b, '[')
			for i, k := range v {
				if i > 0 {
					b = append(b, ',')
				}
				if err := k.CheckTimes(); err != nil {
					return nil, err
				}
				b = k.AppendJSON(b)
			}
			return append(b, ']'), nil
		}
	case *keystore.Verification:
		if v != nil {
			if v.Key != nil {
				if err := v.Key.CheckTimes(); err != nil {
					return nil, err
				}
			}
			return v.AppendJSON(b), nil
		}
	}
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ErrorBody is the body of an error reply, with its final newline.
func ErrorBody(code, msg, requestID string) []byte {
	b, _ := json.Marshal(struct {
		Error Error `json:"error"`
	}{Error{code, msg, requestID}})
	return append(b, '\n')
}

// ListMeta is the meta of a page of a list.
type ListMeta struct {
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Total   int `json:"total"`
}

// CreateRequest is the body of POST /v1/api-keys. Scopes may be patterns
// (bots:*); ExpiresAt is an RFC 3339 time.
type CreateRequest struct {
	Name        string            `json:"name"`
	Scopes      []string          `json:"scopes"`
	Environment string            `json:"environment"`
	ExpiresAt   *string           `json:"expires_at"`
	Metadata    map[string]string `json:"metadata"`
}

// RotateRequest is the body of POST /v1/api-keys/{id}/rotate and
// /v1/api-keys/self/rotate; it may be empty. The API counts whole seconds.
type RotateRequest struct {
	GraceSeconds         int64 `json:"grace_seconds"`
	AwaitDeliverySeconds int64 `json:"await_delivery_seconds,omitempty"`
}

// UpdateRequest is the body of PATCH /v1/api-keys/{id}: the members
// present change. expires_at null clears the expiry; a metadata value null
// unsets that entry.
type UpdateRequest struct {
	Name      *string            `json:"name,omitzero"`
	Scopes    []string           `json:"scopes,omitzero"`
	ExpiresAt keystore.JSONValue `json:"expires_at,omitzero"`
	Metadata  map[string]*string `json:"metadata,omitzero"`
}

// VerifyRequest is the body of POST /v1/api-keys/verify; the reply's data
// is a keystore.Verification.
type VerifyRequest struct {
	Key    string   `json:"key"`
	Scopes []string `json:"scopes"`
}

// ImportRequest is the body of POST /v1/api-keys/import: import records as
// in an import file (keystore.ImportRecord), at most MaxImportRecords of
// them. Each is decoded on its own, so that a bad one fails alone.
type ImportRequest struct {
	Keys []keystore.JSONValue `json:"keys"`
}

// ImportReply is the data of the reply to an import: the counts, and one
// error per record that was not imported, by its position in keys (from 1).
type ImportReply struct {
	Imported int                     `json:"imported"`
	Skipped  int                     `json:"skipped"`
	Failed   int                     `json:"failed"`
	Errors   []keystore.ImportFailed `json:"errors"`
}
