// Package webhook signs and verifies webhook payloads in the Standard Webhooks,
// Stripe and GitHub schemes, streaming the payload so that its size does not matter.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scheme names a signature format.
type Scheme string

const (
	// Standard is Standard Webhooks v1, as sent by Svix: webhook-id,
	// webhook-timestamp and webhook-signature over "id.timestamp.body".
	Standard Scheme = "standard"
	// Stripe is Stripe-Signature: t=<unix>,v1=<hex> over "t.body".
	Stripe Scheme = "stripe"
	// GitHub is X-Hub-Signature-256: sha256=<hex> over the body alone.
	GitHub Scheme = "github"
)

// DefaultTolerance is how far a timestamp may lie from now, either way, as in
// the Standard Webhooks and Stripe libraries.
const DefaultTolerance = 5 * time.Minute

// ParseScheme parses a scheme name; "" means Standard.
func ParseScheme(s string) (Scheme, error) {
	if s == "" {
		return Standard, nil
	}
	if HeaderNames(Scheme(s)) == nil {
		return "", usageErrorf(ErrInvalidOption, "unknown webhook scheme %q (want standard, stripe or github)", s)
	}
	return Scheme(s), nil
}

// HeaderNames returns the headers a scheme uses, spelled as its documentation
// spells them, in the order to print them; nil for an unknown scheme.
func HeaderNames(s Scheme) []string {
	switch s {
	case Standard, "":
		return []string{"webhook-id", "webhook-timestamp", "webhook-signature"}
	case Stripe:
		return []string{"Stripe-Signature"}
	case GitHub:
		return []string{"X-Hub-Signature-256"}
	}
	return nil
}

// SignOptions says how to sign. Only Secrets is required.
type SignOptions struct {
	Scheme Scheme // "" means Standard
	// Secrets sign the payload, one signature each, so that receivers holding
	// either the old or the new secret accept it during a rotation. GitHub
	// carries a single signature, so it takes exactly one secret rather than
	// silently dropping the others.
	Secrets   []string
	ID        string    // Standard only; "" means NewMessageID(crypto/rand.Reader)
	Timestamp time.Time // Standard and Stripe; zero means time.Now()
}

// Sign reads body once, to the end, and returns the headers to send with it
// (keys canonicalized; HeaderNames gives their print order).
// Errors about the secrets wrap ErrInvalidSecret, other bad options
// ErrInvalidOption; a read error is returned wrapped.
func Sign(body io.Reader, opts SignOptions) (http.Header, error) {
	scheme, keys, err := prepare(opts.Scheme, opts.Secrets)
	if err != nil {
		return nil, err
	}
	if scheme == GitHub && len(keys) > 1 {
		return nil, usageErrorf(ErrInvalidSecret, "github webhooks carry one signature: give one secret, not %d", len(keys))
	}
	if scheme != Standard && opts.ID != "" {
		return nil, usageErrorf(ErrInvalidOption, "a message id applies only to the standard scheme")
	}
	if scheme == GitHub && !opts.Timestamp.IsZero() {
		return nil, usageErrorf(ErrInvalidOption, "github webhook signatures carry no timestamp")
	}
	ts := opts.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	if ts.Unix() < 0 {
		return nil, usageErrorf(ErrInvalidOption, "webhook timestamp %d is before 1970", ts.Unix())
	}
	unix := strconv.FormatInt(ts.Unix(), 10)

	id := opts.ID
	if scheme == Standard {
		if id == "" {
			if id, err = NewMessageID(rand.Reader); err != nil {
				return nil, err
			}
		} else if err := checkID(id); err != nil {
			return nil, err
		}
	}

	sums, err := macs(keys, signedPrefix(scheme, id, unix), body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	switch scheme {
	case Standard:
		sigs := make([]string, len(sums))
		for i, sum := range sums {
			sigs[i] = "v1," + base64.StdEncoding.EncodeToString(sum)
		}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", unix)
		h.Set("webhook-signature", strings.Join(sigs, " "))
	case Stripe:
		v := "t=" + unix
		for _, sum := range sums {
			v += ",v1=" + hex.EncodeToString(sum)
		}
		h.Set("Stripe-Signature", v)
	case GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(sums[0]))
	}
	return h, nil
}

