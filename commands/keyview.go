package commands

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// printer writes records in the format chosen with -o and --jq.
type printer struct {
	io     *output.IOStreams
	format string
	jq     *output.JQ
	now    time.Time
}

func (f *Factory) printer() *printer {
	return &printer{io: f.IO, format: f.Settings.Format, jq: f.Settings.JQ, now: f.Now()}
}

// json writes one document: v as it is for json, or its elements one per
// line for jsonl when v is a slice.
func (p *printer) json(v any) error {
	if p.format == output.FormatJSONL {
		if items, ok := v.([]any); ok {
			for _, it := range items {
				if err := output.WriteJSONLine(p.io.Out, it, p.jq); err != nil {
					return err
				}
			}
			return nil
		}
		return output.WriteJSONLine(p.io.Out, v, p.jq)
	}
	return output.WriteJSON(p.io.Out, v, p.jq)
}

func (p *printer) isTable() bool { return p.format == output.FormatTable }

// keyDetails writes one key as a two-column table of fields.
func (p *printer) keyDetails(k *keystore.Key) error {
	t := p.io.NewTable()
	row := func(name, value string) { t.Row(name, value) }
	row("id", k.ID)
	row("name", output.Escape(k.Name))
	row("environment", k.Environment)
	row("status", p.io.Colorize(k.Status, k.Status))
	row("scopes", strings.Join(k.Scopes, ","))
	row("used_scopes", p.scopeUses(k))
	row("hint", output.Escape(k.Hint))
	row("created_at", p.io.Time(&k.CreatedAt, p.now))
	row("expires_at", p.io.Time(k.ExpiresAt, p.now))
	row("revoked_at", p.io.Time(k.RevokedAt, p.now))
	row("disabled_at", p.io.Time(k.DisabledAt, p.now))
	row("last_used_at", p.io.Time(k.LastUsedAt, p.now))
	row("rotated_from", deref(k.RotatedFrom))
	row("rotated_to", deref(k.RotatedTo))
	if k.Delivery != nil {
		row("delivery", *k.Delivery)
	}
	row("metadata", formatMeta(k.Metadata))
	if k.Secret != "" {
		row("key", k.Secret)
	}
	return t.Render()
}

// scopeUses lists the scopes verifications asked of k, each with when it
// was last asked: "bots:read (2 days ago), channels:read (5 minutes ago)".
func (p *printer) scopeUses(k *keystore.Key) string {
	parts := make([]string, 0, len(k.UsedScopes))
	for _, sc := range k.UsedScopes {
		t := k.ScopesLastUsed[sc]
		parts = append(parts, output.Escape(sc)+" ("+p.io.Time(&t, p.now)+")")
	}
	return strings.Join(parts, ", ")
}

var keyColumns = []string{"ID", "NAME", "ENV", "STATUS", "SCOPES", "CREATED", "LAST USED", "EXPIRES"}

// keyFit is how a table of keys fits the terminal: the widths that the
// name and scopes columns may take (0: no bound, as in a pipe).
type keyFit struct {
	p                  *printer
	nameMax, scopesMax int
}

// fitKeyTable works out how rows fit width columns. Off a terminal
// (width 0) nothing is cut and scopes are listed in full, for scripts.
func fitKeyTable(p *printer, rows []*keystore.Key, width int) keyFit {
	fit := keyFit{p: p}
	if width <= 0 {
		return fit
	}
	// The widest cell of each column, the header included, and two
	// spaces between columns.
	widths := make([]int, len(keyColumns))
	for i, h := range keyColumns {
		widths[i] = runewidth.StringWidth(h)
	}
	for _, k := range rows {
		for i, c := range fit.cells(k) {
			widths[i] = max(widths[i], runewidth.StringWidth(c))
		}
	}
	const nameCol, scopesCol = 1, 4
	fixed := 2 * (len(widths) - 1)
	for i, w := range widths {
		if i != nameCol && i != scopesCol {
			fixed += w
		}
	}
	room := width - fixed
	if widths[nameCol]+widths[scopesCol] <= room {
		return fit
	}
	// Scopes take at most 40% of the room, at least a summary's worth;
	// the name takes the rest, at least 8 columns.
	fit.scopesMax = min(widths[scopesCol], max(room*2/5, 12))
	fit.nameMax = max(room-fit.scopesMax, 8)
	return fit
}

func (fit keyFit) cells(k *keystore.Key) []string {
	p := fit.p
	scopes := strings.Join(k.Scopes, ",")
	name := output.Escape(k.Name)
	if p.io.IsStdoutTTY() {
		scopes = summarizeScopes(k.Scopes, fit.scopesMax)
		if fit.nameMax > 0 {
			name = runewidth.Truncate(name, fit.nameMax, "…")
		}
	}
	return []string{k.ID, name, k.Environment, k.Status, scopes,
		p.io.Time(&k.CreatedAt, p.now), p.io.Time(k.LastUsedAt, p.now), p.io.Time(k.ExpiresAt, p.now)}
}

func (fit keyFit) row(t *output.Table, k *keystore.Key) {
	c := fit.cells(k)
	c[3] = fit.p.io.Colorize(k.Status, k.Status)
	t.Row(c...)
}

// summarizeScopes writes scopes for a person: "all" for every scope, a
// resource's read and write as "bots:*", and, past max columns (0: no
// bound), as many as fit and "+N" for the rest: "bots:*, +3".
func summarizeScopes(scopes []string, maxWidth int) string {
	if containsAll(scopes, keystore.AllScopes) {
		return "all"
	}
	var items []string
	for _, s := range scopes {
		r, a, ok := strings.Cut(s, ":")
		if !ok {
			items = append(items, s)
			continue
		}
		other := r + ":write"
		if a == "write" {
			other = r + ":read"
		}
		switch {
		case !slices.Contains(scopes, other):
			items = append(items, s)
		case a == "read":
			items = append(items, r+":*")
		}
	}
	text := strings.Join(items, ", ")
	if maxWidth <= 0 || len(text) <= maxWidth {
		return text
	}
	if len(items) == 1 {
		return runewidth.Truncate(text, maxWidth, "…")
	}
	for n := len(items) - 1; n >= 1; n-- {
		t := strings.Join(items[:n], ", ") + ", +" + strconv.Itoa(len(items)-n)
		if len(t) <= maxWidth {
			return t
		}
	}
	return items[0] + ", +" + strconv.Itoa(len(items)-1)
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func formatMeta(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, output.Escape(k)+"="+output.Escape(m[k]))
	}
	return strings.Join(parts, ",")
}

// success prints a confirmation on stderr, on a terminal only. Arguments
// that are user text (a key's name) must be escaped with output.Escape.
func success(io *output.IOStreams, format string, args ...any) {
	if io.IsStderrTTY() {
		fmt.Fprintf(io.ErrOut, "✓ "+format+"\n", args...)
	}
}

// notice prints a line on stderr whatever the terminal.
func notice(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
