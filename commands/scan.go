package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/internal/gitignore"
	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// ScanOptions are the inputs of keyctl scan.
type ScanOptions struct {
	f *Factory

	Paths    []string
	Git      bool
	NoIgnore bool
	MaxSize  string
	Offline  bool
	Revoke   bool
	Yes      bool
	Verbose  bool

	maxBytes int64
}

// Statuses of a finding.
const (
	scanLive      = "live"
	scanRevoked   = "revoked"
	scanExpired   = "expired"
	scanUnknown   = "unknown"   // no key of the store has this secret
	scanUnchecked = "unchecked" // no store to ask
)

// finding is one key found. The secret stays in memory, for the store's
// lookup and --revoke; it is never printed.
type finding struct {
	Path        string  `json:"path"`
	Line        int     `json:"line"`
	Column      int     `json:"column"`
	Commit      string  `json:"commit,omitempty"`
	Hint        string  `json:"hint"`
	Environment string  `json:"environment"`
	Status      string  `json:"status"`
	KeyID       *string `json:"key_id"`
	KeyName     *string `json:"key_name"`

	secret string
}

// place is where a finding is, as path:line:column or commit:path:line.
func (fd *finding) place() string {
	if fd.Commit != "" {
		return fmt.Sprintf("%s:%s:%d", fd.Commit, fd.Path, fd.Line)
	}
	return fmt.Sprintf("%s:%d:%d", fd.Path, fd.Line, fd.Column)
}

// NewCmdScan builds keyctl scan.
func NewCmdScan(f *Factory, runF func(*ScanOptions) error) *cobra.Command {
	opts := &ScanOptions{f: f}
	cmd := &cobra.Command{
		Use:   "scan [PATH...]",
		Short: "Find leaked API keys in files, standard input or git history",
		Long: `Find keyctl secrets (sk_live_… and sk_test_…) in files and folders, in standard
input (-) or, with --git, in every commit of a repository's history (all refs).
A key is recognized by its prefix and its checksum, so a string that merely
looks like a key is not reported (-v says how many were dropped). Keys are
found inside URLs, JSON and base64 text, and when broken over two lines.

Folders are walked recursively, honouring .gitignore files (--no-ignore scans
everything) and skipping .git folders, binary files, files over --max-size and
symbolic links, which are never followed. Files named on the line are always
scanned. With no PATH, scan walks the current folder.

Each finding shows where it is (path:line:column, or commit:path:line with
--git) and the key's hint, never the secret. When a store is configured (the
default store file exists, or --store or --api-url is given) keyctl looks each
key up by the SHA-256 of its secret and tells whether it is live, revoked,
expired or unknown to the store; --offline skips that.

--revoke revokes every live key found, after asking on a terminal (--yes
elsewhere); the audit log records actor "scan" and where each key was found.

-o json, jsonl or sarif (SARIF 2.1.0, for code-scanning uploads).

Exit status: 0 nothing found (or only keys that are not live); 3 a live key
found, or, without a store, any key found; 1 and 2 as usual.`,
		Annotations: map[string]string{"store": "existing"},
		Example: `  keyctl scan
  keyctl scan src/ config/app.yaml
  git diff --cached | keyctl scan -
  keyctl scan --git -o sarif > keyctl.sarif
  keyctl scan --revoke --yes logs/`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if len(opts.Paths) == 0 {
				opts.Paths = []string{"."}
			}
			n, err := parseSize(opts.MaxSize)
			if err != nil {
				return err
			}
			opts.maxBytes = n
			if opts.Git && len(args) > 1 {
				return withHint(usageError("--git scans one repository, got %d paths", len(args)), "keyctl scan --git [REPO]")
			}
			if opts.Git && slices.Contains(opts.Paths, "-") {
				return usageError("--git reads a repository, not standard input")
			}
			if opts.Revoke && opts.Offline {
				return usageError("--revoke needs the store: it cannot be used with --offline")
			}
			if opts.Revoke && !opts.Yes && !f.IO.CanPrompt() {
				return withHint(usageError("scan --revoke needs --yes when not run on a terminal"), strings.TrimSpace("keyctl scan --revoke --yes "+strings.Join(args, " ")))
			}
			if runF != nil {
				return runF(opts)
			}
			return scanRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Git, "git", false, "scan every commit of the repository at PATH (all refs) instead of its files")
	fl.BoolVar(&opts.NoIgnore, "no-ignore", false, "also scan what .gitignore files exclude")
	fl.StringVar(&opts.MaxSize, "max-size", "10MiB", "skip files larger than this (bytes, or with KiB, MiB, GiB)")
	fl.BoolVar(&opts.Offline, "offline", false, "do not look the keys up in the store")
	fl.BoolVar(&opts.Revoke, "revoke", false, "revoke every live key found")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "with --revoke: revoke without asking")
	fl.BoolVarP(&opts.Verbose, "verbose", "v", false, "say on stderr what was skipped and how many look-alikes were dropped")
	return cmd
}

