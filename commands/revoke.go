package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// RevokeOptions are the inputs of keyctl revoke.
type RevokeOptions struct {
	f    *Factory
	IDs  []string
	Meta []string
	Yes  bool

	Filter keystore.ListFilter // with --meta: the active keys to revoke
}

// NewCmdRevoke builds keyctl revoke.
func NewCmdRevoke(f *Factory, runF func(*RevokeOptions) error) *cobra.Command {
	opts := &RevokeOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "revoke {KEY_ID... | --meta KEY=VALUE...}",
		Short:       "Revoke API keys: they stop working at once",
		Long: `Revoke one or more API keys. A revoked key stops working at once and cannot
be restored. Revoking a key twice is not an error. With --meta instead of
IDs, revoke every active key whose metadata holds all the given pairs.

On a terminal keyctl asks before revoking; elsewhere (scripts, CI) pass --yes.`,
		Example: `  keyctl revoke key_3nF8a9QzLm2Xc7Pb
  keyctl revoke --yes key_3nF8a9QzLm2Xc7Pb key_Zt5Yw1Qe8Rk2Lp0M
  keyctl revoke --yes --meta team=growth --meta contractor=acme`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && len(opts.Meta) == 0 {
				return withHint(usageError("revoke needs at least one key ID, or --meta"), "keyctl revoke KEY_ID...")
			}
			if len(args) > 0 && len(opts.Meta) > 0 {
				return usageError("give key IDs or --meta, not both")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				if err := keystore.CheckID(id); err != nil {
					return err
				}
			}
			opts.IDs = args
			meta, err := metaFilter(opts.Meta)
			if err != nil {
				return err
			}
			opts.Filter = keystore.ListFilter{Status: keystore.StatusActive, Metadata: meta}
			if !opts.Yes && !f.IO.CanPrompt() {
				again := strings.Join(args, " ")
				for _, m := range opts.Meta {
					again += " --meta " + m
				}
				return withHint(usageError("revoke needs --yes when not run on a terminal"), "keyctl revoke --yes "+strings.TrimSpace(again))
			}
			if runF != nil {
				return runF(opts)
			}
			return revokeRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "revoke without asking")
	cmd.Flags().StringArrayVar(&opts.Meta, "meta", nil, "revoke every active key with this metadata, key=value (repeatable)")
	return cmd
}

func revokeRun(ctx context.Context, opts *RevokeOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	// Check every key exists before changing any: a typo in the third ID
	// must not leave the first two revoked and the command failed.
	keys := make([]*keystore.Key, 0, len(opts.IDs))
	for _, id := range opts.IDs {
		k, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	if len(opts.Meta) > 0 {
		for k, err := range store.List(ctx, keystore.ListOptions{ListFilter: opts.Filter}) {
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			if f.IO.IsStderrTTY() {
				notice(f.IO.ErrOut, "no active keys match")
			}
			if p := f.printer(); !p.isTable() {
				return p.json([]any{})
			}
			return nil
		}
	}
	if !opts.Yes {
		ok, err := confirm(ctx, f, fmt.Sprintf("Revoke %s? Clients using it stop working at once. [y/N] ", joinIDs(keys)))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(f.IO.ErrOut, "nothing revoked")
			return &silentError{code: exitError}
		}
	}
	actx := f.Context(ctx)
	revoked := make([]*keystore.Key, 0, len(keys))
	for _, k := range keys {
		r, err := store.Revoke(actx, k.ID)
		if err != nil {
			return err
		}
		revoked = append(revoked, r)
		success(f.IO, "Revoked %s (%s)", r.ID, output.Escape(r.Name))
	}
	// -o json prints an array however many keys were given, so that a
	// script reads one shape.
	return printKeyResults(f, revoked, func(p *printer, k *keystore.Key) string { return p.io.Time(k.RevokedAt, p.now) })
}
