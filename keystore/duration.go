package keystore

import (
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads durations as people write them for keys: "90d", "2w",
// "24h", "1d12h", "30m", "45s". Units: w, d, h, m, s. Negative or
// overflowing values are EINVALID errors.
func ParseDuration(s string) (time.Duration, error) {
	bad := func(why string) (time.Duration, error) {
		return 0, Errorf(EINVALID, "invalid duration %s: %s", Quote(s), why)
	}
	if s == "" {
		return bad("empty (use a number and a unit, such as 90d or 24h)")
	}
	if strings.HasPrefix(s, "-") {
		return bad("must not be negative")
	}
	if s == "0" {
		return 0, nil
	}
	const maxDuration = time.Duration(1<<63 - 1)
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return bad("use a number and a unit, such as 90d or 24h")
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return bad("number too large")
		}
		rest = rest[i:]
		if rest == "" {
			return bad("missing unit (w, d, h, m or s)")
		}
		var unit time.Duration
		switch rest[0] {
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
			if strings.HasPrefix(rest, "ms") {
				return bad("unit too small (use w, d, h, m or s)")
			}
		case 's':
			unit = time.Second
		default:
			return bad("unknown unit (use w, d, h, m or s)")
		}
		rest = rest[1:]
		if n > int64(maxDuration/unit) {
			return bad("too large")
		}
		d := time.Duration(n) * unit
		if total > maxDuration-d {
			return bad("too large")
		}
		total += d
	}
	return total, nil
}
