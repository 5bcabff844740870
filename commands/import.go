package commands

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// maxImportLine bounds a line of an import file. A record is a few hundred
// bytes; a longer line is counted as failed without being held whole.
const maxImportLine = 1 << 20

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
// part of the import's CPU (BENCHMARKS.md, goal 5); at 400 the heap stays some tens of megabytes.
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
	counted := &countingReader{r: head}

	im := &importer{f: f, batchSize: max(1, opts.BatchSize), input: input, read: counted}
	var (
		spooled *spool
		checked int // records in the spool
	)
	if opts.Strict {
		im.bar = f.IO.NewProgress("checking", int(size))
		spooled, checked, err = im.check(counted)
		im.bar.Done()
		if err != nil {
			return err
		}
		defer spooled.close()
		im.read = nil
	}

	store, err := f.Store()
	if err != nil {
		return err
	}
	im.store, im.ctx = store, f.Context(ctx)
	im.bar = f.IO.NewProgress("importing", int(size))
	if spooled != nil {
		im.bar = f.IO.NewProgress("importing", checked)
		err = pipeRecords(ctx, spooled.each, im.add)
	} else {
		err = pipeRecords(ctx, func(emit func(importRecord) error) error {
			return readLines(counted, func(n int, line []byte, tooLong bool) error {
				k, perr := parseImportLine(line, tooLong, f)
				if k == nil && perr == nil {
					return nil // a blank line
				}
				return emit(importRecord{line: n, key: k, err: perr, read: counted.n})
			})
		}, im.add)
	}
	if err == nil {
		err = im.flush()
	}
	if im.session != nil {
		if cerr := im.session.Close(); err == nil {
			err = cerr
		}
	}
	im.bar.Done()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if perr := printImportSummary(f, im.sum); err == nil {
		err = perr
	}
	if im.unhinted > 0 {
		notice(f.IO.ErrOut, "note: %d records gave key_sha256 without a hint, so keyctl could not check that they are keys of its format (sk_live_ or sk_test_, 46 characters); a key of another format never verifies", im.unhinted)
	}
	switch {
	case err != nil:
		return err
	case im.sum.Failed > 0:
		return &cmdError{
			code: exitError,
			msg:  fmt.Sprintf("%d of %d records from %s not imported", im.sum.Failed, im.records, input),
			hint: "fix those lines and import again: keys already imported are skipped",
		}
	case im.records == 0 && f.IO.IsStderrTTY():
		notice(f.IO.ErrOut, "no records in %s", input)
	}
	return nil
}