// parseSize reads a byte count such as 512, 64KiB, 10MiB or 1GiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, withHint(usageError("invalid --max-size %s", keystore.Quote(s)), "give a positive size such as 1048576, 512KiB or 10MiB")
	}
	return n * mult, nil
}

// scanFile is a file opened for scanning (scan_open_*.go).
type scanFile interface {
	io.ReadCloser
	// Size is the file's size, and whether it is a regular file.
	Size() (int64, bool, error)
}

// scanStats counts what a scan skipped.
type scanStats struct {
	dropped, binary, large, links, unreadable int
}

func scanRun(ctx context.Context, opts *ScanOptions) error {
	f := opts.f
	var (
		findings []*finding
		stats    scanStats
	)
	collect := func(fd *finding) error {
		findings = append(findings, fd)
		return nil
	}
	var err error
	if opts.Git {
		err = scanGit(ctx, opts, &stats, collect)
	} else {
		err = scanPaths(ctx, opts, &stats, collect)
	}
	if err != nil {
		return err
	}
	if opts.Verbose {
		notice(f.IO.ErrOut, "%d found, %d look-alikes dropped (checksum), skipped: %d binary, %d over %s, %d symbolic links, %d unreadable",
			len(findings), stats.dropped, stats.binary, stats.large, opts.MaxSize, stats.links, stats.unreadable)
	}

	store, err := scanStore(opts)
	if err != nil {
		return err
	}
	if err := judgeFindings(ctx, store, findings); err != nil {
		return err
	}
	live := 0
	for _, fd := range findings {
		if fd.Status == scanLive || fd.Status == scanUnchecked {
			live++
		}
	}
	if err := printFindings(f, findings); err != nil {
		return err
	}
	if opts.Revoke {
		if err := revokeFound(ctx, opts, store, findings); err != nil {
			return err
		}
	}
	if live > 0 {
		return &silentError{code: exitVerifyFailed}
	}
	return nil
}

// scanStore is the store to judge findings with, or nil when none is
// configured: the default store file does not exist. scan never creates a
// store file; one named with --store (or KEYCTL_STORE, or the config)
// that does not exist is an error.
func scanStore(opts *ScanOptions) (keystore.Store, error) {
	f := opts.f
	s := f.Settings
	if opts.Offline {
		return nil, nil
	}
	if s.APIURL == "" && s.StoreFrom == "" && !exists(s.StorePath) {
		return nil, nil
	}
	return f.Store()
}

// judgeFindings sets each finding's status from the store (one lookup per
// distinct key), or unchecked without a store.
func judgeFindings(ctx context.Context, store keystore.Store, findings []*finding) error {
	type verdict struct {
		status   string
		id, name *string
	}
	seen := map[string]verdict{}
	for _, fd := range findings {
		if store == nil {
			fd.Status = scanUnchecked
			continue
		}
		v, ok := seen[fd.secret]
		if !ok {
			k, err := store.Lookup(ctx, keystore.HashToken(fd.secret))
			switch {
			case keystore.ErrorCode(err) == keystore.ENOTFOUND:
				v.status = scanUnknown
			case err != nil:
				return fmt.Errorf("look up key %s: %w", fd.Hint, err)
			default:
				v.id, v.name = &k.ID, &k.Name
				switch k.Status {
				case keystore.StatusActive:
					v.status = scanLive
				case keystore.StatusRevoked:
					v.status = scanRevoked
				case keystore.StatusExpired:
					v.status = scanExpired
				default:
					v.status = k.Status // a status of a newer store: not live
				}
			}
			seen[fd.secret] = v
		}
		fd.Status, fd.KeyID, fd.KeyName = v.status, v.id, v.name
	}
	return nil
}

