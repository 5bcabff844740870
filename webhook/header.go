package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Strict, because a non-canonical encoding is not what any signer sends and
// the official libraries, comparing strings, would refuse it.
var base64Strict = base64.StdEncoding.Strict()

// parseStandardSignatures returns the v1 signatures of a webhook-signature
// value ("v1,<base64> v1,<base64>"). Like the official libraries it skips
// entries it does not understand, such as other versions (v1a), so that
// senders can add them; only a value without any usable v1 is malformed.
func parseStandardSignatures(v string) ([][]byte, error) {
	var sigs [][]byte
	for _, entry := range strings.Fields(v) {
		version, sig, _ := strings.Cut(entry, ",")
		if version != "v1" {
			continue
		}
		if b, err := base64Strict.DecodeString(sig); err == nil && len(b) == sha256.Size {
			sigs = append(sigs, b)
		}
	}
	if len(sigs) == 0 {
		return nil, errors.New("no v1,<base64 HMAC-SHA256> signature")
	}
	return sigs, nil
}

// parseStripeSignature parses "t=<unix>,v1=<hex>[,v1=<hex>]". Like stripe-go
// it ignores other keys (v0, scheme versions to come) and v1 values that are
// not hex, but it refuses a second t=, which would make the signed content
// ambiguous.
func parseStripeSignature(v string) (unix int64, sigs [][]byte, err error) {
	seenT := false
	for _, part := range strings.Split(v, ",") {
		key, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "t":
			if seenT {
				return 0, nil, errors.New("more than one t= timestamp")
			}
			seenT = true
			if unix, err = parseUnix(val); err != nil {
				return 0, nil, errors.New("t= is not a unix time in seconds")
			}
		case "v1":
			if b, err := hex.DecodeString(val); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	if !seenT {
		return 0, nil, errors.New("no t= timestamp")
	}
	if len(sigs) == 0 {
		return 0, nil, errors.New("no v1=<hex HMAC-SHA256> signature")
	}
	return unix, sigs, nil
}

// parseGitHubSignature parses "sha256=<hex>".
func parseGitHubSignature(v string) ([]byte, error) {
	hexSig, ok := strings.CutPrefix(v, "sha256=")
	b, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, errors.New("want sha256=<64 hex digits>")
	}
	return b, nil
}

// parseUnix accepts decimal digits only: strconv alone would also take a
// sign, which no signer sends.
func parseUnix(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}
