package commands

import (
	"bufio"
	"context"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// ListOptions are the inputs of keyctl list.
type ListOptions struct {
	f *Factory

	Status    string
	Env       string
	Scope     string
	OlderThan string
	Expiring  string
	Meta      []string
	Limit     int
	All       bool

	// Overprivileged lists the active keys granted scopes that no
	// verification asked for since Since (default 30d).
	Overprivileged bool
	Since          string
	sinceTime      time.Time

	Query keystore.ListOptions
}

// NewCmdList builds keyctl list.
func NewCmdList(f *Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "list",
		Short:       "List API keys, newest first",
		Long: `List API keys, newest first: the 50 newest by default, every key with --all.
Filters combine. Secrets are never shown; the hint identifies a key.

On a terminal the table fits its width: scopes are summed up (all, bots:*,
"bots:*, +3") and long names cut with "…"; stderr says when --limit cut the
list. JSON and piped output always hold the full values.

--overprivileged lists the active keys granted scopes that no verification
asked for in the last 30 days (--since): candidates for keyctl update
--narrow-to-used, or, never used at all, for revoking. Every verification
that names scopes records which it asked for (keyctl show: used_scopes).`,
		Example: `  keyctl list
  keyctl list --status active --env live --scope bots:write
  keyctl list --expiring-within 14d
  keyctl list --scope 'bots:*' --meta team=platform --meta tier=1
  keyctl list --older-than 90d -o json | jq -r '.[].id'
  keyctl list --all -o jsonl > keys.jsonl
  keyctl list --overprivileged --since 90d`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(cmd); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Status, "status", "", "only keys with this status: active, disabled, expired or revoked")
	fl.StringVar(&opts.Env, "env", "", "only keys of this environment: live or test")
	fl.StringVar(&opts.Scope, "scope", "", "only keys granted this scope, or any scope of a pattern such as bots:*")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "only keys with this metadata, key=value (repeatable)")
	fl.StringVar(&opts.OlderThan, "older-than", "", "only keys created longer ago than this, such as 90d")
	fl.StringVar(&opts.Expiring, "expiring-within", "", "only keys not revoked that expire within this time from now, such as 14d")
	fl.IntVarP(&opts.Limit, "limit", "L", 50, "print at most this many keys")
	fl.BoolVar(&opts.All, "all", false, "print every key (no limit)")
	fl.BoolVar(&opts.Overprivileged, "overprivileged", false, "only active keys granted scopes they did not use in the period (--since)")
	fl.StringVar(&opts.Since, "since", "30d", "with --overprivileged: the period of use, such as 30d")
	return cmd
}

func (opts *ListOptions) resolve(cmd *cobra.Command) error {
	q := &opts.Query
	filter, err := keyFilter(opts.f, opts.Status, opts.Env, opts.Scope, opts.OlderThan)
	if err != nil {
		return err
	}
	if opts.Expiring != "" {
		d, err := keystore.ParseDuration(opts.Expiring)
		if err != nil {
			return err
		}
		if d <= 0 {
			return usageError("--expiring-within must be positive")
		}
		filter.ExpiringBefore = opts.f.Now().Add(d)
	}
	if filter.Metadata, err = metaFilter(opts.Meta); err != nil {
		return err
	}
	q.ListFilter = filter
	if flagChanged(cmd.Flags(), "since") && !opts.Overprivileged {
		return withHint(usageError("--since goes with --overprivileged"), "keyctl list --overprivileged --since 30d")
	}
	if opts.Overprivileged {
		d, err := keystore.ParseDuration(opts.Since)
		if err != nil {
			return err
		}
		if d <= 0 {
			return usageError("--since must be positive")
		}
		opts.sinceTime = opts.f.Now().Add(-d)
		switch q.Status {
		case "", keystore.StatusActive:
			q.Status = keystore.StatusActive
		default:
			return usageError("--overprivileged lists active keys; leave out --status %s", q.Status)
		}
	}
	if opts.All && flagChanged(cmd.Flags(), "limit") {
		return usageError("use --limit or --all, not both")
	}
	if !opts.All {
		if opts.Limit <= 0 {
			return usageError("--limit must be at least 1 (use --all for every key)")
		}
		q.Limit = opts.Limit
	}
	return nil
}

// keyFilter checks the filter flags shared by list and batch rotate.
func keyFilter(f *Factory, status, env, scope, olderThan string) (keystore.ListFilter, error) {
	var lf keystore.ListFilter
	if status != "" && !keystore.ValidStatus(status) {
		return lf, usageError("invalid --status %s (want active, disabled, expired or revoked)", keystore.Quote(status))
	}
	lf.Status = status
	if env != "" && !keystore.ValidEnv(env) {
		return lf, usageError("invalid --env %s (want live or test)", keystore.Quote(env))
	}
	lf.Environment = env
	if scope != "" {
		if _, err := keystore.FilterScopes(scope); err != nil {
			return lf, err
		}
		lf.Scope = scope
	}
	if olderThan != "" {
		d, err := keystore.ParseDuration(olderThan)
		if err != nil {
			return lf, err
		}
		lf.CreatedBefore = f.Now().Add(-d)
	}
	return lf, nil
}

