package keystore

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/internal/plainjson"
)

// Key records are written by hand rather than through encoding/json's
// reflection, indentation and validation passes: `keyctl list --all -o
// json` writes one per key, and the HTTP API one per verification. The
// bytes are those encoding/json writes for the same record (a test holds
// them equal), HTML characters escaped as json.Marshal does.

// AppendJSON appends k as compact JSON, as MarshalJSON writes it.
func (k *Key) AppendJSON(dst []byte) []byte {
	w := jsonWriter{b: dst}
	w.key(k)
	return w.b
}

// AppendJSONIndent appends k as json.MarshalIndent(k, prefix, indent)
// writes it.
func (k *Key) AppendJSONIndent(dst []byte, prefix, indent string) []byte {
	w := jsonWriter{b: dst, pretty: true, prefix: prefix, indent: indent,
		spaces: onlySpaces(prefix) && onlySpaces(indent)}
	w.key(k)
	return w.b
}

func onlySpaces(s string) bool { return strings.Trim(s, " ") == "" }

// newlineSpaces is a newline and the indentation made of spaces, the usual
// kind, that a line of a key record may need: newline appends a slice of
// it at once (list --all -o json writes 16 lines a key).
const newlineSpaces = "\n                                                                "

// errYearRange is the error of a time that RFC 3339 cannot write, as
// package time words it.
var errYearRange = errors.New("Time.MarshalJSON: year outside of range [0,9999]")

// CheckTimes reports a time of k that RFC 3339 cannot write, which needs a
// four-digit year: a writer of the record refuses such a key.
func (k *Key) CheckTimes() error {
	ok := func(t *time.Time) bool {
		if t == nil {
			return true
		}
		y := t.UTC().Year()
		return y >= 0 && y <= 9999
	}
	if !ok(&k.CreatedAt) || !ok(k.ExpiresAt) || !ok(k.RevokedAt) || !ok(k.DisabledAt) || !ok(k.LastUsedAt) {
		return errYearRange
	}
	for _, t := range k.ScopesLastUsed {
		if !ok(&t) {
			return errYearRange
		}
	}
	return nil
}

type jsonWriter struct {
	b              []byte
	pretty         bool
	prefix, indent string
	spaces         bool // prefix and indent are spaces only
	depth          int
}

func (w *jsonWriter) newline() {
	if !w.pretty {
		return
	}
	if n := 1 + len(w.prefix) + w.depth*len(w.indent); w.spaces && n <= len(newlineSpaces) {
		w.b = append(w.b, newlineSpaces[:n]...)
		return
	}
	w.b = append(w.b, '\n')
	w.b = append(w.b, w.prefix...)
	for range w.depth {
		w.b = append(w.b, w.indent...)
	}
}

// open starts an object or array that has at least one member.
func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
	w.newline()
}

func (w *jsonWriter) close(c byte) {
	w.depth--
	w.newline()
	w.b = append(w.b, c)
}

// name writes a member name, preceded by a comma unless first. The names
// of the record's fields need no escaping; metadata names do.
func (w *jsonWriter) name(n string, first bool) {
	w.member(first)
	w.b = append(w.b, '"')
	w.b = append(w.b, n...)
	w.b = append(w.b, '"')
	w.colon()
}

func (w *jsonWriter) member(first bool) {
	if !first {
		w.b = append(w.b, ',')
		w.newline()
	}
}

func (w *jsonWriter) colon() {
	w.b = append(w.b, ':')
	if w.pretty {
		w.b = append(w.b, ' ')
	}
}

func (w *jsonWriter) str(name, v string) {
	w.name(name, false)
	w.b = plainjson.AppendString(w.b, v)
}

// strings writes a list of strings, [] when empty.
func (w *jsonWriter) strings(name string, list []string) {
	w.name(name, false)
	if len(list) == 0 {
		w.b = append(w.b, "[]"...)
		return
	}
	w.open('[')
	for i, s := range list {
		if i > 0 {
			w.b = append(w.b, ',')
			w.newline()
		}
		w.b = plainjson.AppendString(w.b, s)
	}
	w.close(']')
}

