package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

const secretPrefix = "whsec_"

// NewSecret returns a fresh Standard Webhooks secret: whsec_ and the base64
// of 32 bytes read from r (crypto/rand.Reader outside tests).
func NewSecret(r io.Reader) (string, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(r, key); err != nil {
		return "", fmt.Errorf("generating webhook secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewMessageID returns a fresh message ID: msg_ and 24 base62 characters
// (about 143 bits) drawn from r.
func NewMessageID(r io.Reader) (string, error) {
	id := make([]byte, 0, len("msg_")+24)
	id = append(id, "msg_"...)
	var buf [32]byte
	for len(id) < cap(id) {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("generating webhook message id: %w", err)
		}
		for _, b := range buf {
			// 248 is 4*62: dropping the bytes above it keeps every character equally likely.
			if b < 248 && len(id) < cap(id) {
				id = append(id, base62[b%62])
			}
		}
	}
	return string(id), nil
}

// checkID refuses IDs that would not survive as a header value or as one
// "Name: value" line of output.
func checkID(id string) error {
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return usageErrorf(ErrInvalidOption, "webhook message id %q: only printable ASCII without spaces", id)
		}
	}
	return nil
}

// decodeSecret returns the HMAC key for a secret. Standard Webhooks keys are
// the base64-decoded secret, with or without its whsec_ prefix (as in the
// official libraries); Stripe and GitHub use the secret's own bytes, so a
// Stripe whsec_ secret is not decoded.
func decodeSecret(s Scheme, secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("is empty")
	}
	if s != Standard {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, errors.New("is not valid base64 after " + secretPrefix)
	}
	if len(key) == 0 {
		return nil, errors.New("is empty after " + secretPrefix)
	}
	return key, nil
}