func printFindings(f *Factory, findings []*finding) error {
	p := f.printer()
	switch p.format {
	case formatSARIF:
		return writeSARIF(f.IO.Out, findings)
	case output.FormatTable:
		if len(findings) == 0 {
			if f.IO.IsStderrTTY() {
				fmt.Fprintln(f.IO.ErrOut, "no keys found")
			}
			return nil
		}
		t := f.IO.NewTable("PLACE", "HINT", "STATUS", "KEY")
		for _, fd := range findings {
			place := fd.place()
			if fd.Commit != "" && f.IO.IsStdoutTTY() {
				place = fd.Commit[:min(12, len(fd.Commit))] + place[len(fd.Commit):]
			}
			key := ""
			if fd.KeyID != nil {
				key = *fd.KeyID + " (" + *fd.KeyName + ")"
			}
			status := fd.Status
			if status == scanLive {
				status = f.IO.Colorize(keystore.StatusRevoked, status) // red: act on it
			}
			t.Row(place, fd.Hint, status, key)
		}
		return t.Render()
	}
	items := make([]any, len(findings))
	for i, fd := range findings {
		items[i] = fd
	}
	return p.json(items)
}

// revokeFound revokes the live keys found, once each, after asking.
func revokeFound(ctx context.Context, opts *ScanOptions, store keystore.Store, findings []*finding) error {
	f := opts.f
	var (
		ids    []string
		places = map[string][]string{}
		names  = map[string]string{}
	)
	for _, fd := range findings {
		if fd.Status != scanLive {
			continue
		}
		id := *fd.KeyID
		if _, ok := places[id]; !ok {
			ids = append(ids, id)
			names[id] = *fd.KeyName
		}
		places[id] = append(places[id], fd.place())
	}
	if len(ids) == 0 {
		if f.IO.IsStderrTTY() {
			fmt.Fprintln(f.IO.ErrOut, "no live key to revoke")
		}
		return nil
	}
	if !opts.Yes {
		list := make([]string, len(ids))
		for i, id := range ids {
			list[i] = fmt.Sprintf("%s (%s)", id, names[id])
		}
		fmt.Fprintf(f.IO.ErrOut, "Revoke %d live key(s) found: %s? Clients using them stop working at once. [y/N] ", len(ids), strings.Join(list, ", "))
		answer, _ := bufio.NewReader(f.IO.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(f.IO.ErrOut, "nothing revoked")
			return &silentError{code: exitError}
		}
	}
	actx := keystore.WithActor(ctx, "scan")
	for _, id := range ids {
		found := places[id]
		if len(found) > 20 {
			found = append(found[:20:20], fmt.Sprintf("and %d more", len(places[id])-20))
		}
		dctx := keystore.WithAuditDetails(actx, map[string]any{"found_at": found, "by": localActor()})
		if _, err := store.Revoke(dctx, id); err != nil {
			return fmt.Errorf("revoke key %s: %w", id, err)
		}
		notice(f.IO.ErrOut, "revoked %s (%s), found at %s", id, names[id], strings.Join(found, ", "))
	}
	return nil
}

