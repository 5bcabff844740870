// Package remote is a keystore.Store over keyctl's HTTP API (package server,
// `keyctl serve`), so that every command works against a key service as it
// does on a local file.
//
// The client retries network errors, 408, 429 and 5xx replies (but 501)
// with exponential backoff and full jitter, at most 4 attempts, honours
// Retry-After, and sends the same random Idempotency-Key with every attempt
// of a POST, so that a retried create or rotate never makes two keys. What
// cannot succeed on a second try is not retried: a TLS certificate that
// does not verify, a reply that is not TLS, any other 4xx, 501.
// Options.Timeout bounds each call, retries included.
package remote

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Timeout bounds each call of a Store method, retries included; for
	// List, each page. Zero means 30 seconds.
	Timeout time.Duration

	// HTTPClient sends the requests; nil means a client of this package.
	// Its own Timeout, if any, bounds each attempt.
	HTTPClient *http.Client

	// BackoffBase is the first retry's largest wait; each retry doubles it,
	// up to BackoffMax. Zero means 200 ms and 5 s.
	BackoffBase, BackoffMax time.Duration

	// MaxAttempts bounds the attempts of one call; zero means
	// DefaultMaxAttempts. Timeout bounds them too.
	MaxAttempts int

	// UserAgent is sent with every request; "" means "keyctl".
	UserAgent string

	// RootCAs are the certificate authorities trusted for an https
	// service; nil means the system's. Used only when HTTPClient is nil.
	RootCAs *x509.CertPool

	// OnRetry, if set, is told before each wait for another attempt: the
	// number of the next attempt (from 2), the most there will be, the
	// wait, and why (such as "connection refused" or "HTTP 503"), so that
	// a command can say so on a terminal.
	OnRetry func(next, max int, wait time.Duration, why string)

	// Sleep waits between attempts; nil waits on a timer. Tests replace it
	// to see the waits without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Store is a keystore.Store over the HTTP API. It is safe for concurrent use.
type Store struct {
	base    string // the API base, with /v1, without a trailing slash
	keyMu   sync.RWMutex
	apiKey  string // guarded by keyMu: UseSecret changes it
	opts    Options
	client  *http.Client
	ownHTTP bool
}

var (
	_ keystore.Store  = (*Store)(nil)
	_ keystore.Caller = (*Store)(nil)
)

// DefaultMaxAttempts is the most attempts of one call, the first included.
const DefaultMaxAttempts = 4

// pageSize is the page size List asks for: the API's largest.
const pageSize = apiv1.MaxPerPage

// maxReply bounds the size of a reply read into memory.
const maxReply = 16 << 20

// Open returns a Store for the API at baseURL, the API base including its
// version, such as https://keys.example.com/v1, calling it with apiKey (a
// key with the admin scope). It sends nothing yet. EINVALID for a URL that
// is not http or https, EUNAUTHORIZED for an empty key.
func Open(baseURL, apiKey string, opts Options) (*Store, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, keystore.Errorf(keystore.EINVALID, "invalid key service URL %q: want http:// or https:// and a host, such as https://keys.example.com/v1", baseURL)
	}
	if u.User != nil {
		return nil, keystore.Errorf(keystore.EINVALID, "invalid key service URL: credentials do not belong in the URL; the API key comes from the environment")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, keystore.Errorf(keystore.EINVALID, "invalid key service URL %q: no query or fragment, please", baseURL)
	}
	if apiKey == "" {
		return nil, keystore.Errorf(keystore.EUNAUTHORIZED, "no API key for the key service at %s", baseURL)
	}
	if strings.ContainsAny(apiKey, "\r\n") {
		return nil, keystore.Errorf(keystore.EUNAUTHORIZED, "the API key for the key service holds a line break")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 200 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Second
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "keyctl"
	}
	s := &Store{base: strings.TrimSuffix(u.String(), "/"), apiKey: apiKey, opts: opts, client: opts.HTTPClient}
	if s.client == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		if opts.RootCAs != nil {
			transport.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
		}
		s.client = &http.Client{
			Transport: transport,
			// An API does not redirect; following one could send the key
			// elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		s.ownHTTP = true
	}
	return s, nil
}

// Close releases idle connections.
func (s *Store) Close() error {
	if s.ownHTTP {
		s.client.CloseIdleConnections()
	}
	return nil
}

