package commands

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// AuditOptions are the inputs of keyctl audit.
type AuditOptions struct {
	f     *Factory
	KeyID string
}

// NewCmdAudit builds keyctl audit.
func NewCmdAudit(f *Factory, runF func(*AuditOptions) error) *cobra.Command {
	opts := &AuditOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "audit [--key KEY_ID]",
		Short:       "Show the audit log of key changes",
		Long: `Show every change to keys, oldest first: create, rotate, revoke and import,
with who made it and when. The actor is the OS user for a local store and the
calling key's ID through the key service. Secrets never appear.`,
		Example: `  keyctl audit
  keyctl audit --key key_3nF8a9QzLm2Xc7Pb -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.KeyID != "" {
				if err := keystore.CheckID(opts.KeyID); err != nil {
					return asUsage(err)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return auditRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.KeyID, "key", "", "only events of this key (and its rotations)")
	return cmd
}

func auditRun(ctx context.Context, opts *AuditOptions) error {
	store, err := opts.f.Store()
	if err != nil {
		return err
	}
	events, err := store.Audit(ctx, opts.KeyID)
	if err != nil {
		return asUsage(err)
	}
	if opts.KeyID != "" && len(events) == 0 {
		// Every key has the event that made it: no events may mean a
		// mistyped ID, which is not found (5), not an empty log.
		if _, err := store.Get(ctx, opts.KeyID); err != nil {
			return asUsage(err)
		}
	}
	p := opts.f.printer()
	if !p.isTable() {
		items := make([]any, len(events))
		for i := range events {
			events[i].At = events[i].At.UTC().Truncate(time.Second)
			items[i] = events[i]
		}
		return p.json(items)
	}
	t := opts.f.IO.NewTable("AT", "ACTOR", "ACTION", "KEY", "DETAILS")
	for _, e := range events {
		details, _ := json.Marshal(e.Details)
		t.Row(p.io.Time(&e.At, p.now), output.Escape(e.Actor), e.Action, e.KeyID, output.Escape(string(details)))
	}
	if len(events) == 0 {
		if opts.f.IO.IsStderrTTY() {
			notice(opts.f.IO.ErrOut, "no events")
		}
		return nil
	}
	return t.Render()
}
