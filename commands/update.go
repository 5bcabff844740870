package commands

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// UpdateOptions are the inputs of keyctl update.
type UpdateOptions struct {
	f  *Factory
	ID string

	Name         string
	Scopes       []string
	RemoveScopes []string
	ExpiresIn    string
	ExpiresAt    string
	NoExpiry     bool
	Meta         []string
	RemoveMeta   []string

	// Params is what the flags resolve to, filled by RunE; scopes to
	// remove are applied to the key's current scopes at run time.
	Params keystore.UpdateParams
}

// NewCmdUpdate builds keyctl update.
func NewCmdUpdate(f *Factory, runF func(*UpdateOptions) error) *cobra.Command {
	opts := &UpdateOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "update KEY_ID [flags]",
		Short:       "Change a key's name, scopes, expiry or metadata",
		Long: `Change a key's name, scopes, expiry or metadata. The secret stays the same:
clients keep working (rotate makes a new secret). Only the fields named by a
flag change, and the audit log records the before and after of each.

--scope replaces the key's scopes (patterns such as bots:* work);
--remove-scope narrows them. Removing a scope from an admin key leaves it
every other scope but admin.`,
		Example: `  keyctl update key_3nF8a9QzLm2Xc7Pb --name "CI deploy (prod)"
  keyctl update key_3nF8a9QzLm2Xc7Pb --remove-scope bots:write
  keyctl update key_3nF8a9QzLm2Xc7Pb --scope bots:read --scope channels:*
  keyctl update key_3nF8a9QzLm2Xc7Pb --expires-in 30d --meta owner=alice --remove-meta ticket
  keyctl update key_3nF8a9QzLm2Xc7Pb --no-expiry -o json`,
		Args: exactArgs(1, "a key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if err := keystore.CheckID(opts.ID); err != nil {
				return asUsage(err)
			}
			if err := opts.resolve(cmd); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return updateRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Name, "name", "n", "", "new name, 1 to 100 characters")
	fl.StringArrayVarP(&opts.Scopes, "scope", "s", nil, "replace the scopes with these (repeatable; patterns such as bots:* work)")
	fl.StringArrayVar(&opts.RemoveScopes, "remove-scope", nil, "take this scope away (repeatable)")
	fl.StringVar(&opts.ExpiresIn, "expires-in", "", "expire this long from now, such as 30d")
	fl.StringVar(&opts.ExpiresAt, "expires-at", "", "expire at this time (RFC 3339 or YYYY-MM-DD)")
	fl.BoolVar(&opts.NoExpiry, "no-expiry", false, "never expire")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "set metadata key=value (repeatable)")
	fl.StringArrayVar(&opts.RemoveMeta, "remove-meta", nil, "unset this metadata key (repeatable)")
	return cmd
}

func (opts *UpdateOptions) resolve(cmd *cobra.Command) error {
	fl := cmd.Flags()
	p := &opts.Params
	if flagChanged(fl, "name") {
		if err := keystore.CheckName(opts.Name); err != nil {
			return asUsage(err)
		}
		p.Name = &opts.Name
	}
	if len(opts.Scopes) > 0 {
		scopes, err := keystore.ExpandScopes(opts.Scopes)
		if err != nil {
			return asUsage(err)
		}
		if len(scopes) == 0 {
			return usageError("--scope names no scope")
		}
		p.Scopes = scopes
	}
	if len(opts.RemoveScopes) > 0 {
		if _, err := keystore.ExpandScopes(opts.RemoveScopes); err != nil {
			return asUsage(err)
		}
	}
	if opts.NoExpiry && (opts.ExpiresIn != "" || opts.ExpiresAt != "") {
		return usageError("use --no-expiry or an expiry, not both")
	}
	exp, err := parseExpiry(opts.ExpiresIn, opts.ExpiresAt, opts.f.Now())
	if err != nil {
		return err
	}
	p.ExpiresAt, p.ClearExpiry = exp, opts.NoExpiry
	if len(opts.Meta) > 0 {
		if p.Metadata, err = parseMeta(opts.Meta); err != nil {
			return err
		}
	}
	for _, name := range opts.RemoveMeta {
		if _, set := p.Metadata[name]; set {
			return usageError("--meta and --remove-meta both name %q", name)
		}
		if name == "" {
			return usageError("--remove-meta needs a metadata key")
		}
		if !slices.Contains(p.RemoveMetadata, name) {
			p.RemoveMetadata = append(p.RemoveMetadata, name)
		}
	}
	if p.IsZero() && len(opts.RemoveScopes) == 0 {
		return withHint(usageError("nothing to update"),
			"name a change: --name, --scope, --remove-scope, --expires-in, --expires-at, --no-expiry, --meta or --remove-meta")
	}
	return nil
}

func updateRun(ctx context.Context, opts *UpdateOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	p := opts.Params
	if len(opts.RemoveScopes) > 0 {
		k, err := store.Get(ctx, opts.ID)
		if err != nil {
			return asUsage(err)
		}
		if p.Scopes, err = keystore.UpdateScopes(k.Scopes, p.Scopes, opts.RemoveScopes); err != nil {
			return asUsage(err)
		}
	}
	k, err := store.Update(f.Context(ctx), opts.ID, p)
	if err != nil {
		if keystore.ErrorCode(err) == keystore.ECONFLICT {
			return withHint(err, "a revoked key cannot change; create a new one with keyctl create")
		}
		return asUsage(err)
	}
	pr := f.printer()
	if !pr.isTable() {
		return pr.json(k)
	}
	success(f.IO, "Updated key %s (%s)", k.ID, output.Escape(k.Name))
	return pr.keyDetails(k)
}

// keyIDsArgs checks that a command got at least one key ID, each well formed.
func keyIDsArgs(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return withHint(usageError("%s needs at least one key ID", verb), "keyctl "+verb+" KEY_ID...")
		}
		for _, id := range args {
			if err := keystore.CheckID(id); err != nil {
				return asUsage(err)
			}
		}
		return nil
	}
}

// joinIDs lists keys for a prompt: ID (name), ...
func joinIDs(keys []*keystore.Key) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.ID + " (" + output.Escape(k.Name) + ")"
	}
	return strings.Join(names, ", ")
}