// VerifyOptions says how to verify.
type VerifyOptions struct {
	Scheme  Scheme   // "" means Standard
	Secrets []string // a signature by any one of them is accepted
	// Tolerance bounds |Now - timestamp| for Standard and Stripe: 0 means
	// DefaultTolerance, a negative value skips the check (to replay old deliveries).
	Tolerance time.Duration
	// Now is required whenever the timestamp is checked; verification never
	// reads the clock itself.
	Now time.Time
}

// Verify checks that h carries a valid signature of the payload read from body.
// It returns nil if so and a *VerifyError (compare with errors.Is against
// ErrNoMatch, ErrTooOld, ErrTooNew, ErrMissingHeader, ErrMalformedHeader) if
// not. Errors about the secrets wrap ErrInvalidSecret, other bad options
// ErrInvalidOption; a read error is returned wrapped. Header names are
// matched case-insensitively; for Standard, the svix-* names that Svix sends
// are accepted too. The body is read only once the headers and timestamp pass.
func Verify(body io.Reader, h http.Header, opts VerifyOptions) error {
	scheme, keys, err := prepare(opts.Scheme, opts.Secrets)
	if err != nil {
		return err
	}
	var (
		prefix string
		sigs   [][]byte
	)
	switch scheme {
	case Standard:
		names, values, err := standardHeaders(h)
		if err != nil {
			return err
		}
		ts, err := parseUnix(values[1])
		if err != nil {
			return failf(ErrMalformedHeader, "malformed header %s: not a unix time in seconds", names[1])
		}
		if sigs, err = parseStandardSignatures(values[2]); err != nil {
			return failf(ErrMalformedHeader, "malformed header %s: %v", names[2], err)
		}
		if err := checkTimestamp(ts, opts); err != nil {
			return err
		}
		prefix = signedPrefix(scheme, values[0], strconv.FormatInt(ts, 10))
	case Stripe:
		v, ok := header(h, "Stripe-Signature")
		if !ok {
			return failf(ErrMissingHeader, "missing header Stripe-Signature")
		}
		ts, s, err := parseStripeSignature(v)
		if err != nil {
			return failf(ErrMalformedHeader, "malformed header Stripe-Signature: %v", err)
		}
		if err := checkTimestamp(ts, opts); err != nil {
			return err
		}
		sigs, prefix = s, signedPrefix(scheme, "", strconv.FormatInt(ts, 10))
	case GitHub:
		v, ok := header(h, "X-Hub-Signature-256")
		if !ok {
			return failf(ErrMissingHeader, "missing header X-Hub-Signature-256")
		}
		sig, err := parseGitHubSignature(v)
		if err != nil {
			return failf(ErrMalformedHeader, "malformed header X-Hub-Signature-256: %v", err)
		}
		sigs = [][]byte{sig}
	}

	sums, err := macs(keys, prefix, body)
	if err != nil {
		return err
	}
	for _, sum := range sums {
		for _, sig := range sigs {
			if hmac.Equal(sum, sig) {
				return nil
			}
		}
	}
	return failf(ErrNoMatch, "no matching signature: %s checked against %s", plural(len(sigs), "signature"), plural(len(keys), "secret"))
}

// VerifyError says why a delivery is not valid. Reason is a stable code for
// scripts; Message is for people.
type VerifyError struct {
	Reason  string
	Message string
}

func (e *VerifyError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrTooOld) and the like match on Reason alone.
func (e *VerifyError) Is(target error) bool {
	t, ok := target.(*VerifyError)
	return ok && t.Reason == e.Reason
}

// The reasons Verify gives; its errors carry more detail in Message.
var (
	ErrNoMatch         = &VerifyError{Reason: "no_matching_signature", Message: "no matching signature"}
	ErrTooOld          = &VerifyError{Reason: "timestamp_too_old", Message: "timestamp too old"}
	ErrTooNew          = &VerifyError{Reason: "timestamp_too_new", Message: "timestamp too new"}
	ErrMissingHeader   = &VerifyError{Reason: "missing_header", Message: "missing header"}
	ErrMalformedHeader = &VerifyError{Reason: "malformed_header", Message: "malformed header"}
)

func failf(kind *VerifyError, format string, args ...any) error {
	return &VerifyError{Reason: kind.Reason, Message: fmt.Sprintf(format, args...)}
}

// Usage errors are a matter of what the caller passed, not of the delivery,
// so a CLI can tell them apart (errors.Is) from a failed verification.
var (
	// ErrInvalidSecret: no secret, an empty one, a whsec_ secret that is not
	// base64, or more secrets than the scheme can use.
	ErrInvalidSecret = errors.New("invalid webhook secret")
	// ErrInvalidOption: an unknown scheme, an unusable ID or timestamp, or an
	// option the scheme has no use for.
	ErrInvalidOption = errors.New("invalid webhook option")
)