// scanPaths scans the files and folders of opts.Paths, and standard input
// for "-", calling emit for each finding in the order of the walk. Workers
// scan batches of files in parallel; the batches are reported in order.
func scanPaths(ctx context.Context, opts *ScanOptions, stats *scanStats, emit func(*finding) error) error {
	workers := max(1, runtime.GOMAXPROCS(0))
	type item struct {
		path    string // to open
		display string // to report
		walked  bool   // found by the walk, not named on the line
		found   []*finding
		dropped int
		skip    *int // the counter of stats a skip adds to
		err     error
	}
	// A batch of files is one handover between goroutines: one per file
	// cost more than scanning a small file.
	const batchSize = 64
	type batch struct {
		items []item
		done  chan struct{}
	}
	ordered := make(chan *batch, 64)
	work := make(chan *batch, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	scanOne := func(ls *keystore.LeakScanner, it *item) {
		fh, err := openScanFile(it.path, it.walked)
		if err != nil {
			it.skip, it.err = &stats.unreadable, err
			return
		}
		defer fh.Close()
		if size, regular, err := fh.Size(); err == nil && regular && size > opts.maxBytes {
			it.skip = &stats.large
			return
		}
		before := ls.Dropped
		// The limit holds for a file that grew since, or is not regular.
		lr := &io.LimitedReader{R: fh, N: opts.maxBytes + 1}
		err = ls.Scan(lr, func(l keystore.Leak) error {
			it.found = append(it.found, newFinding(it.display, l))
			return nil
		})
		it.dropped = ls.Dropped - before
		switch {
		case errors.Is(err, keystore.ErrBinary):
			it.skip = &stats.binary
		case err == nil && lr.N == 0:
			it.skip, it.found, it.dropped = &stats.large, nil, 0
		case err != nil:
			it.skip, it.err = &stats.unreadable, err
		}
	}
	for range workers {
		go func() {
			ls := &keystore.LeakScanner{SkipBinary: true}
			for b := range work {
				for i := range b.items {
					if ctx.Err() != nil {
						break
					}
					scanOne(ls, &b.items[i])
				}
				close(b.done)
			}
		}()
	}

	walkErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(work)
		var cur *batch
		flush := func() bool {
			if cur == nil {
				return true
			}
			b := cur
			cur = nil
			select {
			case ordered <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- b:
				return true
			case <-ctx.Done():
				close(b.done)
				return false
			}
		}
		send := func(path, display string, walked bool) bool {
			if cur == nil {
				cur = &batch{items: make([]item, 0, batchSize), done: make(chan struct{})}
			}
			cur.items = append(cur.items, item{path: path, display: display, walked: walked})
			if len(cur.items) == batchSize {
				return flush()
			}
			return true
		}
		for _, p := range opts.Paths {
			if p == "-" {
				continue // read below, in order
			}
			if err := walkPath(ctx, p, opts.NoIgnore, stats, send); err != nil {
				walkErr <- err
				return
			}
		}
		flush()
		walkErr <- nil
	}()

	for b := range ordered {
		<-b.done
		if ctx.Err() != nil {
			break
		}
		for i := range b.items {
			it := &b.items[i]
			stats.dropped += it.dropped
			if it.skip != nil {
				*it.skip++
				if opts.Verbose && it.err != nil {
					notice(opts.f.IO.ErrOut, "skipped %s: %s", it.display, oneLine(it.err.Error()))
				}
			}
			for _, fd := range it.found {
				if err := emit(fd); err != nil {
					return err
				}
			}
		}
	}
	if err := <-walkErr; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if slices.Contains(opts.Paths, "-") {
		ls := &keystore.LeakScanner{}
		err := ls.Scan(opts.f.IO.In, func(l keystore.Leak) error { return emit(newFinding("-", l)) })
		stats.dropped += ls.Dropped
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
	}
	return nil
}

func newFinding(path string, l keystore.Leak) *finding {
	env, _ := keystore.ParseToken(l.Secret)
	return &finding{Path: path, Line: l.Line, Column: l.Column, Hint: keystore.Hint(l.Secret), Environment: env, secret: l.Secret}
}

// walkPath sends the files to scan under root, in lexical order. A file
// named on the line is scanned whatever .gitignore says; in a folder,
// symbolic links are skipped, never followed.
func walkPath(ctx context.Context, root string, noIgnore bool, stats *scanStats, send func(path, display string, walked bool) bool) error {
	info, err := os.Stat(root)
	if err != nil {
		return usageError("cannot scan %s: %s", root, oneLine(errors.Unwrap(err).Error()))
	}
	if !info.IsDir() {
		send(root, filepath.ToSlash(root), false)
		return nil
	}
	var walk func(dir, rel string, ign *gitignore.Stack) error
	walk = func(dir, rel string, ign *gitignore.Stack) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			stats.unreadable++
			return nil
		}
		if !noIgnore {
			if fh, err := os.Open(filepath.Join(dir, ".gitignore")); err == nil {
				g, err := gitignore.Parse(fh)
				fh.Close()
				if err == nil {
					ign = ign.Push(rel, g)
				}
			}
		}
		for _, e := range entries {
			name := e.Name()
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			typ := e.Type()
			switch {
			case typ&fs.ModeSymlink != 0:
				stats.links++
				continue
			case e.IsDir() && name == ".git":
				continue
			case !e.IsDir() && !typ.IsRegular():
				continue // sockets, devices, pipes
			}
			if !noIgnore && ign.Ignored(r, e.IsDir()) {
				continue
			}
			path := filepath.Join(dir, name)
			if e.IsDir() {
				if err := walk(path, r, ign); err != nil {
					return err
				}
				continue
			}
			if !send(path, displayPath(root, path), true) {
				return ctx.Err()
			}
		}
		return nil
	}
	return walk(root, "", nil)
}

// displayPath is path as the user would type it: relative to the current
// folder when root was, with forward slashes.
func displayPath(root, path string) string {
	if root == "." {
		return filepath.ToSlash(strings.TrimPrefix(path, "."+string(filepath.Separator)))
	}
	return filepath.ToSlash(path)
}
