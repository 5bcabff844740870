package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// CreateOptions are the inputs of keyctl create.
type CreateOptions struct {
	f *Factory

	Name      string
	Scopes    []string
	Env       string
	ExpiresIn string
	ExpiresAt string
	Meta      []string
	Quiet     bool

	// Params is what the flags resolve to, filled by RunE.
	Params    keystore.CreateParams
	AllScopes bool // no --scope was given
}

// NewCmdCreate builds keyctl create.
func NewCmdCreate(f *Factory, runF func(*CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{f: f}
	cmd := &cobra.Command{
		Use:   "create --name NAME [--scope SCOPE]...",
		Short: "Create an API key",
		Long: `Create an API key and print its secret. The secret is shown only this
once: keyctl stores only its SHA-256 hash.

Scopes may be named one by one or as patterns: bots:*, *:read, *. With no
--scope the key gets every scope, admin included; prefer the fewest scopes
the client needs.`,
		Example: `  keyctl create --name "Production Server" --scope bots:read --scope conversations:*
  keyctl create --name ci --env test --expires-in 90d --meta team=platform
  export CHATBOT_API_KEY=$(keyctl create -q --name "Local dev" --scope bots:read)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(cmd); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Name, "name", "n", "", "name of the key, 1 to 100 characters (required)")
	fl.StringArrayVarP(&opts.Scopes, "scope", "s", nil, "scope or pattern the key grants (repeatable; default: all scopes)")
	fl.StringVar(&opts.Env, "env", keystore.EnvLive, "environment: live or test")
	fl.StringVar(&opts.ExpiresIn, "expires-in", "", "expire after this long, such as 90d or 12h")
	fl.StringVar(&opts.ExpiresAt, "expires-at", "", "expire at this time (RFC 3339 or YYYY-MM-DD)")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "metadata as key=value (repeatable)")
	fl.BoolVarP(&opts.Quiet, "quiet", "q", false, "print only the secret")
	return cmd
}

func (opts *CreateOptions) resolve(cmd *cobra.Command) error {
	now := opts.f.Now()
	p := &opts.Params
	if !flagChanged(cmd.Flags(), "name") {
		return withHint(usageError("--name is required"), `keyctl create --name "Production Server" --scope bots:read`)
	}
	p.Name = opts.Name
	p.Environment = opts.Env
	if !keystore.ValidEnv(opts.Env) {
		return usageError("invalid --env %s (want live or test)", keystore.Quote(opts.Env))
	}
	if len(opts.Scopes) == 0 {
		opts.AllScopes = true
		p.Scopes = keystore.AllScopes
	} else {
		scopes, err := keystore.ExpandScopes(opts.Scopes)
		if err != nil {
			return err
		}
		if len(scopes) == 0 {
			return usageError("--scope names no scope")
		}
		p.Scopes = scopes
	}
	exp, err := parseExpiry(opts.ExpiresIn, opts.ExpiresAt, now)
	if err != nil {
		return err
	}
	p.ExpiresAt = exp
	meta, err := parseMeta(opts.Meta)
	if err != nil {
		return err
	}
	p.Metadata = meta
	return p.Validate(now)
}

func parseExpiry(in, at string, now time.Time) (*time.Time, error) {
	switch {
	case in != "" && at != "":
		return nil, usageError("use --expires-in or --expires-at, not both")
	case in != "":
		d, err := keystore.ParseDuration(in)
		if err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, usageError("--expires-in must be positive")
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		return &t, nil
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t, err = time.Parse(time.DateOnly, at)
		}
		if err != nil {
			return nil, usageError("invalid --expires-at %s (want RFC 3339, such as 2027-01-31T12:00:00Z, or YYYY-MM-DD)", keystore.Quote(at))
		}
		// Keys keep whole seconds: cut first, so that a time within the
		// current second is refused here, by this flag's name.
		t = t.UTC().Truncate(time.Second)
		if !t.After(now) {
			return nil, usageError("--expires-at %s is not in the future", t.Format(time.RFC3339))
		}
		return &t, nil
	}
	return nil, nil
}

// parseMeta reads --meta key=value pairs.
func parseMeta(pairs []string) (map[string]string, error) {
	meta := map[string]string{}
	for _, pair := range pairs {
		k, v, ok := strings.Cut(pair, "=")
		if keystore.ContainsSecret(pair) {
			// Checked here too: the messages below repeat the pair.
			return nil, usageError("invalid --meta: it holds what looks like a secret key (not shown); a secret never goes in metadata")
		}
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageError("invalid --meta %s (want key=value)", keystore.Quote(pair))
		}
		if _, dup := meta[k]; dup {
			return nil, usageError("--meta %s given twice", keystore.Quote(k))
		}
		meta[k] = v
	}
	return meta, nil
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	f := opts.f
	if opts.AllScopes {
		notice(f.IO.ErrOut, "note: no --scope given, so the key gets every scope (admin included); grant only the scopes a client needs, e.g. --scope bots:read")
	}
	store, err := f.Store()
	if err != nil {
		return err
	}
	key, err := store.Create(f.Context(ctx), opts.Params)
	if err != nil {
		return err
	}
	p := f.printer()
	switch {
	case opts.Quiet:
		_, err = fmt.Fprintln(f.IO.Out, key.Secret)
		return err
	case !p.isTable():
		return p.json(key)
	}
	success(f.IO, "Created key %s (%s)", key.ID, output.Escape(key.Name))
	if err := p.keyDetails(key); err != nil {
		return err
	}
	if f.IO.IsStderrTTY() {
		notice(f.IO.ErrOut, "Copy the key now: it will not be shown again.")
	}
	return nil
}
