package commands

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/output"
)

// go test ./commands -run 'TestCompletionsCurrent|TestManPagesCurrent' -update
// rewrites the committed completion scripts and man pages.
var update = flag.Bool("update", false, "rewrite completions/ and docs/man/")

var completionFiles = map[string]string{
	"bash":       "keyctl.bash",
	"zsh":        "_keyctl",
	"fish":       "keyctl.fish",
	"powershell": "keyctl.ps1",
}

func TestCompletionsCurrent(t *testing.T) {
	root := NewCmdRoot(testFactory(false))
	for shell, file := range completionFiles {
		var buf bytes.Buffer
		if err := writeCompletion(root, shell, &buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "completions", file)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s is stale (err %v): run go test ./commands -run TestCompletionsCurrent -update", path, err)
		}
	}
}

// manHeader has a fixed date so that the pages are reproducible.
var manHeader = &doc.GenManHeader{
	Title:   "KEYCTL",
	Section: "1",
	Source:  "keyctl",
	Manual:  "keyctl manual",
	Date:    ptr(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
}

func TestManPagesCurrent(t *testing.T) {
	dir := t.TempDir()
	root := NewCmdRoot(testFactory(false))
	root.DisableAutoGenTag = true
	if err := doc.GenManTree(root, manHeader, dir); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("..", "docs", "man")
	if *update {
		if err := os.RemoveAll(want); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(want, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		return
	}
	generated, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	committed, _ := filepath.Glob(filepath.Join(want, "*.1"))
	if len(generated) != len(committed) {
		t.Errorf("docs/man has %d pages, the command tree makes %d: run go test ./commands -run TestManPagesCurrent -update", len(committed), len(generated))
	}
	for _, g := range generated {
		name := filepath.Base(g)
		a, _ := os.ReadFile(g)
		b, err := os.ReadFile(filepath.Join(want, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("docs/man/%s is stale: run go test ./commands -run TestManPagesCurrent -update", name)
		}
	}
}

func TestBashLoadsCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on this machine")
	}
	out, err := exec.Command(bash, "-c", "source ../completions/keyctl.bash && complete -p keyctl").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "keyctl") {
		t.Fatalf("bash could not load the completion script: %v\n%s", err, out)
	}
}

// complete runs cobra's hidden __complete command as the shells do.
func complete(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	io := output.Test(strings.NewReader(""), &out, &errOut)
	if code := run(io, func() time.Time { return testNow }, append([]string{"__complete"}, args...)); code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errOut.String())
	}
	return out.String()
}

func TestDynamicCompletion(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	storePath := filepath.Join(dir, "keys.db")
	store, err := sqlite.Open(storePath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.Create(t.Context(), keystore.CreateParams{Name: "Completed", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()

	got := complete(t, "--store", storePath, "show", "")
	if !strings.Contains(got, k.ID+"\tCompleted (active)") {
		t.Errorf("show completion = %q, want %s with its name and status", got, k.ID)
	}
	if got := complete(t, "--store", storePath, "show", k.ID, ""); strings.Contains(got, k.ID) {
		t.Errorf("show offered an ID already on the line: %q", got)
	}
	// The default store does not exist: nothing offered, nothing created.
	if got := complete(t, "revoke", ""); strings.Contains(got, "key_") {
		t.Errorf("completion against a missing store offered %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "keyctl", "keys.db")); err == nil {
		t.Error("completion created the default store")
	}

	// --profile on the line is honoured.
	cfg := filepath.Join(dir, "config", "keyctl", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("profiles:\n  mine:\n    store: "+storePath+"\n  other: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := complete(t, "--profile", "mine", "rotate", ""); !strings.Contains(got, k.ID) {
		t.Errorf("rotate completion with --profile = %q, want %s", got, k.ID)
	}
	if got := complete(t, "audit", "--profile", "mine", "--key", ""); !strings.Contains(got, k.ID) {
		t.Errorf("audit --key completion with --profile after the command = %q, want %s", got, k.ID)
	}
	if got := complete(t, "--profile", "other", "show", ""); strings.Contains(got, k.ID) {
		t.Errorf("show completion with --profile other = %q: it offered the keys of another store", got)
	}
	if got := complete(t, "--profile", ""); !strings.Contains(got, "mine\n") || !strings.Contains(got, "other\n") {
		t.Errorf("--profile completion = %q, want mine and other", got)
	}
	for flagLine, want := range map[string]string{
		"list --status":           "revoked",
		"list --env":              "test",
		"create --scope":          "bots:*",
		"list -o":                 "jsonl",
		"verify-webhook --scheme": "stripe",
	} {
		args := append(strings.Fields(flagLine), "")
		if got := complete(t, args...); !strings.Contains(got, want+"\n") {
			t.Errorf("completion of %s = %q, want %s", flagLine, got, want)
		}
	}
}

// TestScanRecipesInREADME holds the README's pre-commit hook and CI scan
// step equal to what testdata/script/scan_git.txtar runs.
func TestScanRecipesInREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "script", "scan_git.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	section := func(name string) string {
		_, after, ok := strings.Cut(string(script), "-- "+name+" --\n")
		if !ok {
			t.Fatalf("scan_git.txtar has no %s", name)
		}
		body, _, _ := strings.Cut(after, "\n-- ")
		return strings.TrimSpace(body)
	}
	doc := string(readme)
	if hook := section("hook/pre-commit"); !strings.Contains(doc, "```sh\n"+hook+"\n```") {
		t.Errorf("README's pre-commit hook differs from the one scan_git.txtar runs:\n%s", hook)
	}
	var indented []string
	for _, l := range strings.Split(section("ci.sh"), "\n") {
		indented = append(indented, "          "+l)
	}
	if ci := strings.Join(indented, "\n"); !strings.Contains(doc, "        run: |\n"+ci+"\n") {
		t.Errorf("README's CI scan step differs from the one scan_git.txtar runs:\n%s", ci)
	}
}