// Create makes a key. Scopes must be scopes, not patterns, as for every
// store (the API would expand patterns; the Store contract refuses them).
func (s *Store) Create(ctx context.Context, p keystore.CreateParams) (*keystore.Key, error) {
	if err := checkScopes(p.Scopes); err != nil {
		return nil, err
	}
	body := apiv1.CreateRequest{Name: p.Name, Scopes: nonNil(p.Scopes), Environment: p.Environment, Metadata: p.Metadata}
	if p.ExpiresAt != nil {
		t := p.ExpiresAt.UTC().Format(time.RFC3339Nano)
		body.ExpiresAt = &t
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodPost, "/api-keys", nil, body, &k, nil); err != nil {
		return nil, err
	}
	return withSecret(&k)
}

// withSecret returns k, the reply to a create or a rotate, or an error when
// the key service withheld its secret: a retry of a request whose first
// reply was lost, answered by a server that does not hold the secret (see
// Idempotent-Secret in the README). The key exists, but nobody has its
// secret.
func withSecret(k *keystore.Key) (*keystore.Key, error) {
	if k.Secret != "" {
		return k, nil
	}
	return nil, keystore.Errorf(keystore.EUNAVAILABLE,
		"the key service made key %s, but its reply was lost and the retry's reply withholds the secret (it is not kept); revoke %s and try again", k.ID, k.ID)
}

