package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// These tests drive the first half of each command, flags and arguments to
// Options, through runF; the scripts in testdata drive the whole.

var testNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func parse(t *testing.T, cmd *cobra.Command, line string) error {
	t.Helper()
	cmd.SetArgs(splitArgs(line))
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError("%s", err) })
	_, err := cmd.ExecuteC()
	return err
}

// splitArgs splits a command line on spaces, keeping quoted parts whole.
func splitArgs(line string) []string {
	var args []string
	var cur strings.Builder
	quote, inArg := rune(0), false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inArg = r, true
		case r == ' ':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

func testFactory(tty bool) *Factory {
	io := output.Test(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	io.SetTTY(tty)
	return NewFactory(io, func() time.Time { return testNow })
}

func TestCreateOptions(t *testing.T) {
	tests := []struct {
		line    string
		want    keystore.CreateParams
		all     bool
		wantErr string
	}{
		{line: `--name "Production Server" --scope bots:read`,
			want: keystore.CreateParams{Name: "Production Server", Environment: "live", Scopes: []string{"bots:read"}, Metadata: map[string]string{}}},
		{line: `--name x`, all: true,
			want: keystore.CreateParams{Name: "x", Environment: "live", Scopes: keystore.AllScopes, Metadata: map[string]string{}}},
		{line: `--name x -s 'bots:*,channels:read' --env test --meta a=b --meta c= --expires-in 1d`,
			want: keystore.CreateParams{Name: "x", Environment: "test", Scopes: []string{"bots:read", "bots:write", "channels:read"},
				Metadata: map[string]string{"a": "b", "c": ""}, ExpiresAt: ptr(testNow.Add(24 * time.Hour))}},
		{line: `--scope bots:read`, wantErr: "--name is required"},
		{line: `--name x --scope nope`, wantErr: `unknown scope "nope"`},
		{line: `--name x --meta =v`, wantErr: `invalid --meta "=v"`},
		{line: `--name x --meta a=1 --meta a=2`, wantErr: `--meta "a" given twice`},
		{line: `--name x --expires-in 0s`, wantErr: "--expires-in must be positive"},
		{line: `--name x --expires-at 2025-12-31`, wantErr: "not in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got *CreateOptions
			cmd := NewCmdCreate(testFactory(false), func(o *CreateOptions) error { got = o; return nil })
			err := parse(t, cmd, tt.line)
			if tt.wantErr != "" {
				checkUsageError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := got.Params
			if p.Name != tt.want.Name || p.Environment != tt.want.Environment ||
				strings.Join(p.Scopes, " ") != strings.Join(tt.want.Scopes, " ") || got.AllScopes != tt.all ||
				len(p.Metadata) != len(tt.want.Metadata) || !timeEq(p.ExpiresAt, tt.want.ExpiresAt) {
				t.Errorf("params = %+v, want %+v", p, tt.want)
			}
			for k, v := range tt.want.Metadata {
				if p.Metadata[k] != v {
					t.Errorf("metadata[%q] = %q, want %q", k, p.Metadata[k], v)
				}
			}
		})
	}
}

func TestRevokeNeedsYesOffTerminal(t *testing.T) {
	called := false
	runF := func(*RevokeOptions) error { called = true; return nil }
	err := parse(t, NewCmdRevoke(testFactory(false), runF), "key_0123456789abcdef")
	if exitCode(err) != exitUsage || called {
		t.Fatalf("off a terminal without --yes: err = %v, called = %v; want usage error, not run", err, called)
	}
	if err := parse(t, NewCmdRevoke(testFactory(true), runF), "key_0123456789abcdef"); err != nil || !called {
		t.Fatalf("on a terminal: err = %v, called = %v; want it to run and ask", err, called)
	}
}

func TestRotateOptions(t *testing.T) {
	tests := []struct {
		line    string
		batch   bool
		grace   time.Duration
		wantErr string
	}{
		{line: "key_0123456789abcdef --grace 24h", grace: 24 * time.Hour},
		{line: "--older-than 90d --env live --dry-run", batch: true},
		{line: "", wantErr: "needs a key ID, --self or --older-than"},
		{line: "key_0123456789abcdef --older-than 1d", wantErr: "not both"},
		{line: "key_0123456789abcdef --env live", wantErr: "go with --older-than"},
		{line: "key_0123456789abcdef --grace 1y", wantErr: "invalid duration"},
		{line: "key_x", wantErr: "malformed key id"},
		{line: "--older-than 1d --scope bogus", wantErr: "unknown scope"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got *RotateOptions
			err := parse(t, NewCmdRotate(testFactory(false), func(o *RotateOptions) error { got = o; return nil }), tt.line)
			if tt.wantErr != "" {
				checkUsageError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got.ID == "") != tt.batch || got.Rotate.Grace != tt.grace {
				t.Errorf("ID %q grace %v; want batch=%v grace %v", got.ID, got.Rotate.Grace, tt.batch, tt.grace)
			}
			if tt.batch && (!got.Filter.Rotatable || got.Filter.Status != keystore.StatusActive ||
				!got.Filter.CreatedBefore.Equal(testNow.Add(-90*24*time.Hour))) {
				t.Errorf("batch filter = %+v", got.Filter)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usageError("x"), 2},
		{keystore.Errorf(keystore.EINVALID, "x"), 2},
		{keystore.Errorf(keystore.ENOTFOUND, "x"), 5},
		{keystore.Errorf(keystore.EUNAUTHORIZED, "x"), 4},
		{keystore.Errorf(keystore.EFORBIDDEN, "x"), 4},
		{keystore.Errorf(keystore.ECONFLICT, "x"), 1},
		{keystore.Errorf(keystore.EUNAVAILABLE, "x"), 1},
		{&cmdError{code: exitVerifyFailed}, 3},
		{&silentError{code: 1}, 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// A run builds only the command that its arguments name: commandName must
// find the command that cobra finds in the whole tree, or give up.
func TestCommandName(t *testing.T) {
	for line, want := range map[string]string{
		"verify sk_live_x":                         "verify",
		"--store /tmp/k.db verify sk_live_x":       "verify",
		"--store=/tmp/k.db -o json list --all":     "list",
		"-o json show key_1":                       "show",
		"-ojson show key_1":                        "show",
		"--no-color --timeout 5s rotate --all":     "rotate",
		"--jq .id --profile ci create --name x":    "create",
		"--api-url http://x --config c.yaml audit": "audit",
		"serve --addr :0":                          "serve",
		"":                                         "",
		"--help":                                   "",
		"-h verify":                                "",
		"--version":                                "",
		"--store":                                  "",
		"-- verify":                                "",
		"--unknown verify":                         "",
	} {
		root := NewCmdRoot(testFactory(false))
		if got := commandName(root.PersistentFlags(), splitArgs(line)); got != want {
			t.Errorf("commandName(%q) = %q, want %q", line, got, want)
		}
		if want == "" {
			continue
		}
		found, _, err := root.Find(splitArgs(line))
		if err != nil || found.Name() != want {
			t.Errorf("cobra finds %v, %v for %q; commandName says %q", found.Name(), err, line, want)
		}
		// The tree of that run holds the command and the help command.
		part := newCmdRoot(testFactory(false), splitArgs(line))
		var names []string
		for _, c := range part.Commands() {
			names = append(names, c.Name())
		}
		if len(names) != 1 || names[0] != want {
			t.Errorf("the tree for %q holds %v, want [%s]", line, names, want)
		}
	}
}

// checkUsageError fails t unless err is a usage error (exit 2) whose
// message contains want.
func checkUsageError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err) != exitUsage {
		t.Fatalf("err = %v (exit %d), want usage error containing %q", err, exitCode(err), want)
	}
}
