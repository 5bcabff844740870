package commands

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// VerifyOptions are the inputs of keyctl verify.
type VerifyOptions struct {
	f      *Factory
	Secret string
	Scopes []string

	Required []string
}

// NewCmdVerify builds keyctl verify.
func NewCmdVerify(f *Factory, runF func(*VerifyOptions) error) *cobra.Command {
	opts := &VerifyOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "verify [KEY | -]",
		Short:       "Check that an API key is valid",
		Long: `Check an API key the way the API does: its format (offline, by checksum),
that it exists, is not revoked, expired or disabled, and holds every --scope. Records
the key's last use.

The key comes from the argument, from standard input with -, or from
CHATBOT_API_KEY. Prefer - or the variable: arguments are visible to other
users of the machine. Exit status 0 means valid, 3 means not valid.`,
		Example: `  keyctl verify --scope bots:read          # reads CHATBOT_API_KEY
  printf '%s' "$KEY" | keyctl verify - -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("verify takes one key, got %d arguments", len(args))
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
			return verifyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Scopes, "scope", "s", nil, "scope the key must hold (repeatable)")
	return cmd
}

func (opts *VerifyOptions) resolve(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "-":
		// On a terminal, a prompt and no echo, as for a password: the
		// key must not stay on the screen or in its scrollback.
		if s, ok, err := opts.f.IO.ReadSecret("Key to verify (input hidden): "); ok {
			if err != nil {
				return usageError("read key from the terminal: %v", err)
			}
			if opts.Secret = strings.TrimSpace(s); opts.Secret == "" {
				return usageError("no key given")
			}
			break
		}
		// A key is 46 bytes; read a little more to notice garbage.
		b, err := io.ReadAll(io.LimitReader(opts.f.IO.In, 4096))
		if err != nil {
			return usageError("read key from stdin: %v", err)
		}
		opts.Secret = strings.TrimSpace(string(b))
		if opts.Secret == "" {
			return usageError("no key on stdin")
		}
	case len(args) == 1:
		opts.Secret = strings.TrimSpace(args[0])
		if opts.Secret == "" {
			return usageError("empty key")
		}
	default:
		opts.Secret = strings.TrimSpace(os.Getenv(defaultAPIKeyEnv))
		if opts.Secret == "" {
			return withHint(usageError("no key to verify"), "pass the key as an argument, - to read it from stdin, or set CHATBOT_API_KEY")
		}
	}
	required, err := keystore.ExpandScopes(opts.Scopes)
	if err != nil {
		return err
	}
	opts.Required = required
	return nil
}

func verifyRun(ctx context.Context, opts *VerifyOptions) error {
	f := opts.f
	var v *keystore.Verification
	if _, err := keystore.ParseToken(opts.Secret); err != nil {
		// Checked offline: a mistyped key needs no store at all.
		v = keystore.InvalidFormat()
	} else {
		store, err := f.Store()
		if err != nil {
			return err
		}
		v, err = store.Verify(ctx, opts.Secret, opts.Required)
		if err != nil {
			return err
		}
	}
	p := f.printer()
	if !p.isTable() {
		if err := p.json(v); err != nil {
			return err
		}
	} else {
		t := f.IO.NewTable()
		t.Row("code", p.io.Colorize(v.Code, v.Code))
		if v.Key != nil {
			t.Row("id", v.Key.ID)
			t.Row("name", output.Escape(v.Key.Name))
			t.Row("scopes", strings.Join(v.Key.Scopes, ","))
		}
		if len(v.MissingScopes) > 0 {
			t.Row("missing_scopes", strings.Join(v.MissingScopes, ","))
		}
		if err := t.Render(); err != nil {
			return err
		}
	}
	if v.Valid {
		return nil
	}
	return &cmdError{code: exitVerifyFailed, msg: verifyMessage(v)}
}

func verifyMessage(v *keystore.Verification) string {
	who := ""
	if v.Key != nil {
		who = " " + v.Key.ID
	}
	switch v.Code {
	case keystore.CodeInvalidFormat:
		return "key not valid: wrong key format (mistyped or truncated?)"
	case keystore.CodeNotFound:
		return "key not valid: no such key in this store"
	case keystore.CodeRevoked:
		return "key" + who + " not valid: revoked"
	case keystore.CodeExpired:
		return "key" + who + " not valid: expired"
	case keystore.CodeDisabled:
		return "key" + who + " not valid: disabled (keyctl enable brings it back)"
	case keystore.CodeInsufficientScope:
		return "key" + who + " lacks scope " + strings.Join(v.MissingScopes, ", ")
	}
	return "key not valid: " + v.Code
}
