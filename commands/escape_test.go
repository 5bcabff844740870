package commands

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

// A store written before names and metadata were checked (or by another
// tool) may hold escape sequences: show, list and audit print them escaped,
// never raw to the terminal.
func TestTerminalOutputEscaped(t *testing.T) {
	webhookEnv(t)
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Create(keystore.WithActor(context.Background(), "seed"), keystore.CreateParams{Name: "x", Scopes: []string{"bots:read"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	rawExec(t, path,
		`UPDATE keys SET name = 'evil' || char(27) || ']0;pwned' || char(7) || char(8238), metadata = json_object('k' || char(27), char(27) || '[2J' || char(13))`,
		`UPDATE audit_events SET actor = 'me' || char(27) || '[31m'`)
	for _, args := range [][]string{
		{"show", k.ID},
		{"list"},
		{"audit"},
	} {
		code, stdout, stderr := runKeyctl(t, nil, append([]string{"--store", path}, args...)...)
		if code != 0 {
			t.Fatalf("keyctl %q: exit %d: %s", args, code, stderr)
		}
		if strings.ContainsAny(stdout+stderr, "\x1b\a\r\u202e") {
			t.Errorf("keyctl %q prints raw control characters: %q", args, stdout)
		}
		if !strings.Contains(stdout, `\x1b`) {
			t.Errorf("keyctl %q: %q, want \\x1b escaped", args, stdout)
		}
	}
	_, stdout, _ := runKeyctl(t, nil, "--store", path, "show", k.ID)
	for _, want := range []string{`evil\x1b]0;pwned\x07\u202e`, `k\x1b=\x1b[2J\x0d`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show: %q, want %q in it", stdout, want)
		}
	}
}
