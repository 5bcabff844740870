package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// invalidKey is the one reply to every bearer that does not authenticate,
// so that it tells nothing about which keys exist.
const invalidKey = "invalid API key: it is missing, malformed, unknown, expired, disabled or revoked"

type flags int

const (
	needAdmin  flags = 1 << iota // managing keys and reading the audit log
	idempotent                   // honours Idempotency-Key
	// selfOrAdmin: a change that a key without admin may make to itself
	// (or to its own successor): the endpoint checks which key it acts on.
	selfOrAdmin
)

// call is an authenticated request as an endpoint sees it.
type call struct {
	r        *http.Request
	ctx      context.Context // names the caller as the audit actor on admin endpoints
	callerID string          // the ID of the bearer key
	testKey  bool            // the bearer is a test key (sk_test_)
	admin    bool            // the bearer key holds the admin scope
	body     []byte
	room     *callRoom
}

// callRoom is memory for a call's body and for the verify endpoint's
// request, recycled: endpoints keep nothing of it past the request. The
// request and its scopes would otherwise be two allocations per verify
// (json.Unmarshal's argument escapes; it appends the scopes into the
// slice's capacity).
type callRoom struct {
	body   [256]byte
	verify apiv1.VerifyRequest
	scopes [4]string
}

var callRooms = sync.Pool{New: func() any { return new(callRoom) }}

// result is what an endpoint answers: a status and the envelope to encode.
type result struct {
	status int
	value  envelope
}

// dataReply is the result of an endpoint that succeeded with data.
func dataReply(status int, data any) (result, error) {
	return result{status, envelope{Data: data}}, nil
}

// endpoint wraps fn with the rate limit, authentication, the scope check,
// reading the body and, with idempotent, Idempotency-Key replays.
func (s *Server) endpoint(fl flags, fn func(*call) (result, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, hasToken := bearer(r)
		if hasToken && s.limiter != nil && !s.limiter.allow(w, token) {
			s.writeError(w, r, keystore.Errorf(keystore.ERATELIMITED, "rate limit of %s requests per second for this API key exceeded; retry after the number of seconds in Retry-After", formatRate(s.limiter.rate)))
			return
		}
		var c *call
		if rw, ok := w.(*replyWriter); ok {
			c = &rw.call // in the request's one allocation
		} else {
			c = new(call)
		}
		c.r = r
		c.room = callRooms.Get().(*callRoom)
		defer func() {
			if len(c.body) > 0 && &c.body[0] == &c.room.body[0] {
				clear(c.body) // a secret, maybe
			}
			c.room.verify = apiv1.VerifyRequest{} // the secret
			clear(c.room.scopes[:])
			callRooms.Put(c.room)
			c.room, c.body = nil, nil
		}()
		err := s.authenticate(w, c, token, hasToken, fl)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if c.body, err = readBody(r, c.room.body[:]); err != nil {
			s.writeError(w, r, err)
			return
		}
		if fl&idempotent != 0 && r.Header.Get("Idempotency-Key") != "" {
			s.serveIdempotent(w, c, fn)
			return
		}
		res, err := fn(c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, res.status, res.value)
	})
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	var auth string
	if v := r.Header["Authorization"]; len(v) > 0 { // as Header.Get, without canonicalizing the name
		auth = v[0]
	}
	scheme, token, found := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// authenticate verifies the bearer through the store, on every request,
