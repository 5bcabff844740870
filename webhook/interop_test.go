package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v75/github"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"
	svix "github.com/svix/svix-webhooks/go"
)

// A payload that a careless implementation would mangle.
const interopPayload = "{\"type\": \"bot.created\",  \"name\": \"Zoë 🤖\"}\r\n"

// The libraries check timestamps against the real clock, so these tests sign
// with it.

func TestStandardWebhooksAcceptsOurs(t *testing.T) {
	secrets := []string{specSecret, "whsec_" + strings.Repeat("QUJD", 8)}
	h := mustSign(t, interopPayload, SignOptions{Secrets: secrets, Timestamp: time.Now()})
	for _, secret := range secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify([]byte(interopPayload), h); err != nil {
			t.Errorf("standardwebhooks.Verify: %v", err)
		}
		if err := wh.Verify([]byte(interopPayload+" "), h); err == nil {
			t.Error("standardwebhooks accepted a tampered body")
		}
	}
}

func TestSvixAcceptsOurs(t *testing.T) {
	h := mustSign(t, interopPayload, SignOptions{Secrets: []string{specSecret}, Timestamp: time.Now()})
	wh, err := svix.NewWebhook(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify([]byte(interopPayload), h); err != nil {
		t.Errorf("svix.Verify with webhook-* headers: %v", err)
	}
	renamed := http.Header{}
	for _, name := range []string{"id", "timestamp", "signature"} {
		renamed.Set("svix-"+name, h.Get("webhook-"+name))
	}
	if err := wh.Verify([]byte(interopPayload), renamed); err != nil {
		t.Errorf("svix.Verify with svix-* headers: %v", err)
	}
}

func TestStripeAcceptsOurs(t *testing.T) {
	secrets := []string{"whsec_stripe_new", "whsec_stripe_old"}
	h := mustSign(t, interopPayload, SignOptions{Scheme: Stripe, Secrets: secrets, Timestamp: time.Now()})
	for _, secret := range secrets {
		if err := stripewebhook.ValidatePayload([]byte(interopPayload), h.Get("Stripe-Signature"), secret); err != nil {
			t.Errorf("stripe ValidatePayload: %v", err)
		}
	}
	if err := stripewebhook.ValidatePayload([]byte(interopPayload+" "), h.Get("Stripe-Signature"), secrets[0]); err == nil {
		t.Error("stripe accepted a tampered body")
	}
	old := mustSign(t, interopPayload, SignOptions{Scheme: Stripe, Secrets: secrets, Timestamp: time.Now().Add(-time.Hour)})
	if err := stripewebhook.ValidatePayloadWithTolerance([]byte(interopPayload), old.Get("Stripe-Signature"), secrets[0], 2*time.Hour); err != nil {
		t.Errorf("stripe ValidatePayloadWithTolerance: %v", err)
	}
	if err := stripewebhook.ValidatePayload([]byte(interopPayload), old.Get("Stripe-Signature"), secrets[0]); !errors.Is(err, stripewebhook.ErrTooOld) {
		t.Errorf("stripe ValidatePayload of an hour-old signature: %v", err)
	}
}

func TestGoGitHubAcceptsOurs(t *testing.T) {
	h := mustSign(t, interopPayload, SignOptions{Scheme: GitHub, Secrets: []string{"It's a Secret to Everybody"}})
	sig := h.Get("X-Hub-Signature-256")
	if err := github.ValidateSignature(sig, []byte(interopPayload), []byte("It's a Secret to Everybody")); err != nil {
		t.Errorf("github.ValidateSignature: %v", err)
	}
	if err := github.ValidateSignature(sig, []byte(interopPayload+" "), []byte("It's a Secret to Everybody")); err == nil {
		t.Error("go-github accepted a tampered body")
	}
}

func TestWeVerifyStandardWebhooks(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(specID, specTime, []byte(interopPayload))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, specID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, "1614265330")
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	checkWeVerify(t, Standard, specSecret, h)
}

func TestWeVerifySvix(t *testing.T) {
	wh, err := svix.NewWebhook(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(specID, specTime, []byte(interopPayload))
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"webhook-", "svix-"} {
		t.Run(prefix, func(t *testing.T) {
			h := http.Header{}
			h.Set(prefix+"id", specID)
			h.Set(prefix+"timestamp", "1614265330")
			h.Set(prefix+"signature", sig)
			checkWeVerify(t, Standard, specSecret, h)
		})
	}
}

func TestWeVerifyStripe(t *testing.T) {
	signed := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload:   []byte(interopPayload),
		Secret:    "whsec_stripe",
		Timestamp: specTime,
	})
	checkWeVerify(t, Stripe, "whsec_stripe", http.Header{"Stripe-Signature": {signed.Header}})
}

func TestWeVerifyGitHub(t *testing.T) {
	// go-github has no signer; this is the algorithm GitHub documents.
	mac := hmac.New(sha256.New, []byte("It's a Secret to Everybody"))
	mac.Write([]byte(interopPayload))
	h := http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
	checkWeVerify(t, GitHub, "It's a Secret to Everybody", h)
}

// checkWeVerify: valid as signed (at the edge of the tolerance too), refused
// with a changed body, a stale timestamp or another secret.
func checkWeVerify(t *testing.T, s Scheme, secret string, h http.Header) {
	t.Helper()
	opts := VerifyOptions{Scheme: s, Secrets: []string{secret}, Now: specTime.Add(DefaultTolerance)}
	if err := Verify(strings.NewReader(interopPayload), h, opts); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	wantReason(t, Verify(strings.NewReader(strings.Replace(interopPayload, "Zoë", "Zoe", 1)), h, opts), ErrNoMatch)
	other := opts
	other.Secrets = []string{"whsec_b3RoZXI="}
	wantReason(t, Verify(strings.NewReader(interopPayload), h, other), ErrNoMatch)
	if s == GitHub {
		return // no timestamp to go stale
	}
	stale := opts
	stale.Now = specTime.Add(DefaultTolerance + time.Second)
	wantReason(t, Verify(strings.NewReader(interopPayload), h, stale), ErrTooOld)
}
