package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/output"
)

// runScan runs keyctl in-process with a private HOME and returns its exit
// status, stdout and stderr.
func runScan(t *testing.T, stdin string, tty bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	io := output.Test(strings.NewReader(stdin), &out, &errOut)
	io.SetTTY(tty)
	io.SetColor(false)
	code := run(io, time.Now, args)
	return code, out.String(), errOut.String()
}

func scanEnv(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	return dir
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func token(t *testing.T, env string) string {
	t.Helper()
	k, err := keystore.NewToken(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestScanSARIF checks the SARIF log against what SARIF 2.1.0 requires of
// the properties keyctl writes.
func TestScanSARIF(t *testing.T) {
	home := scanEnv(t)
	live, test := token(t, "live"), token(t, "test")
	tree := filepath.Join(home, "tree")
	writeFiles(t, tree, map[string]string{"a/b.txt": "x\n  " + live + "\n", "c.json": `{"k":"` + test + `"}`})
	code, out, _ := runScan(t, "", false, "scan", "--offline", "-o", "sarif", tree)
	if code != exitVerifyFailed {
		t.Fatalf("exit %d, want 3", code)
	}
	if strings.Contains(out, live) || strings.Contains(out, test) {
		t.Fatal("the SARIF log holds a secret")
	}
	var log map[string]any
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if log["version"] != "2.1.0" || !strings.Contains(fmt.Sprint(log["$schema"]), "sarif-2.1.0") {
		t.Fatalf("version %v, $schema %v", log["version"], log["$schema"])
	}
	runs := log["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	run := runs[0].(map[string]any)
	driver := run["tool"].(map[string]any)["driver"].(map[string]any)
	if driver["name"] != "keyctl" {
		t.Errorf("driver name %v", driver["name"])
	}
	var ruleIDs []string
	for _, r := range driver["rules"].([]any) {
		rule := r.(map[string]any)
		ruleIDs = append(ruleIDs, rule["id"].(string))
		if rule["shortDescription"].(map[string]any)["text"] == "" {
			t.Error("a rule without a short description")
		}
	}
	results := run["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	levels := []string{"none", "note", "warning", "error"}
	var uris []string
	for _, r := range results {
		res := r.(map[string]any)
		id := res["ruleId"].(string)
		idx := int(res["ruleIndex"].(float64))
		if idx < 0 || idx >= len(ruleIDs) || ruleIDs[idx] != id {
			t.Errorf("ruleId %s and ruleIndex %d disagree with the rules %q", id, idx, ruleIDs)
		}
		if !slices.Contains(levels, res["level"].(string)) {
			t.Errorf("level %v not a SARIF level", res["level"])
		}
		if res["message"].(map[string]any)["text"].(string) == "" {
			t.Error("a result without message text")
		}
		loc := res["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)
		uri := loc["artifactLocation"].(map[string]any)["uri"].(string)
		uris = append(uris, uri)
		region := loc["region"].(map[string]any)
		if region["startLine"].(float64) < 1 || region["startColumn"].(float64) < 1 {
			t.Errorf("region %v: lines and columns count from 1", region)
		}
		for k, v := range res["partialFingerprints"].(map[string]any) {
			if _, ok := v.(string); !ok || k == "" {
				t.Errorf("partialFingerprints %q: %v is not a string", k, v)
			}
		}
	}
	want := []string{filepath.ToSlash(filepath.Join(tree, "a/b.txt")), filepath.ToSlash(filepath.Join(tree, "c.json"))}
	if !slices.Equal(uris, want) {
		t.Errorf("uris %q, want %q (walk order)", uris, want)
	}
}

// TestScanWalk: symbolic links are not followed, out of the tree or in it;
// binary files and files over --max-size are skipped; findings come in the
// walk's order whatever the workers' timing.
func TestScanWalk(t *testing.T) {
	home := scanEnv(t)
	key := token(t, "live")
	outside := filepath.Join(home, "outside")
	tree := filepath.Join(home, "tree")
	files := map[string]string{
		"secret.txt": key,
		"big.txt":    strings.Repeat("x", 2000) + key,
		"bin.dat":    "\x00\x01" + key,
	}
	for i := range 300 {
		files[fmt.Sprintf("many/f%03d.txt", i)] = strings.Repeat("filler line\n", i%7) + key + "\n"
	}
	writeFiles(t, tree, files)
	writeFiles(t, outside, map[string]string{"leak.txt": key, "d/leak.txt": key})
	if err := os.Symlink(filepath.Join(outside, "leak.txt"), filepath.Join(tree, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "d"), filepath.Join(tree, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tree, "secret.txt"), filepath.Join(tree, "inner-link.txt")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runScan(t, "", false, "scan", "--offline", "-v", "--max-size", "1KiB", "-o", "jsonl", "--jq", ".path", tree)
	if code != exitVerifyFailed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := strings.Fields(out)
	var want []string
	for i := range 300 {
		want = append(want, filepath.ToSlash(filepath.Join(tree, fmt.Sprintf("many/f%03d.txt", i))))
	}
	want = append(want, filepath.ToSlash(filepath.Join(tree, "secret.txt")))
	if !slices.Equal(got, want) {
		t.Fatalf("found in %d files, want %d; first differences: got %q", len(got), len(want), got[:min(3, len(got))])
	}
	if !strings.Contains(errOut, "skipped: 1 binary, 1 over 1KiB, 3 symbolic links") {
		t.Errorf("stderr %q does not count the skips", errOut)
	}
	// A symbolic link named on the line is the user's choice: followed.
	code, out, _ = runScan(t, "", false, "scan", "--offline", filepath.Join(tree, "link.txt"))
	if code != exitVerifyFailed || !strings.Contains(out, "link.txt:1:1") {
		t.Errorf("named link: exit %d, %q", code, out)
	}
}

func TestScanRevokeAsks(t *testing.T) {
	home := scanEnv(t)
	store := filepath.Join(home, "keys.db")
	s, err := sqlite.Open(store, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Create(t.Context(), keystore.CreateParams{Name: "leaky", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	writeFiles(t, home, map[string]string{"tree/f.txt": "token " + k.Secret + "\n"})
	tree := filepath.Join(home, "tree")

	code, _, errOut := runScan(t, "n\n", true, "--store", store, "scan", "--revoke", tree)
	if code != exitError || !strings.Contains(errOut, "Revoke 1 live key(s) found: "+k.ID+" (leaky)?") || !strings.Contains(errOut, "nothing revoked") {
		t.Fatalf("answered no: exit %d, stderr %q", code, errOut)
	}
	status := func() string {
		s, err := sqlite.Open(store, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.Get(t.Context(), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	if st := status(); st != keystore.StatusActive {
		t.Fatalf("status %s after no", st)
	}
	code, _, errOut = runScan(t, "y\n", true, "--store", store, "scan", "--revoke", tree)
	if code != exitVerifyFailed || status() != keystore.StatusRevoked {
		t.Fatalf("answered yes: exit %d, status %s, stderr %q", code, status(), errOut)
	}
	if strings.Contains(errOut, k.Secret) {
		t.Fatal("stderr holds the secret")
	}
}