// parseImportLine parses one line of input. A blank line is nil, nil.
func parseImportLine(line []byte, tooLong bool, f *Factory) (*keystore.ImportKey, error) {
	if tooLong {
		return nil, fmt.Errorf("longer than %d bytes", maxImportLine)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil
	}
	return keystore.ParseImportRecord(line, f.Now())
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

// importer sends keys to the store in batches and keeps the counts.
type importer struct {
	f         *Factory
	store     keystore.Store
	session   keystore.ImportSession // when the store keeps state from batch to batch
	ctx       context.Context        // with the actor
	batchSize int
	input     string
	read      *countingReader // the input, for progress; nil once spooled
	bar       *output.Progress

	batch    []keystore.ImportKey
	lines    []int // the line of each key of batch
	records  int   // lines that were not blank
	unhinted int   // key_sha256 records without a hint
	done     int64 // bytes of input behind the last record, for progress
	sum      importSummary
}

// importRecord is a line of input on its way to the store: its key, or
// why it is not one.
type importRecord struct {
	line int
	key  *keystore.ImportKey
	err  error
	read int64 // bytes of input read up to this record
}

// add takes the record of a line.
func (im *importer) add(r importRecord) error {
	im.records++
	im.done = r.read
	if r.err != nil {
		im.sum.Failed++
		im.report(r.line, r.err.Error())
	} else {
		if k := r.key; k.Source != keystore.ImportSourceKey && k.Hint == "sk_"+k.Params.Environment+"_…" {
			im.unhinted++
		}
		im.batch = append(im.batch, *r.key)
		im.lines = append(im.lines, r.line)
		if len(im.batch) >= im.batchSize {
			if err := im.flush(); err != nil {
				return err
			}
		}
	}
	if im.records%1000 == 0 {
		im.progress()
	}
	return nil
}

// flush imports the batch. Keys the store refused are reported by line.
// A store that keeps state from one batch to the next (SQLite's page
// cache) gets all of them through one session.
func (im *importer) flush() error {
	if len(im.batch) == 0 {
		return nil
	}
	if bi, ok := im.store.(keystore.BatchImporter); ok && im.session == nil {
		s, err := bi.BeginImport(im.ctx)
		if err != nil {
			return err
		}
		im.session = s
	}
	importBatch := im.store.Import
	if im.session != nil {
		importBatch = im.session.Import
	}
	res, err := importBatch(im.ctx, im.batch)
	// Through the remote store, part of a batch may be stored before an
	// error: count it too.
	im.sum.Imported += res.Imported
	im.sum.Skipped += res.Skipped
	im.sum.Failed += res.Failed
	for _, e := range res.Errors {
		line := e.Line
		if line >= 1 && line <= len(im.lines) {
			line = im.lines[line-1]
		}
		im.report(line, e.Message)
	}
	clear(im.batch) // keep no record past its batch
	im.batch, im.lines = im.batch[:0], im.lines[:0]
	im.progress()
	return err
}

// report writes one line's problem on stderr. Messages never hold a
// secret; redacting them anyway costs nothing.
func (im *importer) report(line int, msg string) {
	im.bar.Done()
	fmt.Fprintf(im.f.IO.ErrOut, "line %d: %s\n", line, output.Escape(redactSecrets(oneLine(msg))))
}

func (im *importer) progress() {
	done := im.records
	if im.read != nil {
		done = int(im.done)
	}
	im.bar.Show(done, fmt.Sprintf("%d records", im.records))
}

// check reads the whole input for --strict and keeps the parsed keys in a
// spool, so that nothing is written unless every line is good, and the
// input is read only once (standard input cannot be read twice; a file
// could change in between). The spool holds no secret, only what the store
// will hold.
func (im *importer) check(r *countingReader) (sp *spool, records int, err error) {
	sp, err = newSpool()
	if err != nil {
		return nil, 0, err
	}
	err = readLines(r, func(n int, line []byte, tooLong bool) error {
		k, err := parseImportLine(line, tooLong, im.f)
		if err != nil {
			return withHint(usageError("line %d: %s", n, oneLine(err.Error())),
				"nothing was imported; fix the line, or import without --strict to skip bad lines")
		}
		if k == nil {
			return nil
		}
		records++
		if records%1000 == 0 {
			im.bar.Show(int(r.n), fmt.Sprintf("%d records", records))
		}
		return sp.add(n, k)
	})
	if err == nil {
		err = sp.rewind()
	}
	if err != nil {
		sp.close()
		return nil, 0, err
	}
	return sp, records, nil
}

// importChunk is how many records the reading goroutine hands over at a
// time.
const importChunk = 256

// errStopped stops a producer of records whose consumer has given up.
var errStopped = errors.New("import stopped")

// pipeRecords runs produce in a goroutine of its own and hands the records
// it emits to consume, in order, in the calling goroutine: reading and
// checking the next records (JSON, SHA-256 of each secret; BENCHMARKS.md,
// goal 5) overlaps with the store writing the last batch. When
// consume fails or ctx ends, produce is stopped at its next record but not
// waited for: it may be blocked reading standard input, a terminal or a
// pipe that nothing writes to.
func pipeRecords(ctx context.Context, produce func(emit func(importRecord) error) error, consume func(importRecord) error) error {
	chunks := make(chan []importRecord, 8)
	stop := make(chan struct{})
	defer close(stop)
	var perr error // set before chunks is closed
	go func() {
		defer close(chunks)
		chunk := make([]importRecord, 0, importChunk)
		send := func() error {
			select {
			case chunks <- chunk:
				chunk = make([]importRecord, 0, importChunk)
				return nil
			case <-stop:
				return errStopped
			}
		}
		err := produce(func(r importRecord) error {
			select {
			case <-stop:
				return errStopped
			default:
			}
			chunk = append(chunk, r)
			if len(chunk) < importChunk {
				return nil
			}
			return send()
		})
		// The records read before an error still count, as when read
		// one by one.
		if len(chunk) > 0 && !errors.Is(err, errStopped) {
			if serr := send(); err == nil {
				err = serr
			}
		}
		perr = err
	}()
	for {
		select {
		case chunk, ok := <-chunks:
			if !ok {
				return perr
			}
			for _, r := range chunk {
				if err := consume(r); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readLines calls fn with each line of r, numbered from 1, without its line
// ending. A line longer than maxImportLine is passed cut short, with
// tooLong, and memory stays bounded whatever the input.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		buf     []byte
		tooLong bool
		n       int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxImportLine+1 { // +1 for the newline
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read import records: %w", err)
		}
		if len(buf) > 0 || tooLong {
			n++
			line := bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
			if n == 1 {
				line = bytes.TrimPrefix(line, []byte("\ufeff")) // a byte order mark
			}
			if ferr := fn(n, line, tooLong); ferr != nil {
				return ferr
			}
		}
		if err != nil { // io.EOF
			return nil
		}
		buf, tooLong = buf[:0], false
	}
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// spool keeps checked import keys in a temporary file, mode 0600, that is
// removed at once where the system allows it (Unix), so that nothing stays
// behind even if keyctl is killed. The keys are JSON lines (encoding/gob
// would be smaller, but its initialisation costs every keyctl command).
type spool struct {
	file *os.File
	w    *bufio.Writer
	enc  *json.Encoder
}

type spooled struct {
	Line int
	Key  keystore.ImportKey
}

func newSpool() (*spool, error) {
	file, err := os.CreateTemp("", "keyctl-import-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for --strict: %w", err)
	}
	os.Remove(file.Name()) // fails on Windows while open: close removes it then
	w := bufio.NewWriter(file)
	return &spool{file: file, w: w, enc: json.NewEncoder(w)}, nil
}

func (s *spool) add(line int, k *keystore.ImportKey) error {
	if err := s.enc.Encode(spooled{line, *k}); err != nil {
		return fmt.Errorf("write temporary file for --strict: %w", err)
	}
	return nil
}

func (s *spool) rewind() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write temporary file for --strict: %w", err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read temporary file for --strict: %w", err)
	}
	return nil
}

// each calls fn with each spooled key, in the order of the input.
func (s *spool) each(fn func(importRecord) error) error {
	dec := json.NewDecoder(bufio.NewReader(s.file))
	for {
		var e spooled
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read temporary file for --strict: %w", err)
		}
		if err := fn(importRecord{line: e.Line, key: &e.Key}); err != nil {
			return err
		}
	}
}

func (s *spool) close() {
	s.file.Close()
	os.Remove(s.file.Name())
}