// metaFilter reads the --meta key=value filters of list, rotate and
// revoke: a key matches when its metadata holds every pair.
func metaFilter(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	meta, err := parseMeta(pairs)
	if err != nil {
		return nil, err
	}
	if err := keystore.CheckMetadataFilter(meta); err != nil {
		return nil, err
	}
	return meta, nil
}

func listRun(ctx context.Context, opts *ListOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	p := f.printer()
	if opts.Overprivileged {
		return listOverprivileged(ctx, opts, store, p)
	}
	keys := store.List(ctx, opts.Query)
	if opts.All {
		// Streaming keeps the live heap small and the garbage large: a
		// collection at every few megabytes would take a fifth of the time.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	switch {
	case p.jq != nil:
		// A filter sees the whole array, so this path holds it in memory.
		all := []any{}
		for k, err := range keys {
			if err != nil {
				return err
			}
			all = append(all, k)
		}
		if p.format == output.FormatJSONL {
			return p.json(all)
		}
		return output.WriteJSON(f.IO.Out, all, p.jq)
	case p.format == output.FormatJSONL:
		w := bufio.NewWriterSize(f.IO.Out, 64<<10)
		var b []byte
		for k, err := range keys {
			if err != nil {
				w.Flush()
				return err
			}
			b = append(k.AppendJSON(b[:0]), '\n')
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return w.Flush()
	case p.format == output.FormatJSON:
		return streamJSONArray(f.IO.Out, keys)
	}
	// A table that fits a terminal needs every row first; elsewhere rows
	// go out as they come, so memory stays flat however many keys.
	t := f.IO.NewTable(keyColumns...)
	width := f.IO.Width()
	var rows []*keystore.Key
	n := 0
	for k, err := range keys {
		if err != nil {
			return err
		}
		n++
		if width > 0 {
			rows = append(rows, k)
			continue
		}
		keyFit{p: p}.row(t, k)
		if n%256 == 0 {
			if err := t.Flush(); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		if f.IO.IsStderrTTY() {
			notice(f.IO.ErrOut, "no keys match")
		}
		return nil
	}
	fit := fitKeyTable(p, rows, width)
	for _, k := range rows {
		fit.row(t, k)
	}
	if err := t.Render(); err != nil {
		return err
	}
	if !opts.All && n == opts.Query.Limit && f.IO.IsStderrTTY() {
		// Said only to a person: a script asked for its limit.
		if total, err := store.Count(ctx, opts.Query.ListFilter); err == nil && total > n {
			notice(f.IO.ErrOut, "Showing %d of %d keys (use --all or --limit)", n, total)
		}
	}
	return nil
}

// streamJSONArray writes keys as an indented JSON array one element at a
// time, through a small buffer, so memory stays flat however many keys
// there are. The bytes are those of json.MarshalIndent(keys, "", "  ").
func streamJSONArray(out io.Writer, keys func(func(*keystore.Key, error) bool)) error {
	w := bufio.NewWriterSize(out, 64<<10)
	var b []byte
	n := 0
	for k, err := range keys {
		if err != nil {
			w.Flush()
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "[\n  "
		}
		b = k.AppendJSONIndent(append(b[:0], sep...), "  ", "  ")
		if _, err := w.Write(b); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		w.WriteString("[]\n")
	} else {
		w.WriteString("\n]\n")
	}
	return w.Flush()
}

// listOverprivileged lists the active keys with scopes unused since
// opts.sinceTime, newest first, at most opts.Limit of them unless --all.
// It reads every active key, one at a time.
func listOverprivileged(ctx context.Context, opts *ListOptions, store keystore.Store, p *printer) error {
	f := opts.f
	q := opts.Query
	q.Limit = 0
	var found []*keystore.Key
	for k, err := range store.List(ctx, q) {
		if err != nil {
			return err
		}
		if len(keystore.UnusedScopes(k, opts.sinceTime)) == 0 {
			continue
		}
		found = append(found, k)
		if !opts.All && len(found) == opts.Limit {
			break
		}
	}
	if !p.isTable() {
		items := make([]any, len(found))
		for i, k := range found {
			items[i] = k
		}
		return p.json(items)
	}
	if len(found) == 0 {
		if f.IO.IsStderrTTY() {
			notice(f.IO.ErrOut, "no active key holds a scope it did not use since %s", p.io.Time(&opts.sinceTime, p.now))
		}
		return nil
	}
	t := f.IO.NewTable("ID", "NAME", "SCOPES", "USED", "UNUSED", "LAST USED")
	for _, k := range found {
		used := keystore.UsedSince(k, opts.sinceTime)
		t.Row(k.ID, output.Escape(k.Name), strings.Join(k.Scopes, ","), strings.Join(used, ","),
			strings.Join(keystore.UnusedScopes(k, opts.sinceTime), ","), p.io.Time(k.LastUsedAt, p.now))
	}
	return t.Render()
}
