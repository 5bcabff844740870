package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ShowOptions are the inputs of keyctl show.
type ShowOptions struct {
	f   *Factory
	IDs []string
}

// NewCmdShow builds keyctl show.
func NewCmdShow(f *Factory, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "show KEY_ID...",
		Short:       "Show API keys",
		Long: `Show every field of one or more API keys. The secret itself is never shown
again. With one ID, -o json prints the key's object; with several, an array
in the order given. An unknown ID prints nothing and exits 5.`,
		Example: `  keyctl show key_3nF8a9QzLm2Xc7Pb
  keyctl show key_3nF8a9QzLm2Xc7Pb -o json | jq -r '.scopes[]'
  keyctl show key_3nF8a9QzLm2Xc7Pb key_Zt5Yw1Qe8Rk2Lp0M -o json --jq '.[].status'`,
		Args: keyIDsArgs("show"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IDs = args
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
	keys := make([]*keystore.Key, 0, len(opts.IDs))
	for _, id := range opts.IDs {
		k, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	p := opts.f.printer()
	if !p.isTable() {
		if len(keys) == 1 {
			return p.json(keys[0])
		}
		items := make([]any, len(keys))
		for i, k := range keys {
			items[i] = k
		}
		return p.json(items)
	}
	for i, k := range keys {
		if i > 0 {
			if _, err := fmt.Fprintln(opts.f.IO.Out); err != nil {
				return err
			}
		}
		if err := p.keyDetails(k); err != nil {
			return err
		}
	}
	return nil
}
