package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/cache"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/server"
)

// discardWriter is the least a ResponseWriter does: a fresh header map per
// request, as net/http makes.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkVerifyEndpoint is POST /v1/api-keys/verify through the handler,
// with a cached store and a request log, without the network: what the
// server adds to net/http's own cost per request.
func BenchmarkVerifyEndpoint(b *testing.B) {
	file, err := sqlite.Open(filepath.Join(b.TempDir(), "keys.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	store, err := cache.New(file, cache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	caller, err := store.Create(ctx, keystore.CreateParams{Name: "service", Scopes: []string{"bots:read"}})
	if err != nil {
		b.Fatal(err)
	}
	k, err := store.Create(ctx, keystore.CreateParams{Name: "client", Scopes: []string{"bots:read", "bots:write"}})
	if err != nil {
		b.Fatal(err)
	}
	h := server.New(store, server.Options{Logger: server.NewLogger(io.Discard)})
	body := []byte(`{"key":"` + k.Secret + `","scopes":["bots:read"]}`)
	auth := "Bearer " + caller.Secret
	run := func(b *testing.B, h http.Handler) {
		var rd bytes.Reader
		for b.Loop() {
			rd.Reset(body)
			r, _ := http.NewRequest("POST", "/v1/api-keys/verify", &rd)
			r.Header["Authorization"] = []string{auth}
			r.Header["Content-Type"] = []string{"application/json"}
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	}
	b.Run("keyctl", func(b *testing.B) { run(b, h) })
	reply := []byte(`{"data":{"valid":true,"code":"valid","key":null,"missing_scopes":[]}}` + "\n")
	b.Run("bare", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(reply)
		}))
	})
}
