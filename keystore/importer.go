package keystore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MaxImportLine bounds a line of an import file. A record is a few hundred
// bytes; a longer line is counted as failed without being held whole.
const MaxImportLine = 1 << 20

// Importer is the import pipeline: it reads JSON Lines records
// (ParseImportRecord), checks them in a goroutine of its own, and sends the
// keys to a store in batches, one Store.Import each (through an
// ImportSession when the store is a BatchImporter). A bad line, or a key the
// store refuses, is reported by its line and counted as failed; the import
// goes on. With Check first, the whole input is checked before anything is
// written.
type Importer struct {
	// BatchSize is the number of keys per Store.Import; 0 means
	// MaxImportBatch.
	BatchSize int

	// Now is the clock that records' times are checked against; nil means
	// time.Now.
	Now func() time.Time

	// Report, when set, gets each line that failed, and why: a message
	// that never holds a secret.
	Report func(line int, msg string)

	// Progress, when set, gets how far the import is: done is the bytes of
	// input read (the records, for an import of a CheckedImport), records
	// the lines that were not blank. It is called every 1,000 records and
	// after each batch.
	Progress func(done, records int)
}

// ImportCounts are the totals of an import.
type ImportCounts struct {
	Records  int // lines that were not blank
	Imported int
	Skipped  int // keys the store held already
	Failed   int
	Unhinted int // key_sha256 records without a hint
}

// ImportLineError is the bad line that stops Check: nothing is imported.
type ImportLineError struct {
	Line int
	Err  error
}

func (e *ImportLineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Err) }

func (e *ImportLineError) Unwrap() error { return e.Err }

// CheckedImport is an input that Check found good: its keys, without their
// secrets, in a temporary file.
type CheckedImport struct {
	sp      *spool[spooled]
	records int
}

// Records is the number of records checked.
func (c *CheckedImport) Records() int { return c.records }

// Close removes the temporary file.
func (c *CheckedImport) Close() { c.sp.close() }

// Check reads the whole input and keeps the parsed keys in a temporary
// file, so that nothing is written unless every line is good, and the
// input is read only once (standard input cannot be read twice; a file
// could change in between). The file holds no secret, only what the store
// will hold; it has mode 0600 and is removed at once where the system
// allows it (Unix), so that nothing stays behind even if the process is
// killed. A bad line is an *ImportLineError.
func (im *Importer) Check(r io.Reader) (*CheckedImport, error) {
	counted := &countingReader{r: r}
	sp, err := newSpool[spooled]()
	if err != nil {
		return nil, err
	}
	records := 0
	err = ReadLines(counted, func(n int, line []byte, tooLong bool) error {
		k, err := im.parseLine(line, tooLong)
		if err != nil {
			return &ImportLineError{Line: n, Err: err}
		}
		if k == nil {
			return nil
		}
		records++
		if records%1000 == 0 && im.Progress != nil {
			im.Progress(int(counted.n), records)
		}
		return sp.add(&spooled{n, *k})
	})
	if err == nil {
		err = sp.rewind()
	}
	if err != nil {
		sp.close()
		return nil, err
	}
	return &CheckedImport{sp: sp, records: records}, nil
}

// Import imports the records of r into store. The counts are those so far
// when it fails.
func (im *Importer) Import(ctx context.Context, store Store, r io.Reader) (ImportCounts, error) {
	counted := &countingReader{r: r}
	run := im.start(store, counted)
	return run.finish(ctx, func(emit func(importRecord) error) error {
		return ReadLines(counted, func(n int, line []byte, tooLong bool) error {
			k, perr := im.parseLine(line, tooLong)
			if k == nil && perr == nil {
				return nil // a blank line
			}
			return emit(importRecord{line: n, key: k, err: perr, read: counted.n})
		})
	})
}

// ImportChecked imports the keys of a CheckedImport into store.
func (im *Importer) ImportChecked(ctx context.Context, store Store, c *CheckedImport) (ImportCounts, error) {
	return im.start(store, nil).finish(ctx, func(emit func(importRecord) error) error {
		return c.sp.each(func(s *spooled) error { return emit(importRecord{line: s.Line, key: &s.Key}) })
	})
}

// parseLine parses one line of input. A blank line is nil, nil.
func (im *Importer) parseLine(line []byte, tooLong bool) (*ImportKey, error) {
	if tooLong {
		return nil, fmt.Errorf("longer than %d bytes", MaxImportLine)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil
	}
	now := time.Now
	if im.Now != nil {
		now = im.Now
	}
	return ParseImportRecord(line, now())
}

// importRun is one import: it sends keys to the store in batches and keeps
// the counts.
type importRun struct {
	im        *Importer
	store     Store
	session   ImportSession // when the store keeps state from batch to batch
	ctx       context.Context
	batchSize int
	read      *countingReader // the input, for progress; nil for a CheckedImport

	batch []ImportKey
	lines []int // the line of each key of batch
	done  int64 // bytes of input behind the last record, for progress
	sum   ImportCounts
}

