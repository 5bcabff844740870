package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// net/http answers some malformed requests itself, before any handler
// runs, with a plain-text reply: headers over the limit (431), a request it
// cannot parse, such as a bad request line or two Content-Length headers
// (400), an unknown transfer coding (501), an HTTP version it does not
// serve (505). It writes each such reply to the connection in one write,
// in a fixed shape; RewriteHTTPError turns that shape into the API's error
// envelope, for a connection wrapper to write instead.

// netHTTPErrorHeaders follow the status line of every such reply.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// RewriteHTTPError returns, for a write that is one of net/http's own
// plain-text error replies, the same status as a JSON error envelope with
// an X-Request-Id, and its status; ok is false for anything else, which is
// to be written as it is.
func RewriteHTTPError(b []byte) (reply []byte, status int, id string, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !found || len(rest) < 4 || rest[3] != ' ' {
		return nil, 0, "", false
	}
	line, body, found := bytes.Cut(rest, []byte(netHTTPErrorHeaders))
	if !found || bytes.Contains(line, []byte("\r\n")) {
		return nil, 0, "", false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil, 0, "", false
	}
	code, msg := keystore.EINVALID, "malformed HTTP request"
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code, msg = keystore.ETOOLARGE, "request headers over the limit of the server"
	case http.StatusNotImplemented:
		code, msg = apiv1.ENOTIMPLEMENTED, "unsupported transfer encoding"
	case http.StatusHTTPVersionNotSupported:
		code, msg = apiv1.EHTTPVERSION, "unsupported HTTP version: the API speaks HTTP/1.1"
	default:
		// "400 Bad Request: missing required Host header"
		if _, why, found := bytes.Cut(body, []byte(": ")); found && len(why) > 0 {
			msg = "malformed HTTP request: " + keystore.Truncate(keystore.RedactSecrets(string(why)), 100)
		}
	}
	id = requestID("")
	payload := errorBody(code, msg, id)
	reply = fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n"+
		"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: %s\r\n\r\n",
		status, http.StatusText(status), len(payload), id)
	return append(reply, payload...), status, id, true
}
