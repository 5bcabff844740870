package keystore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// ImportRecord is one line of an import file (JSON Lines). It carries either
// the secret itself (Key) or only its SHA-256 (KeySHA256), to move hashed
// keys from another system without reissuing them.
type ImportRecord struct {
	Name        string            `json:"name"`
	Scopes      []string          `json:"scopes"`
	Environment string            `json:"environment,omitempty"`
	CreatedAt   *time.Time        `json:"created_at,omitempty"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Key         string            `json:"key,omitempty"`
	KeySHA256   string            `json:"key_sha256,omitempty"`
}

// ImportKey is a checked ImportRecord, ready for a store: the secret is
// gone, only its hash and hint remain.
type ImportKey struct {
	Params    CreateParams
	Hash      [32]byte
	Hint      string
	CreatedAt time.Time
}

// ImportResult counts what an import did. Failed holds one entry per record
// that a store refused.
type ImportResult struct {
	Imported int            `json:"imported"`
	Skipped  int            `json:"skipped"`
	Failed   int            `json:"failed"`
	Errors   []ImportFailed `json:"errors,omitempty"`
}

// ImportFailed names a record that could not be imported and why.
type ImportFailed struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ParseImportRecord reads and checks one JSON line at time now. Scopes may be
// patterns. The error never contains the secret.
func ParseImportRecord(line []byte, now time.Time) (*ImportKey, error) {
	var r ImportRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, Errorf(EINVALID, "not a JSON import record: %s", jsonProblem(err))
	}
	if dec.More() {
		return nil, Errorf(EINVALID, "more than one JSON value on the line")
	}
	k := &ImportKey{CreatedAt: now.UTC().Truncate(time.Second)}
	if r.CreatedAt != nil {
		if r.CreatedAt.After(now) {
			return nil, Errorf(EINVALID, "created_at is in the future")
		}
		k.CreatedAt = r.CreatedAt.UTC().Truncate(time.Second)
	}
	switch {
	case r.Key != "" && r.KeySHA256 != "":
		return nil, Errorf(EINVALID, "give key or key_sha256, not both")
	case r.Key != "":
		env, err := ParseToken(r.Key)
		if err != nil {
			return nil, err
		}
		if r.Environment != "" && r.Environment != env {
			return nil, Errorf(EINVALID, "environment %q does not match the key's prefix sk_%s_", truncate(r.Environment, 20), env)
		}
		r.Environment = env
		k.Hash = HashToken(r.Key)
		k.Hint = Hint(r.Key)
	case r.KeySHA256 != "":
		b, err := hex.DecodeString(r.KeySHA256)
		if err != nil || len(b) != 32 {
			return nil, Errorf(EINVALID, "key_sha256 must be 64 hexadecimal characters")
		}
		copy(k.Hash[:], b)
		if r.Environment == "" {
			r.Environment = EnvLive
		}
		// The secret is unknown: the hint can name only its prefix.
		k.Hint = "sk_" + r.Environment + "_…"
	default:
		return nil, Errorf(EINVALID, "a record needs key or key_sha256")
	}
	scopes, err := ExpandScopes(r.Scopes)
	if err != nil {
		return nil, err
	}
	k.Params = CreateParams{Name: r.Name, Scopes: scopes, Environment: r.Environment, Metadata: r.Metadata}
	if r.ExpiresAt != nil {
		e := r.ExpiresAt.UTC().Truncate(time.Second)
		k.Params.ExpiresAt = &e
	}
	if err := k.Params.Validate(now); err != nil {
		return nil, err
	}
	return k, nil
}

// jsonProblem describes a decoding error without quoting the input, which
// may hold a secret.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case asErr(err, &syn):
		return "syntax error at byte " + itoa(int(syn.Offset))
	case asErr(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if strings.Contains(field, "sk_") || len(field) > 40 {
			return "unknown field"
		}
		return "unknown field " + field
	case err.Error() == "EOF":
		return "empty line"
	}
	return "malformed JSON"
}