func (im *Importer) start(store Store, read *countingReader) *importRun {
	size := im.BatchSize
	if size <= 0 {
		size = MaxImportBatch
	}
	return &importRun{im: im, store: store, batchSize: size, read: read}
}

// finish runs produce and imports what it emits, then the last batch.
func (run *importRun) finish(ctx context.Context, produce func(emit func(importRecord) error) error) (ImportCounts, error) {
	run.ctx = ctx
	err := pipeRecords(ctx, produce, run.add)
	if err == nil {
		err = run.flush()
	}
	if run.session != nil {
		if cerr := run.session.Close(); err == nil {
			err = cerr
		}
	}
	return run.sum, err
}

// importRecord is a line of input on its way to the store: its key, or
// why it is not one.
type importRecord struct {
	line int
	key  *ImportKey
	err  error
	read int64 // bytes of input read up to this record
}

// add takes the record of a line.
func (run *importRun) add(r importRecord) error {
	run.sum.Records++
	run.done = r.read
	if r.err != nil {
		run.sum.Failed++
		run.report(r.line, r.err.Error())
	} else {
		if k := r.key; k.Source != ImportSourceKey && k.Hint == "sk_"+k.Params.Environment+"_…" {
			run.sum.Unhinted++
		}
		run.batch = append(run.batch, *r.key)
		run.lines = append(run.lines, r.line)
		if len(run.batch) >= run.batchSize {
			if err := run.flush(); err != nil {
				return err
			}
		}
	}
	if run.sum.Records%1000 == 0 {
		run.progress()
	}
	return nil
}

// flush imports the batch. Keys the store refused are reported by line.
// A store that keeps state from one batch to the next (SQLite's page
// cache) gets all of them through one session.
func (run *importRun) flush() error {
	if len(run.batch) == 0 {
		return nil
	}
	if bi, ok := As[BatchImporter](run.store); ok && run.session == nil {
		s, err := bi.BeginImport(run.ctx)
		if err != nil {
			return err
		}
		run.session = s
	}
	importBatch := run.store.Import
	if run.session != nil {
		importBatch = run.session.Import
	}
	res, err := importBatch(run.ctx, run.batch)
	// Through the remote store, part of a batch may be stored before an
	// error: count it too.
	run.sum.Imported += res.Imported
	run.sum.Skipped += res.Skipped
	run.sum.Failed += res.Failed
	for _, e := range res.Errors {
		line := e.Line
		if line >= 1 && line <= len(run.lines) {
			line = run.lines[line-1]
		}
		run.report(line, e.Message)
	}
	clear(run.batch) // keep no record past its batch
	run.batch, run.lines = run.batch[:0], run.lines[:0]
	run.progress()
	return err
}

func (run *importRun) report(line int, msg string) {
	if run.im.Report != nil {
		run.im.Report(line, msg)
	}
}

func (run *importRun) progress() {
	if run.im.Progress == nil {
		return
	}
	done := run.sum.Records
	if run.read != nil {
		done = int(run.done)
	}
	run.im.Progress(done, run.sum.Records)
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

// ReadLines calls fn with each line of r, numbered from 1, without its line
// ending. A line longer than MaxImportLine is passed cut short, with
// tooLong, and memory stays bounded whatever the input.
func ReadLines(r io.Reader, fn func(n int, line []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		buf     []byte
		tooLong bool
		n       int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxImportLine+1 { // +1 for the newline
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

// spool keeps checked input (import keys, export lines) in a temporary
// file, mode 0600, that is removed at once where the system allows it
// (Unix), so that nothing stays behind even if the process is killed. The
// values are JSON lines (encoding/gob would be smaller, but its
// initialisation costs every keyctl command). Nothing in it is a secret.
type spool[T any] struct {
	file *os.File
	w    *bufio.Writer
	enc  *json.Encoder
}

// spooled is a checked import key and its line.
type spooled struct {
	Line int
	Key  ImportKey
}

func newSpool[T any]() (*spool[T], error) {
	file, err := os.CreateTemp("", "keyctl-import-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for the checked input: %w", err)
	}
	os.Remove(file.Name()) // fails on Windows while open: close removes it then
	w := bufio.NewWriter(file)
	return &spool[T]{file: file, w: w, enc: json.NewEncoder(w)}, nil
}

func (s *spool[T]) add(v *T) error {
	if err := s.enc.Encode(v); err != nil {
		return fmt.Errorf("write the temporary file of the checked input: %w", err)
	}
	return nil
}

func (s *spool[T]) rewind() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write the temporary file of the checked input: %w", err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read the temporary file of the checked input: %w", err)
	}
	return nil
}

// each calls fn with each value spooled, in the order they were added.
func (s *spool[T]) each(fn func(*T) error) error {
	dec := json.NewDecoder(bufio.NewReader(s.file))
	for {
		var v T
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the temporary file of the checked input: %w", err)
		}
		if err := fn(&v); err != nil {
			return err
		}
	}
}

func (s *spool[T]) close() {
	s.file.Close()
	os.Remove(s.file.Name())
}
