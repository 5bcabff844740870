package commands

import (
	"context"
	"slices"
	"strings"
	"time"

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

	// NarrowToUsed narrows the key's scopes to those verifications asked
	// for since Since (default 30d); DryRun only says what it would do.
	NarrowToUsed bool
	Since        string
	DryRun       bool
	sinceTime    time.Time

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
every other scope but admin.

--narrow-to-used keeps only the scopes that verifications asked of the key
in the last 30 days (--since): least privilege from real use. An admin key
that was asked only for bots:read keeps bots:read. A key with no recorded
use of its scopes in that time is refused (revoke it if it is not needed).
--dry-run says what would change and changes nothing. The audit log
records the change with reason narrow-to-used.`,
		Example: `  keyctl update key_3nF8a9QzLm2Xc7Pb --name "CI deploy (prod)"
  keyctl update key_3nF8a9QzLm2Xc7Pb --remove-scope bots:write
  keyctl update key_3nF8a9QzLm2Xc7Pb --scope bots:read --scope channels:*
  keyctl update key_3nF8a9QzLm2Xc7Pb --expires-in 30d --meta owner=alice --remove-meta ticket
  keyctl update key_3nF8a9QzLm2Xc7Pb --no-expiry -o json
  keyctl update key_3nF8a9QzLm2Xc7Pb --narrow-to-used --since 90d --dry-run`,
		Args: exactArgs(1, "a key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if err := keystore.CheckID(opts.ID); err != nil {
				return err
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
	fl.BoolVar(&opts.NarrowToUsed, "narrow-to-used", false, "keep only the scopes the key was asked for in the period (--since)")
	fl.StringVar(&opts.Since, "since", "30d", "with --narrow-to-used: the period of use, such as 30d")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "with --narrow-to-used: say what would change, change nothing")
	return cmd
}

func (opts *UpdateOptions) resolve(cmd *cobra.Command) error {
	fl := cmd.Flags()
	p := &opts.Params
	if !opts.NarrowToUsed {
		for _, name := range []string{"since", "dry-run"} {
			if flagChanged(fl, name) {
				return withHint(usageError("--%s goes with --narrow-to-used", name), "keyctl update KEY_ID --narrow-to-used [--since 30d] [--dry-run]")
			}
		}
	} else {
		if len(opts.Scopes) > 0 || len(opts.RemoveScopes) > 0 {
			return usageError("--narrow-to-used sets the scopes: leave out --scope and --remove-scope")
		}
		d, err := keystore.ParseDuration(opts.Since)
		if err != nil {
			return err
		}
		if d <= 0 {
			return usageError("--since must be positive")
		}
		opts.sinceTime = opts.f.Now().Add(-d)
	}
	if flagChanged(fl, "name") {
		if err := keystore.CheckName(opts.Name); err != nil {
			return err
		}
		p.Name = &opts.Name
	}
	if len(opts.Scopes) > 0 {
		scopes, err := keystore.ExpandScopes(opts.Scopes)
		if err != nil {
			return err
		}
		if len(scopes) == 0 {
			return usageError("--scope names no scope")
		}
		p.Scopes = scopes
	}
	if len(opts.RemoveScopes) > 0 {
		if _, err := keystore.ExpandScopes(opts.RemoveScopes); err != nil {
			return err
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
	if p.IsZero() && len(opts.RemoveScopes) == 0 && !opts.NarrowToUsed {
		return withHint(usageError("nothing to update"),
			"name a change: --name, --scope, --remove-scope, --narrow-to-used, --expires-in, --expires-at, --no-expiry, --meta or --remove-meta")
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
	actx := f.Context(ctx)
	if opts.NarrowToUsed {
		k, err := store.Get(ctx, opts.ID)
		if err != nil {
			return err
		}
		kept, dropped, err := keystore.NarrowScopes(k, opts.sinceTime)
		if err != nil {
			return withHint(err, "keyctl show "+k.ID+" lists the scopes it used; keyctl revoke "+k.ID+" if it is not needed")
		}
		if len(dropped) == 0 || opts.DryRun {
			return narrowReport(opts, k, kept, dropped)
		}
		p.Scopes = kept
		actx = keystore.WithAuditDetails(actx, map[string]any{
			"reason": "narrow-to-used", "used_since": opts.sinceTime.UTC().Format(time.RFC3339), "dropped": dropped,
		})
	}
	if len(opts.RemoveScopes) > 0 {
		k, err := store.Get(ctx, opts.ID)
		if err != nil {
			return err
		}
		if p.Scopes, err = keystore.UpdateScopes(k.Scopes, p.Scopes, opts.RemoveScopes); err != nil {
			return err
		}
	}
	k, err := store.Update(actx, opts.ID, p)
	if err != nil {
		if keystore.ErrorCode(err) == keystore.ECONFLICT {
			return withHint(err, "a revoked key cannot change; create a new one with keyctl create")
		}
		return err
	}
	pr := f.printer()
	if !pr.isTable() {
		return pr.json(k)
	}
	success(f.IO, "Updated key %s (%s)", k.ID, output.Escape(k.Name))
	return pr.keyDetails(k)
}

// narrowResult is what --narrow-to-used --dry-run prints with -o json.
type narrowResult struct {
	ID      string    `json:"id"`
	Scopes  []string  `json:"scopes"`
	Kept    []string  `json:"kept"`
	Dropped []string  `json:"dropped"`
	Since   time.Time `json:"used_since"`
	DryRun  bool      `json:"dry_run"`
}

// narrowReport says what narrowing key k would do, when it changes
// nothing: a dry run, or a key that uses every scope it holds.
func narrowReport(opts *UpdateOptions, k *keystore.Key, kept, dropped []string) error {
	f := opts.f
	pr := f.printer()
	if !pr.isTable() {
		return pr.json(narrowResult{ID: k.ID, Scopes: k.Scopes, Kept: kept, Dropped: nonNil(dropped),
			Since: opts.sinceTime.UTC().Truncate(time.Second), DryRun: opts.DryRun})
	}
	if len(dropped) == 0 {
		notice(f.IO.ErrOut, "key %s (%s) used every scope it holds since %s: nothing to narrow",
			k.ID, output.Escape(k.Name), opts.sinceTime.UTC().Format(time.RFC3339))
	} else {
		notice(f.IO.ErrOut, "dry run: key %s (%s) would keep %s and lose %s; nothing changed",
			k.ID, output.Escape(k.Name), strings.Join(kept, ","), strings.Join(dropped, ","))
	}
	t := f.IO.NewTable()
	t.Row("scopes", strings.Join(k.Scopes, ","))
	t.Row("kept", strings.Join(kept, ","))
	t.Row("dropped", strings.Join(dropped, ","))
	return t.Render()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keyIDsArgs checks that a command got at least one key ID, each well formed.
func keyIDsArgs(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return withHint(usageError("%s needs at least one key ID", verb), "keyctl "+verb+" KEY_ID...")
		}
		for _, id := range args {
			if err := keystore.CheckID(id); err != nil {
				return err
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
