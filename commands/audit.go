package commands

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// AuditOptions are the inputs of keyctl audit.
type AuditOptions struct {
	f      *Factory
	KeyID  string
	Since  string
	Action string
	Limit  int

	Filter keystore.EventFilter // what the flags resolve to
}

// NewCmdAudit builds keyctl audit.
func NewCmdAudit(f *Factory, runF func(*AuditOptions) error) *cobra.Command {
	opts := &AuditOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "audit [--key KEY_ID] [--since TIME] [--action ACTION] [--limit N]",
		Short:       "Show the audit log of key changes",
		Long: `Show the changes to keys, oldest first: create, import, update, disable,
enable, rotate, revoke and delete, with who made each and when. The actor is
the OS user for a local store and the calling key's ID through the key
service. Secrets never appear.

--since takes a duration back from now (24h, 7d) or a time (RFC 3339 or
YYYY-MM-DD); --limit keeps the most recent events that match.`,
		Example: `  keyctl audit
  keyctl audit --key key_3nF8a9QzLm2Xc7Pb -o json
  keyctl audit --since 7d --action revoke
  keyctl audit --limit 20`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return auditRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.KeyID, "key", "", "only events of this key (and its rotations)")
	fl.StringVar(&opts.Since, "since", "", "only events since this long ago (such as 7d) or this time (RFC 3339 or YYYY-MM-DD)")
	fl.StringVar(&opts.Action, "action", "", "only events of this action: "+strings.Join(keystore.Actions, ", "))
	fl.IntVarP(&opts.Limit, "limit", "L", 0, "print at most this many events, the most recent (0: all)")
	return cmd
}

func (opts *AuditOptions) resolve() error {
	f := &opts.Filter
	if opts.KeyID != "" {
		if err := keystore.CheckID(opts.KeyID); err != nil {
			return err
		}
		f.KeyID = opts.KeyID
	}
	if opts.Action != "" {
		if !slices.Contains(keystore.Actions, opts.Action) {
			return usageError("invalid --action %q (want %s)", opts.Action, strings.Join(keystore.Actions, ", "))
		}
		f.Action = opts.Action
	}
	if opts.Since != "" {
		t, err := parseSince(opts.Since, opts.f.Now())
		if err != nil {
			return err
		}
		f.Since = t
	}
	if opts.Limit < 0 {
		return usageError("--limit must not be negative")
	}
	f.Limit = opts.Limit
	return nil
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := keystore.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, usageError("--since must be a positive duration or a time")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		return time.Time{}, usageError("invalid --since %q (want a duration such as 7d, or a time such as 2027-01-31 or 2027-01-31T12:00:00Z)", s)
	}
	return t, nil
}

func auditRun(ctx context.Context, opts *AuditOptions) error {
	store, err := opts.f.Store()
	if err != nil {
		return err
	}
	// The store gives the most recent first; the log reads oldest first.
	events, err := store.Events(ctx, opts.Filter)
	if err != nil {
		return err
	}
	slices.Reverse(events)
	if opts.KeyID != "" && len(events) == 0 {
		// Every key has the event that made it, and a deleted key keeps
		// its events: none at all means a mistyped ID, which is not found
		// (5), not an empty log.
		if n, err := store.CountEvents(ctx, keystore.EventFilter{KeyID: opts.KeyID}); err != nil {
			return err
		} else if n == 0 {
			if _, err := store.Get(ctx, opts.KeyID); err != nil {
				return err
			}
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
	if err := t.Render(); err != nil {
		return err
	}
	if n := len(events); n == opts.Filter.Limit && opts.f.IO.IsStderrTTY() {
		if total, err := store.CountEvents(ctx, opts.Filter); err == nil && total > n {
			notice(opts.f.IO.ErrOut, "Showing the last %d of %d events (use --limit)", n, total)
		}
	}
	return nil
}
