package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/webhook"
)

// VerifyWebhookOptions are the inputs of keyctl verify-webhook.
type VerifyWebhookOptions struct {
	f *Factory

	Secrets         []string
	Headers         []string
	HeadersFile     string
	Tolerance       string
	IgnoreTimestamp bool
	Scheme          string

	// Resolved by RunE.
	File   string // a path, or - for stdin
	Header http.Header
	Verify webhook.VerifyOptions
	typed  map[string]bool
}

// NewCmdVerifyWebhook builds keyctl verify-webhook.
func NewCmdVerifyWebhook(f *Factory, runF func(*VerifyWebhookOptions) error) *cobra.Command {
	opts := &VerifyWebhookOptions{f: f}
	cmd := &cobra.Command{
		Use:   "verify-webhook [--secret S]... --header 'Name: value'... {FILE | -}",
		Short: "Check the signature of a webhook delivery",
		Long: `Check that a webhook delivery, its payload in FILE (or on standard input
with -) and its headers given with --header or --headers-file, carries a
valid signature by one of the secrets, made within --tolerance of now.

Exit status 0 means valid and prints "valid"; 3 means not valid and prints
"not valid: <reason>", with the details on stderr. Reasons:
no_matching_signature, timestamp_too_old, timestamp_too_new, missing_header,
malformed_header. -o json prints {"valid": true|false, "reason": ...}.

The secrets come from --secret or, when none is given, from
KEYCTL_WEBHOOK_SECRET (several separated by spaces); a signature by any
one of them is accepted. --scheme is standard (Standard Webhooks, the
default; the svix-* headers are accepted too), stripe or github.

--headers-file reads headers from a file of "Name: value" lines, as printed
by sign-webhook (blank lines, # comments, an HTTP request line and a reply
status line are skipped), or from sign-webhook's -o json output.`,
		Example: `  export KEYCTL_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  printf '%s' '{"test": 2432232314}' > payload.json

  # A delivery captured long ago: skip the timestamp check
  keyctl verify-webhook --ignore-timestamp payload.json \
    --header 'webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek' \
    --header 'webhook-timestamp: 1614265330' \
    --header 'webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='

  # Headers as sign-webhook prints them
  keyctl sign-webhook payload.json > headers.txt
  keyctl verify-webhook --headers-file headers.txt payload.json

  # GitHub, the payload from stdin, the result as JSON
  printf 'Hello, World!' | keyctl verify-webhook --scheme github --secret "It's a Secret to Everybody" \
    --header 'X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' -o json -`,
		Args: func(cmd *cobra.Command, args []string) error {
			// Runs before the root fills unset flags from the environment
			// and config file: only flags typed here can conflict.
			opts.typed = typedFlags(cmd.Flags())
			switch {
			case len(args) == 0:
				return withHint(usageError("verify-webhook needs the payload: a FILE, or - for stdin"), "see 'keyctl verify-webhook --help'")
			case len(args) > 1:
				return withHint(usageError("verify-webhook checks one payload, got %d arguments", len(args)), "see 'keyctl verify-webhook --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return verifyWebhookRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Secrets, "secret", nil, "webhook secret (repeatable, any one may match; default $"+webhookSecretEnv+")")
	fl.StringArrayVarP(&opts.Headers, "header", "H", nil, "a header of the delivery, 'Name: value' (repeatable)")
	fl.StringVar(&opts.HeadersFile, "headers-file", "", "read the delivery's headers from this file ('Name: value' lines, or JSON)")
	fl.StringVar(&opts.Tolerance, "tolerance", "5m", "how far the signing time may lie from now, either way")
	fl.BoolVar(&opts.IgnoreTimestamp, "ignore-timestamp", false, "accept any signing time, to check an old delivery")
	fl.StringVar(&opts.Scheme, "scheme", string(webhook.Standard), "signature scheme: standard, stripe or github")
	return cmd
}

func (opts *VerifyWebhookOptions) resolve(args []string) error {
	scheme, err := webhook.ParseScheme(opts.Scheme)
	if err != nil {
		return webhookUsage(err)
	}
	secrets, err := webhookSecrets(opts.Secrets, opts.typed["secret"])
	if err != nil {
		return err
	}
	vo := webhook.VerifyOptions{Scheme: scheme, Secrets: secrets, Now: opts.f.Now()}
	switch {
	case opts.IgnoreTimestamp && opts.typed["tolerance"]:
		return usageError("use --tolerance or --ignore-timestamp, not both")
	case opts.IgnoreTimestamp:
		vo.Tolerance = -1 // the library's "do not check"
	default:
		d, err := keystore.ParseDuration(opts.Tolerance)
		if err != nil {
			return usageError("invalid --tolerance: %s", err)
		}
		if d <= 0 {
			return withHint(usageError("--tolerance must be positive"), "to accept any signing time, use --ignore-timestamp")
		}
		vo.Tolerance = d
	}
	// Check the secrets and options against no delivery at all, so that a
	// bad one is a usage error before any input is read.
	if err := webhook.Verify(strings.NewReader(""), http.Header{}, vo); errors.Is(err, webhook.ErrInvalidSecret) || errors.Is(err, webhook.ErrInvalidOption) {
		return webhookUsage(err)
	}

	h := http.Header{}
	for _, line := range opts.Headers {
		name, value, err := parseHeaderLine(line)
		if err != nil {
			return withHint(usageError("invalid --header %q: %s", keystore.Truncate(line, 40), err), "--header 'webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek'")
		}
		h.Add(name, value)
	}
	if opts.HeadersFile != "" {
		if opts.HeadersFile == "-" && len(args) == 1 && args[0] == "-" {
			return usageError("stdin can hold the payload or the headers, not both")
		}
		if err := readHeadersFile(opts.f, opts.HeadersFile, h); err != nil {
			return err
		}
	}
	if len(h) == 0 {
		return withHint(usageError("verify-webhook needs the delivery's headers"), "pass them with --header 'Name: value' or --headers-file FILE")
	}
	opts.File = args[0]
	opts.Header = h
	opts.Verify = vo
	return nil
}

// webhookVerification is verify-webhook's JSON output.
type webhookVerification struct {
	Valid  bool    `json:"valid"`
	Reason *string `json:"reason"`
}

func verifyWebhookRun(ctx context.Context, opts *VerifyWebhookOptions) error {
	f := opts.f
	payload, err := openPayload(f, opts.File)
	if err != nil {
		return err
	}
	defer payload.Close()

	var result webhookVerification
	var notValid *webhook.VerifyError
	switch err := webhook.Verify(ctxReader{ctx, payload}, opts.Header, opts.Verify); {
	case err == nil:
		result.Valid = true
	case errors.As(err, &notValid):
		result.Reason = &notValid.Reason
	default:
		return webhookPayloadError(opts.File, err)
	}

	p := f.printer()
	if !p.isTable() {
		if err := p.json(result); err != nil {
			return err
		}
	} else {
		line := p.io.Colorize("valid", "valid")
		if !result.Valid {
			line = p.io.Colorize("revoked", "not valid") + ": " + *result.Reason
		}
		if _, err := fmt.Fprintln(f.IO.Out, line); err != nil {
			return err
		}
	}
	if notValid != nil {
		return &cmdError{code: exitVerifyFailed, msg: "webhook signature not valid: " + notValid.Message}
	}
	return nil
}

// parseHeaderLine splits "Name: value" at the first colon.
func parseHeaderLine(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", errors.New("want 'Name: value'")
	}
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !validHeaderName(name) {
		return "", "", errors.New("want 'Name: value' with a header name before the colon")
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", errors.New("a header value is one line")
	}
	return name, value, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Lines of a captured delivery that are not headers: a request line such as
// "POST /webhook HTTP/1.1" and the reply status that sign-webhook --send
// prints, such as "200 OK".
var (
	requestLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z]+ \S+ HTTP/[0-9](\.[0-9])?$`) })
	statusLine  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[1-5][0-9][0-9]( .*)?$`) })
)

