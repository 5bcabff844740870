package remote

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// maxImportBody bounds the body of one import request: the server's
// bound, less room for the envelope.
const maxImportBody = apiv1.MaxBodyBytes - 1024

// Import sends the batch to POST /v1/api-keys/import. The secrets stay
// here: each key travels as an import record with its key_sha256 and hint,
// which the server checks again, at its own time. Scopes must be scopes and
// a hint must look like one, as for every store: a key that breaks either
// is refused here and not sent. The batch goes in requests of at most 1000
// records and 1 MiB, each one transaction on the server; the result's
// Errors name keys by their position in keys whichever request carried
// them.
func (s *Store) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	var total keystore.ImportResult
	if err := keystore.CheckBatch(len(keys), "keys"); err != nil {
		return total, err
	}
	var (
		body      bytes.Buffer
		positions []int // of the records in body, in keys, from 1
	)
	send := func() error {
		if len(positions) == 0 {
			return nil
		}
		body.WriteString("]}")
		var res keystore.ImportResult
		err := s.call(ctx, http.MethodPost, "/api-keys/import", nil, json.RawMessage(body.Bytes()), &res, nil)
		if err != nil {
			return err
		}
		total.Imported += res.Imported
		total.Skipped += res.Skipped
		total.Failed += res.Failed
		for _, e := range res.Errors {
			if e.Line >= 1 && e.Line <= len(positions) {
				e.Line = positions[e.Line-1]
			}
			total.Errors = append(total.Errors, e)
		}
		body.Reset()
		positions = positions[:0]
		return nil
	}
	for i, k := range keys {
		if err := checkImport(k); err != nil {
			total.Failed++
			total.Errors = append(total.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
			continue
		}
		rec, err := json.Marshal(wireRecord(k))
		if err != nil {
			return total, keystore.Errorf(keystore.EINTERNAL, "encode import record: %v", err)
		}
		if len(positions) == apiv1.MaxImportRecords || len(positions) > 0 && body.Len()+1+len(rec)+2 > maxImportBody {
			if err := send(); err != nil {
				return total, err
			}
		}
		if len(positions) == 0 {
			body.WriteString(`{"keys":[`)
		} else {
			body.WriteByte(',')
		}
		body.Write(rec)
		positions = append(positions, i+1)
	}
	if err := send(); err != nil {
		return total, err
	}
	slices.SortStableFunc(total.Errors, func(a, b keystore.ImportFailed) int { return a.Line - b.Line })
	return total, nil
}

// checkImport refuses what the server would take differently from a local
// store: a scope pattern (the server expands it) and a malformed hint (which
// could be a secret, and must not be sent).
func checkImport(k keystore.ImportKey) error {
	if err := checkScopes(k.Params.Scopes); err != nil {
		return err
	}
	env := k.Params.Environment
	if env == "" {
		env = keystore.EnvLive
	}
	if k.Hint == "" || !keystore.ValidEnv(env) {
		return nil // the server fills in the hint, or refuses the environment
	}
	return keystore.CheckHint(k.Hint, env)
}

// wireRecord is k as an import record without its secret: the hash, and
// the hint made from the secret.
func wireRecord(k keystore.ImportKey) keystore.ImportRecord {
	r := keystore.ImportRecord{
		Name:        k.Params.Name,
		Scopes:      nonNil(k.Params.Scopes),
		Environment: k.Params.Environment,
		Metadata:    k.Params.Metadata,
		KeySHA256:   hex.EncodeToString(k.Hash[:]),
		Hint:        k.Hint,
	}
	if !k.CreatedAt.IsZero() {
		t := k.CreatedAt.UTC()
		r.CreatedAt = &t
	}
	if k.Params.ExpiresAt != nil {
		t := k.Params.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r
}
