package commands

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// badInput is one wrong thing a user can do. Args, stdin and env may name
// keys of the seeded store: {A} is an active key and {ASECRET} its secret,
// {R} a revoked key and {RSECRET} its secret, {O} a key rotated to {N},
// {UNKNOWN} a well-formed ID of no key.
type badInput struct {
	name  string
	args  []string
	stdin string
	env   []string
	// setup prepares the case's folder before it is snapshotted; store is
	// the path of a copy of the seeded store, which setup may replace.
	setup func(t *testing.T, dir, store string)
	code  int
	err   string // a regexp the error line must match
	// readOnly runs keyctl as a user who may not write the store: root
	// may write any file, so as root keyctl runs as nobody.
	readOnly bool
	// walFiles tolerates an empty -wal file and a -shm file appearing
	// beside the store: SQLite makes them to read a WAL database, even
	// read-only, and only a writer may remove them. The store's bytes
	// must still not change.
	walFiles bool
}

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var badInputs = []badInput{
	// create
	{name: "unknown scope", args: []string{"create", "--name", "x", "--scope", "bots:reed"}, code: 2, err: `unknown scope "bots:reed" \(did you mean bots:read\?\)`},
	{name: "unknown scope pattern", args: []string{"create", "--name", "x", "--scope", "robots:*"}, code: 2, err: `scope`},
	{name: "no name", args: []string{"create", "--scope", "bots:read"}, code: 2, err: `--name is required`},
	{name: "empty name", args: []string{"create", "--name", "", "--scope", "bots:read"}, code: 2, err: `needs a name`},
	{name: "blank name", args: []string{"create", "--name", "   ", "--scope", "bots:read"}, code: 2, err: `needs a name`},
	{name: "name too long", args: []string{"create", "--name", strings.Repeat("n", 101), "--scope", "bots:read"}, code: 2, err: `name too long: 101 characters, at most 100`},
	{name: "name with newline", args: []string{"create", "--name", "two\nlines", "--scope", "bots:read"}, code: 2, err: `control characters`},
	{name: "unknown env", args: []string{"create", "--name", "x", "--scope", "bots:read", "--env", "prod"}, code: 2, err: `invalid --env "prod"`},
	{name: "unknown duration unit", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in", "90x"}, code: 2, err: `invalid duration "90x": unknown unit`},
	{name: "negative duration", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in=-5d"}, code: 2, err: `must not be negative`},
	{name: "zero duration", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in", "0"}, code: 2, err: `--expires-in must be positive`},
	{name: "huge duration", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in", "99999999999999999999d"}, code: 2, err: `too large`},
	{name: "duration without unit", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in", "90"}, code: 2, err: `missing unit`},
	{name: "expiry in the past", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-at", "2020-01-01"}, code: 2, err: `not in the future`},
	{name: "expiry not a time", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-at", "tomorrow"}, code: 2, err: `invalid --expires-at "tomorrow"`},
	{name: "two expiries", args: []string{"create", "--name", "x", "--scope", "bots:read", "--expires-in", "1d", "--expires-at", "2099-01-01"}, code: 2, err: `not both`},
	{name: "meta without value", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "team"}, code: 2, err: `invalid --meta "team" \(want key=value\)`},
	{name: "meta without key", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "=platform"}, code: 2, err: `invalid --meta`},
	{name: "meta twice", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "a=1", "--meta", "a=2"}, code: 2, err: `given twice`},
	{name: "meta key too long", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", strings.Repeat("k", 41) + "=v"}, code: 2, err: `too long`},
	{name: "stray argument", args: []string{"create", "--name", "x", "--scope", "bots:read", "extra"}, code: 2, err: `takes no arguments, got "extra"`},
	{name: "secret as name", args: []string{"create", "--name", "{ASECRET}", "--scope", "bots:read"}, code: 2, err: `^error: name holds what looks like a secret key \(not shown\)`},
	{name: "secret inside name", args: []string{"create", "--name", "prod key {RSECRET} (old)", "--scope", "bots:read"}, code: 2, err: `name holds what looks like a secret key`},
	{name: "secret as metadata value", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "token={ASECRET}"}, code: 2, err: `looks like a secret key \(not shown\)`},
	{name: "secret as metadata pair", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "{ASECRET}"}, code: 2, err: `looks like a secret key \(not shown\)`},
	{name: "secret as scope", args: []string{"create", "--name", "x", "--scope", "{ASECRET}"}, code: 2, err: `scope holds what looks like a secret key \(not shown\)`},
	{name: "secret as list scope", args: []string{"list", "--scope", "{ASECRET}"}, code: 2, err: `scope holds what looks like a secret key`},
	{name: "name not UTF-8", args: []string{"create", "--name", "bad\xffname", "--scope", "bots:read"}, code: 2, err: `name is not valid UTF-8`},
	{name: "name invisible", args: []string{"create", "--name", "\ufeff\u200b", "--scope", "bots:read"}, code: 2, err: `name has no visible character`},
	{name: "name bidi override", args: []string{"create", "--name", "invoice\u202efdp.exe", "--scope", "bots:read"}, code: 2, err: `name holds a bidirectional control character`},
	{name: "name with escape sequence", args: []string{"create", "--name", "x\x1b]0;pwned\a", "--scope", "bots:read"}, code: 2, err: `control characters`},
	{name: "meta value escape sequence", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "k=\x1b]0;pwned\a"}, code: 2, err: `metadata value of "k" must be text without control characters`},
	{name: "meta value carriage return", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "k=a\rb"}, code: 2, err: `control characters`},
	{name: "meta key bidi", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "k\u2066=v"}, code: 2, err: `metadata key holds a bidirectional control character`},
	{name: "meta value not UTF-8", args: []string{"create", "--name", "x", "--scope", "bots:read", "--meta", "k=\xc3"}, code: 2, err: `not valid UTF-8`},

	// rotate, revoke, show, audit, list
	{name: "negative grace", args: []string{"rotate", "{A}", "--grace=-1h"}, code: 2, err: `must not be negative`},
	{name: "grace without unit", args: []string{"rotate", "{A}", "--grace", "5"}, code: 2, err: `missing unit`},
	{name: "grace in milliseconds", args: []string{"rotate", "--older-than", "90d", "--grace", "10ms"}, code: 2, err: `unit too small`},
	{name: "older-than garbage", args: []string{"rotate", "--older-than", "ninety days"}, code: 2, err: `invalid duration`},
	{name: "rotate unknown id", args: []string{"rotate", "{UNKNOWN}"}, code: 5, err: `key {UNKNOWN} not found`},
	{name: "rotate malformed id", args: []string{"rotate", "key_short"}, code: 2, err: `malformed key id "key_short"`},
	{name: "rotate rotated key", args: []string{"rotate", "{O}"}, code: 1, err: `key {O} was already rotated to {N}`},
	{name: "rotate revoked key", args: []string{"rotate", "{R}"}, code: 1, err: `key {R} is revoked`},
	{name: "show malformed id", args: []string{"show", "not-an-id"}, code: 2, err: `malformed key id "not-an-id"`},
	{name: "show unknown id", args: []string{"show", "{UNKNOWN}"}, code: 5, err: `key {UNKNOWN} not found`},
	{name: "show id with space", args: []string{"show", "{A} "}, code: 2, err: `malformed key id`},
	{name: "show secret instead of id", args: []string{"show", "{ASECRET}"}, code: 2, err: `malformed key id: that is a secret key, not its ID`},
	{name: "show no id", args: []string{"show"}, code: 2, err: `needs at least one key ID`},
	{name: "revoke unknown id", args: []string{"revoke", "--yes", "{UNKNOWN}"}, code: 5, err: `key {UNKNOWN} not found`},
	{name: "revoke known and unknown", args: []string{"revoke", "--yes", "{A}", "{UNKNOWN}"}, code: 5, err: `key {UNKNOWN} not found`},
	{name: "revoke without yes", args: []string{"revoke", "{A}"}, code: 2, err: `revoke needs --yes when not run on a terminal`},
	{name: "audit malformed id", args: []string{"audit", "--key", "nope"}, code: 2, err: `malformed key id "nope"`},
	{name: "audit unknown id", args: []string{"audit", "--key", "{UNKNOWN}"}, code: 5, err: `key {UNKNOWN} not found`},
	{name: "list unknown status", args: []string{"list", "--status", "gone"}, code: 2, err: `invalid --status "gone"`},
	{name: "list status is part of a secret", args: []string{"list", "--status", "3nF8a9QzLm2Xc7PbQ8rTw1"}, code: 2, err: `invalid --status \(a value shaped like a secret key, not shown\)`},
	{name: "import record with a member twice", args: []string{"import", "--strict", "{DIR}/keys.jsonl"}, setup: writeTo("keys.jsonl", `{"name":"a","name":"b","scopes":["bots:read"],"key_sha256":"`+strings.Repeat("ab", 32)+`"}`+"\n"), code: 2, err: `line 1: not a JSON import record: member "name" given twice`},
	{name: "import record with a member in another case", args: []string{"import", "--strict", "{DIR}/keys.jsonl"}, setup: writeTo("keys.jsonl", `{"name":"a","Scopes":["admin"],"key_sha256":"`+strings.Repeat("ab", 32)+`"}`+"\n"), code: 2, err: `line 1: not a JSON import record: unknown field "Scopes"`},
	{name: "list zero limit", args: []string{"list", "--limit", "0"}, code: 2, err: `--limit must be at least 1`},
	{name: "list limit not a number", args: []string{"list", "--limit", "ten"}, code: 2, err: `invalid argument "ten"`},
	{name: "list unknown scope", args: []string{"list", "--scope", "admin:read"}, code: 2, err: `unknown scope`},

	// verify
	{name: "verify garbage", args: []string{"verify", "hello"}, code: 3, err: `wrong key format`},
	{name: "verify truncated key", args: []string{"verify", "{ASECRET:30}"}, code: 3, err: `wrong key format`},
	{name: "verify key missing last character", args: []string{"verify", "{ASECRET:45}"}, code: 3, err: `wrong key format`},
	{name: "verify mistyped key", args: []string{"verify", "{ASECRET~}"}, code: 3, err: `wrong key format`},
	{name: "verify revoked key", args: []string{"verify", "{RSECRET}"}, code: 3, err: `key {R} not valid: revoked`},
	{name: "verify rotated key", args: []string{"verify", "{OSECRET}"}, code: 3, err: `key {O} not valid: revoked`},
	{name: "verify empty stdin", args: []string{"verify", "-"}, code: 2, err: `no key on stdin`},
	{name: "verify garbage stdin", args: []string{"verify", "-"}, stdin: strings.Repeat("\x00garbage\xff", 1000), code: 3, err: `wrong key format`},
	{name: "verify empty argument", args: []string{"verify", ""}, code: 2, err: `empty key`},
	{name: "verify garbage from environment", args: []string{"verify"}, env: []string{"CHATBOT_API_KEY=sk_live_nope"}, code: 3, err: `wrong key format`},
	{name: "verify unknown scope", args: []string{"verify", "{ASECRET}", "--scope", "bots"}, code: 2, err: `unknown scope`},

	// the command line, config and environment
	{name: "unknown command", args: []string{"frobnicate"}, code: 2, err: `unknown command "frobnicate"`},
	{name: "unknown flag", args: []string{"list", "--frob"}, code: 2, err: `unknown flag: --frob`},
	{name: "unknown shorthand", args: []string{"list", "-Z"}, code: 2, err: `unknown shorthand flag: 'Z'`},
	{name: "flag without value", args: []string{"create", "--name"}, code: 2, err: `flag needs an argument`},
	{name: "bad output format", args: []string{"list", "-o", "yaml"}, code: 2, err: `invalid output format "yaml"`},
	{name: "bad jq", args: []string{"list", "--jq", ".["}, code: 2},
	{name: "zero timeout", args: []string{"list", "--timeout", "0s"}, code: 2, err: `--timeout must be positive`},
	{name: "bad output format from environment", args: []string{"list"}, env: []string{"KEYCTL_OUTPUT=yaml"}, code: 2, err: `invalid output format "yaml"`},
	{name: "bad timeout from environment", args: []string{"list"}, env: []string{"KEYCTL_TIMEOUT=soon"}, code: 2, err: `invalid value "soon" for --timeout \(from KEYCTL_TIMEOUT`},
	{name: "broken config yaml", args: []string{"--config", "{DIR}/config.yaml", "list"}, setup: writeTo("config.yaml", "profile: [\nprofiles: {\n"), code: 1, err: `read config .*config.yaml: .*yaml: line`},
	{name: "config of the wrong shape", args: []string{"--config", "{DIR}/config.yaml", "list"}, setup: writeTo("config.yaml", "timeout: many\n"), code: 2, err: `invalid value "many" for --timeout \(from .*config.yaml\)`},
	{name: "yes from environment is not an answer", args: []string{"revoke", "{A}"}, env: []string{"KEYCTL_YES=true"}, code: 2, err: `revoke needs --yes when not run on a terminal`},
	{name: "yes in config is not an answer", args: []string{"--config", "{DIR}/config.yaml", "revoke", "{A}"}, setup: writeTo("config.yaml", "yes: true\nprofile: p\nprofiles:\n  p: {yes: true}\n"), code: 2, err: `revoke needs --yes when not run on a terminal`},
	{name: "store and api-url both given", args: []string{"--store", "{DIR}/x.db", "--api-url", "{API}/v1", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 2, err: `--store and --api-url name two different key stores: give one`},
	{name: "store given empty", args: []string{"--store", "", "list"}, code: 2, err: `--store needs a path: an empty one is not the default store`},
	{name: "store given empty with equals", args: []string{"--store=", "create", "--name", "x", "--scope", "bots:read"}, code: 2, err: `--store needs a path`},
	{name: "api-url given empty", args: []string{"--api-url", "", "list"}, code: 2, err: `--api-url needs a URL`},
	{name: "store and api-url both in environment", args: []string{"list"}, env: []string{"KEYCTL_API_URL={API}/v1", "CHATBOT_API_KEY={ASECRET}"}, code: 2, err: `both KEYCTL_STORE and KEYCTL_API_URL are set`},
	{name: "store and api-url both in one profile", args: []string{"--config", "{DIR}/config.yaml", "list"}, env: []string{"KEYCTL_STORE="}, setup: writeTo("config.yaml", "profile: p\nprofiles:\n  p: {store: x.db, api_url: 'http://127.0.0.1:1/v1'}\n"), code: 2, err: `profile "p" of .*config.yaml sets both store and api_url`},
	{name: "serve with a key service from the environment", args: []string{"serve"}, env: []string{"KEYCTL_STORE=", "KEYCTL_API_URL={API}/v1"}, code: 2, err: `serve serves a local store, but KEYCTL_API_URL names a key service`},
	{name: "list on a missing store", args: []string{"--store", "{DIR}/missing.db", "list"}, code: 1, err: `^error: no key store at .*missing.db; nothing was created$`},
	{name: "show on a missing store", args: []string{"show", "{A}"}, env: []string{"KEYCTL_STORE={DIR}/nowhere/keys.db"}, code: 1, err: `no key store at .*nowhere/keys.db \(from KEYCTL_STORE\); nothing was created`},
	{name: "verify on a missing store", args: []string{"--store", "{DIR}/missing.db", "verify", "{ASECRET}"}, code: 1, err: `no key store at`},
	{name: "audit on a missing store", args: []string{"--store", "{DIR}/missing.db", "audit"}, code: 1, err: `no key store at`},
	{name: "revoke on a missing store", args: []string{"--store", "{DIR}/missing.db", "revoke", "--yes", "{A}"}, code: 1, err: `no key store at`},
	{name: "rotate on a missing store", args: []string{"--store", "{DIR}/missing.db", "rotate", "--older-than", "1d"}, code: 1, err: `no key store at`},
	{name: "missing config file", args: []string{"--config", "{DIR}/none.yaml", "list"}, code: 2, err: `config file .*none.yaml: no such file`},
	{name: "unknown profile", args: []string{"--config", "{DIR}/config.yaml", "--profile", "prod", "list"}, setup: writeTo("config.yaml", "profiles:\n  dev: {}\n"), code: 2, err: `profile "prod" not found`},
	{name: "unknown completion shell", args: []string{"completion", "tcsh"}, code: 2},

	// stores keyctl must not write to
	{name: "store not sqlite", args: []string{"list"}, setup: replaceStore("these are not the keys you are looking for\n"), code: 1, err: `keys.db is not a keyctl store \(not a SQLite database\)`},
	{name: "store of another program", args: []string{"create", "--name", "x", "--scope", "bots:read"}, setup: foreignStore, code: 1, err: `keys.db is a SQLite database of another program, not a keyctl store`},
	{name: "store of a newer keyctl", args: []string{"create", "--name", "x", "--scope", "bots:read"}, setup: newerStore, code: 1, err: `keys.db was written by a newer keyctl \(schema 99, this build knows \d+\); upgrade keyctl`},
	{name: "store truncated", args: []string{"list"}, setup: truncateStore, code: 1, err: `keys.db is damaged|not a keyctl store`},
	{name: "store damaged, create", args: []string{"create", "--name", "x", "--scope", "bots:read"}, setup: damageStore, walFiles: true, code: 1, err: `^error: store .*keys.db is damaged \(.*\): keyctl writes nothing to it$`},
	{name: "store damaged, revoke", args: []string{"revoke", "--yes", "{A}"}, setup: damageStore, walFiles: true, code: 1, err: `store .*keys.db is damaged`},
	{name: "store is a folder", args: []string{"--store", "{DIR}", "list"}, code: 1, err: `is not a keyctl store \(not a regular file\)`},
	{name: "store read-only", args: []string{"create", "--name", "x", "--scope", "bots:read"}, setup: readOnlyStore, readOnly: true, code: 1, err: `keys.db is read-only|cannot access store`},
	{name: "store read-only, revoke", args: []string{"revoke", "--yes", "{A}"}, setup: readOnlyStore, readOnly: true, code: 1, err: `keys.db is read-only|cannot access store`},
	{name: "store file read-only", args: []string{"revoke", "--yes", "{A}"}, setup: readOnlyFile, readOnly: true, walFiles: true, code: 1, err: `keys.db is read-only \(check the permissions of the file, of its -wal and -shm files, and of its folder\)`},

	// the remote store: unreachable, or answering what is not the API
	{name: "api unreachable", args: []string{"--api-url", "{API_CLOSED}", "--timeout", "1s", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 1, err: `cannot reach key service at {API_CLOSED}: (.*connection refused|no reply within 1s)`},
	{name: "api answers garbage json", args: []string{"--api-url", "{API}/garbage/v1", "show", "{A}"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 1, err: `unexpected reply from key service at {API}/garbage/v1 \(HTTP 200, application/json\)`},
	{name: "api answers json of another shape", args: []string{"--api-url", "{API}/shape/v1", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 1, err: `unexpected reply from key service at {API}/shape/v1 \(HTTP 200\)`},
	{name: "api answers html", args: []string{"--api-url", "{API}/html/v1", "create", "--name", "x", "--scope", "bots:read"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 1, err: `unexpected reply from key service at {API}/html/v1 \(HTTP 200, text/html\)`},
	{name: "api answers html 502", args: []string{"--api-url", "{API}/gateway/v1", "--timeout", "1s", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 1, err: `unexpected reply from key service at {API}/gateway/v1 \(HTTP 502, text/html\)|cannot reach key service at {API}/gateway/v1: no reply within 1s`},
	{name: "api refuses the key", args: []string{"--api-url", "{API}/denied/v1", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 4, err: `^error: invalid API key$`},
	{name: "api without key", args: []string{"--api-url", "{API}/v1", "list"}, code: 2, err: `no API key for the key service at {API}/v1: CHATBOT_API_KEY is not set`},
	{name: "api url not http", args: []string{"--api-url", "ftp://example.com/v1", "list"}, env: []string{"CHATBOT_API_KEY={ASECRET}"}, code: 2, err: `invalid key service URL`},

	// webhooks
	{name: "webhook without secret", args: []string{"verify-webhook", "-H", "webhook-id: msg_1", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2, err: `no webhook secret given`},
	{name: "webhook secret not base64", args: []string{"verify-webhook", "--secret", "whsec_!!!", "-H", "webhook-id: msg_1", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2, err: `not valid base64`},
	{name: "webhook secret empty", args: []string{"sign-webhook", "--secret", "whsec_", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2, err: `empty`},
	{name: "webhook secret from environment undecodable", args: []string{"sign-webhook", "{DIR}/payload.json"}, env: []string{"KEYCTL_WEBHOOK_SECRET=whsec_%%%"}, setup: writeTo("payload.json", "{}"), code: 2, err: `not valid base64`},
	{name: "webhook header without colon", args: []string{"verify-webhook", "--secret", webhookSecret, "-H", "webhook-signature v1", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2, err: `invalid --header "webhook-signature v1"`},
	{name: "webhook signature malformed", args: []string{"verify-webhook", "--secret", webhookSecret, "-H", "webhook-id: msg_1", "-H", "webhook-timestamp: {NOW}", "-H", "webhook-signature: v1,@@@", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 3, err: `webhook signature not valid: malformed header webhook-signature`},
	{name: "webhook timestamp malformed", args: []string{"verify-webhook", "--secret", webhookSecret, "-H", "webhook-id: msg_1", "-H", "webhook-timestamp: soon", "-H", "webhook-signature: v1,AAAA", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 3, err: `webhook signature not valid: malformed header webhook-timestamp`},
	{name: "webhook header missing", args: []string{"verify-webhook", "--secret", webhookSecret, "-H", "webhook-id: msg_1", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 3, err: `missing header webhook-timestamp`},
	{name: "webhook stripe header malformed", args: []string{"verify-webhook", "--scheme", "stripe", "--secret", "whsec_x", "-H", "Stripe-Signature: t=abc,v1=zz", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 3, err: `malformed header Stripe-Signature`},
	{name: "webhook github header malformed", args: []string{"verify-webhook", "--scheme", "github", "--secret", "s", "-H", "X-Hub-Signature-256: md5=00", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 3, err: `malformed header X-Hub-Signature-256`},
	{name: "webhook unknown scheme", args: []string{"verify-webhook", "--scheme", "paypal", "--secret", "s", "-H", "a: b", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2},
	{name: "webhook bad timestamp flag", args: []string{"sign-webhook", "--secret", webhookSecret, "--timestamp", "yesterday", "{DIR}/payload.json"}, setup: writeTo("payload.json", "{}"), code: 2, err: `invalid --timestamp "yesterday"`},
	{name: "webhook payload missing", args: []string{"verify-webhook", "--secret", webhookSecret, "-H", "webhook-id: msg_1", "{DIR}/none.json"}, code: 2, err: `open .*none.json: no such file`},
	{name: "webhook headers file garbage", args: []string{"verify-webhook", "--secret", webhookSecret, "--headers-file", "{DIR}/headers.json", "{DIR}/payload.json"}, setup: writeTo("headers.json", "{\"headers\": [1, 2]}", "payload.json", "{}"), code: 2, err: `read headers from`},
}

// Every bad input ends with its documented exit status, one error line
// (and perhaps a hint) on stderr, no panic, and not a byte changed on disk:
// not in the store, not beside it, not in the user's home.
func TestBadInput(t *testing.T) {
	if len(badInputs) < 30 {
		t.Fatalf("only %d cases", len(badInputs))
	}
	seeded, subs := seedBadInputStore(t)
	api, closed := fakeAPI(t)
	for _, tc := range badInputs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			store := filepath.Join(dir, "store", "keys.db")
			if err := os.Mkdir(filepath.Dir(store), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(store, seeded, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir, store)
			}
			sub := func(s string) string {
				return strings.NewReplacer("{DIR}", dir, "{API}", api, "{API_CLOSED}", closed).Replace(subs.Replace(s))
			}
			var args, env []string
			for _, a := range tc.args {
				args = append(args, sub(a))
			}
			for _, e := range tc.env {
				env = append(env, sub(e))
			}
			// The case's own variables come last, so that they win.
			env = childEnv(filepath.Join(dir, "home"), append([]string{"KEYCTL_STORE=" + store}, env...)...)

			cmd, stdout, stderr := keyctlCmd(t, env, sub(tc.stdin), args...)
			if tc.readOnly && os.Geteuid() == 0 {
				asNobody(t, cmd, dir)
			}
			before := snapshotTree(t, dir)
			err := cmd.Run()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.Exited() {
				code = ee.ExitCode()
			} else if tc.readOnly && cmd.SysProcAttr != nil && err != nil {
				// Not allowed to switch users, as in a rootless container.
				t.Skipf("cannot run keyctl as nobody, whom file permissions bind: %v", err)
			} else if err != nil {
				t.Fatalf("keyctl %q: %v", args, err)
			}
			after := snapshotTree(t, dir)
			if tc.walFiles {
				store, _ := filepath.Rel(dir, store)
				if h := after[store+"-wal"]; strings.HasSuffix(h, " "+emptyHash) {
					delete(after, store+"-wal")
				}
				delete(after, store+"-shm")
			}

			errOut := stderr.String()
			t.Logf("keyctl %q: exit %d\n%s", args, code, errOut)
			if code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			checkErrorOutput(t, errOut, sub(tc.err))
			if keystore.ContainsSecret(errOut) || strings.ContainsAny(errOut, "\x1b\u202e\u2066\r") {
				t.Errorf("stderr holds a secret or raw control characters: %q", errOut)
			}
			if tc.code != 3 && stdout.Len() > 0 {
				t.Errorf("stdout: %q, want nothing", stdout)
			}
			if !maps.Equal(before, after) {
				t.Errorf("keyctl changed the disk:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// checkErrorOutput asserts that stderr is one "error: " line matching want,
// perhaps followed by one "hint: " line, and nothing of a panic.
func checkErrorOutput(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, ".go:") {
		t.Fatalf("stderr has a stack trace:\n%s", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasSuffix(stderr, "\n") || len(lines) > 2 || !strings.HasPrefix(lines[0], "error: ") ||
		len(lines) == 2 && !strings.HasPrefix(lines[1], "hint: ") {
		t.Errorf("stderr is not one error line and at most one hint:\n%s", stderr)
	}
	if msg := strings.TrimPrefix(lines[0], "error: "); msg == "" || msg != strings.ToLower(msg[:1])+msg[1:] {
		t.Errorf("error line does not start in lower case: %q", lines[0])
	}
	if want != "" && !regexp.MustCompile(want).MatchString(lines[0]) {
		t.Errorf("error line %q does not match %q", lines[0], want)
	}
}

// fakeAPI serves what a key service must not answer, by path prefix:
// /garbage broken JSON, /shape JSON that is not the API's, /html a web page,
// /gateway a proxy's 502 page, /denied the API's 401. It returns its URL,
// and the URL of a loopback port where nothing listens.
func fakeAPI(t *testing.T) (api, closed string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch first {
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data": {"id": "key_`)
		case "shape":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			io.WriteString(w, `{"data": {"keys": "none"}, "meta": []}`)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!doctype html>\n<html><body><h1>Sign in to the Wi-Fi</h1>\n</body></html>\n")
		case "gateway":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>\n<head><title>502 Bad Gateway</title></head>\n</html>\n")
		case "denied":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error": {"code": "unauthorized", "message": "invalid API key", "request_id": "req_1"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	return srv.URL, closed
}

// seedBadInputStore makes the store every case starts from, with each
// kind of key, and returns its bytes and the placeholders of its keys.
func seedBadInputStore(t *testing.T) ([]byte, *strings.Replacer) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := keystore.WithActor(context.Background(), "seed")
	create := func(name string) *keystore.Key {
		k, err := s.Create(ctx, keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, r, o := create("active"), create("revoked"), create("rotated")
	if _, err := s.Revoke(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	n, err := s.Rotate(ctx, o.ID, keystore.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Closing the last connection checkpoints the WAL into the file and
	// removes it: the file alone is the whole store.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the seeded store still has a -wal file (%v)", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A typo: one random character changed, so the checksum fails.
	typo := []byte(a.Secret)
	typo[10] ^= 'a' ^ 'b'
	if typo[10] == a.Secret[10] || !isAlnum(typo[10]) {
		typo[10] = map[bool]byte{true: 'x', false: 'y'}[a.Secret[10] != 'x']
	}
	return b, strings.NewReplacer(
		"{A}", a.ID, "{ASECRET}", a.Secret, "{ASECRET:30}", a.Secret[:30], "{ASECRET:45}", a.Secret[:45], "{ASECRET~}", string(typo),
		"{R}", r.ID, "{RSECRET}", r.Secret,
		"{O}", o.ID, "{OSECRET}", o.Secret, "{N}", n.ID,
		"{UNKNOWN}", "key_0000000000000000",
		"{NOW}", strconv.FormatInt(time.Now().Unix(), 10),
	)
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// writeTo returns a setup that writes files (name, content, name, content,
// ...) into the case's folder.
func writeTo(nameContent ...string) func(*testing.T, string, string) {
	return func(t *testing.T, dir, _ string) {
		for i := 0; i < len(nameContent); i += 2 {
			if err := os.WriteFile(filepath.Join(dir, nameContent[i]), []byte(nameContent[i+1]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func replaceStore(content string) func(*testing.T, string, string) {
	return func(t *testing.T, _, store string) {
		if err := os.WriteFile(store, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rawExec runs statements on a SQLite file as another program would, and
// closes it, leaving no -wal behind.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func foreignStore(t *testing.T, _, store string) {
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	rawExec(t, store, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('keep me')")
}

func newerStore(t *testing.T, _, store string) {
	rawExec(t, store, "PRAGMA user_version = 99")
}

// damageStore breaks the b-tree of an index that reading keys does not
// use: the store opens and lists, and SQLite's integrity check finds it.
func damageStore(t *testing.T, _, store string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+store+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int
	err = db.QueryRow(`SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_schema WHERE name = 'audit_events_key_id'`).Scan(&root, &pageSize)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	b[(root-1)*pageSize] = 0x00 // no valid b-tree page type
	if err := os.WriteFile(store, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncateStore(t *testing.T, _, store string) {
	b, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store, b[:len(b)/2+100], 0o600); err != nil {
		t.Fatal(err)
	}
}

// readOnlyStore makes the store and its folder read-only, as on a
// read-only mount.
func readOnlyStore(t *testing.T, _, store string) {
	if err := os.Chmod(store, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(store), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Dir(store), 0o700) })
}

// readOnlyFile makes the store file read-only in a folder open to all.
func readOnlyFile(t *testing.T, _, store string) {
	if err := os.Chmod(store, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(store), 0o777); err != nil {
		t.Fatal(err)
	}
}

// asNobody makes cmd run as the user nobody, for whom file permissions
// hold, with a copy of keyctl that nobody may run.
func asNobody(t *testing.T, cmd *exec.Cmd, dir string) {
	t.Helper()
	// nobody must reach the case's folder through t.TempDir's parent.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(t.TempDir(), "keyctl")
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, cmd.Path, bin, 0o755)
	cmd.Path = bin
	cmd.Args[0] = bin
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// emptyHash is how snapshotTree shows an empty file's content.
var emptyHash = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:8]) }()

// snapshotTree maps every file and folder under dir to its mode and, for
// a file, the SHA-256 of its content.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !d.Type().IsRegular() {
			out[rel] = info.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = fmt.Sprintf("%v %s", info.Mode(), hex.EncodeToString(sum[:8]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
