package keystore

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxImportBatch bounds the keys of one Store.Import call. A batch is one
// transaction: a large one makes an import fast (each commit writes every
// page of the indexes it touched, and the keys' IDs and hashes are random),
// a bounded one keeps the store's write lock short for other writers
// (BENCHMARKS.md, goal 5).
const MaxImportBatch = 10000

// CheckBatch refuses a batch of n keys or events (what) larger than
// MaxImportBatch, for every store that imports or restores. EINVALID.
func CheckBatch(n int, what string) error {
	if n > MaxImportBatch {
		return Errorf(EINVALID, "%d %s in one import batch, at most %d", n, what, MaxImportBatch)
	}
	return nil
}

// Where an imported key came from: the secret itself, or only its SHA-256.
const (
	ImportSourceKey    = "key"
	ImportSourceSHA256 = "key_sha256"
)

// ImportRecord is one line of an import file (JSON Lines). It carries either
// the secret itself (Key) or only its SHA-256 (KeySHA256), to move hashed
// keys from another system without reissuing them. Hint goes only with
// KeySHA256: the display hint the other system kept, such as
// sk_live_3nF8…a9Qz; without it the hint shows only the prefix.
type ImportRecord struct {
	Name        string            `json:"name"`
	Scopes      []string          `json:"scopes"`
	Environment string            `json:"environment,omitempty"`
	CreatedAt   *time.Time        `json:"created_at,omitempty"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Key         string            `json:"key,omitempty"`
	KeySHA256   string            `json:"key_sha256,omitempty"`
	Hint        string            `json:"hint,omitempty"`
}

// ImportKey is a checked ImportRecord, ready for a store: the secret is
// gone, only its hash and hint remain. A zero CreatedAt means the time of
// the import, by the store's clock.
type ImportKey struct {
	Params    CreateParams
	Hash      [32]byte
	Hint      string
	CreatedAt time.Time
	Source    string // ImportSourceKey or ImportSourceSHA256; "" counts as the latter
}

// BatchImporter is a Store that keeps what it learns from one import batch
// for the next (the SQLite store: a warm page cache). A caller that sends
// many batches begins an import, sends them through it, and closes it.
type BatchImporter interface {
	BeginImport(ctx context.Context) (ImportSession, error)
}

// ImportSession is an import of many batches. Its Import is Store.Import:
// each batch is still one transaction, with the same results and errors.
// Batches go one at a time. Close ends the session, whatever happened.
type ImportSession interface {
	Import(ctx context.Context, keys []ImportKey) (ImportResult, error)
	Close() error
}

// ImportResult counts what an import did. Failed holds one entry per record
// that a store refused.
type ImportResult struct {
	Imported int            `json:"imported"`
	Skipped  int            `json:"skipped"`
	Failed   int            `json:"failed"`
	Errors   []ImportFailed `json:"errors,omitempty"`
}

// ImportFailed names a record that could not be imported and why. Line
// counts from 1: the line of a file, or the position in a batch.
type ImportFailed struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ParseImportRecord reads and checks one JSON line at time now: it is
// DecodeImportRecord followed by ImportKey.Validate. Scopes may be
// patterns. The error never contains the secret.
func ParseImportRecord(line []byte, now time.Time) (*ImportKey, error) {
	k, err := DecodeImportRecord(line)
	if err != nil {
		return nil, err
	}
	if err := k.Validate(now); err != nil {
		return nil, err
	}
	return k, nil
}

// DecodeImportRecord reads one JSON line and checks all that does not
// depend on the time: the JSON, the key or its hash, the hint, the
// environment and the scope patterns. The name, the metadata and the times
// are left to Validate, which a store calls with its own clock. The error
// never contains the secret.
func DecodeImportRecord(line []byte) (*ImportKey, error) {
	if !utf8.Valid(line) {
		// encoding/json would keep it as U+FFFD, changing the text.
		return nil, Errorf(EINVALID, "not a JSON import record: not valid UTF-8")
	}
	var r ImportRecord
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, Errorf(EINVALID, "not a JSON import record: empty line")
	}
	if err := DecodeStrict(line, &r); err != nil {
		return nil, Errorf(EINVALID, "not a JSON import record: %s", strings.TrimPrefix(err.Error(), "malformed JSON: "))
	}
	k := &ImportKey{}
	if r.CreatedAt != nil {
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
			return nil, Errorf(EINVALID, "environment %s does not match the key's prefix sk_%s_", Quote(r.Environment), env)
		}
		if r.Hint != "" {
			return nil, Errorf(EINVALID, "hint goes only with key_sha256: the hint of a key is made from the key")
		}
		r.Environment = env
		k.Hash = HashToken(r.Key)
		k.Hint = Hint(r.Key)
		k.Source = ImportSourceKey
	case r.KeySHA256 != "":
		b, err := hex.DecodeString(r.KeySHA256)
		if err != nil || len(b) != 32 {
			return nil, Errorf(EINVALID, "key_sha256 must be 64 hexadecimal characters")
		}
		copy(k.Hash[:], b)
		if r.Environment == "" {
			r.Environment = EnvLive
		}
		if !ValidEnv(r.Environment) {
			return nil, Errorf(EINVALID, "unknown environment %s (want live or test)", Quote(r.Environment))
		}
		// The secret is unknown: unless the record brings the hint the
		// other system kept, the hint can name only its prefix.
		k.Hint = "sk_" + r.Environment + "_…"
		if r.Hint != "" {
			if err := CheckHint(r.Hint, r.Environment); err != nil {
				return nil, err
			}
			k.Hint = r.Hint
		}
		k.Source = ImportSourceSHA256
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
	return k, nil
}

// Validate checks k at time now and fills its defaults (environment live,
// hint sk_<env>_…), as CreateParams.Validate does: a store calls it on
// every key it is given. The times are cut to whole seconds first, as the
// store keeps them.
func (k *ImportKey) Validate(now time.Time) error {
	if k.Params.ExpiresAt != nil {
		e := k.Params.ExpiresAt.UTC().Truncate(time.Second)
		k.Params.ExpiresAt = &e
	}
	if err := k.Params.Validate(now); err != nil {
		return err
	}
	if !k.CreatedAt.IsZero() {
		k.CreatedAt = k.CreatedAt.UTC().Truncate(time.Second)
		if k.CreatedAt.After(now) {
			return Errorf(EINVALID, "created_at is in the future")
		}
	}
	if k.Hint == "" {
		k.Hint = "sk_" + k.Params.Environment + "_…"
	}
	return CheckHint(k.Hint, k.Params.Environment)
}

// ValidHint reports whether hint is the display hint of a key of keyctl's
// format and of environment env: sk_<env>_, 4 characters, "…" and 4
// characters, as Hint makes (sk_live_3nF8…a9Qz), or sk_<env>_… for a key
// whose hint is not known. A hint never holds more of a secret than that.
//
// keyctl verifies only keys of its own format (ParseToken), so a hashed
// key imported with the hint of another format (sk_live_…a9Qz, ghp_…)
// could never verify: the hint is how an import tells, and refuses it.
func ValidHint(hint, env string) bool {
	rest, ok := strings.CutPrefix(hint, "sk_"+env+"_")
	if !ok || !ValidEnv(env) {
		return false
	}
	if rest == "…" {
		return true
	}
	head, tail, ok := strings.Cut(rest, "…")
	return ok && len(head) == 4 && len(tail) == 4 && isBase62(head) && isBase62(tail)
}

// validStoredHint is the rule for hints before import refused those of
// other formats: at most 4 characters either side of the "…". A store may
// hold such a hint, and an export of it must restore.
func validStoredHint(hint, env string) bool {
	rest, ok := strings.CutPrefix(hint, "sk_"+env+"_")
	if !ok || !ValidEnv(env) {
		return false
	}
	head, tail, ok := strings.Cut(rest, "…")
	return ok && len(head) <= 4 && len(tail) <= 4 && isBase62(head) && isBase62(tail)
}

// CheckHint is ValidHint as an error, EINVALID, that does not repeat the
// hint: it might be a secret put in the wrong place.
func CheckHint(hint, env string) error {
	if ValidHint(hint, env) {
		return nil
	}
	return Errorf(EINVALID, "hint is not that of a key of keyctl's format (want sk_%s_AbCd…WxYz, 4 characters either side of the …): keyctl verifies only keys of its own format, so such a key could never verify; issue a new key with keyctl create instead", env)
}
