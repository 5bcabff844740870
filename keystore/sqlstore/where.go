// Package sqlstore holds the SQL that the SQLite and PostgreSQL stores
// share: the WHERE clauses of the key and audit filters, written once with
// ? placeholders over the schema both stores keep, and numbered for the
// stores that want $1, $2, ….
package sqlstore

import (
	"strconv"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Dialect is what the two stores' SQL says differently. Each condition it
// makes marks its arguments with ?, in the order it returns them.
type Dialect struct {
	// Numbered asks for $1, $2, … instead of ?.
	Numbered bool
	// Time is a time as the columns hold it.
	Time func(time.Time) any
	// JSONText is the text of a field of a JSON column, written as the
	// column's index on it is, so that the index serves.
	JSONText func(column, field string) string
	// AnyScope is the condition that a key holds one of scopes.
	AnyScope func(scopes []string) (string, []any)
	// HasMetadata is the condition that a key's metadata holds every pair
	// of m (checked already).
	HasMetadata func(m map[string]string) (string, []any, error)
	// IDPrefix is the condition that a key's ID starts with prefix
	// (checked already).
	IDPrefix func(prefix string) (string, []any)
}

// where gathers the conditions of a WHERE clause and their arguments.
type where struct {
	d     Dialect
	conds []string
	args  []any
}

// add adds cond, whose ? stand for args in order.
func (w *where) add(cond string, args ...any) {
	if n := strings.Count(cond, "?"); n != len(args) {
		panic("sqlstore: " + strconv.Itoa(n) + " placeholders for " + strconv.Itoa(len(args)) + " arguments in " + cond)
	}
	if w.d.Numbered {
		var b strings.Builder
		for i, part := range strings.Split(cond, "?") {
			if i > 0 {
				b.WriteString("$" + strconv.Itoa(len(w.args)+i))
			}
			b.WriteString(part)
		}
		cond = b.String()
	}
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// clause is " WHERE (c1) AND (c2) …", or "" without conditions.
func (w *where) clause() (string, []any, error) {
	if len(w.conds) == 0 {
		return "", nil, nil
	}
	return " WHERE (" + strings.Join(w.conds, ") AND (") + ")", w.args, nil
}

// ceilSecond rounds t up to a whole second: a column of whole seconds S
// is before t when S < ceilSecond(t), and at or after it when S >=
// ceilSecond(t).
func ceilSecond(t time.Time) time.Time {
	cut := t.Truncate(time.Second)
	if !cut.Equal(t) {
		cut = cut.Add(time.Second)
	}
	return cut
}

// Keys turns a key filter into a WHERE clause on the keys table and its
// arguments. The status conditions say what Key.StatusAt says, in SQL.
// EINVALID for a bad filter.
func Keys(d Dialect, f keystore.ListFilter, now time.Time) (string, []any, error) {
	w := &where{d: d}
	t := d.Time(now)
	switch f.Status {
	case "":
	case keystore.StatusRevoked:
		w.add("revoked_at IS NOT NULL")
	case keystore.StatusExpired:
		w.add("revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?", t)
	case keystore.StatusDisabled:
		w.add("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND disabled_at IS NOT NULL", t)
	case keystore.StatusActive:
		w.add("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND disabled_at IS NULL", t)
	default:
		return "", nil, keystore.Errorf(keystore.EINVALID, "unknown status %s (want active, disabled, expired or revoked)", keystore.Quote(f.Status))
	}
	if f.Environment != "" {
		if !keystore.ValidEnv(f.Environment) {
			return "", nil, keystore.Errorf(keystore.EINVALID, "unknown environment %s (want live or test)", keystore.Quote(f.Environment))
		}
		w.add("environment = ?", f.Environment)
	}
	if f.Scope != "" {
		scopes, err := keystore.FilterScopes(f.Scope)
		if err != nil {
			return "", nil, err
		}
		cond, args := d.AnyScope(scopes)
		w.add(cond, args...)
	}
	if err := keystore.CheckMetadataFilter(f.Metadata); err != nil {
		return "", nil, err
	}
	if len(f.Metadata) > 0 {
		cond, args, err := d.HasMetadata(f.Metadata)
		if err != nil {
			return "", nil, err
		}
		w.add(cond, args...)
	}
	if !f.CreatedBefore.IsZero() {
		w.add("created_at < ?", d.Time(ceilSecond(f.CreatedBefore)))
	}
	if f.Rotatable {
		w.add(`revoked_at IS NULL AND (delivery IS NULL OR delivery <> 'pending')
			AND (rotated_to IS NULL OR rotated_to IN
				(SELECT s.id FROM keys s WHERE s.delivery = 'pending' AND (s.revoked_at IS NOT NULL OR s.delivery_due IS NULL OR s.delivery_due <= ?)))`, t)
	}
	if f.Delivering {
		w.add(`rotated_to IN (SELECT s.id FROM keys s
			WHERE s.delivery = 'pending' AND s.revoked_at IS NULL AND s.delivery_due > ?)`, t)
	}
	if f.Revocable {
		w.add("revoked_at IS NULL")
	}
	if !f.ExpiringBefore.IsZero() {
		// Not yet expired, and expiring before the cut.
		w.add("revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at > ? AND expires_at < ?", t, d.Time(ceilSecond(f.ExpiringBefore)))
	}
	if f.IDPrefix != "" {
		if err := keystore.CheckIDPrefix(f.IDPrefix); err != nil {
			return "", nil, err
		}
		cond, args := d.IDPrefix(f.IDPrefix)
		w.add(cond, args...)
	}
	return w.clause()
}

// Events turns an event filter into a WHERE clause on the audit_events
// table and its arguments. EINVALID for a bad filter.
func Events(d Dialect, f keystore.EventFilter) (string, []any, error) {
	if err := f.Validate(); err != nil {
		return "", nil, err
	}
	w := &where{d: d}
	if f.KeyID != "" {
		// The key's events, and the rotation that made it.
		w.add("key_id = ? OR (action = 'rotate' AND "+d.JSONText("details", "new_key_id")+" = ?)", f.KeyID, f.KeyID)
	}
	if !f.Since.IsZero() {
		w.add("at >= ?", d.Time(ceilSecond(f.Since)))
	}
	if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	return w.clause()
}
