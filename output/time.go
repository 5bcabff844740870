package output

import (
	"fmt"
	"time"
)

// Time formats t for a table: relative on a terminal, RFC 3339 UTC otherwise.
// A nil time prints as "never" on a terminal and as "" in a pipe.
func (s *IOStreams) Time(t *time.Time, now time.Time) string {
	if t == nil {
		if s.stdoutTTY {
			return "never"
		}
		return ""
	}
	if !s.stdoutTTY {
		return t.UTC().Format(time.RFC3339)
	}
	return Relative(*t, now)
}

// Relative says how long ago or how far ahead t is, as "3 days ago" or
// "in 2 hours".
func Relative(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		if future {
			return "in less than a minute"
		}
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	case d < 30*24*time.Hour:
		s = plural(int(d/(24*time.Hour)), "day")
	case d < 365*24*time.Hour:
		s = plural(int(d/(30*24*time.Hour)), "month")
	default:
		s = plural(int(d/(365*24*time.Hour)), "year")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", unit)
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