func (w *jsonWriter) optStr(name string, v *string) {
	w.name(name, false)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = plainjson.AppendString(w.b, *v)
}

func (w *jsonWriter) time(name string, t *time.Time) {
	w.name(name, false)
	if t == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '"')
	w.b = AppendRFC3339(w.b, *t)
	w.b = append(w.b, '"')
}

// AppendRFC3339 appends t in UTC, to the second, as
// t.UTC().Truncate(time.Second).AppendFormat(b, time.RFC3339) does, in a
// fraction of its time: "2006-01-02T15:04:05Z". It is keyctl's one writer
// of an RFC 3339 time; for a year outside 0 to 9999, which RFC 3339
// cannot write, it writes what package time does.
func AppendRFC3339(b []byte, t time.Time) []byte {
	u := t.UTC()
	year, month, day := u.Date()
	if year < 0 || year > 9999 {
		return u.Truncate(time.Second).AppendFormat(b, time.RFC3339)
	}
	hour, min, sec := u.Clock()
	two := func(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }
	b = two(b, year/100)
	b = two(b, year%100)
	b = two(append(b, '-'), int(month))
	b = two(append(b, '-'), day)
	b = two(append(b, 'T'), hour)
	b = two(append(b, ':'), min)
	b = two(append(b, ':'), sec)
	return append(b, 'Z')
}

// writeObject writes member name with m as a JSON object, its names sorted
// as encoding/json sorts them, each value by appendValue. names is room
// for the sorted names, which the caller keeps on its stack.
func writeObject[V any](w *jsonWriter, name string, m map[string]V, names []string, appendValue func([]byte, V) []byte) {
	w.name(name, false)
	if len(m) == 0 {
		w.b = append(w.b, "{}"...)
		return
	}
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	w.open('{')
	for i, n := range names {
		w.member(i == 0)
		w.b = plainjson.AppendString(w.b, n)
		w.colon()
		w.b = appendValue(w.b, m[n])
	}
	w.close('}')
}

// appendQuotedTime appends t as a JSON string in RFC 3339.
func appendQuotedTime(b []byte, t time.Time) []byte {
	return append(AppendRFC3339(append(b, '"'), t), '"')
}

func (w *jsonWriter) key(k *Key) {
	var room [16]string // the sorted names of a map, most often on the stack
	w.open('{')
	w.name("id", true)
	w.b = plainjson.AppendString(w.b, k.ID)
	w.str("name", k.Name)
	w.str("environment", k.Environment)
	w.strings("scopes", k.Scopes)
	w.str("hint", k.Hint)
	w.str("status", k.Status)
	w.time("created_at", &k.CreatedAt)
	w.time("expires_at", k.ExpiresAt)
	w.time("revoked_at", k.RevokedAt)
	w.time("disabled_at", k.DisabledAt)
	w.time("last_used_at", k.LastUsedAt)
	w.strings("used_scopes", k.UsedScopes)
	writeObject(w, "scopes_last_used", k.ScopesLastUsed, room[:0], appendQuotedTime)
	w.optStr("rotated_from", k.RotatedFrom)
	w.optStr("rotated_to", k.RotatedTo)
	w.optStr("delivery", k.Delivery)
	writeObject(w, "metadata", k.Metadata, room[:0], plainjson.AppendString)
	if k.Secret != "" {
		w.str("key", k.Secret)
	}
	w.close('}')
}

// AppendJSON appends v as compact JSON, as encoding/json writes it.
func (v *Verification) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"valid":`...)
	if v.Valid {
		dst = append(dst, "true"...)
	} else {
		dst = append(dst, "false"...)
	}
	dst = append(dst, `,"code":`...)
	dst = plainjson.AppendString(dst, v.Code)
	dst = append(dst, `,"key":`...)
	if v.Key == nil {
		dst = append(dst, "null"...)
	} else {
		dst = v.Key.AppendJSON(dst)
	}
	dst = append(dst, `,"missing_scopes":`...)
	if v.MissingScopes == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, s := range v.MissingScopes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = plainjson.AppendString(dst, s)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}