// and fills in c's caller and context.
func (s *Server) authenticate(w http.ResponseWriter, c *call, token string, hasToken bool, fl flags) error {
	admin := fl&needAdmin != 0
	if !hasToken {
		return keystore.Errorf(keystore.EUNAUTHORIZED, invalidKey)
	}
	r := c.r
	var need []string
	if admin {
		need = adminScope
	}
	id, scopes, err := s.verifyBearer(r.Context(), token, need)
	if err != nil {
		return err
	}
	if id == "" {
		return keystore.Errorf(keystore.EUNAUTHORIZED, invalidKey)
	}
	stateOf(w).keyID = id
	if admin && !keystore.Grants(scopes, keystore.ScopeAdmin) {
		return keystore.Errorf(keystore.EFORBIDDEN, "API key %s lacks the admin scope, which managing keys and reading the audit log need", id)
	}
	c.callerID = id
	c.testKey = strings.HasPrefix(token, "sk_test_") // it verified, so its prefix is its environment
	c.admin = keystore.Grants(scopes, keystore.ScopeAdmin)
	c.ctx = r.Context()
	if admin || fl&selfOrAdmin != 0 {
		// Only admin endpoints change keys, and each change is audited
		// under its actor; verifying a key changes none (its use is not
		// an audit event).
		c.ctx = keystore.WithActor(c.ctx, id)
	}
	return nil
}

// adminScope is what the admin endpoints ask of the bearer key.
var adminScope = []string{keystore.ScopeAdmin}

// verifyBearer verifies the bearer key secret through the store: its ID
// and scopes, or "" when it is not valid. need names the scopes the
// request needs, so that the store records their use (least privilege from
// real use: a key that manages keys used admin); a key that lacks them
// still gets its ID and scopes, for the caller's 403.
func (s *Server) verifyBearer(ctx context.Context, secret string, need []string) (string, []string, error) {
	v, err := s.store.Verify(ctx, secret, need)
	if err != nil || v.Key == nil || !(v.Valid || v.Code == keystore.CodeInsufficientScope) {
		return "", nil, err
	}
	return v.Key.ID, v.Key.Scopes, nil
}

// decodeBody decodes a request body strictly (keystore.DecodeStrict): exact
// member names, each at most once, no unknown ones, valid UTF-8, one
// value. An empty body is an empty object when allowEmpty.
func decodeBody(body []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return keystore.Errorf(keystore.EINVALID, "request body is empty: send a JSON object")
	}
	if err := keystore.DecodeStrict(body, v); err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "malformed JSON: "); ok {
			msg = "malformed JSON body: " + rest
		}
		return keystore.Errorf(keystore.EINVALID, "%s", msg)
	}
	return nil
}

func (s *Server) create(c *call) (result, error) {
	var req apiv1.CreateRequest
	if err := decodeBody(c.body, &req, false); err != nil {
		return result{}, err
	}
	p := keystore.CreateParams{Name: req.Name, Environment: req.Environment, Metadata: req.Metadata}
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil {
			return result{}, keystore.Errorf(keystore.EINVALID, "expires_at must be an RFC 3339 time, such as 2027-01-31T12:00:00Z")
		}
		p.ExpiresAt = &t
	}
	scopes, err := expandScopes(req.Scopes)
	if err != nil {
		return result{}, err
	}
	p.Scopes = scopes
	env := p.Environment
	if env == "" {
		env = keystore.EnvLive // the store's default
	}
	if err := s.mayManage(c, env, "create a live key"); err != nil {
		return result{}, err
	}
	k, err := s.store.Create(c.ctx, p)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusCreated, k)
}

// expandScopes accepts patterns (bots:*, *:read, *) as well as scopes. A
// list of plain scopes is kept as it is.
func expandScopes(scopes []string) ([]string, error) {
	for _, sc := range scopes {
		if !keystore.ValidScope(sc) {
			return keystore.ExpandScopes(scopes)
		}
	}
	return scopes, nil
}

