package keystore

import (
	"bytes"
	"context"
	"io"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Restoring an export (keyctl export's JSON Lines) into a Restorer: every
// line is checked, strictly, before anything is written, and the store
// gets the keys, then their rotation links, then the audit events.

// DecodeExportLine decodes and checks a line of an export after its
// header: a key or an event (the other is nil). It decodes as DecodeStrict
// does, and its errors (EINVALID) never repeat a value of the line.
func DecodeExportLine(line []byte) (*ExportedKey, *ExportedEvent, error) {
	var head struct {
		Type string `json:"type"`
	}
	// The type first, leniently: the strict decoding that follows says
	// precisely what is wrong with a line that is JSON.
	if json.Unmarshal(line, &head, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)) != nil {
		return nil, nil, Errorf(EINVALID, "not a JSON line of an export")
	}
	switch head.Type {
	case ExportTypeKey:
		var k ExportedKey
		if err := DecodeStrict(line, &k); err != nil {
			return nil, nil, Errorf(EINVALID, "not a key of an export: %s", err)
		}
		if err := k.Validate(); err != nil {
			return nil, nil, err
		}
		return &k, nil, nil
	case ExportTypeEvent:
		var e ExportedEvent
		if err := DecodeStrict(line, &e); err != nil {
			return nil, nil, Errorf(EINVALID, "not an event of an export: %s", err)
		}
		if err := e.Validate(); err != nil {
			return nil, nil, err
		}
		return nil, &e, nil
	}
	return nil, nil, Errorf(EINVALID, "unknown line type %s in an export", Quote(Truncate(head.Type, 20)))
}

// exportLine is a checked line of an export, as spooled.
type exportLine struct {
	Key   *ExportedKey   `json:",omitempty"`
	Event *ExportedEvent `json:",omitempty"`
}

// CheckedExport is an export whose every line was found good, kept in a
// temporary file (see Importer.Check): it holds no secret.
type CheckedExport struct {
	sp    *spool[exportLine]
	lines int
}

// Lines is the number of keys and events checked.
func (c *CheckedExport) Lines() int { return c.lines }

// Close removes the temporary file.
func (c *CheckedExport) Close() { c.sp.close() }

// CheckExport reads an export whose header (its first line) the caller
// has checked with DecodeExportHeader, and checks every other line with
// DecodeExportLine. progress, when set, gets the number of lines checked,
// every 1,000. A bad line is an *ImportLineError.
func CheckExport(r io.Reader, progress func(lines int)) (*CheckedExport, error) {
	sp, err := newSpool[exportLine]()
	if err != nil {
		return nil, err
	}
	c := &CheckedExport{sp: sp}
	err = ReadLines(r, func(n int, line []byte, tooLong bool) error {
		if tooLong {
			return &ImportLineError{Line: n, Err: Errorf(EINVALID, "longer than %d bytes", MaxImportLine)}
		}
		if n == 1 || len(bytes.TrimSpace(line)) == 0 {
			return nil // the header
		}
		k, e, err := DecodeExportLine(line)
		if err != nil {
			return &ImportLineError{Line: n, Err: err}
		}
		c.lines++
		if c.lines%1000 == 0 && progress != nil {
			progress(c.lines)
		}
		return sp.add(&exportLine{k, e})
	})
	if err == nil {
		err = sp.rewind()
	}
	if err != nil {
		sp.close()
		return nil, err
	}
	return c, nil
}

// RestoreCounts are the totals of a restore.
type RestoreCounts struct {
	Keys, KeysSkipped     int
	Events, EventsSkipped int
}

// Restore writes the checked export into re: the keys in batches of
// batchSize (at most MaxImportBatch), then their rotation links, then the
// audit events in their order. Keys and events the store holds already
// are skipped and counted. progress, when set, gets the number of lines
// written after each batch. The counts are those so far when it fails.
func (c *CheckedExport) Restore(ctx context.Context, re Restorer, batchSize int, progress func(done int, sum RestoreCounts)) (RestoreCounts, error) {
	batchSize = min(max(1, batchSize), MaxImportBatch)
	var (
		sum    RestoreCounts
		keys   []ExportedKey
		events []Event
		links  []ExportedKey
		done   int
	)
	// count adds a batch of n lines, with the store's result, to the sums.
	count := func(n int, res RestoreResult, restored, skipped *int) {
		*restored += res.Restored
		*skipped += res.Skipped
		done += n
		if progress != nil {
			progress(done, sum)
		}
	}
	flushKeys := func() error {
		if len(keys) == 0 {
			return nil
		}
		res, err := re.RestoreKeys(ctx, keys)
		count(len(keys), res, &sum.Keys, &sum.KeysSkipped)
		keys = keys[:0]
		return err
	}
	flushEvents := func() error {
		if len(events) == 0 {
			return nil
		}
		res, err := re.RestoreEvents(ctx, events)
		count(len(events), res, &sum.Events, &sum.EventsSkipped)
		events = events[:0]
		return err
	}
	err := c.sp.each(func(l *exportLine) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if k := l.Key; k != nil {
			keys = append(keys, *k)
			if k.RotatedFrom != nil || k.RotatedTo != nil {
				links = append(links, ExportedKey{ID: k.ID, RotatedFrom: k.RotatedFrom, RotatedTo: k.RotatedTo})
			}
			if len(keys) >= batchSize {
				return flushKeys()
			}
			return nil
		}
		events = append(events, l.Event.Event)
		if len(events) >= batchSize {
			return flushEvents()
		}
		return nil
	})
	if err == nil {
		err = flushKeys()
	}
	for len(links) > 0 && err == nil {
		n := min(len(links), MaxImportBatch)
		err = re.RestoreLinks(ctx, links[:n])
		links = links[n:]
	}
	if err == nil {
		err = flushEvents()
	}
	return sum, err
}
