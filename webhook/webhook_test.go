package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The vector of the Standard Webhooks libraries' tests (TestWebhookSign in
// libraries/go/webhook_test.go, and its twins in every other language).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specUnix      = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var specTime = time.Unix(specUnix, 0)

func mustSign(t testing.TB, body string, opts SignOptions) http.Header {
	t.Helper()
	h, err := Sign(strings.NewReader(body), opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return h
}

func wantReason(t testing.TB, err, want error) {
	t.Helper()
	var ve *VerifyError
	if !errors.Is(err, want) || !errors.As(err, &ve) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func TestStandardSpecVector(t *testing.T) {
	h := mustSign(t, specPayload, SignOptions{Secrets: []string{specSecret}, ID: specID, Timestamp: specTime})
	want := http.Header{}
	want.Set("webhook-id", specID)
	want.Set("webhook-timestamp", "1614265330")
	want.Set("webhook-signature", specSignature)
	if !equalHeader(h, want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	// The official libraries also take the secret without its prefix.
	bare := strings.TrimPrefix(specSecret, "whsec_")
	if err := Verify(strings.NewReader(specPayload), want, VerifyOptions{Secrets: []string{bare}, Now: specTime}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestGitHubDocVector(t *testing.T) {
	// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	secrets := []string{"It's a Secret to Everybody"}
	h := mustSign(t, "Hello, World!", SignOptions{Scheme: GitHub, Secrets: secrets})
	if got := h.Get("X-Hub-Signature-256"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	h = http.Header{"x-hub-signature-256": {want}} // not canonical: still found
	if err := Verify(strings.NewReader("Hello, World!"), h, VerifyOptions{Scheme: GitHub, Secrets: secrets}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestHeaderNames(t *testing.T) {
	for _, s := range []Scheme{Standard, Stripe, GitHub} {
		secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("k"))
		opts := SignOptions{Scheme: s, Secrets: []string{secret}}
		if s != GitHub {
			opts.Timestamp = specTime
		}
		h := mustSign(t, "x", opts)
		names := HeaderNames(s)
		if len(h) != len(names) {
			t.Errorf("%s: Sign set %v, HeaderNames says %v", s, h, names)
		}
		for _, name := range names {
			if h.Get(name) == "" {
				t.Errorf("%s: Sign did not set %s", s, name)
			}
		}
	}
	if HeaderNames("nope") != nil {
		t.Error("HeaderNames of an unknown scheme is not nil")
	}
}

func TestParseScheme(t *testing.T) {
	for in, want := range map[string]Scheme{"": Standard, "standard": Standard, "stripe": Stripe, "github": GitHub} {
		if got, err := ParseScheme(in); err != nil || got != want {
			t.Errorf("ParseScheme(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseScheme("svix"); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("ParseScheme(svix): %v, want ErrInvalidOption", err)
	}
}

// Every scheme must sign the payload's exact bytes: no trimming, no newline
// or encoding normalization.
func TestExactBytes(t *testing.T) {
	payload := "{\"text\": \"héllo wörld 👋 — ünïcødé\",  \"tabs\":\t\t1 ,\r\n  \"crlf\": \"a\r\nb\" }\r\n\n"
	key := []byte("exact-bytes-key")
	for _, tc := range []struct {
		scheme Scheme
		secret string
		prefix string
		header string
		format func([]byte) string
	}{
		{Standard, "whsec_" + base64.StdEncoding.EncodeToString(key), specID + ".1614265330.", "webhook-signature",
			func(m []byte) string { return "v1," + base64.StdEncoding.EncodeToString(m) }},
		{Stripe, string(key), "1614265330.", "Stripe-Signature",
			func(m []byte) string { return "t=1614265330,v1=" + hex.EncodeToString(m) }},
		{GitHub, string(key), "", "X-Hub-Signature-256",
			func(m []byte) string { return "sha256=" + hex.EncodeToString(m) }},
	} {
		t.Run(string(tc.scheme), func(t *testing.T) {
			opts := SignOptions{Scheme: tc.scheme, Secrets: []string{tc.secret}}
			if tc.scheme == Standard {
				opts.ID = specID
			}
			if tc.scheme != GitHub {
				opts.Timestamp = specTime
			}
			// One byte at a time, so that no buffering can hide a lost or added byte.
			h, err := Sign(iotest.OneByteReader(strings.NewReader(payload)), opts)
			if err != nil {
				t.Fatal(err)
			}
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(tc.prefix + payload))
			if got, want := h.Get(tc.header), tc.format(mac.Sum(nil)); got != want {
				t.Fatalf("%s: got %s, want %s", tc.header, got, want)
			}
			vopts := VerifyOptions{Scheme: tc.scheme, Secrets: []string{tc.secret}, Now: specTime}
			if err := Verify(strings.NewReader(payload), h, vopts); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for i := range len(payload) {
				changed := []byte(payload)
				changed[i] ^= 0x01
				wantReason(t, Verify(bytes.NewReader(changed), h, vopts), ErrNoMatch)
			}
			wantReason(t, Verify(strings.NewReader(payload+"\n"), h, vopts), ErrNoMatch)
			wantReason(t, Verify(strings.NewReader(payload[:len(payload)-1]), h, vopts), ErrNoMatch)
		})
	}
}

func TestRotation(t *testing.T) {
	oldSecret, _ := NewSecret(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	newSecret, _ := NewSecret(bytes.NewReader(bytes.Repeat([]byte{2}, 32)))
	stranger, _ := NewSecret(bytes.NewReader(bytes.Repeat([]byte{3}, 32)))
	for _, s := range []Scheme{Standard, Stripe} {
		t.Run(string(s), func(t *testing.T) {
			h := mustSign(t, specPayload, SignOptions{Scheme: s, Secrets: []string{newSecret, oldSecret}, Timestamp: specTime})
			switch s {
			case Standard:
				if sigs := strings.Split(h.Get("webhook-signature"), " "); len(sigs) != 2 {
					t.Fatalf("want two space-separated signatures, got %q", sigs)
				}
			case Stripe:
				if n := strings.Count(h.Get("Stripe-Signature"), ",v1="); n != 2 {
					t.Fatalf("want two v1= signatures, got %d in %q", n, h.Get("Stripe-Signature"))
				}
			}
			for _, secrets := range [][]string{{oldSecret}, {newSecret}, {stranger, oldSecret}} {
				err := Verify(strings.NewReader(specPayload), h, VerifyOptions{Scheme: s, Secrets: secrets, Now: specTime})
				if err != nil {
					t.Errorf("Verify with %d secret(s): %v", len(secrets), err)
				}
			}
			err := Verify(strings.NewReader(specPayload), h, VerifyOptions{Scheme: s, Secrets: []string{stranger}, Now: specTime})
			wantReason(t, err, ErrNoMatch)
		})
	}
	t.Run("github", func(t *testing.T) {
		// One signature only: signing refuses a second secret rather than
		// silently dropping it; verifying accepts any of several.
		_, err := Sign(strings.NewReader("x"), SignOptions{Scheme: GitHub, Secrets: []string{"new", "old"}})
		if !errors.Is(err, ErrInvalidSecret) {
			t.Fatalf("Sign with two secrets: %v, want ErrInvalidSecret", err)
		}
		h := mustSign(t, "x", SignOptions{Scheme: GitHub, Secrets: []string{"old"}})
		if err := Verify(strings.NewReader("x"), h, VerifyOptions{Scheme: GitHub, Secrets: []string{"new", "old"}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTolerance(t *testing.T) {
	for _, s := range []Scheme{Standard, Stripe} {
		opts := SignOptions{Scheme: s, Secrets: []string{specSecret}, Timestamp: specTime}
		h := mustSign(t, specPayload, opts)
		for _, tc := range []struct {
			now       time.Time
			tolerance time.Duration
			want      error
		}{
			{specTime, 0, nil},
			{specTime.Add(5 * time.Minute), 0, nil},
			{specTime.Add(-5 * time.Minute), 0, nil},
			{specTime.Add(5*time.Minute + time.Nanosecond), 0, ErrTooOld},
			{specTime.Add(-5*time.Minute - time.Nanosecond), 0, ErrTooNew},
			{specTime.Add(time.Hour), 0, ErrTooOld},
			{specTime.Add(time.Hour), time.Hour, nil},
			{specTime.Add(time.Second), time.Second, nil},
			{specTime.Add(-2 * time.Second), time.Second, ErrTooNew},
			{specTime.AddDate(10, 0, 0), -1, nil}, // check skipped
			{time.Time{}, -1, nil},
		} {
			err := Verify(strings.NewReader(specPayload), h, VerifyOptions{Scheme: s, Secrets: []string{specSecret}, Now: tc.now, Tolerance: tc.tolerance})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%s now=%+ds tolerance=%v: got %v, want %v", s, tc.now.Unix()-specUnix, tc.tolerance, err, tc.want)
			}
		}
		// Verify never reads the clock itself.
		err := Verify(strings.NewReader(specPayload), h, VerifyOptions{Scheme: s, Secrets: []string{specSecret}})
		var ve *VerifyError
		if err == nil || errors.As(err, &ve) {
			t.Errorf("%s without Now: got %v, want a plain error", s, err)
		}
	}
}

func TestHeaderProblems(t *testing.T) {
	good := mustSign(t, specPayload, SignOptions{Secrets: []string{specSecret}, ID: specID, Timestamp: specTime})
	with := func(name, value string) http.Header {
		h := good.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	for _, tc := range []struct {
		scheme Scheme
		h      http.Header
		want   error
	}{
		{Standard, with("webhook-id", ""), ErrMissingHeader},
		{Standard, with("webhook-timestamp", ""), ErrMissingHeader},
		{Standard, with("webhook-signature", ""), ErrMissingHeader},
		{Standard, with("webhook-signature", "   "), ErrMissingHeader},
		{Standard, with("webhook-timestamp", "+1614265330"), ErrMalformedHeader},
		{Standard, with("webhook-timestamp", "1614265330.5"), ErrMalformedHeader},
		{Standard, with("webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), ErrMalformedHeader},
		{Standard, with("webhook-signature", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), ErrMalformedHeader},
		{Standard, with("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="), ErrMalformedHeader}, // non-canonical base64
		{Standard, with("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), ErrNoMatch},
		{Standard, with("webhook-signature", "v1a,abc v1,x v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), nil},
		{Standard, with("webhook-id", "msg_other"), ErrNoMatch},
		{Stripe, http.Header{}, ErrMissingHeader},
		{Stripe, http.Header{"Stripe-Signature": {"v1=" + strings.Repeat("ab", 32)}}, ErrMalformedHeader},
		{Stripe, http.Header{"Stripe-Signature": {"t=1614265330"}}, ErrMalformedHeader},
		{Stripe, http.Header{"Stripe-Signature": {"t=1614265330,t=1614265330,v1=" + strings.Repeat("ab", 32)}}, ErrMalformedHeader},
		{Stripe, http.Header{"Stripe-Signature": {"t=-5,v1=" + strings.Repeat("ab", 32)}}, ErrMalformedHeader},
		{Stripe, http.Header{"Stripe-Signature": {"t=1614265330,v1=" + strings.Repeat("ab", 32)}}, ErrNoMatch},
		{GitHub, http.Header{}, ErrMissingHeader},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha1=" + strings.Repeat("ab", 20)}}, ErrMalformedHeader},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("ab", 31)}}, ErrMalformedHeader},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("ab", 32)}}, ErrNoMatch},
	} {
		err := Verify(strings.NewReader(specPayload), tc.h, VerifyOptions{Scheme: tc.scheme, Secrets: []string{specSecret}, Now: specTime})
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s %v: %v", tc.scheme, tc.h, err)
			}
			continue
		}
		var ve *VerifyError
		if !errors.Is(err, tc.want) || !errors.As(err, &ve) || ve.Reason != tc.want.(*VerifyError).Reason {
			t.Errorf("%s %v: got %v, want %v", tc.scheme, tc.h, err, tc.want)
		}
	}
}

func TestVerifyErrorMessages(t *testing.T) {
	err := Verify(strings.NewReader(""), http.Header{}, VerifyOptions{Secrets: []string{specSecret}, Now: specTime})
	if got, want := err.Error(), "missing header webhook-id"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	h := mustSign(t, specPayload, SignOptions{Secrets: []string{specSecret}, Timestamp: specTime})
	err = Verify(strings.NewReader(specPayload), h, VerifyOptions{Secrets: []string{specSecret}, Now: specTime.Add(6 * time.Minute)})
	if got, want := err.Error(), "timestamp too old: 2021-02-25T15:02:10Z is 6m0s before now (tolerance 5m0s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var ve *VerifyError
	if errors.As(err, &ve); ve.Reason != "timestamp_too_old" {
		t.Errorf("reason %q", ve.Reason)
	}
	err = Verify(strings.NewReader("other"), h, VerifyOptions{Secrets: []string{specSecret, specSecret}, Now: specTime})
	if got, want := err.Error(), "no matching signature: 1 signature checked against 2 secrets"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	body := func() io.Reader { return strings.NewReader("x") }
	for _, tc := range []struct {
		opts SignOptions
		want error
	}{
		{SignOptions{}, ErrInvalidSecret},
		{SignOptions{Secrets: []string{""}}, ErrInvalidSecret},
		{SignOptions{Secrets: []string{"whsec_"}}, ErrInvalidSecret},
		{SignOptions{Secrets: []string{"whsec_not base64!"}}, ErrInvalidSecret},
		{SignOptions{Secrets: []string{specSecret, "whsec_%%%"}}, ErrInvalidSecret},
		{SignOptions{Scheme: Stripe, Secrets: []string{""}}, ErrInvalidSecret},
		{SignOptions{Scheme: GitHub, Secrets: []string{"a", "b"}}, ErrInvalidSecret},
		{SignOptions{Scheme: "svix", Secrets: []string{specSecret}}, ErrInvalidOption},
		{SignOptions{Secrets: []string{specSecret}, ID: "msg 1"}, ErrInvalidOption},
		{SignOptions{Secrets: []string{specSecret}, ID: "msg\n1"}, ErrInvalidOption},
		{SignOptions{Secrets: []string{specSecret}, Timestamp: time.Unix(-1, 0)}, ErrInvalidOption},
		{SignOptions{Scheme: Stripe, Secrets: []string{"s"}, ID: "msg_1"}, ErrInvalidOption},
		{SignOptions{Scheme: GitHub, Secrets: []string{"s"}, Timestamp: specTime}, ErrInvalidOption},
	} {
		_, err := Sign(body(), tc.opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("Sign(%+v): %v, want %v", tc.opts, err, tc.want)
		}
		if strings.Contains(err.Error(), "MfKQ9r8G") {
			t.Errorf("error reveals the secret: %v", err)
		}
		vopts := VerifyOptions{Scheme: tc.opts.Scheme, Secrets: tc.opts.Secrets, Now: specTime}
		if err := Verify(body(), http.Header{}, vopts); tc.want == ErrInvalidSecret && len(tc.opts.Secrets) < 2 && !errors.Is(err, tc.want) {
			t.Errorf("Verify(%+v): %v, want %v", vopts, err, tc.want)
		}
	}
	_, err := Sign(body(), SignOptions{Secrets: []string{specSecret, "whsec_%%%"}})
	if got, want := err.Error(), "webhook secret 2 is not valid base64 after whsec_"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Sign(iotest.ErrReader(boom), SignOptions{Secrets: []string{specSecret}})
	if !errors.Is(err, boom) {
		t.Errorf("Sign: %v", err)
	}
	h := mustSign(t, "", SignOptions{Secrets: []string{specSecret}, Timestamp: specTime})
	err = Verify(iotest.ErrReader(boom), h, VerifyOptions{Secrets: []string{specSecret}, Now: specTime})
	var ve *VerifyError
	if !errors.Is(err, boom) || errors.As(err, &ve) {
		t.Errorf("Verify: %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	s, err := NewSecret(bytes.NewReader(make([]byte, 32)))
	if want := "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; err != nil || s != want {
		t.Fatalf("got %q, %v; want %q", s, err, want)
	}
	if key, err := decodeSecret(Standard, s); err != nil || len(key) != 32 {
		t.Fatalf("decoded to %d bytes, %v", len(key), err)
	}
	if _, err := NewSecret(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("NewSecret from 31 bytes did not fail")
	}
}

func TestNewMessageID(t *testing.T) {
	// 0xff and 0xf8 are above the rejection bound; 62 wraps to 0.
	src := append(bytes.Repeat([]byte{0xff, 0xf8, 1, 62}, 24), make([]byte, 64)...)
	id, err := NewMessageID(bytes.NewReader(src))
	if want := "msg_" + strings.Repeat("10", 12); err != nil || id != want {
		t.Fatalf("got %q, %v; want %q", id, err, want)
	}
	if _, err := NewMessageID(bytes.NewReader(bytes.Repeat([]byte{0xff}, 100))); err == nil {
		t.Fatal("NewMessageID from unusable bytes did not fail")
	}
	// The default ID of Sign.
	h := mustSign(t, "x", SignOptions{Secrets: []string{specSecret}})
	if id := h.Get("webhook-id"); len(id) != 28 || !strings.HasPrefix(id, "msg_") || strings.Trim(id[4:], base62) != "" {
		t.Fatalf("default ID %q", id)
	}
}

// pattern yields n bytes without holding them.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(p.n - int64(i))
	}
	p.n -= int64(len(b))
	return len(b), nil
}

func TestSignStreamsInFlatMemory(t *testing.T) {
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h, err := Sign(&pattern{n: size}, SignOptions{Secrets: []string{specSecret, "whsec_c2Vjb25k"}, ID: specID, Timestamp: specTime})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	grown := after.TotalAlloc - before.TotalAlloc
	t.Logf("signing %d MiB allocated %d KiB", size>>20, grown>>10)
	if grown > 2<<20 {
		t.Errorf("signing %d MiB allocated %d KiB", size>>20, grown>>10)
	}
	if err := Verify(&pattern{n: size}, h, VerifyOptions{Secrets: []string{"whsec_c2Vjb25k"}, Now: specTime}); err != nil {
		t.Fatal(err)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a.Get(k) != b.Get(k) {
			return false
		}
	}
	return true
}
