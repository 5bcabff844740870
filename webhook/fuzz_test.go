package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each parser fuzz target checks that the parser never panics, that what it
// accepts re-encodes to a value it parses the same way, and that Verify
// answers a delivery carrying the value with nil or a *VerifyError, nothing
// else. FuzzSecret checks that every accepted secret signs what it verifies.

func FuzzStandardSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		specSignature,
		specSignature + " v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " + specSignature,
		"v1,", ",", "v1", "v1,,,", "  \t ", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", "v1,====",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sigs, err := parseStandardSignatures(v)
		if err == nil {
			var b strings.Builder
			for _, sig := range sigs {
				b.WriteString(" v1," + base64.StdEncoding.EncodeToString(sig))
			}
			again, err := parseStandardSignatures(b.String())
			if err != nil || !slices.EqualFunc(sigs, again, bytes.Equal) {
				t.Fatalf("%q parsed to %x, re-encoded to %q, parsed to %x, %v", v, sigs, b.String(), again, err)
			}
		}
		h := http.Header{"Webhook-Id": {specID}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {v}}
		checkVerifyAnswer(t, Standard, h, v == specSignature)
	})
}

func FuzzStripeSignatureHeader(f *testing.F) {
	sig := strings.Repeat("5f", 32)
	for _, seed := range []string{
		"t=1614265330,v1=" + sig,
		"t=1614265330,v1=" + sig + ",v1=" + strings.Repeat("00", 32) + ",v0=" + sig,
		" t=1614265330 , v1=" + sig, "t=1614265330,t=1,v1=" + sig, "t=,v1=", "t=-1,v1=" + sig,
		"t=99999999999999999999,v1=" + sig, "v1=" + sig, "t=1", "=,=,", ",,,", "t==1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		unix, sigs, err := parseStripeSignature(v)
		if err == nil {
			re := "t=" + strconv.FormatInt(unix, 10)
			for _, sig := range sigs {
				re += ",v1=" + hex.EncodeToString(sig)
			}
			unix2, again, err := parseStripeSignature(re)
			if err != nil || unix2 != unix || !slices.EqualFunc(sigs, again, bytes.Equal) {
				t.Fatalf("%q parsed to %d %x, re-encoded to %q, parsed to %d %x, %v", v, unix, sigs, re, unix2, again, err)
			}
		}
		checkVerifyAnswer(t, Stripe, http.Header{"Stripe-Signature": {v}}, false)
	})
}

func FuzzGitHubSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		"sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
		"sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "sha256=", "sha256", "=", "sha256=zz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sig, err := parseGitHubSignature(v)
		if err == nil {
			again, err := parseGitHubSignature("sha256=" + hex.EncodeToString(sig))
			if err != nil || !bytes.Equal(sig, again) || !strings.EqualFold(v, "sha256="+hex.EncodeToString(sig)) {
				t.Fatalf("%q parsed to %x, re-parsed to %x, %v", v, sig, again, err)
			}
		}
		checkVerifyAnswer(t, GitHub, http.Header{"X-Hub-Signature-256": {v}}, false)
	})
}

// checkVerifyAnswer verifies specPayload against h with specSecret.
func checkVerifyAnswer(t *testing.T, s Scheme, h http.Header, wantValid bool) {
	t.Helper()
	err := Verify(strings.NewReader(specPayload), h, VerifyOptions{Scheme: s, Secrets: []string{specSecret}, Now: specTime})
	var ve *VerifyError
	if err != nil && !errors.As(err, &ve) {
		t.Fatalf("Verify(%v): %v is not a *VerifyError", h, err)
	}
	if wantValid && err != nil {
		t.Fatalf("Verify(%v): %v", h, err)
	}
}

func FuzzSecret(f *testing.F) {
	for _, seed := range []string{
		specSecret, strings.TrimPrefix(specSecret, "whsec_"), "whsec_", "", "whsec_=", "whsec_QQ", "whsec_QQ==",
		"whsec_QR==", "whsec_ QQ==", "whsec_whsec_QQ==", "It's a Secret to Everybody", "\x00",
	} {
		f.Add(seed, []byte(specPayload), int64(specUnix))
	}
	f.Fuzz(func(t *testing.T, secret string, body []byte, unix int64) {
		if unix < 0 {
			unix = -unix
		}
		if unix < 0 {
			unix = 0
		}
		for _, s := range []Scheme{Standard, Stripe, GitHub} {
			key, err := decodeSecret(s, secret)
			if err != nil {
				_, signErr := Sign(bytes.NewReader(body), SignOptions{Scheme: s, Secrets: []string{secret}, Timestamp: time.Unix(unix, 0)})
				if !errors.Is(signErr, ErrInvalidSecret) {
					t.Fatalf("%s: decodeSecret(%q): %v, but Sign: %v", s, secret, err, signErr)
				}
				continue
			}
			if len(key) == 0 {
				t.Fatalf("%s: decodeSecret(%q) gave an empty key", s, secret)
			}
			if s == Standard {
				// The canonical spelling of a key decodes to the same key.
				if again, err := decodeSecret(s, "whsec_"+base64.StdEncoding.EncodeToString(key)); err != nil || !bytes.Equal(key, again) {
					t.Fatalf("decodeSecret(%q) = %x, re-encoded gives %x, %v", secret, key, again, err)
				}
			}
			opts := SignOptions{Scheme: s, Secrets: []string{secret}}
			if s != GitHub {
				opts.Timestamp = time.Unix(unix, 0)
			}
			h, err := Sign(bytes.NewReader(body), opts)
			if err != nil {
				t.Fatalf("%s: Sign with secret %q: %v", s, secret, err)
			}
			vopts := VerifyOptions{Scheme: s, Secrets: []string{secret}, Tolerance: -1}
			if err := Verify(bytes.NewReader(body), h, vopts); err != nil {
				t.Fatalf("%s: Verify what we signed with secret %q: %v", s, secret, err)
			}
			changed := append(slices.Clone(body), 0)
			if err := Verify(bytes.NewReader(changed), h, vopts); !errors.Is(err, ErrNoMatch) {
				t.Fatalf("%s: Verify of a longer body: %v", s, err)
			}
		}
	})
}
