package output

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
)

// Table collects rows and prints them: aligned columns under a header on a
// terminal, tab-separated rows without a header in a pipe (as gh does), so
// that cut and awk see one record per line.
type Table struct {
	w      io.Writer
	tty    bool
	header []string
	rows   [][]string
}

// NewTable starts a table on the streams' stdout.
func (s *IOStreams) NewTable(header ...string) *Table {
	return &Table{w: s.Out, tty: s.stdoutTTY, header: header}
}

// Row appends a row; it keeps its own copy of the cells.
func (t *Table) Row(cells ...string) {
	t.rows = append(t.rows, append([]string(nil), cells...))
}

// Flush writes the rows collected so far, in a pipe only, and forgets them,
// so that long jobs print each record as soon as it is known. On a terminal
// it does nothing: aligned columns need every row.
func (t *Table) Flush() error {
	if t.tty {
		return nil
	}
	err := t.Render()
	t.rows = t.rows[:0]
	return err
}

// Render writes the table.
func (t *Table) Render() error {
	if !t.tty {
		for _, r := range t.rows {
			for i, c := range r {
				r[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
			}
			if _, err := fmt.Fprintln(t.w, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	// kubectl-like columns: no borders, no separators, two spaces between
	// columns, cells as given (no wrapping, no upper-cased header).
	tbl := tablewriter.NewWriter(t.w)
	tbl.SetAutoWrapText(false)
	tbl.SetAutoFormatHeaders(false)
	tbl.SetHeaderAlignment(tablewriter.ALIGN_LEFT)
	tbl.SetAlignment(tablewriter.ALIGN_LEFT)
	tbl.SetCenterSeparator("")
	tbl.SetColumnSeparator("")
	tbl.SetRowSeparator("")
	tbl.SetHeaderLine(false)
	tbl.SetBorder(false)
	tbl.SetTablePadding("  ")
	tbl.SetNoWhiteSpace(true)
	if len(t.header) > 0 {
		tbl.SetHeader(t.header)
	}
	tbl.AppendBulk(t.rows)
	tbl.Render()
	return nil
}
