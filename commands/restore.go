package commands

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// restoreRun restores an export (keystore.CheckExport, then Restore): a
// bad line stops the import before anything is written.
func restoreRun(ctx context.Context, opts *ImportOptions, r io.Reader, input string) error {
	f := opts.f
	bar := f.IO.NewProgress("checking", 0)
	checked, err := keystore.CheckExport(r, func(lines int) { bar.Show(0, fmt.Sprintf("%d lines", lines)) })
	bar.Done()
	if le := (*keystore.ImportLineError)(nil); errors.As(err, &le) {
		return withHint(usageError("line %d: %s", le.Line, oneLine(le.Err.Error())), "nothing was imported")
	} else if err != nil {
		return withHint(err, "nothing was imported")
	}
	defer checked.Close()

	store, err := f.Store()
	if err != nil {
		return err
	}
	re, ok := keystore.As[keystore.Restorer](store)
	if !ok {
		return withHint(usageError("%s is an export of a whole store: importing it needs a SQLite or PostgreSQL store", input),
			"run keyctl import with --store on the service's own store")
	}
	bar = f.IO.NewProgress("importing", checked.Lines())
	c, err := checked.Restore(ctx, re, opts.BatchSize, func(done int, c keystore.RestoreCounts) {
		bar.Show(done, fmt.Sprintf("%d keys, %d events", c.Keys+c.KeysSkipped, c.Events+c.EventsSkipped))
	})
	bar.Done()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	sum := restoreSummary{Imported: c.Keys, Skipped: c.KeysSkipped, EventsImported: c.Events, EventsSkipped: c.EventsSkipped}
	if perr := printRestoreSummary(f, sum); err == nil {
		err = perr
	}
	if err != nil {
		return withHint(err, "import the file again: keys and events already imported are skipped")
	}
	return nil
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