// Get returns a key without its secret.
func (s *Store) Get(ctx context.Context, id string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodGet, "/api-keys/"+url.PathEscape(id), nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// List fetches pages of 100 keys as the caller iterates, until the window
// of opts is served or the pages run out. A key that moves to the next page
// between two requests (a key created meanwhile pushes the others down) is
// yielded once.
func (s *Store) List(ctx context.Context, opts keystore.ListOptions) iter.Seq2[*keystore.Key, error] {
	return func(yield func(*keystore.Key, error) bool) {
		if opts.Offset < 0 || opts.Limit < 0 {
			yield(nil, keystore.Errorf(keystore.EINVALID, "offset and limit must not be negative"))
			return
		}
		q := filterQuery(opts.ListFilter)
		q.Set("per_page", strconv.Itoa(pageSize))
		page, skip := opts.Offset/pageSize+1, opts.Offset%pageSize
		served := 0
		var seen map[string]bool // the IDs of the previous page
		for {
			q.Set("page", strconv.Itoa(page))
			var keys []*keystore.Key
			if err := s.call(ctx, http.MethodGet, "/api-keys", q, nil, &keys, nil); err != nil {
				yield(nil, err)
				return
			}
			next := make(map[string]bool, len(keys))
			for i, k := range keys {
				next[k.ID] = true
				if i < skip || seen[k.ID] {
					continue
				}
				if !yield(k, nil) {
					return
				}
				if served++; opts.Limit > 0 && served == opts.Limit {
					return
				}
			}
			if len(keys) < pageSize {
				return
			}
			page, skip, seen = page+1, 0, next
		}
	}
}

// Count asks for one key and reads the total.
func (s *Store) Count(ctx context.Context, f keystore.ListFilter) (int, error) {
	q := filterQuery(f)
	q.Set("per_page", "1")
	var (
		keys []*keystore.Key
		meta apiv1.ListMeta
	)
	if err := s.call(ctx, http.MethodGet, "/api-keys", q, nil, &keys, &meta); err != nil {
		return 0, err
	}
	return meta.Total, nil
}

func filterQuery(f keystore.ListFilter) url.Values {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Environment != "" {
		q.Set("environment", f.Environment)
	}
	if f.Scope != "" {
		q.Set("scope", f.Scope)
	}
	if !f.CreatedBefore.IsZero() {
		q.Set("created_before", f.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	if f.Rotatable {
		q.Set("rotatable", "true")
	}
	if f.Revocable {
		q.Set("revocable", "true")
	}
	if !f.ExpiringBefore.IsZero() {
		q.Set("expiring_before", f.ExpiringBefore.UTC().Format(time.RFC3339Nano))
	}
	if f.IDPrefix != "" {
		q.Set("id_prefix", f.IDPrefix)
	}
	if f.Delivering {
		q.Set("delivering", "true")
	}
	for name, v := range f.Metadata {
		q.Set("metadata["+name+"]", v)
	}
	return q
}

// Rotate makes the successor of key id.
func (s *Store) Rotate(ctx context.Context, id string, opts keystore.RotateOptions) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	return s.rotate(ctx, "/api-keys/"+url.PathEscape(id)+"/rotate", opts)
}

// RotateSelf rotates the key the store authenticates with.
func (s *Store) RotateSelf(ctx context.Context, opts keystore.RotateOptions) (*keystore.Key, error) {
	return s.rotate(ctx, "/api-keys/self/rotate", opts)
}

func (s *Store) rotate(ctx context.Context, path string, opts keystore.RotateOptions) (*keystore.Key, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	// The API counts whole seconds; a part of a second is rounded up.
	body := apiv1.RotateRequest{GraceSeconds: seconds(opts.Grace), AwaitDeliverySeconds: seconds(opts.AwaitDelivery)}
	var k keystore.Key
	if err := s.call(ctx, http.MethodPost, path, nil, body, &k, nil); err != nil {
		return nil, err
	}
	return withSecret(&k)
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// ConfirmDelivery records that the secret of key id was delivered.
func (s *Store) ConfirmDelivery(ctx context.Context, id string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodPost, "/api-keys/"+url.PathEscape(id)+"/confirm-delivery", nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// Self returns the key the store authenticates with.
func (s *Store) Self(ctx context.Context) (*keystore.Key, error) {
	var k keystore.Key
	if err := s.call(ctx, http.MethodGet, "/api-keys/self", nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// UseSecret makes the store authenticate with secret from now on.
func (s *Store) UseSecret(secret string) {
	s.keyMu.Lock()
	s.apiKey = secret
	s.keyMu.Unlock()
}

// Revoke stops key id at once.
func (s *Store) Revoke(ctx context.Context, id string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodDelete, "/api-keys/"+url.PathEscape(id), nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// Verify checks secret through the service. Scopes are checked, and a
// secret of the wrong format is answered, here, as by every store: such a
// secret is not sent anywhere.
func (s *Store) Verify(ctx context.Context, secret string, scopes []string) (*keystore.Verification, error) {
	if err := checkScopes(scopes); err != nil {
		return nil, err
	}
	if _, err := keystore.ParseToken(secret); err != nil {
		return keystore.InvalidFormat(), nil
	}
	var v keystore.Verification
	body := apiv1.VerifyRequest{Key: secret, Scopes: nonNil(scopes)}
	if err := s.call(ctx, http.MethodPost, "/api-keys/verify", nil, body, &v, nil); err != nil {
		return nil, err
	}
	if v.MissingScopes == nil {
		v.MissingScopes = []string{}
	}
	return &v, nil
}

// Audit returns events oldest first: every page of Events, reversed.
func (s *Store) Audit(ctx context.Context, keyID string) ([]keystore.Event, error) {
	events, err := s.Events(ctx, keystore.EventFilter{KeyID: keyID})
	if err != nil {
		return nil, err
	}
	slices.Reverse(events)
	return events, nil
}

func eventQuery(f keystore.EventFilter) url.Values {
	q := url.Values{}
	if f.KeyID != "" {
		q.Set("key_id", f.KeyID)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// Events fetches pages of 100 events until the window of f is served or
// the pages run out. An event that moves to the next page between two
// requests (a newer event pushes the others down) is returned once.
func (s *Store) Events(ctx context.Context, f keystore.EventFilter) ([]keystore.Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	q := eventQuery(f)
	q.Set("per_page", strconv.Itoa(pageSize))
	page, skip := f.Offset/pageSize+1, f.Offset%pageSize
	out := []keystore.Event{}
	var seen map[string]bool // the IDs of the previous page
	for {
		q.Set("page", strconv.Itoa(page))
		var events []keystore.Event
		if err := s.call(ctx, http.MethodGet, "/audit-events", q, nil, &events, nil); err != nil {
			return nil, err
		}
		next := make(map[string]bool, len(events))
		for i, e := range events {
			next[e.ID] = true
			if i < skip || seen[e.ID] {
				continue
			}
			out = append(out, e)
			if f.Limit > 0 && len(out) == f.Limit {
				return out, nil
			}
		}
		if len(events) < pageSize {
			return out, nil
		}
		page, skip, seen = page+1, 0, next
	}
}

// CountEvents asks for one event and reads the total.
func (s *Store) CountEvents(ctx context.Context, f keystore.EventFilter) (int, error) {
	f.Offset, f.Limit = 0, 0
	if err := f.Validate(); err != nil {
		return 0, err
	}
	q := eventQuery(f)
	q.Set("per_page", "1")
	var (
		events []keystore.Event
		meta   apiv1.ListMeta
	)
	if err := s.call(ctx, http.MethodGet, "/audit-events", q, nil, &events, &meta); err != nil {
		return 0, err
	}
	return meta.Total, nil
}

// Update changes key id. The body holds only what changes: expires_at
// null clears the expiry, a metadata value null unsets the entry.
func (s *Store) Update(ctx context.Context, id string, p keystore.UpdateParams) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	if err := checkScopes(p.Scopes); err != nil {
		return nil, err
	}
	if p.IsZero() {
		return nil, keystore.Errorf(keystore.EINVALID, "nothing to update: give a new name, scopes, expiry or metadata")
	}
	if p.ExpiresAt != nil && p.ClearExpiry {
		return nil, keystore.Errorf(keystore.EINVALID, "set an expiry or clear it, not both")
	}
	body := apiv1.UpdateRequest{Name: p.Name, Scopes: p.Scopes}
	if p.ExpiresAt != nil {
		body.ExpiresAt, _ = json.Marshal(p.ExpiresAt.UTC().Format(time.RFC3339Nano))
	} else if p.ClearExpiry {
		body.ExpiresAt = keystore.JSONValue("null")
	}
	if len(p.Metadata) > 0 || len(p.RemoveMetadata) > 0 {
		m := map[string]*string{}
		for _, name := range p.RemoveMetadata {
			if _, set := p.Metadata[name]; set {
				return nil, keystore.Errorf(keystore.EINVALID, "metadata %q is both set and removed", keystore.Truncate(name, 40))
			}
			m[name] = nil
		}
		for name, v := range p.Metadata {
			m[name] = &v
		}
		body.Metadata = m
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodPatch, "/api-keys/"+url.PathEscape(id), nil, body, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// Disable stops key id until Enable.
func (s *Store) Disable(ctx context.Context, id string) (*keystore.Key, error) {
	return s.keyAction(ctx, id, "disable")
}

// Enable undoes Disable.
func (s *Store) Enable(ctx context.Context, id string) (*keystore.Key, error) {
	return s.keyAction(ctx, id, "enable")
}

// Delete removes revoked key id for good.
func (s *Store) Delete(ctx context.Context, id string) (*keystore.Key, error) {
	return s.keyAction(ctx, id, "delete")
}

// keyAction POSTs to /api-keys/{id}/{action} and returns the key.
func (s *Store) keyAction(ctx context.Context, id, action string) (*keystore.Key, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	var k keystore.Key
	if err := s.call(ctx, http.MethodPost, "/api-keys/"+url.PathEscape(id)+"/"+action, nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

// Lookup asks the service for the key whose secret has SHA-256 hash: only
// the hash travels, never the secret.
func (s *Store) Lookup(ctx context.Context, hash [32]byte) (*keystore.Key, error) {
	var k keystore.Key
	if err := s.call(ctx, http.MethodGet, "/api-keys/by-hash/"+hex.EncodeToString(hash[:]), nil, nil, &k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}

func checkScopes(scopes []string) error {
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			return keystore.UnknownScope(sc)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// call sends one API request, retrying as the package doc says, and decodes
// the reply's data into data and its meta into meta (either may be nil).
func (s *Store) call(ctx context.Context, method, path string, q url.Values, in, data, meta any) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()

	target := s.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return keystore.Errorf(keystore.EINTERNAL, "encode request: %v", err)
		}
	}
	idem := ""
	if method == http.MethodPost {
		idem = newIdempotencyKey()
	}

	for attempt := 0; ; attempt++ {
		status, header, raw, err := s.attempt(ctx, method, target, body, idem)
		var retryAfter time.Duration
		switch {
		case err != nil:
			if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
				return fmt.Errorf("%s %s: %w", method, path, parent) // cancelled by the caller
			}
			if ctx.Err() != nil {
				return s.unreachable(fmt.Errorf("no reply within %s", s.opts.Timeout))
			}
			if perr := s.permanent(err); perr != nil {
				return perr
			}
			// A network error: the request may or may not have arrived,
			// which the Idempotency-Key makes safe to retry.
			if !s.wait(ctx, attempt, 0, netCause(err).Error()) {
				return s.unreachable(netCause(err))
			}
			continue
		case retryable(status):
			retryAfter = parseRetryAfter(header.Get("Retry-After"))
			if s.wait(ctx, attempt, retryAfter, fmt.Sprintf("HTTP %d", status)) {
				continue
			}
		}
		return s.decode(status, header, raw, data, meta)
	}
}

// attempt sends the request once and reads the whole reply.
func (s *Store) attempt(ctx context.Context, method, target string, body []byte, idem string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	s.keyMu.RLock()
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	s.keyMu.RUnlock()
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return 0, nil, nil, err // a reply cut short is a network error
	}
	return resp.StatusCode, resp.Header, raw, nil
}

// retryable reports whether a reply with status may succeed when sent
// again: 408 (the server timed out reading it), 429 and 5xx, but 501 (the
// server does not do it at all).
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		(status >= 500 && status != http.StatusNotImplemented)
}

// permanent is the error for a transport failure that another attempt
// cannot mend: a certificate that does not verify, or a server that does
// not speak TLS. nil for any other.
func (s *Store) permanent(err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return keystore.Errorf(keystore.EUNAVAILABLE,
			"TLS certificate of key service at %s not trusted: %v (to trust a private CA: keyctl --ca-cert FILE)", s.base, printable(tlsCause(err), 200))
	case errors.As(err, &header) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return keystore.Errorf(keystore.EUNAVAILABLE, "key service at %s does not speak TLS (is it http://?)", s.base)
	}
	return nil
}

// tlsCause is the message of a certificate error, without the URL.
func tlsCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// wait sleeps before the next attempt: Retry-After when the server gave
// one, otherwise a random time up to BackoffBase doubled per attempt (full
// jitter). It reports false, at once, when the attempts are used up or the
// wait would end past the deadline. why says what failed, for OnRetry.
func (s *Store) wait(ctx context.Context, attempt int, retryAfter time.Duration, why string) bool {
	if attempt+1 >= s.opts.MaxAttempts {
		return false
	}
	d := retryAfter
	if d <= 0 {
		ceiling := s.opts.BackoffMax
		if attempt < 30 {
			ceiling = min(ceiling, s.opts.BackoffBase<<attempt)
		}
		d = time.Duration(rand.Int64N(int64(ceiling) + 1))
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return false
	}
	if s.opts.OnRetry != nil {
		s.opts.OnRetry(attempt+2, s.opts.MaxAttempts, d, why)
	}
	return s.opts.Sleep(ctx, d) == nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func (s *Store) unreachable(cause error) error {
	return keystore.Errorf(keystore.EUNAVAILABLE, "cannot reach key service at %s: %v", s.base, cause)
}

// netCause is the part of a transport error worth showing: the URL, which
// the message names already, is left out.
func netCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the connection was closed before a reply")
	}
	return err
}

// decode turns a final reply into data and meta, or into a keystore.Error
// with the code its status stands for and the server's message.
func (s *Store) decode(status int, header http.Header, raw []byte, data, meta any) error {
	var rp apiv1.Envelope
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt != "application/json" || json.Unmarshal(raw, &rp) != nil || (rp.Error == nil) == (rp.Data == nil) {
		ct := mt
		if ct == "" {
			ct = "no content type"
		}
		return keystore.Errorf(keystore.EUNAVAILABLE, "unexpected reply from key service at %s (HTTP %d, %s)", s.base, status, ct)
	}
	if rp.Error != nil && status < 300 {
		return keystore.Errorf(keystore.EUNAVAILABLE, "unexpected reply from key service at %s (HTTP %d with an error body)", s.base, status)
	}
	if rp.Error != nil || status >= 300 {
		msg := "no message"
		if rp.Error != nil && rp.Error.Message != "" {
			msg = printable(rp.Error.Message, 300)
		}
		switch code := apiv1.Code(status); code {
		case keystore.EUNAVAILABLE:
			id := ""
			if rp.Error != nil && rp.Error.RequestID != "" {
				id = ", request " + printable(rp.Error.RequestID, 64)
			}
			return keystore.Errorf(code, "key service at %s failed: %s (HTTP %d%s)", s.base, msg, status, id)
		default:
			return keystore.Errorf(code, "%s", msg)
		}
	}
	if data != nil {
		if err := json.Unmarshal(rp.Data, data); err != nil {
			return keystore.Errorf(keystore.EUNAVAILABLE, "unexpected reply from key service at %s (HTTP %d): %v", s.base, status, err)
		}
	}
	if meta != nil && rp.Meta != nil {
		if err := json.Unmarshal(rp.Meta, meta); err != nil {
			return keystore.Errorf(keystore.EUNAVAILABLE, "unexpected reply from key service at %s (HTTP %d): %v", s.base, status, err)
		}
	}
	return nil
}

// printable makes a server's text safe for a terminal: control characters
// (escape sequences from a broken or hostile server) become spaces, and the
// text is cut to at most n runes.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = ' '
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}

// newIdempotencyKey returns a random UUID (version 4).
func newIdempotencyKey() string {
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
