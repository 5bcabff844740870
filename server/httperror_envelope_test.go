package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The replies that net/http writes itself, before the API's handler runs,
// come as the API's JSON error envelope too.
func TestServeHTTPErrorsAsEnvelope(t *testing.T) {
	addr := startServe(t, Timeouts{})
	for _, tt := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers over the limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", MaxHeaderBytes+8192) + "\r\n\r\n", 431, "too_large"},
		{"two Content-Lengths", "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "invalid"},
		{"bad request line", "GARBAGE\r\n\r\n", 400, "invalid"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid"},
		{"unknown transfer coding", "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"},
		{"bad header name", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400, "invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(conn, tt.req) // the server may answer before it has read all
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env struct {
				Error struct {
					Code, Message string
					RequestID     string `json:"request_id"`
				} `json:"error"`
			}
			body, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("reply %d %q is not JSON: %v", resp.StatusCode, body, err)
			}
			e := env.Error
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Message == "" ||
				resp.Header.Get("Content-Type") != "application/json" || e.RequestID == "" || e.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("reply %d %v %s, want %d with code %s in the envelope", resp.StatusCode, resp.Header, body, tt.status, tt.code)
			}
		})
	}
}
