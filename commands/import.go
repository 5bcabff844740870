package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// ImportOptions are the inputs of keyctl import.
type ImportOptions struct {
	f *Factory

	File   string // a path, or - for standard input
	Strict bool

	// BatchSize is the number of keys per transaction of the store.
	BatchSize int
}

// importSummary is what keyctl import prints: a public contract.
type importSummary struct {
	Imported int `json:"imported"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
}

// NewCmdImport builds keyctl import.
func NewCmdImport(f *Factory, runF func(*ImportOptions) error) *cobra.Command {
	opts := &ImportOptions{f: f, BatchSize: keystore.MaxImportBatch}
	cmd := &cobra.Command{
		Use:   "import [FILE | -]",
		Short: "Import keys from another system (JSON Lines)",
		Long: `Import keys from FILE, or from standard input with - (or with no argument
when standard input is not a terminal), one JSON record per line:

  {"name": "Support bot", "scopes": ["bots:read"], "key": "sk_live_…"}
  {"name": "Legacy", "scopes": ["bots:*"], "key_sha256": "<64 hex digits>"}

A record carries the secret (key) or only its SHA-256 (key_sha256, to move
hashed keys without reissuing them; hint may give the display hint the other
system kept, such as "sk_live_3nF8…a9Qz"). Optional fields: environment
(live or test; for key, it must match the key's prefix), created_at and
expires_at (RFC 3339), metadata (an object of strings). Scopes may be
patterns. Blank lines are skipped.

Keys are stored in batches, each one transaction. A key that the store holds
already is skipped and counted, so an import can simply be run again. A bad
line is reported on stderr as "line N: problem" (never with its secret),
counted as failed, and the import goes on; with --strict, the whole input is
checked first and a bad line stops the import before anything is written.

Prints {imported, skipped, failed}. Exit status 0 when no line failed, 1
when some did (the others are imported), 2 for a bad line with --strict or
a FILE that cannot be read.

A file that keyctl export wrote (its first line says "keyctl-export") is
restored as it was instead: every key with its ID, times, state, rotation
links and metadata, and the audit log, into a SQLite or PostgreSQL store.
Every line is checked first; a bad one stops the import before anything is
written. Keys and events the store holds already are skipped. Prints
{imported, skipped, failed, events_imported, events_skipped}.`,
		Example: `  keyctl import keys.jsonl
  keyctl --store 'postgres://keyctl@db/keyctl' import old-store.export.jsonl
  keyctl import --strict -o json keys.jsonl
  jq -c '{name, scopes: ["bots:read"], key_sha256: .hash}' legacy.json | keyctl import -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return withHint(usageError("import reads one file, got %d arguments", len(args)), "see 'keyctl import --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return importRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Strict, "strict", false, "check every line first; import nothing if one is bad")
	return cmd
}

func (opts *ImportOptions) resolve(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "":
		return usageError("empty file name")
	case len(args) == 1:
		opts.File = args[0]
	case opts.f.IO.IsStdinTTY():
		return withHint(usageError("import needs a FILE, or - for standard input"), "keyctl import keys.jsonl")
	default:
		opts.File = "-"
	}
	return nil
}

// importGCPercent is GOGC during an import (unless the user set GOGC). Its
// live heap is a batch or two of keys, some megabytes whatever the input
// (SQLite's pages live outside it), so with the default of 100 a
// collection would start every few megabytes of garbage, a measurable
// part of the import's CPU (BENCHMARKS.md, goal 5); at 400 the heap stays
// some tens of megabytes.
const importGCPercent = 400

func importRun(ctx context.Context, opts *ImportOptions) error {
	f := opts.f
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(importGCPercent))
	}
	in, err := openPayload(f, opts.File)
	if err != nil {
		return err
	}
	defer in.Close()
	input := opts.File
	if input == "-" {
		input = "standard input"
	}
	// Progress: a bar over the bytes of a file, a count for a stream.
	var size int64
	if in.file != nil && in.regular {
		if info, err := in.file.Stat(); err == nil {
			size = info.Size()
		}
	}
	head := bufio.NewReaderSize(ctxReader{ctx, in}, 64<<10)
	if export, err := isExport(head); err != nil {
		return err
	} else if export {
		return restoreRun(ctx, opts, head, input)
	}
	// The command's side of the import: the progress bar, and each failed
	// line on stderr.
	var bar *output.Progress
	im := &keystore.Importer{
		BatchSize: max(1, opts.BatchSize),
		Now:       f.Now,
		Report: func(line int, msg string) {
			bar.Done()
			fmt.Fprintf(f.IO.ErrOut, "line %d: %s\n", line, output.Escape(redactSecrets(oneLine(msg))))
		},
		Progress: func(done, records int) { bar.Show(done, fmt.Sprintf("%d records", records)) },
	}
	var checked *keystore.CheckedImport
	if opts.Strict {
		bar = f.IO.NewProgress("checking", int(size))
		checked, err = im.Check(head)
		bar.Done()
		if le := (*keystore.ImportLineError)(nil); errors.As(err, &le) {
			return withHint(usageError("line %d: %s", le.Line, oneLine(le.Err.Error())),
				"nothing was imported; fix the line, or import without --strict to skip bad lines")
		} else if err != nil {
			return err
		}
		defer checked.Close()
	}

	store, err := f.Store()
	if err != nil {
		return err
	}
	var sum keystore.ImportCounts
	if checked != nil {
		bar = f.IO.NewProgress("importing", checked.Records())
		sum, err = im.ImportChecked(f.Context(ctx), store, checked)
	} else {
		bar = f.IO.NewProgress("importing", int(size))
		sum, err = im.Import(f.Context(ctx), store, head)
	}
	bar.Done()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if perr := printImportSummary(f, importSummary{sum.Imported, sum.Skipped, sum.Failed}); err == nil {
		err = perr
	}
	if sum.Unhinted > 0 {
		notice(f.IO.ErrOut, "note: %d records gave key_sha256 without a hint, so keyctl could not check that they are keys of its format (sk_live_ or sk_test_, 46 characters); a key of another format never verifies", sum.Unhinted)
	}
	switch {
	case err != nil:
		return err
	case sum.Failed > 0:
		return &cmdError{
			code: exitError,
			msg:  fmt.Sprintf("%d of %d records from %s not imported", sum.Failed, sum.Records, input),
			hint: "fix those lines and import again: keys already imported are skipped",
		}
	case sum.Records == 0 && f.IO.IsStderrTTY():
		notice(f.IO.ErrOut, "no records in %s", input)
	}
	return nil
}

func printImportSummary(f *Factory, sum importSummary) error {
	p := f.printer()
	if !p.isTable() {
		return p.json(sum)
	}
	t := f.IO.NewTable()
	t.Row("imported", strconv.Itoa(sum.Imported))
	t.Row("skipped", strconv.Itoa(sum.Skipped))
	t.Row("failed", strconv.Itoa(sum.Failed))
	return t.Render()
}
