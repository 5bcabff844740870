// Package gitignore matches paths against the patterns of .gitignore files,
// as git does (gitignore(5)), for a walk that skips what git would ignore.
package gitignore

import (
	"bufio"
	"io"
	"regexp"
	"strings"
)

// Pattern is one line of a .gitignore file.
type Pattern struct {
	re      *regexp.Regexp
	negate  bool
	dirOnly bool
}

// File is the patterns of one .gitignore, for paths relative to the folder
// that holds it.
type File struct {
	patterns []Pattern
}

// Parse reads the patterns of a .gitignore file. A line that is not a
// valid pattern (an unclosed bracket) is skipped, as git does.
func Parse(r io.Reader) (*File, error) {
	f := &File{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if p, ok := ParsePattern(sc.Text()); ok {
			f.patterns = append(f.patterns, p)
		}
	}
	return f, sc.Err()
}

// ParsePattern parses one line; ok is false for a blank line, a comment or
// an invalid pattern.
func ParsePattern(line string) (Pattern, bool) {
	line = strings.TrimSuffix(line, "\r")
	line = trimTrailingSpaces(line)
	if line == "" || line[0] == '#' {
		return Pattern{}, false
	}
	var p Pattern
	switch {
	case line[0] == '!':
		p.negate = true
		line = line[1:]
	case strings.HasPrefix(line, `\!`), strings.HasPrefix(line, `\#`):
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		p.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return Pattern{}, false
	}
	// A slash at the start or in the middle anchors the pattern to the
	// folder of the .gitignore; otherwise it matches at any depth.
	anchored := strings.Contains(line, "/")
	line = strings.TrimPrefix(line, "/")
	var b strings.Builder
	b.WriteString("^")
	if !anchored {
		b.WriteString("(?:.*/)?")
	}
	if !translate(&b, line) {
		return Pattern{}, false
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return Pattern{}, false
	}
	p.re = re
	return p, true
}

// trimTrailingSpaces drops trailing spaces that are not escaped.
func trimTrailingSpaces(s string) string {
	for strings.HasSuffix(s, " ") && !strings.HasSuffix(s, `\ `) {
		s = s[:len(s)-1]
	}
	return s
}

// translate writes the regular expression of a glob.
func translate(b *strings.Builder, glob string) bool {
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case c == '*' && strings.HasPrefix(glob[i:], "**") && (i == 0 || glob[i-1] == '/'):
			rest := glob[i+2:]
			switch {
			case rest == "":
				b.WriteString(".*") // "foo/**": everything inside
				i++
			case rest[0] == '/':
				b.WriteString("(?:.*/)?") // "**/foo", "a/**/b": any folders
				i += 2
			default:
				b.WriteString("[^/]*")
				i++
			}
		case c == '*':
			for i+1 < len(glob) && glob[i+1] == '*' {
				i++
			}
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := classEnd(glob, i)
			if end < 0 {
				return false
			}
			class := glob[i+1 : end]
			b.WriteString("[")
			if strings.HasPrefix(class, "!") || strings.HasPrefix(class, "^") {
				b.WriteString("^/")
				class = class[1:]
			}
			for j := 0; j < len(class); j++ {
				switch ch := class[j]; ch {
				case '\\':
					if j+1 < len(class) {
						j++
						b.WriteString(regexp.QuoteMeta(string(class[j])))
					}
				case '[', ']', '^':
					b.WriteByte('\\')
					b.WriteByte(ch)
				default:
					b.WriteByte(ch)
				}
			}
			b.WriteString("]")
			i = end
		case c == '\\' && i+1 < len(glob):
			i++
			b.WriteString(regexp.QuoteMeta(string(glob[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return true
}

// classEnd returns the index of the ']' that closes the class opening at
// glob[i], or -1.
func classEnd(glob string, i int) int {
	j := i + 1
	if j < len(glob) && (glob[j] == '!' || glob[j] == '^') {
		j++
	}
	if j < len(glob) && glob[j] == ']' {
		j++ // a ']' first is a member
	}
	for ; j < len(glob); j++ {
		switch glob[j] {
		case '\\':
			j++
		case ']':
			return j
		}
	}
	return -1
}

// Match reports whether the file's patterns decide about path (relative to
// the .gitignore's folder, with forward slashes), and whether they ignore
// it: the last pattern that matches decides.
func (f *File) Match(path string, isDir bool) (matched, ignored bool) {
	for i := len(f.patterns) - 1; i >= 0; i-- {
		p := f.patterns[i]
		if p.dirOnly && !isDir {
			continue
		}
		if p.re.MatchString(path) {
			return true, !p.negate
		}
	}
	return false, false
}

// Stack is the .gitignore files that apply in a folder: those of the
// folder and of each folder above it, up to the walk's root. A deeper
// file's patterns take precedence.
type Stack struct {
	parent *Stack
	dir    string // relative to the walk's root, "" for the root
	file   *File
}

// Push returns the stack for a subfolder dir (relative to the walk's root)
// whose .gitignore is f; f may be nil.
func (s *Stack) Push(dir string, f *File) *Stack {
	if f == nil || len(f.patterns) == 0 {
		return s
	}
	return &Stack{parent: s, dir: dir, file: f}
}

// Ignored reports whether path (relative to the walk's root, forward
// slashes) is ignored.
func (s *Stack) Ignored(path string, isDir bool) bool {
	for ; s != nil; s = s.parent {
		if s.file == nil {
			continue
		}
		rel := path
		if s.dir != "" {
			if !strings.HasPrefix(path, s.dir+"/") {
				continue
			}
			rel = path[len(s.dir)+1:]
		}
		if matched, ignored := s.file.Match(rel, isDir); matched {
			return ignored
		}
	}
	return false
}
