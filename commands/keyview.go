package commands

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

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
	row("hint", output.Escape(k.Hint))
	row("created_at", p.io.Time(&k.CreatedAt, p.now))
	row("expires_at", p.io.Time(k.ExpiresAt, p.now))
	row("revoked_at", p.io.Time(k.RevokedAt, p.now))
	row("last_used_at", p.io.Time(k.LastUsedAt, p.now))
	row("rotated_from", deref(k.RotatedFrom))
	row("rotated_to", deref(k.RotatedTo))
	row("metadata", formatMeta(k.Metadata))
	if k.Secret != "" {
		row("key", k.Secret)
	}
	return t.Render()
}

var keyColumns = []string{"ID", "NAME", "ENV", "STATUS", "SCOPES", "CREATED", "LAST USED", "EXPIRES"}

func (p *printer) keyRow(t *output.Table, k *keystore.Key) {
	t.Row(k.ID, output.Escape(k.Name), k.Environment, p.io.Colorize(k.Status, k.Status), strings.Join(k.Scopes, ","),
		p.io.Time(&k.CreatedAt, p.now), p.io.Time(k.LastUsedAt, p.now), p.io.Time(k.ExpiresAt, p.now))
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
