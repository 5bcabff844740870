package commands

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/chatbotplatform/keyctl/keystore"
)

// scanGit scans every commit reachable from any ref of the repository at
// opts.Paths[0]: the lines each commit added, from one `git log -p`, so
// that each line of history is read once however many commits keep it. A
// finding names the commit that added the key, the file and its line there.
func scanGit(ctx context.Context, opts *ScanOptions, stats *scanStats, emit func(*finding) error) error {
	repo := opts.Paths[0]
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("scan --git needs the git command: %w", err)
	}
	check := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--git-dir")
	if out, err := check.CombinedOutput(); err != nil {
		return withHint(usageError("%s is not a git repository: %s", repo, oneLine(strings.TrimSpace(string(out)))), "keyctl scan --git [REPO]")
	}
	cmd := exec.CommandContext(ctx, "git", "-C", repo,
		"-c", "core.quotePath=false", "-c", "diff.noprefix=false",
		"log", "--all", "-p", "-U0", "--no-color", "--no-ext-diff", "--no-textconv",
		"--no-renames", "--format=%x00%H")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run git log: %w", err)
	}
	perr := parseGitLog(bufio.NewReaderSize(out, 64<<10), stats, emit)
	if perr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return perr
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("git log in %s: %s", repo, oneLine(strings.TrimSpace(stderr.String())))
	}
	return nil
}

// parseGitLog reads the output of git log -p -U0 --format=%x00%H and scans
// the lines each commit added.
func parseGitLog(br *bufio.Reader, stats *scanStats, emit func(*finding) error) error {
	var (
		commit, path string
		ls           keystore.LeakScanner
	)
	defer func() { stats.dropped += ls.Dropped }()
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "\x00"):
			commit, path = strings.TrimPrefix(line, "\x00"), ""
		case strings.HasPrefix(line, "diff --git "):
			path = ""
		case strings.HasPrefix(line, "+++ "):
			path = diffPath(strings.TrimPrefix(line, "+++ "))
		case strings.HasPrefix(line, "@@ ") && path != "":
			removed, start, added, ok := hunkHeader(line)
			if !ok {
				continue
			}
			// -U0: the removed lines, then the added ones.
			for range removed {
				if err := skipLine(br); err != nil {
					return err
				}
			}
			if b, err := br.Peek(1); err == nil && b[0] == '\\' {
				skipLine(br) // "\ No newline at end of file"
			}
			hr := &hunkReader{br: br, lines: added}
			err := ls.Scan(hr, func(l keystore.Leak) error {
				fd := newFinding(path, l)
				fd.Commit, fd.Line = commit, start+l.Line-1
				return emit(fd)
			})
			if err != nil {
				return err
			}
			// What the scanner did not read of the hunk.
			if _, err := io.Copy(io.Discard, hr); err != nil {
				return err
			}
		}
	}
}

// readLine reads one line without its newline; a line longer than the
// reader's buffer is cut there (the rest reads as further lines, which the
// parser ignores outside a hunk).
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		err = nil
	}
	if len(b) == 0 && err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// diffPath reads the path of a "+++ " line: "b/path", a quoted "\"b/…\"",
// or /dev/null for a deleted file ("").
func diffPath(s string) string {
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
	}
	if s == "/dev/null" {
		return ""
	}
	return strings.TrimPrefix(s, "b/")
}

// hunkHeader reads "@@ -a[,b] +c[,d] @@": b lines removed, d lines added
// from line c.
func hunkHeader(line string) (removed, start, added int, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 || !strings.HasPrefix(fields[1], "-") || !strings.HasPrefix(fields[2], "+") {
		return 0, 0, 0, false
	}
	count := func(r string) (int, int, bool) {
		a, b, found := strings.Cut(r[1:], ",")
		first, err := strconv.Atoi(a)
		if err != nil {
			return 0, 0, false
		}
		n := 1
		if found {
			if n, err = strconv.Atoi(b); err != nil {
				return 0, 0, false
			}
		}
		return first, n, true
	}
	_, removed, ok1 := count(fields[1])
	start, added, ok2 := count(fields[2])
	return removed, start, added, ok1 && ok2
}

// hunkReader reads the added lines of a hunk, without their leading '+'.
type hunkReader struct {
	br      *bufio.Reader
	lines   int // added lines not yet begun
	inLine  bool
	pending []byte
}

var errBadHunk = errors.New("malformed git log output: a hunk line does not start with '+'")

func (h *hunkReader) Read(p []byte) (int, error) {
	for len(h.pending) == 0 {
		if !h.inLine {
			if h.lines == 0 {
				return 0, io.EOF
			}
			c, err := h.br.ReadByte()
			if err == io.EOF {
				return 0, io.ErrUnexpectedEOF
			}
			if err != nil {
				return 0, err
			}
			if c != '+' {
				return 0, errBadHunk
			}
			h.lines--
			h.inLine = true
		}
		b, err := h.br.ReadSlice('\n')
		switch err {
		case nil:
			h.inLine = false
		case bufio.ErrBufferFull:
		case io.EOF:
			h.inLine = false
			if len(b) == 0 {
				return 0, io.ErrUnexpectedEOF
			}
		default:
			return 0, err
		}
		h.pending = b
	}
	n := copy(p, h.pending)
	h.pending = h.pending[n:]
	return n, nil
}
