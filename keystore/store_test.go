package keystore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func validParams() keystore.CreateParams {
	return keystore.CreateParams{Name: "ci deploy", Scopes: []string{"bots:read"}}
}

func TestValidateDefaults(t *testing.T) {
	p := validParams()
	if err := p.Validate(now); err != nil {
		t.Fatal(err)
	}
	if p.Environment != keystore.EnvLive {
		t.Errorf("default environment = %q, want live", p.Environment)
	}
	p = validParams()
	p.Environment = keystore.EnvTest
	if err := p.Validate(now); err != nil || p.Environment != keystore.EnvTest {
		t.Errorf("Validate with env test: %v, env %q", err, p.Environment)
	}
}

func TestValidate(t *testing.T) {
	past, future := now.Add(-time.Second), now.Add(time.Second)
	meta := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		change func(*keystore.CreateParams)
		ok     bool
		msg    string
	}{
		{"empty name", func(p *keystore.CreateParams) { p.Name = "" }, false, "name"},
		{"one char name", func(p *keystore.CreateParams) { p.Name = "x" }, true, ""},
		{"100 chars", func(p *keystore.CreateParams) { p.Name = strings.Repeat("a", 100) }, true, ""},
		{"101 chars", func(p *keystore.CreateParams) { p.Name = strings.Repeat("a", 101) }, false, "101"},
		{"100 two-byte runes", func(p *keystore.CreateParams) { p.Name = strings.Repeat("é", 100) }, true, ""},
		{"100 four-byte runes", func(p *keystore.CreateParams) { p.Name = strings.Repeat("🔑", 100) }, true, ""},
		{"101 two-byte runes", func(p *keystore.CreateParams) { p.Name = strings.Repeat("é", 101) }, false, "101"},
		{"env prod", func(p *keystore.CreateParams) { p.Environment = "prod" }, false, "prod"},
		{"env LIVE", func(p *keystore.CreateParams) { p.Environment = "LIVE" }, false, "environment"},
		{"no scopes", func(p *keystore.CreateParams) { p.Scopes = nil }, false, "scope"},
		{"empty scopes", func(p *keystore.CreateParams) { p.Scopes = []string{} }, false, "scope"},
		{"unknown scope", func(p *keystore.CreateParams) { p.Scopes = []string{"bots:read", "bot:write"} }, false, "bots:write"},
		{"pattern not expanded", func(p *keystore.CreateParams) { p.Scopes = []string{"bots:*"} }, false, "bots:*"},
		{"all scopes", func(p *keystore.CreateParams) { p.Scopes = canonical }, true, ""},
		{"expiry in the past", func(p *keystore.CreateParams) { p.ExpiresAt = &past }, false, "2025-06-01T11:59:59Z"},
		{"expiry now", func(p *keystore.CreateParams) { p.ExpiresAt = &now }, false, "future"},
		{"expiry in the future", func(p *keystore.CreateParams) { p.ExpiresAt = &future }, true, ""},
		{"empty metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"": "v"} }, false, "metadata"},
		{"40-byte metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{strings.Repeat("k", 40): "v"} }, true, ""},
		{"41-byte metadata key", func(p *keystore.CreateParams) { p.Metadata = map[string]string{strings.Repeat("k", 41): "v"} }, false, "metadata"},
		{"500-byte metadata value", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"k": strings.Repeat("v", 500)} }, true, ""},
		{"501-byte metadata value", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"k": strings.Repeat("v", 501)} }, false, "metadata"},
		{"empty metadata value", func(p *keystore.CreateParams) { p.Metadata = map[string]string{"k": ""} }, true, ""},
		{"50 metadata entries", func(p *keystore.CreateParams) { p.Metadata = meta(50) }, true, ""},
		{"51 metadata entries", func(p *keystore.CreateParams) { p.Metadata = meta(51) }, false, "51"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validParams()
			tc.change(&p)
			err := p.Validate(now)
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			e := wantCode(t, err, keystore.EINVALID)
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not mention %q", e.Message, tc.msg)
			}
			if e.Message != strings.ToLower(e.Message[:1])+e.Message[1:] || strings.HasSuffix(e.Message, ".") || strings.Contains(e.Message, "\n") {
				t.Errorf("message %q is not one lowercase line without a final period", e.Message)
			}
			if len(e.Message) > 300 {
				t.Errorf("message is %d bytes long", len(e.Message))
			}
		})
	}
}

func TestActor(t *testing.T) {
	ctx := context.Background()
	if got := keystore.Actor(ctx); got != "unknown" {
		t.Errorf("Actor(background) = %q, want unknown", got)
	}
	if got := keystore.Actor(keystore.WithActor(ctx, "")); got != "unknown" {
		t.Errorf("Actor(empty) = %q, want unknown", got)
	}
	if got := keystore.Actor(keystore.WithActor(ctx, "alice")); got != "alice" {
		t.Errorf("Actor = %q, want alice", got)
	}
	type otherKey struct{}
	ctx = context.WithValue(keystore.WithActor(ctx, "bob"), otherKey{}, "mallory")
	if got := keystore.Actor(ctx); got != "bob" {
		t.Errorf("Actor = %q, want bob", got)
	}
}
