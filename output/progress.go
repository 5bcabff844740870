package output

import (
	"fmt"
	"strings"
)

// Progress draws a bar on stderr while a batch job runs, on a terminal
// only: in a pipe or a CI log it stays silent, so that logs hold data.
type Progress struct {
	io    *IOStreams
	label string
	total int
	shown bool
}

// NewProgress starts a bar for total steps.
func (s *IOStreams) NewProgress(label string, total int) *Progress {
	return &Progress{io: s, label: label, total: total}
}

const progressWidth = 30

// Set draws the bar at done of total steps.
func (p *Progress) Set(done int) {
	if !p.io.stderrTTY || p.total <= 0 {
		return
	}
	filled := progressWidth * done / p.total
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", progressWidth-filled)
	fmt.Fprintf(p.io.ErrOut, "\r%s [%s] %d/%d", p.label, bar, done, p.total)
	p.shown = true
}

// Show draws the bar at done of total steps with text after it, in place of
// the counts; with no total (0) it draws the label and text alone, for work
// of unknown size: "importing 12000 keys".
func (p *Progress) Show(done int, text string) {
	if !p.io.stderrTTY {
		return
	}
	if p.total <= 0 {
		fmt.Fprintf(p.io.ErrOut, "\r%s %s\x1b[K", p.label, text)
	} else {
		filled := progressWidth * min(max(done, 0), p.total) / p.total
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", progressWidth-filled)
		fmt.Fprintf(p.io.ErrOut, "\r%s [%s] %s\x1b[K", p.label, bar, text)
	}
	p.shown = true
}

// Done erases the bar.
func (p *Progress) Done() {
	if p.shown {
		fmt.Fprint(p.io.ErrOut, "\r\x1b[K")
		p.shown = false
	}
}