func (s *Server) list(c *call) (result, error) {
	q := c.r.URL.Query()
	page, err := intParam(q, "page", 1, 1, math.MaxInt32)
	if err != nil {
		return result{}, err
	}
	perPage, err := intParam(q, "per_page", apiv1.DefaultPerPage, 1, apiv1.MaxPerPage)
	if err != nil {
		return result{}, err
	}
	f, err := listFilter(q)
	if err != nil {
		return result{}, err
	}
	total, err := s.store.Count(c.ctx, f)
	if err != nil {
		return result{}, err
	}
	keys := []*keystore.Key{}
	opts := keystore.ListOptions{ListFilter: f, Offset: (page - 1) * perPage, Limit: perPage}
	for k, err := range s.store.List(c.ctx, opts) {
		if err != nil {
			return result{}, err
		}
		keys = append(keys, k)
	}
	return result{http.StatusOK, envelope{Data: keys, Meta: apiv1.ListMeta{Page: page, PerPage: perPage, Total: total}}}, nil
}

// intParam reads a whole-number query parameter between lo and hi.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, keystore.Errorf(keystore.EINVALID, "%s must be a whole number from %d to %d, got %s", name, lo, hi, keystore.Quote(s))
	}
	return n, nil
}

// listFilter reads the filter of a list from its query parameters. The
// store checks the values of status, environment and scope.
func listFilter(q url.Values) (keystore.ListFilter, error) {
	f := keystore.ListFilter{
		Status:      q.Get("status"),
		Environment: q.Get("environment"),
		Scope:       q.Get("scope"),
	}
	if s := q.Get("created_before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return f, keystore.Errorf(keystore.EINVALID, "created_before must be an RFC 3339 time, such as 2027-01-31T12:00:00Z, got %s", keystore.Quote(s))
		}
		f.CreatedBefore = t
	}
	if s := q.Get("expiring_before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return f, keystore.Errorf(keystore.EINVALID, "expiring_before must be an RFC 3339 time, such as 2027-01-31T12:00:00Z, got %s", keystore.Quote(s))
		}
		f.ExpiringBefore = t
	}
	f.IDPrefix = q.Get("id_prefix")
	for _, b := range []struct {
		name string
		v    *bool
	}{{"rotatable", &f.Rotatable}, {"revocable", &f.Revocable}, {"delivering", &f.Delivering}} {
		switch s := q.Get(b.name); s {
		case "", "false":
		case "true":
			*b.v = true
		default:
			return f, keystore.Errorf(keystore.EINVALID, "%s must be true or false, got %s", b.name, keystore.Quote(s))
		}
	}
	for name, vals := range q {
		inner, ok := strings.CutPrefix(name, "metadata[")
		if !ok {
			continue
		}
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || len(vals) != 1 {
			return f, keystore.Errorf(keystore.EINVALID, "metadata filters are metadata[NAME]=VALUE, once each, got %q", keystore.Truncate(name, 60))
		}
		if f.Metadata == nil {
			f.Metadata = map[string]string{}
		}
		f.Metadata[inner] = vals[0]
	}
	return f, nil
}

