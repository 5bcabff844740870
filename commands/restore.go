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
	"strconv"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Reading back a file that keyctl export wrote: keyctl import tells it by
// its first line and restores the keys and the audit log as they were.

// isExport reports whether the input that r reads starts with the header
// of an export, without consuming anything.
func isExport(r *bufio.Reader) (bool, error) {
	// Peek no further than the first line: from a pipe, more may not
	// come for a while.
	var b []byte
	for n := 1; ; n = r.Buffered() + 1 {
		_, err := r.Peek(n) // waits for the n-th byte, no longer
		p, _ := r.Peek(r.Buffered())
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			b = p[:i]
			break
		}
		if err != nil || len(p) >= 4096 {
			b = p
			break
		}
	}
	b = bytes.TrimSpace(b)
	if !bytes.HasPrefix(b, []byte("{")) || !bytes.Contains(b, []byte(keystore.ExportFormat)) {
		return false, nil
	}
	ok, err := keystore.DecodeExportHeader(b)
	if err != nil {
		return ok, usageError("line 1: %s", err.Error())
	}
	return ok, nil
}

// restoreSummary is what keyctl import prints for an export: the counts of
// an import for the keys, and those of the audit events.
type restoreSummary struct {
	Imported       int `json:"imported"`
	Skipped        int `json:"skipped"`
	Failed         int `json:"failed"`
	EventsImported int `json:"events_imported"`
	EventsSkipped  int `json:"events_skipped"`
}

// exportLine is one line of an export after the header.
type exportLine struct {
	Type string `json:"type"`
}

// restoreRun checks every line of an export first, keeping the lines in a
// spool (an export holds no secret), so that a bad line stops the import
// before anything is written; then restores keys in batches, then their
// rotation links, then the audit events.
func restoreRun(ctx context.Context, opts *ImportOptions, r io.Reader, input string) error {
	f := opts.f
	spool, err := os.CreateTemp("", "keyctl-import-*.jsonl")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	sw := bufio.NewWriterSize(spool, 64<<10)
	bar := f.IO.NewProgress("checking", 0)
	var keys, events int
	err = keystore.ReadLines(r, func(n int, line []byte, tooLong bool) error {
		if tooLong {
			return usageError("line %d: longer than %d bytes", n, keystore.MaxImportLine)
		}
		if n == 1 || len(bytes.TrimSpace(line)) == 0 {
			return nil // the header, checked already
		}
		var l exportLine
		if err := json.Unmarshal(line, &l); err != nil {
			return usageError("line %d: not a JSON line of an export", n)
		}
		switch l.Type {
		case keystore.ExportTypeKey:
			if _, err := decodeExportedKey(line); err != nil {
				return usageError("line %d: %s", n, oneLine(err.Error()))
			}
			keys++
		case keystore.ExportTypeEvent:
			if _, err := decodeExportedEvent(line); err != nil {
				return usageError("line %d: %s", n, oneLine(err.Error()))
			}
			events++
		default:
			return usageError("line %d: unknown line type %q in an export", n, keystore.Truncate(l.Type, 20))
		}
		if (keys+events)%1000 == 0 {
			bar.Show(0, fmt.Sprintf("%d lines", keys+events))
		}
		_, err := sw.Write(append(line, '\n'))
		return err
	})
	bar.Done()
	if err == nil {
		err = sw.Flush()
	}
	if err == nil {
		_, err = spool.Seek(0, io.SeekStart)
	}
	if err != nil {
		return withHint(err, "nothing was imported")
	}

	store, err := f.Store()
	if err != nil {
		return err
	}
	re, ok := keystore.As[keystore.Restorer](store)
	if !ok {
		return withHint(usageError("%s is an export of a whole store: importing it needs a SQLite or PostgreSQL store", input),
			"run keyctl import with --store on the service's own store")
	}
	bar = f.IO.NewProgress("importing", keys+events)
	var (
		sum     restoreSummary
		kbatch  []keystore.ExportedKey
		ebatch  []keystore.Event
		links   []keystore.ExportedKey
		done    int
		batchSz = min(max(1, opts.BatchSize), keystore.MaxImportBatch)
	)
	flushKeys := func() error {
		if len(kbatch) == 0 {
			return nil
		}
		res, err := re.RestoreKeys(ctx, kbatch)
		sum.Imported += res.Restored
		sum.Skipped += res.Skipped
		done += len(kbatch)
		kbatch = kbatch[:0]
		bar.Show(done, fmt.Sprintf("%d keys", sum.Imported+sum.Skipped))
		return err
	}
	flushEvents := func() error {
		if len(ebatch) == 0 {
			return nil
		}
		res, err := re.RestoreEvents(ctx, ebatch)
		sum.EventsImported += res.Restored
		sum.EventsSkipped += res.Skipped
		done += len(ebatch)
		ebatch = ebatch[:0]
		bar.Show(done, fmt.Sprintf("%d events", sum.EventsImported+sum.EventsSkipped))
		return err
	}
	err = keystore.ReadLines(bufio.NewReaderSize(ctxReader{ctx, spool}, 64<<10), func(n int, line []byte, _ bool) error {
		var l exportLine
		json.Unmarshal(line, &l)
		if l.Type == keystore.ExportTypeKey {
			k, err := decodeExportedKey(line)
			if err != nil {
				return err
			}
			kbatch = append(kbatch, *k)
			if k.RotatedFrom != nil || k.RotatedTo != nil {
				links = append(links, keystore.ExportedKey{ID: k.ID, RotatedFrom: k.RotatedFrom, RotatedTo: k.RotatedTo})
			}
			if len(kbatch) >= batchSz {
				return flushKeys()
			}
			return nil
		}
		e, err := decodeExportedEvent(line)
		if err != nil {
			return err
		}
		ebatch = append(ebatch, e.Event)
		if len(ebatch) >= batchSz {
			return flushEvents()
		}
		return nil
	})
	if err == nil {
		err = flushKeys()
	}
	for len(links) > 0 && err == nil {
		n := min(len(links), keystore.MaxImportBatch)
		err = re.RestoreLinks(ctx, links[:n])
		links = links[n:]
	}
	if err == nil {
		err = flushEvents()
	}
	bar.Done()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if perr := printRestoreSummary(f, sum); err == nil {
		err = perr
	}
	if err != nil {
		return withHint(err, "import the file again: keys and events already imported are skipped")
	}
	return nil
}

func decodeExportedKey(line []byte) (*keystore.ExportedKey, error) {
	var k keystore.ExportedKey
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, keystore.Errorf(keystore.EINVALID, "not a key of an export: %s", jsonMessage(err))
	}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return &k, nil
}

func decodeExportedEvent(line []byte) (*keystore.ExportedEvent, error) {
	var e keystore.ExportedEvent
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, keystore.Errorf(keystore.EINVALID, "not an event of an export: %s", jsonMessage(err))
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// jsonMessage describes a decoding error without quoting the input.
func jsonMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	}
	return redactSecrets(oneLine(err.Error()))
}

func printRestoreSummary(f *Factory, sum restoreSummary) error {
	p := f.printer()
	if !p.isTable() {
		return p.json(sum)
	}
	t := f.IO.NewTable()
	t.Row("imported", strconv.Itoa(sum.Imported))
	t.Row("skipped", strconv.Itoa(sum.Skipped))
	t.Row("failed", strconv.Itoa(sum.Failed))
	t.Row("events imported", strconv.Itoa(sum.EventsImported))
	t.Row("events skipped", strconv.Itoa(sum.EventsSkipped))
	return t.Render()
}
