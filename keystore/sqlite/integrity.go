package sqlite

import (
	"context"
	"fmt"
	"strings"
	"sync"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chatbotplatform/keyctl/keystore"
)

// fullCheckPages is the size, in pages, up to which the first write of a
// process runs PRAGMA integrity_check, which also checks that every index
// agrees with its table; a larger store gets PRAGMA quick_check, which
// checks every page, record and free list in one pass but not the indexes'
// contents, at a fraction of the cost. At 4 KiB pages that is 4 MiB, some
// 10,000 keys (BENCHMARKS.md, figures behind the code, gives the times).
const fullCheckPages = 1024

// DamagedError is the error of a write to a store that SQLite's integrity
// check calls damaged: nothing was written. Its code is EUNAVAILABLE.
type DamagedError struct {
	Path    string // the store, as the user named it
	Problem string // the check's first finding
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store %s is damaged (%s): keyctl writes nothing to it", e.Path, e.Problem)
}

// Unwrap gives the error its code for keystore.ErrorCode.
func (e *DamagedError) Unwrap() error {
	return &keystore.Error{Code: keystore.EUNAVAILABLE, Message: e.Error()}
}

// RecoveryHint says how to get a damaged store's keys back.
func (e *DamagedError) RecoveryHint() string {
	return fmt.Sprintf(`restore a backup, or recover what it holds: sqlite3 %s ".recover" | sqlite3 recovered.db, then keyctl --store recovered.db list`, e.Path)
}

// integrity runs the check once per Store: before its first write, so that
// a process that only reads pays nothing, and a damaged store is not made
// worse (a write into a broken b-tree can spread the damage).
type integrity struct {
	mu   sync.Mutex
	done bool
	err  error
}

// checkBeforeWrite returns the result of the store's integrity check,
// running it on first use. A check cut short by ctx is run again next time.
func (s *Store) checkBeforeWrite(ctx context.Context) error {
	in := &s.integrity
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.done {
		in.err = s.checkIntegrity(ctx)
		in.done = ctx.Err() == nil
	}
	return in.err
}

func (s *Store) checkIntegrity(ctx context.Context) error {
	var pages int64
	if err := s.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return s.damagedOr(ctx, err)
	}
	check := "PRAGMA quick_check(1)"
	if pages <= fullCheckPages {
		check = "PRAGMA integrity_check(1)"
	}
	var result string
	if err := s.db.QueryRowContext(ctx, check).Scan(&result); err != nil {
		return s.damagedOr(ctx, err)
	}
	if result != "ok" {
		return &DamagedError{Path: s.path, Problem: firstLine(result)}
	}
	return nil
}

// damagedOr turns an error of the check itself into a DamagedError when
// SQLite found the file corrupt on the way.
func (s *Store) damagedOr(ctx context.Context, err error) error {
	if ctx.Err() == nil && (resultCode(err) == sqlite3.SQLITE_CORRUPT || resultCode(err) == sqlite3.SQLITE_NOTADB) {
		return &DamagedError{Path: s.path, Problem: firstLine(err.Error())}
	}
	return s.fail(ctx, "check store", err)
}

// firstLine is the first finding of a check: its first line that is not
// a heading such as "*** in database main ***".
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "***") {
			return keystore.Truncate(line, 200)
		}
	}
	return "no detail"
}