// maxHeadersFile bounds --headers-file: headers are small, and a payload
// given by mistake should not be read into memory.
const maxHeadersFile = 1 << 20

// readHeadersFile adds to h the headers in a file (- for stdin): "Name:
// value" lines, or a JSON object of names to values, alone or under
// "headers" as sign-webhook -o json prints it.
func readHeadersFile(f *Factory, name string, h http.Header) error {
	var r io.Reader = f.IO.In
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return usageError("open %s: %s", name, pathErr(err))
		}
		defer file.Close()
		r = file
	}
	data, err := io.ReadAll(io.LimitReader(r, maxHeadersFile+1))
	if err != nil {
		return usageError("read headers from %s: %s", name, pathErr(err))
	}
	if len(data) > maxHeadersFile {
		return usageError("read headers from %s: larger than 1 MiB; is it the payload?", name)
	}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		return parseHeadersJSON(name, trimmed, h)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || requestLine().MatchString(line) || statusLine().MatchString(line) {
			continue
		}
		k, v, err := parseHeaderLine(line)
		if err != nil {
			return usageError("%s line %d: %s", name, i+1, err)
		}
		h.Add(k, v)
	}
	return nil
}

func parseHeadersJSON(name string, data []byte, h http.Header) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return usageError("read headers from %s: not valid JSON: %s", name, err)
	}
	if inner, ok := doc["headers"]; ok {
		data = inner
	}
	var headers map[string]string
	if err := json.Unmarshal(data, &headers); err != nil {
		return usageError(`read headers from %s: want {"Name": "value", ...} or {"headers": {...}}`, name)
	}
	for k, v := range headers {
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !validHeaderName(k) || strings.ContainsAny(v, "\r\n\x00") {
			return usageError("read headers from %s: invalid header %s", name, keystore.Quote(k))
		}
		h.Add(k, v)
	}
	return nil
}
