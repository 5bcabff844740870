package commands

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
)

// WhoamiOptions are the inputs of keyctl whoami.
type WhoamiOptions struct {
	f *Factory
}

// NewCmdWhoami builds keyctl whoami.
func NewCmdWhoami(f *Factory, runF func(*WhoamiOptions) error) *cobra.Command {
	opts := &WhoamiOptions{f: f}
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the API key keyctl authenticates with",
		Long: `Show the key that keyctl authenticates with at the key service (--api-url,
with the key from CHATBOT_API_KEY or the profile's api_key_env): its ID,
name, scopes and expiry. Any valid key may read itself; no admin scope is
needed. A local store has no calling key.`,
		Example: `  keyctl --api-url https://keys.example.com/v1 whoami
  keyctl whoami -o json --jq '.expires_at'
  keyctl rotate --self --grace 1h --exec 'gh secret set CHATBOT_API_KEY'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return whoamiRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func whoamiRun(ctx context.Context, opts *WhoamiOptions) error {
	store, err := opts.f.Store()
	if err != nil {
		return err
	}
	c, ok := keystore.As[keystore.Caller](store)
	if !ok {
		return withHint(usageError("whoami needs the key service: a local store has no calling key"), "keyctl --api-url URL whoami, with the key in CHATBOT_API_KEY")
	}
	key, err := c.Self(ctx)
	if err != nil {
		return err
	}
	p := opts.f.printer()
	if !p.isTable() {
		return p.json(key)
	}
	return p.keyDetails(key)
}
