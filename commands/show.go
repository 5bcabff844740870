package commands

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ShowOptions are the inputs of keyctl show.
type ShowOptions struct {
	f  *Factory
	ID string
}

// NewCmdShow builds keyctl show.
func NewCmdShow(f *Factory, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "show KEY_ID",
		Short:       "Show one API key",
		Long:        "Show every field of one API key. The secret itself is never shown again.",
		Example: `  keyctl show key_3nF8a9QzLm2Xc7Pb
  keyctl show key_3nF8a9QzLm2Xc7Pb -o json | jq -r '.scopes[]'`,
		Args: exactArgs(1, "a key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if err := keystore.CheckID(opts.ID); err != nil {
				return asUsage(err)
			}
			if runF != nil {
				return runF(opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	store, err := opts.f.Store()
	if err != nil {
		return err
	}
	key, err := store.Get(ctx, opts.ID)
	if err != nil {
		return asUsage(err)
	}
	p := opts.f.printer()
	if !p.isTable() {
		return p.json(key)
	}
	return p.keyDetails(key)
}
