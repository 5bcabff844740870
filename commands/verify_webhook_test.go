package commands

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/webhook"
)

func TestParseHeaderLine(t *testing.T) {
	tests := []struct {
		line, name, value string
		ok                bool
	}{
		{"webhook-id: msg_1", "webhook-id", "msg_1", true},
		{"  X-Hub-Signature-256 :sha256=ab  ", "X-Hub-Signature-256", "sha256=ab", true},
		{"Stripe-Signature: t=1,v1=a:b", "Stripe-Signature", "t=1,v1=a:b", true}, // split at the first colon
		{"webhook-signature:", "webhook-signature", "", true},
		{"webhook-id msg_1", "", "", false},
		{": value", "", "", false},
		{"web hook: x", "", "", false},
		{"webhook-id: a\nb", "", "", false},
	}
	for _, tt := range tests {
		name, value, err := parseHeaderLine(tt.line)
		if (err == nil) != tt.ok || name != tt.name || value != tt.value {
			t.Errorf("parseHeaderLine(%q) = %q, %q, %v; want %q, %q, ok %v", tt.line, name, value, err, tt.name, tt.value, tt.ok)
		}
	}
}

// FuzzParseHeaderLine: whatever it accepts is a header that prints back as
// one "Name: value" line and parses to the same.
func FuzzParseHeaderLine(f *testing.F) {
	for _, s := range []string{"webhook-id: msg_1", "a:b:c", ":", " x : y ", "web hook: x", "x: \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		name, value, err := parseHeaderLine(line)
		if err != nil {
			return
		}
		if !validHeaderName(name) || strings.ContainsAny(value, "\r\n\x00") || value != strings.TrimSpace(value) {
			t.Fatalf("parseHeaderLine(%q) accepted %q: %q", line, name, value)
		}
		n2, v2, err := parseHeaderLine(name + ": " + value)
		if err != nil || n2 != name || v2 != value {
			t.Fatalf("round trip of %q: %q, %q, %v", line, n2, v2, err)
		}
	})
}

func TestVerifyWebhookOptions(t *testing.T) {
	webhookEnv(t)
	tests := []struct {
		line      string
		tolerance time.Duration
		header    http.Header
		wantErr   string
	}{
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'webhook-id: x' -H 'Webhook-Timestamp:1' p.json", tolerance: 5 * time.Minute,
			header: http.Header{"Webhook-Id": {"x"}, "Webhook-Timestamp": {"1"}}},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1' --tolerance 1d2h p.json", tolerance: 26 * time.Hour, header: http.Header{"A": {"1"}}},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1' --ignore-timestamp p.json", tolerance: -1, header: http.Header{"A": {"1"}}},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1' -H 'a: 2' -", tolerance: 5 * time.Minute, header: http.Header{"A": {"1", "2"}}},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a' p.json", wantErr: `invalid --header "a"`},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1' --tolerance 0s p.json", wantErr: "--tolerance must be positive"},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1' --scheme svix p.json", wantErr: `unknown webhook scheme "svix"`},
		{line: "--secret whsec_!! -H 'a: 1' p.json", wantErr: "webhook secret is not valid base64"},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw p.json", wantErr: "needs the delivery's headers"},
		{line: "--secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -H 'a: 1'", wantErr: "needs the payload"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got *VerifyWebhookOptions
			cmd := NewCmdVerifyWebhook(testFactory(false), func(o *VerifyWebhookOptions) error { got = o; return nil })
			err := parse(t, cmd, tt.line)
			if tt.wantErr != "" {
				checkUsageError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Verify.Tolerance != tt.tolerance || !got.Verify.Now.Equal(testNow) || got.Verify.Scheme != webhook.Standard {
				t.Errorf("Verify = %+v, want tolerance %v, now %v", got.Verify, tt.tolerance, testNow)
			}
			if len(got.Header) != len(tt.header) {
				t.Errorf("Header = %v, want %v", got.Header, tt.header)
			}
			for k, v := range tt.header {
				if strings.Join(got.Header[k], ",") != strings.Join(v, ",") {
					t.Errorf("Header[%s] = %v, want %v", k, got.Header[k], v)
				}
			}
		})
	}
}
