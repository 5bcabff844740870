package commands

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// Key IDs complete from the whole store by the prefix typed, and each
// command is offered the keys it can act on.
func TestCompletionByPrefixAndCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	path := filepath.Join(dir, "keys.db")
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := old
	s, err := sqlite.Open(path, sqlite.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := keystore.WithActor(context.Background(), "test")
	mk := func(name string) *keystore.Key {
		k, err := s.Create(ctx, keystore.CreateParams{Name: name, Scopes: []string{"bots:read"}})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	active, disabled, revoked, rotated := mk("active"), mk("disabled"), mk("revoked"), mk("rotated")
	for _, step := range []error{
		func() error { _, err := s.Disable(ctx, disabled.ID); return err }(),
		func() error { _, err := s.Revoke(ctx, revoked.ID); return err }(),
		func() error {
			_, err := s.Rotate(ctx, rotated.ID, keystore.RotateOptions{Grace: 1000 * time.Hour})
			return err
		}(),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	// 1,200 newer keys, past the 1,000 that completion offers at once.
	now = old.Add(time.Hour)
	var batch []keystore.ImportKey
	for i := range 1200 {
		secret, _ := keystore.NewToken(keystore.EnvLive, nil)
		batch = append(batch, keystore.ImportKey{Params: keystore.CreateParams{Name: fmt.Sprint("new ", i), Scopes: []string{"bots:read"}},
			Hash: keystore.HashToken(secret), Hint: keystore.Hint(secret), Source: keystore.ImportSourceKey, CreatedAt: old.Add(time.Hour)})
	}
	for len(batch) > 0 {
		n := min(len(batch), keystore.MaxImportBatch)
		if res, err := s.Import(ctx, batch[:n]); err != nil || res.Imported != n {
			t.Fatalf("import: %+v, %v", res, err)
		}
		batch = batch[n:]
	}
	s.Close()

	offered := func(cmd, prefix string) []string {
		t.Helper()
		return regexp.MustCompile(`(?m)^key_\w+`).FindAllString(complete(t, "--store", path, cmd, prefix), -1)
	}
	for _, k := range []*keystore.Key{active, disabled, revoked, rotated} {
		if got := offered("show", k.ID[:8]); !contains(got, k.ID) {
			t.Errorf("show %s<TAB> = %d IDs without %s (%s): a prefix looks through the whole store", k.ID[:8], len(got), k.ID, k.Name)
		}
		for _, id := range offered("show", k.ID[:8]) {
			if !strings.HasPrefix(id, k.ID[:8]) {
				t.Errorf("show %s<TAB> offered %s", k.ID[:8], id)
			}
		}
	}
	if got := offered("show", ""); len(got) != maxKeyCompletions {
		t.Errorf("show <TAB> offered %d IDs, want %d", len(got), maxKeyCompletions)
	}
	for _, c := range []struct {
		cmd       string
		want, not []*keystore.Key
	}{
		{"revoke", []*keystore.Key{active, disabled, rotated}, []*keystore.Key{revoked}},
		{"disable", []*keystore.Key{active, disabled}, []*keystore.Key{revoked}},
		{"rotate", []*keystore.Key{active, disabled}, []*keystore.Key{revoked, rotated}},
		{"enable", []*keystore.Key{disabled}, []*keystore.Key{active, revoked, rotated}},
		{"delete", []*keystore.Key{revoked}, []*keystore.Key{active, disabled, rotated}},
		{"update", []*keystore.Key{active, disabled, rotated}, []*keystore.Key{revoked}},
	} {
		for _, k := range c.want {
			if !contains(offered(c.cmd, k.ID[:10]), k.ID) {
				t.Errorf("%s <TAB> does not offer the %s key", c.cmd, k.Name)
			}
		}
		for _, k := range c.not {
			if contains(offered(c.cmd, k.ID[:10]), k.ID) {
				t.Errorf("%s <TAB> offers the %s key", c.cmd, k.Name)
			}
		}
	}
	// Several IDs: one on the line is not offered again; update takes one.
	if got := offered("revoke", active.ID); len(got) != 1 {
		t.Errorf("revoke %s<TAB> = %v", active.ID, got)
	}
	if got := complete(t, "--store", path, "revoke", active.ID, active.ID[:10]); strings.Contains(got, active.ID) {
		t.Errorf("revoke offered an ID already on the line: %q", got)
	}
	if got := complete(t, "--store", path, "update", active.ID, ""); strings.Contains(got, "key_") {
		t.Errorf("update takes one ID, but completion offered more: %q", got)
	}
	if got := complete(t, "--store", path, "show", "key_%"); strings.Contains(got, "key_") {
		t.Errorf("a prefix no ID can have offered %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Scopes complete after a comma, without those already given.
func TestCompletionScopeList(t *testing.T) {
	got := complete(t, "create", "--scope", "bots:read,ch")
	for _, want := range []string{"bots:read,channels:read\n", "bots:read,channels:*\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("--scope bots:read,ch<TAB> = %q, want %q", got, want)
		}
	}
	if strings.Contains(got, "bots:read,bots:read\n") {
		t.Errorf("--scope bots:read,<TAB> offers bots:read again: %q", got)
	}
	if got := complete(t, "update", "key_0000000000000000", "--remove-scope", ""); !strings.Contains(got, "bots:write\n") {
		t.Errorf("--remove-scope <TAB> = %q", got)
	}
	if got := complete(t, "audit", "--action", ""); !strings.Contains(got, "disable\n") {
		t.Errorf("--action <TAB> = %q", got)
	}
}

// The install commands of the README's completion table work on a fresh
// account, where the completion folders do not exist yet.
func TestREADMECompletionInstall(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		for _, shell := range []string{"bash", "zsh", "fish"} {
			if strings.HasPrefix(line, "| "+shell+" | `") {
				cmd := strings.TrimPrefix(line, "| "+shell+" | `")
				cmds[shell], _, _ = strings.Cut(cmd, "`")
			}
		}
	}
	want := map[string]string{
		"bash": ".local/share/bash-completion/completions/keyctl",
		"zsh":  ".zfunc/_keyctl",
		"fish": ".config/fish/completions/keyctl.fish",
	}
	for shell, file := range want {
		cmd, ok := cmds[shell]
		if !ok {
			t.Errorf("README has no install command for %s", shell)
			continue
		}
		home := t.TempDir()
		c := exec.Command(sh, "-c", cmd)
		c.Env = childEnv(home)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %q in a fresh HOME: %v\n%s", shell, cmd, err, out)
			continue
		}
		b, err := os.ReadFile(filepath.Join(home, file))
		if err != nil || !strings.Contains(string(b), "keyctl") {
			t.Errorf("%s: %q wrote no completion script to ~/%s: %v", shell, cmd, file, err)
		}
	}
}