func (s *Server) show(c *call) (result, error) {
	k, err := s.store.Get(c.ctx, c.r.PathValue("id"))
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

// lookup finds a key by the SHA-256 of its secret (64 hex digits), for
// keyctl scan: the secret itself is never sent.
func (s *Server) lookup(c *call) (result, error) {
	raw := c.r.PathValue("sha256")
	var hash [32]byte
	if len(raw) != 2*len(hash) || !decodeHex(hash[:], raw) {
		return result{}, keystore.Errorf(keystore.EINVALID, "malformed key hash: want the SHA-256 of the secret in 64 hex digits")
	}
	k, err := s.store.Lookup(c.ctx, hash)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

func decodeHex(dst []byte, s string) bool {
	n, err := hex.Decode(dst, []byte(s))
	return err == nil && n == len(dst)
}

func (s *Server) rotate(c *call) (result, error) {
	return s.rotateKey(c, c.r.PathValue("id"))
}

// rotateSelf rotates the caller's own key, which needs no admin scope.
func (s *Server) rotateSelf(c *call) (result, error) {
	return s.rotateKey(c, c.callerID)
}

func (s *Server) rotateKey(c *call, id string) (result, error) {
	var req apiv1.RotateRequest
	if err := decodeBody(c.body, &req, true); err != nil {
		return result{}, err
	}
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	if req.GraceSeconds > maxSeconds || req.GraceSeconds < -maxSeconds {
		return result{}, keystore.Errorf(keystore.EINVALID, "grace_seconds too large")
	}
	if req.AwaitDeliverySeconds > maxSeconds || req.AwaitDeliverySeconds < -maxSeconds {
		return result{}, keystore.Errorf(keystore.EINVALID, "await_delivery_seconds too large")
	}
	if err := s.mayManageKey(c, id, "rotate"); err != nil {
		return result{}, err
	}
	k, err := s.store.Rotate(c.ctx, id, keystore.RotateOptions{
		Grace:         time.Duration(req.GraceSeconds) * time.Second,
		AwaitDelivery: time.Duration(req.AwaitDeliverySeconds) * time.Second,
	})
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusCreated, k)
}

func (s *Server) update(c *call) (result, error) {
	if err := s.mayManageKey(c, c.r.PathValue("id"), "update"); err != nil {
		return result{}, err
	}
	var req apiv1.UpdateRequest
	if err := decodeBody(c.body, &req, false); err != nil {
		return result{}, err
	}
	p := keystore.UpdateParams{Name: req.Name}
	if req.Scopes != nil {
		scopes, err := expandScopes(req.Scopes)
		if err != nil {
			return result{}, err
		}
		p.Scopes = nonNilScopes(scopes)
	}
	switch e := string(bytes.TrimSpace(req.ExpiresAt)); {
	case e == "":
	case e == "null":
		p.ClearExpiry = true
	default:
		var v string
		t, err := time.Time{}, json.Unmarshal(req.ExpiresAt, &v)
		if err == nil {
			t, err = time.Parse(time.RFC3339, v)
		}
		if err != nil {
			return result{}, keystore.Errorf(keystore.EINVALID, "expires_at must be an RFC 3339 time, such as 2027-01-31T12:00:00Z, or null")
		}
		p.ExpiresAt = &t
	}
	for name, v := range req.Metadata {
		if v == nil {
			p.RemoveMetadata = append(p.RemoveMetadata, name)
			continue
		}
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		p.Metadata[name] = *v
	}
	k, err := s.store.Update(c.ctx, c.r.PathValue("id"), p)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

// self answers which key the caller is.
func (s *Server) self(c *call) (result, error) {
	k, err := s.store.Get(c.r.Context(), c.callerID)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

func nonNilScopes(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keyAction handles POST /v1/api-keys/{id}/<verb> (disable, enable,
// delete): an empty body, the caller's right to manage the key, and one
// store call.
func (s *Server) keyAction(verb string, act func(keystore.Store, context.Context, string) (*keystore.Key, error)) func(*call) (result, error) {
	return func(c *call) (result, error) {
		id := c.r.PathValue("id")
		if err := s.mayManageKey(c, id, verb); err != nil {
			return result{}, err
		}
		if err := decodeBody(c.body, &struct{}{}, true); err != nil {
			return result{}, err
		}
		k, err := act(s.store, c.ctx, id)
		if err != nil {
			return result{}, err
		}
		return dataReply(http.StatusOK, k)
	}
}

// mayChange checks that the caller may change key id: an admin key may
// change any; another key only itself or, when ownSuccessorOnly, only a
// successor of its own rotation that awaits delivery. For a key without
// admin, a key it may not change is forbidden whether or not it exists.
func (s *Server) mayChange(c *call, id string, self bool) error {
	if c.admin {
		return nil
	}
	forbidden := keystore.Errorf(keystore.EFORBIDDEN, "API key %s lacks the admin scope, which changing another key needs", c.callerID)
	if keystore.CheckID(id) != nil {
		return forbidden
	}
	if self && id == c.callerID {
		return nil
	}
	k, err := s.store.Get(c.r.Context(), id)
	if keystore.ErrorCode(err) == keystore.ENOTFOUND {
		return forbidden
	}
	if err != nil {
		return err
	}
	if k.RotatedFrom == nil || *k.RotatedFrom != c.callerID {
		return forbidden
	}
	if !self && (k.Delivery == nil || *k.Delivery != keystore.DeliveryPending) {
		return forbidden
	}
	return nil
}

func (s *Server) confirmDelivery(c *call) (result, error) {
	id := c.r.PathValue("id")
	if err := s.mayChange(c, id, true); err != nil {
		return result{}, err
	}
	k, err := s.store.ConfirmDelivery(c.ctx, id)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

func (s *Server) revoke(c *call) (result, error) {
	id := c.r.PathValue("id")
	if err := s.mayChange(c, id, false); err != nil {
		return result{}, err
	}
	if err := s.mayManageKey(c, id, "revoke"); err != nil {
		return result{}, err
	}
	k, err := s.store.Revoke(c.ctx, id)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, k)
}

// mayManage is the rule of test keys: a test key (sk_test_) manages test
// keys only, unless the server was started with TestKeysManageLive. A
// request that would change a key of environment env is refused with
// EFORBIDDEN (403) otherwise; what names the change for the message.
func (s *Server) mayManage(c *call, env, what string) error {
	if !c.testKey || env == keystore.EnvTest || s.testKeysManageLive {
		return nil
	}
	return keystore.Errorf(keystore.EFORBIDDEN,
		"API key %s is a test key, which manages test keys only: it may not %s (start keyctl serve with --test-keys-manage-live to allow it)", c.callerID, what)
}

// mayManageKey is mayManage for the existing key id; the key's environment
// never changes, so reading it first is as good as reading it in the
// change's transaction.
func (s *Server) mayManageKey(c *call, id, verb string) error {
	if !c.testKey || s.testKeysManageLive {
		return nil
	}
	k, err := s.store.Get(c.ctx, id)
	if err != nil {
		return err
	}
	return s.mayManage(c, k.Environment, verb+" live key "+k.ID)
}

// verify answers 200 whether or not the key is valid: the result says.
func (s *Server) verify(c *call) (result, error) {
	req := &c.room.verify
	req.Scopes = c.room.scopes[:0]
	if err := decodeBody(c.body, req, false); err != nil {
		return result{}, err
	}
	if cap(req.Scopes) == len(c.room.scopes) && len(req.Scopes) == 0 {
		req.Scopes = nil // "scopes" absent: as decoded into a zero request
	}
	scopes, err := expandScopes(req.Scopes)
	if err != nil {
		return result{}, err
	}
	v, err := s.store.Verify(c.ctx, req.Key, scopes)
	if err != nil {
		return result{}, err
	}
	return dataReply(http.StatusOK, v)
}

func (s *Server) audit(c *call) (result, error) {
	q := c.r.URL.Query()
	page, err := intParam(q, "page", 1, 1, math.MaxInt32)
	if err != nil {
		return result{}, err
	}
	perPage, err := intParam(q, "per_page", apiv1.DefaultPerPage, 1, apiv1.MaxPerPage)
	if err != nil {
		return result{}, err
	}
	f := keystore.EventFilter{KeyID: q.Get("key_id"), Action: q.Get("action")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return result{}, keystore.Errorf(keystore.EINVALID, "since must be an RFC 3339 time, such as 2027-01-31T12:00:00Z, got %s", keystore.Quote(v))
		}
		f.Since = t
	}
	total, err := s.store.CountEvents(c.ctx, f)
	if err != nil {
		return result{}, err
	}
	f.Offset, f.Limit = (page-1)*perPage, perPage
	events, err := s.store.Events(c.ctx, f)
	if err != nil {
		return result{}, err
	}
	if events == nil {
		events = []keystore.Event{}
	}
	return result{http.StatusOK, envelope{Data: events, Meta: apiv1.ListMeta{Page: page, PerPage: perPage, Total: total}}}, nil
}