type usageError struct {
	kind error
	msg  string
}

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return e.kind }

func usageErrorf(kind error, format string, args ...any) error {
	return &usageError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// prepare resolves the scheme and decodes every secret before anything is
// read, so that a usage error never costs a pass over the payload.
func prepare(s Scheme, secrets []string) (Scheme, [][]byte, error) {
	s, err := ParseScheme(string(s))
	if err != nil {
		return "", nil, err
	}
	if len(secrets) == 0 {
		return "", nil, usageErrorf(ErrInvalidSecret, "no webhook secret given")
	}
	keys := make([][]byte, len(secrets))
	for i, secret := range secrets {
		if keys[i], err = decodeSecret(s, secret); err != nil {
			name := "webhook secret"
			if len(secrets) > 1 {
				name += " " + strconv.Itoa(i+1)
			}
			return "", nil, usageErrorf(ErrInvalidSecret, "%s %v", name, err)
		}
	}
	return s, keys, nil
}

func signedPrefix(s Scheme, id, unix string) string {
	switch s {
	case Standard:
		return id + "." + unix + "."
	case Stripe:
		return unix + "."
	}
	return ""
}

// macs computes HMAC-SHA256(key, prefix+body) for every key in one pass over
// body, holding no more of it than io.Copy's buffer.
func macs(keys [][]byte, prefix string, body io.Reader) ([][]byte, error) {
	hs := make([]hash.Hash, len(keys))
	ws := make([]io.Writer, len(keys))
	for i, key := range keys {
		hs[i] = hmac.New(sha256.New, key)
		io.WriteString(hs[i], prefix)
		ws[i] = hs[i]
	}
	if _, err := io.Copy(io.MultiWriter(ws...), body); err != nil {
		return nil, fmt.Errorf("reading webhook payload: %w", err)
	}
	sums := make([][]byte, len(hs))
	for i, h := range hs {
		sums[i] = h.Sum(nil)
	}
	return sums, nil
}

func checkTimestamp(unix int64, opts VerifyOptions) error {
	tolerance := opts.Tolerance
	switch {
	case tolerance < 0:
		return nil
	case tolerance == 0:
		tolerance = DefaultTolerance
	}
	if opts.Now.IsZero() {
		return errors.New("webhook: VerifyOptions.Now is required to check the timestamp")
	}
	ts := time.Unix(unix, 0)
	switch age := opts.Now.Sub(ts); {
	case age > tolerance:
		return failf(ErrTooOld, "timestamp too old: %s is %v before now (tolerance %v)", ts.UTC().Format(time.RFC3339), age, tolerance)
	case age < -tolerance:
		return failf(ErrTooNew, "timestamp too new: %s is %v after now (tolerance %v)", ts.UTC().Format(time.RFC3339), -age, tolerance)
	}
	return nil
}

// standardNames are Standard Webhooks' headers and the svix-* names Svix
// sends; its libraries accept either set, and so do we.
var standardNames = [][3]string{
	{"webhook-id", "webhook-timestamp", "webhook-signature"},
	{"svix-id", "svix-timestamp", "svix-signature"},
}

func standardHeaders(h http.Header) (names, values [3]string, err error) {
	missing := ""
	for _, names := range standardNames {
		values, absent := lookupAll(h, names)
		if absent == "" {
			return names, values, nil
		}
		if missing == "" {
			missing = absent // report what the Standard Webhooks set lacks
		}
	}
	return names, values, failf(ErrMissingHeader, "missing header %s", missing)
}

// lookupAll returns the values of names, or the first name that is missing.
func lookupAll(h http.Header, names [3]string) (values [3]string, missing string) {
	for i, name := range names {
		v, ok := header(h, name)
		if !ok {
			return values, name
		}
		values[i] = v
	}
	return values, ""
}

// header returns the first value of a header, found case-insensitively even
// in a map that was not built with canonical keys. Empty counts as missing.
func header(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) == 0 {
		for k, v := range h {
			if strings.EqualFold(k, name) {
				vs = v
				break
			}
		}
	}
	if len(vs) == 0 {
		return "", false
	}
	v := strings.TrimSpace(vs[0])
	return v, v != ""
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
