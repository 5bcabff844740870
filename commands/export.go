package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ExportOptions are the inputs of keyctl export.
type ExportOptions struct {
	f    *Factory
	File string // "" or - for standard output
}

// NewCmdExport builds keyctl export.
func NewCmdExport(f *Factory, runF func(*ExportOptions) error) *cobra.Command {
	opts := &ExportOptions{f: f}
	cmd := &cobra.Command{
		Use:   "export [FILE | -]",
		Short: "Write the whole store, keys and audit log, for another store",
		Long: `Write every key of the store and its whole audit log as JSON Lines, to FILE
(created with mode 0600) or standard output, for keyctl import to read back
into any store: from SQLite to PostgreSQL, or back.

The first line is a header ({"type": "header", "format": "keyctl-export",
"version": 1, ...}); then each key, oldest first ({"type": "key", ...}: its
ID, name, environment, scopes, hint, status, times, rotation links,
metadata, and key_sha256, the SHA-256 of its secret); then each audit event
in the log's order ({"type": "event", ...}). No secret is ever written: a
store holds none. Import the file into a new store for an exact copy (same
IDs, times, states and log).

Export needs a SQLite or PostgreSQL store (--store): the HTTP API does not
give out the hashes of keys. Take the export while nothing changes the store
for a copy of one moment.`,
		Example: `  keyctl --store keys.db export > keys.export.jsonl
  keyctl --store 'postgres://keyctl@db/keyctl' import keys.export.jsonl`,
		Annotations: existingStore,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return withHint(usageError("export writes one file, got %d arguments", len(args)), "see 'keyctl export --help'")
			}
			if len(args) == 1 {
				if args[0] == "" {
					return usageError("empty file name")
				}
				opts.File = args[0]
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return exportRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func exportRun(ctx context.Context, opts *ExportOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	ex, ok := keystore.As[keystore.Exporter](store)
	if !ok {
		return withHint(usageError("export needs a SQLite or PostgreSQL store: the key service's API does not give out key hashes"),
			"run keyctl export with --store on the service's own store")
	}
	var (
		out  io.Writer = f.IO.Out
		file *os.File
	)
	if opts.File != "" && opts.File != "-" {
		file, err = os.OpenFile(opts.File, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return usageError("create %s: %s", opts.File, pathErr(err))
		}
		defer file.Close()
		out = file
	}
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(keystore.ExportHeader{Type: keystore.ExportTypeHeader, Format: keystore.ExportFormat,
		Version: keystore.ExportVersion, ExportedAt: f.Now().UTC().Truncate(1e9)}); err != nil {
		return err
	}
	keys := 0
	for k, err := range ex.ExportKeys(ctx) {
		if err != nil {
			return err
		}
		if err := enc.Encode(k); err != nil {
			return err
		}
		keys++
	}
	events, err := store.Audit(ctx, "")
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := enc.Encode(keystore.ExportedEvent{Type: keystore.ExportTypeEvent, Event: e}); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
	}
	if f.IO.IsStderrTTY() {
		notice(f.IO.ErrOut, "exported %d keys and %d audit events", keys, len(events))
	}
	return nil
}
