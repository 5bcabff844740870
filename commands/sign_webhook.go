package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/webhook"
)

// webhookSecretEnv holds webhook secrets, separated by spaces, when no
// --secret is given.
const webhookSecretEnv = "KEYCTL_WEBHOOK_SECRET"

// SignWebhookOptions are the inputs of keyctl sign-webhook.
type SignWebhookOptions struct {
	f *Factory

	Secrets     []string
	ID          string
	Timestamp   string
	Scheme      string
	Send        string
	ContentType string
	NewSecret   bool

	// Resolved by RunE.
	File   string // a path, or - for stdin
	Sign   webhook.SignOptions
	URL    *url.URL // nil unless --send
	typed  map[string]bool
	client *http.Client // nil means a client that follows no redirects
}

// NewCmdSignWebhook builds keyctl sign-webhook.
func NewCmdSignWebhook(f *Factory, runF func(*SignWebhookOptions) error) *cobra.Command {
	opts := &SignWebhookOptions{f: f}
	cmd := &cobra.Command{
		Use:   "sign-webhook [--secret S]... [--scheme standard|stripe|github] {FILE | -}",
		Short: "Sign a webhook payload, and optionally send it",
		Long: `Sign a webhook payload, read from FILE or from standard input with -, and
print the headers that carry the signature as "Name: value" lines, or with
-o json as {"headers": {...}}. The payload is signed byte for byte as it is,
and streamed: its size does not matter.

Schemes (--scheme):
  standard  Standard Webhooks v1, as sent by Svix (the default): webhook-id,
            webhook-timestamp and webhook-signature. Secrets look like
            whsec_<base64>.
  stripe    Stripe-Signature: t=<unix>,v1=<hex>. The secret is used as it is.
  github    X-Hub-Signature-256: sha256=<hex>. One secret, no timestamp.

The secret comes from --secret or, when none is given, from
KEYCTL_WEBHOOK_SECRET, which may hold several secrets separated by spaces.
Prefer the variable: arguments are visible to other users of the machine.
Give two secrets while rotating one: the payload gets a signature by each,
so receivers that hold either accept it. --new-secret prints a fresh
whsec_ secret and nothing else.

With --send URL the payload is POSTed to URL with the headers and
Content-Type, within --timeout, without following redirects; keyctl prints
the receiver's reply status after the headers and exits 1 unless it is 2xx.`,
		Example: `  # A fresh secret, and a payload signed with it
  export KEYCTL_WEBHOOK_SECRET=$(keyctl sign-webhook --new-secret)
  echo '{"type": "bot.created", "data": {"id": "bot_123"}}' > event.json
  keyctl sign-webhook event.json

  # Fixed message ID and time, as JSON; the payload from stdin
  keyctl sign-webhook --id msg_p5jXN8AQM9LWM0D4loKWxJek --timestamp 1614265330 -o json - < event.json

  # Stripe and GitHub signatures
  keyctl sign-webhook --scheme stripe --secret whsec_stripe_test_secret event.json
  keyctl sign-webhook --scheme github --secret "It's a Secret to Everybody" event.json

  # Deliver it to a receiver on this machine
  keyctl sign-webhook --send http://127.0.0.1:8000/webhook event.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			// Runs before the root fills unset flags from the environment
			// and config file: only flags typed here can conflict.
			opts.typed = typedFlags(cmd.Flags())
			if len(args) > 1 {
				return withHint(usageError("sign-webhook signs one payload, got %d arguments", len(args)), "see 'keyctl sign-webhook --help'")
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
			return signWebhookRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Secrets, "secret", nil, "webhook secret (repeatable, to sign with each; default $"+webhookSecretEnv+")")
	fl.StringVar(&opts.ID, "id", "", "message ID, standard scheme only (default a fresh msg_ ID)")
	fl.StringVar(&opts.Timestamp, "timestamp", "", "signing time in unix seconds (default now; not for github)")
	fl.StringVar(&opts.Scheme, "scheme", string(webhook.Standard), "signature scheme: standard, stripe or github")
	fl.StringVar(&opts.Send, "send", "", "POST the signed payload to this http(s) URL")
	fl.StringVar(&opts.ContentType, "content-type", "application/json", "Content-Type of the payload, with --send")
	fl.BoolVar(&opts.NewSecret, "new-secret", false, "print a fresh whsec_ secret and nothing else")
	return cmd
}

// signingFlags are the flags that make no sense with --new-secret.
var signingFlags = []string{"secret", "id", "timestamp", "scheme", "send", "content-type"}

func (opts *SignWebhookOptions) resolve(args []string) error {
	if opts.NewSecret {
		for _, name := range signingFlags {
			if opts.typed[name] {
				return usageError("--new-secret makes a secret and signs nothing: drop --%s", name)
			}
		}
		if len(args) > 0 {
			return usageError("--new-secret makes a secret and signs nothing: drop %q", args[0])
		}
		return nil
	}

	scheme, err := webhook.ParseScheme(opts.Scheme)
	if err != nil {
		return webhookUsage(err)
	}
	secrets, err := webhookSecrets(opts.Secrets, opts.typed["secret"])
	if err != nil {
		return err
	}
	so := webhook.SignOptions{Scheme: scheme, Secrets: secrets, ID: opts.ID}
	switch {
	case opts.Timestamp != "":
		unix, err := parseUnixFlag(opts.Timestamp)
		if err != nil {
			return err
		}
		so.Timestamp = time.Unix(unix, 0)
	case scheme != webhook.GitHub:
		so.Timestamp = opts.f.Now()
	}
	if opts.Send != "" {
		if opts.URL, err = parseSendURL(opts.Send); err != nil {
			return err
		}
	} else if opts.typed["content-type"] {
		return usageError("--content-type goes with --send")
	}
	// Sign nothing once, so that a bad secret or option is a usage error
	// before any payload is read or a file is opened.
	if _, err := webhook.Sign(strings.NewReader(""), so); err != nil {
		return webhookUsage(err)
	}
	if len(args) == 0 {
		return withHint(usageError("sign-webhook needs the payload: a FILE, or - for stdin"), "keyctl sign-webhook event.json")
	}
	opts.File = args[0]
	opts.Sign = so
	return nil
}

// signedWebhook is sign-webhook's JSON output.
type signedWebhook struct {
	Headers map[string]string `json:"headers"`
	Status  *int              `json:"status,omitempty"` // the reply's, with --send
}

func signWebhookRun(ctx context.Context, opts *SignWebhookOptions) error {
	f := opts.f
	if opts.NewSecret {
		secret, err := webhook.NewSecret(rand.Reader)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(f.IO.Out, secret)
		return err
	}

	payload, err := openPayload(f, opts.File)
	if err != nil {
		return err
	}
	defer payload.Close()

	// The payload is read twice with --send, to sign and to send. A regular
	// file is opened again; anything else (stdin, a pipe) is spooled to a
	// private temporary file, never held in memory.
	var spool *os.File
	var src io.Reader = ctxReader{ctx, payload}
	signed := sha256.New()
	counted := &countingWriter{}
	if opts.URL != nil {
		// The payload sent is checked against the one signed: hash it as
		// it is signed. Without --send, signing is the only pass over it.
		src = io.TeeReader(src, io.MultiWriter(signed, counted))
	}
	if opts.URL != nil && !payload.regular {
		if spool, err = os.CreateTemp("", "keyctl-webhook-*"); err != nil {
			return fmt.Errorf("spool webhook payload: %w", err)
		}
		defer os.Remove(spool.Name())
		defer spool.Close()
		src = io.TeeReader(src, spool)
	}
	h, err := webhook.Sign(src, opts.Sign)
	if err != nil {
		return webhookPayloadError(opts.File, err)
	}
	out := signedWebhook{Headers: map[string]string{}}
	for _, name := range webhook.HeaderNames(opts.Sign.Scheme) {
		out.Headers[name] = h.Get(name)
	}

	var (
		statusLine string
		sendErr    error
	)
	if opts.URL != nil {
		var body io.ReadCloser
		if spool != nil {
			if _, err := spool.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("spool webhook payload: %w", err)
			}
			body = io.NopCloser(spool)
		} else if body, err = reopenPayload(opts.File, counted.n); err != nil {
			return err
		}
		defer body.Close()
		sent, sentN := sha256.New(), &countingWriter{}
		status, err := opts.send(ctx, io.TeeReader(io.LimitReader(body, counted.n), io.MultiWriter(sent, sentN)), counted.n, h)
		if err != nil {
			return err
		}
		// A receiver may answer before it has read the whole payload; only
		// a payload sent in full can be compared with the one signed.
		if sentN.n == counted.n && !bytes.Equal(sent.Sum(nil), signed.Sum(nil)) {
			return fmt.Errorf("send webhook to %s: %s changed after it was signed, so the receiver got a payload that does not match the signature", opts.URL.Redacted(), opts.File)
		}
		out.Status = &status.code
		statusLine = status.line
		sendErr = status.err
	}

	p := f.printer()
	if !p.isTable() {
		if err := p.json(out); err != nil {
			return err
		}
		return sendErr
	}
	for _, name := range webhook.HeaderNames(opts.Sign.Scheme) {
		if _, err := fmt.Fprintf(f.IO.Out, "%s: %s\n", name, out.Headers[name]); err != nil {
			return err
		}
	}
	if out.Status != nil {
		if _, err := fmt.Fprintln(f.IO.Out, statusLine); err != nil {
			return err
		}
	}
	return sendErr
}

// sendStatus is the receiver's reply; err is set when it was not 2xx.
type sendStatus struct {
	code int
	line string // such as "200 OK"
	err  error
}

// send POSTs the payload with the signature headers and returns the reply's
// status. A network error or timeout is returned as err; a reply that is
// not 2xx is returned in the status, so that it can be printed first.
func (opts *SignWebhookOptions) send(ctx context.Context, body io.Reader, size int64, h http.Header) (sendStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.f.Settings.Timeout)
	defer cancel()
	target := opts.URL.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, opts.URL.String(), body)
	if err != nil {
		return sendStatus{}, fmt.Errorf("send webhook to %s: %v", target, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	for name, values := range h {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", opts.ContentType)
	req.Header.Set("User-Agent", "keyctl")

	client := opts.client
	if client == nil {
		// Webhook senders do not follow redirects: a 3xx is the receiver's
		// answer, and following it would turn the POST into a GET.
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return sendStatus{}, withHint(fmt.Errorf("send webhook to %s: no reply within %v", target, opts.f.Settings.Timeout), "allow longer with --timeout")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return sendStatus{}, fmt.Errorf("send webhook to %s: %v", target, err)
	}
	defer resp.Body.Close()
	st := sendStatus{code: resp.StatusCode, line: printable(resp.Status)}
	if st.line == "" {
		st.line = strconv.Itoa(resp.StatusCode)
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("send webhook to %s: the receiver replied %s", target, st.line)
		if s := replySnippet(reply); s != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			msg += ": " + s
		}
		st.err = &cmdError{code: exitError, msg: msg}
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			st.err = withHint(st.err, "webhooks are not redirected; send to "+printable(loc)+" if that is the receiver")
		}
	}
	return st, nil
}

// replySnippet is the start of a reply body, on one printable line, to say
// why a receiver refused a delivery.
func replySnippet(b []byte) string {
	s := printable(oneLine(string(b)))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// printable drops control characters, so that what a receiver says cannot
// break the one-line output or play tricks on a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
}

// parseSendURL accepts http and https URLs with a host.
func parseSendURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, withHint(usageError("--send needs an http:// or https:// URL"), "keyctl sign-webhook --send http://127.0.0.1:8000/webhook event.json")
	}
	return u, nil
}

// parseUnixFlag reads --timestamp: unix seconds, digits only.
func parseUnixFlag(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strings.TrimLeft(s, "0123456789") != "" {
		return 0, usageError("invalid --timestamp %s (want unix seconds, such as 1614265330)", keystore.Quote(s))
	}
	return n, nil
}

// webhookSecrets returns the secrets to use: those given with --secret,
// else those in KEYCTL_WEBHOOK_SECRET, which may hold several separated by
// spaces. Secrets never come from the config file (nor does any flag of a
// command: only global options do).
func webhookSecrets(flagValues []string, typed bool) ([]string, error) {
	if typed {
		return flagValues, nil
	}
	if secrets := strings.Fields(os.Getenv(webhookSecretEnv)); len(secrets) > 0 {
		return secrets, nil
	}
	return nil, withHint(usageError("no webhook secret given"), "pass --secret or set "+webhookSecretEnv+"; keyctl sign-webhook --new-secret makes one")
}

// webhookUsage turns the webhook library's errors about what the caller
// passed into usage errors (exit 2).
func webhookUsage(err error) error {
	if errors.Is(err, webhook.ErrInvalidSecret) || errors.Is(err, webhook.ErrInvalidOption) {
		return &cmdError{code: exitUsage, msg: err.Error()}
	}
	return err
}

// webhookPayloadError names the payload in a read error.
func webhookPayloadError(name string, err error) error {
	if errors.Is(err, webhook.ErrInvalidSecret) || errors.Is(err, webhook.ErrInvalidOption) {
		return webhookUsage(err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if name == "-" {
		name = "stdin"
	}
	return fmt.Errorf("read %s: %s", name, strings.TrimPrefix(err.Error(), "reading webhook payload: "))
}

// typedFlags names the flags set on the command line.
func typedFlags(fs *pflag.FlagSet) map[string]bool {
	typed := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { typed[f.Name] = true })
	return typed
}

// reopenPayload opens a regular file again to send it, after checking it
// still holds at least the n bytes that were signed.
func reopenPayload(name string, n int64) (io.ReadCloser, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s again to send it: %s", name, pathErr(err))
	}
	if info, err := file.Stat(); err != nil || info.Size() < n {
		file.Close()
		return nil, fmt.Errorf("%s changed after it was signed; sign and send it again", name)
	}
	return file, nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
