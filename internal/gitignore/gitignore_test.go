package gitignore

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		isDir   bool
		ignored bool
	}{
		{"*.log", "a.log", false, true},
		{"*.log", "x/y/a.log", false, true},
		{"*.log", "a.logs", false, false},
		{"/build", "build", true, true},
		{"/build", "x/build", true, false},
		{"build/", "x/build", true, true},
		{"build/", "x/build", false, false},
		{"doc/*.txt", "doc/a.txt", false, true},
		{"doc/*.txt", "doc/x/a.txt", false, false},
		{"doc/*.txt", "y/doc/a.txt", false, false},
		{"**/foo", "a/b/foo", false, true},
		{"**/foo", "foo", false, true},
		{"a/**/b", "a/b", false, true},
		{"a/**/b", "a/x/y/b", false, true},
		{"abc/**", "abc/x/y", false, true},
		{"abc/**", "abc", true, false},
		{"?.c", "a.c", false, true},
		{"?.c", "ab.c", false, false},
		{"[a-c].go", "b.go", false, true},
		{"[!a-c].go", "d.go", false, true},
		{"[!a-c].go", "a.go", false, false},
		{`\#x`, "#x", false, true},
		{`\!x`, "!x", false, true},
		{"trailing   ", "trailing", false, true},
		{`sp\ `, "sp ", false, true},
		{"a.*", "a.b.c", false, true},
	}
	for _, tt := range tests {
		p, ok := ParsePattern(tt.pattern)
		if !ok {
			t.Fatalf("pattern %q not parsed", tt.pattern)
		}
		f := &File{patterns: []Pattern{p}}
		if _, ignored := f.Match(tt.path, tt.isDir); ignored != tt.ignored {
			t.Errorf("%q on %q (dir %v): ignored %v, want %v", tt.pattern, tt.path, tt.isDir, ignored, tt.ignored)
		}
	}
	for _, bad := range []string{"", "   ", "# comment", "[abc", "!", "/"} {
		if _, ok := ParsePattern(bad); ok {
			t.Errorf("%q parsed as a pattern", bad)
		}
	}
}

// TestAgainstGit compares the files a walk keeps with those git lists as
// not ignored.
func TestAgainstGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	files := map[string]string{
		".gitignore":             "*.log\n!keep.log\n/out/\nsecret*\n!secret.md\n# c\nnode_modules\ndocs/**/draft\n",
		"a.go":                   "",
		"x.log":                  "",
		"keep.log":               "",
		"sub/keep.log":           "",
		"sub/y.log":              "",
		"out/a.txt":              "",
		"sub/out/a.txt":          "",
		"secret.txt":             "",
		"secret.md":              "",
		"node_modules/m/i.js":    "",
		"sub/node_modules/x.js":  "",
		"docs/a/b/draft":         "",
		"docs/draft":             "",
		"docs/a/ok":              "",
		"sub/.gitignore":         "*.txt\n!out/\n!keep.txt\n/local\n",
		"sub/keep.txt":           "",
		"sub/other.txt":          "",
		"sub/local/f":            "",
		"sub/deeper/local/f":     "",
		"sub/deeper/.gitignore":  "!other.txt\n",
		"sub/deeper/other.txt":   "",
		"sub/deeper/more.txt":    "",
		"weird name[1].c":        "",
		"space dir/file.go":      "",
		"space dir/.gitignore":   "file.*\n",
		"space dir/file.go.orig": "",
		"space dir/f2.go":        "",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("git", "init", "-q", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	cmd = exec.Command("git", "-c", "core.quotePath=false", "ls-files", "--others", "--exclude-standard")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), " ", "\x00"))
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], "\x00", " ")
	}
	got := walk(t, dir, "", nil)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("walk kept\n  %q\ngit keeps\n  %q", got, want)
	}
}

func walk(t *testing.T, root, rel string, s *Stack) []string {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	if f, err := os.Open(filepath.Join(dir, ".gitignore")); err == nil {
		g, err := Parse(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		s = s.Push(rel, g)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		p := e.Name()
		if rel != "" {
			p = rel + "/" + p
		}
		if e.Name() == ".git" || s.Ignored(p, e.IsDir()) {
			continue
		}
		if e.IsDir() {
			out = append(out, walk(t, root, p, s)...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"*.log", "!a/**/b/", `\#x[!a-z]?`, "[]]", "a\\", "**"} {
		f.Add(s, "a/b/c.log")
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		p, ok := ParsePattern(pattern)
		if !ok {
			return
		}
		// Any pattern that parses can be matched without a panic.
		f := &File{patterns: []Pattern{p}}
		f.Match(path, false)
		f.Match(path, true)
	})
}
