// Package commands is keyctl's command-line interface: one file per
// command, each an Options struct, a NewCmdX constructor and an xRun.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/output"
)

// Main runs keyctl with the process's arguments and returns its exit status.
//
// SIGINT and SIGTERM cancel the command's context: it stops, says
// "interrupted" and exits 130; a second one ends the process at once.
// verify alone leaves them to their default action, which ends it at once
// (shells report 130 too): it does one lookup and at most a one-row write,
// atomic in SQLite, so it has nothing to finish, and catching the signals
// cost a measurable part of its run, threads for the signals and, with a
// context that can be cancelled, a goroutine per SQL statement
// (BENCHMARKS.md, goal 3).
func Main() int {
	return run(output.System(), time.Now, os.Args[1:])
}

func run(io *output.IOStreams, now func() time.Time, args []string) int {
	f := NewFactory(io, now)
	defer f.Close()
	root := newCmdRoot(f, args)
	ctx := context.Background()
	if commandName(root.PersistentFlags(), args) != "verify" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		// A second signal ends the process at once: a command may be
		// stuck on a read that cannot be cancelled (a terminal, a pipe
		// that nothing writes to).
		context.AfterFunc(ctx, stop)
	}
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		registerCompletions(root, f) // only a shell asking for completions needs them
	}
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintln(io.ErrOut, "interrupted")
		return exitInterrupted
	}
	err = withSuggestion(err)
	var se *silentError
	if !errors.As(err, &se) {
		fmt.Fprintln(io.ErrOut, "error: "+output.Escape(redactSecrets(oneLine(err.Error()))))
		var (
			ce *cmdError
			de *sqlite.DamagedError
		)
		switch {
		case errors.As(err, &ce) && ce.hint != "":
			fmt.Fprintln(io.ErrOut, "hint: "+output.Escape(redactSecrets(ce.hint)))
		case errors.As(err, &de):
			fmt.Fprintln(io.ErrOut, "hint: "+output.Escape(de.RecoveryHint()))
		}
	}
	return exitCode(err)
}

// withSuggestion moves the suggestion of cobra's error for a mistyped
// command ("Did you mean this?" and a list, on lines of their own, which
// the one-line error rule would cut) into a hint.
func withSuggestion(err error) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "unknown command") {
		return err
	}
	_, list, ok := strings.Cut(msg, "Did you mean this?")
	if !ok {
		return err
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if name := strings.TrimSpace(line); name != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return err
	}
	return withHint(usageError("%s", oneLine(msg)), "did you mean "+strings.Join(names, " or ")+"?")
}

// commandGroups are the headings of keyctl --help.
var commandGroups = []struct{ id, title string }{
	{"keys", "Key commands:"},
	{"webhooks", "Webhook commands:"},
	{"service", "Service commands:"},
	{"other", "Other commands:"},
}

type topCommand struct {
	name, group string
	build       func(*Factory) *cobra.Command
}

// topCommands are keyctl's commands, in the order of keyctl --help.
var topCommands = []topCommand{
	{"create", "keys", func(f *Factory) *cobra.Command { return NewCmdCreate(f, nil) }},
	{"list", "keys", func(f *Factory) *cobra.Command { return NewCmdList(f, nil) }},
	{"show", "keys", func(f *Factory) *cobra.Command { return NewCmdShow(f, nil) }},
	{"rotate", "keys", func(f *Factory) *cobra.Command { return NewCmdRotate(f, nil) }},
	{"update", "keys", func(f *Factory) *cobra.Command { return NewCmdUpdate(f, nil) }},
	{"disable", "keys", func(f *Factory) *cobra.Command { return NewCmdDisable(f, nil) }},
	{"enable", "keys", func(f *Factory) *cobra.Command { return NewCmdEnable(f, nil) }},
	{"revoke", "keys", func(f *Factory) *cobra.Command { return NewCmdRevoke(f, nil) }},
	{"delete", "keys", func(f *Factory) *cobra.Command { return NewCmdDelete(f, nil) }},
	{"verify", "keys", func(f *Factory) *cobra.Command { return NewCmdVerify(f, nil) }},
	{"import", "keys", func(f *Factory) *cobra.Command { return NewCmdImport(f, nil) }},
	{"scan", "keys", func(f *Factory) *cobra.Command { return NewCmdScan(f, nil) }},
	{"audit", "keys", func(f *Factory) *cobra.Command { return NewCmdAudit(f, nil) }},
	{"export", "keys", func(f *Factory) *cobra.Command { return NewCmdExport(f, nil) }},
	{"whoami", "keys", func(f *Factory) *cobra.Command { return NewCmdWhoami(f, nil) }},
	{"sign-webhook", "webhooks", func(f *Factory) *cobra.Command { return NewCmdSignWebhook(f, nil) }},
	{"verify-webhook", "webhooks", func(f *Factory) *cobra.Command { return NewCmdVerifyWebhook(f, nil) }},
	{"serve", "service", func(f *Factory) *cobra.Command { return NewCmdServe(f, nil) }},
	{"config", "other", func(f *Factory) *cobra.Command { return NewCmdConfig(f, nil) }},
	{"completion", "other", func(f *Factory) *cobra.Command { return NewCmdCompletion(f, nil) }},
	{"version", "other", func(f *Factory) *cobra.Command { return NewCmdVersion(f, nil) }},
}

// commandName is the first word of args that is not a flag of the root or
// its value: the command cobra will run. It is "" when that is unclear (a
// flag it does not know, such as -h, or "--").
func commandName(pf *pflag.FlagSet, args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		var fl *pflag.Flag
		switch {
		case a == "--" || a == "-":
			return ""
		case strings.HasPrefix(a, "--"):
			name, _, withValue := strings.Cut(a[2:], "=")
			if fl = pf.Lookup(name); fl == nil {
				return ""
			}
			if !withValue && fl.NoOptDefVal == "" {
				i++ // --store PATH
			}
		case strings.HasPrefix(a, "-"):
			if fl = pf.ShorthandLookup(a[1:2]); fl == nil {
				return ""
			}
			if len(a) == 2 && fl.NoOptDefVal == "" {
				i++ // -o json; -ojson holds its value
			}
		default:
			return a
		}
	}
	return ""
}

// NewCmdRoot builds the whole command tree; nothing is global, so tests can
// build as many as they like.
func NewCmdRoot(f *Factory) *cobra.Command { return newCmdRoot(f, nil) }

// newCmdRoot builds the tree that runs args: the root and, when args name
// a command for sure, that command alone; otherwise every command.
func newCmdRoot(f *Factory, args []string) *cobra.Command {
	var (
		noColor bool
		jq      string
	)
	s := f.Settings
	cmd := &cobra.Command{
		Use:   "keyctl",
		Short: "Manage Chatbot Platform API keys",
		Long: `keyctl creates, lists, rotates, revokes and verifies the API keys of the
Chatbot Platform API, on a local SQLite key store (the default) or on a
remote key service.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := loadConfig(cmd, s); err != nil {
				return err
			}
			f.StoreMustExist = cmd.Annotations["store"] == "existing"
			if noColor {
				f.IO.SetColor(false)
			}
			if !output.ValidFormat(s.Format) && !(s.Format == formatSARIF && cmd.Name() == "scan") {
				return usageError("invalid output format %s (want table, json or jsonl)", keystore.Quote(s.Format))
			}
			if jq != "" {
				q, err := output.ParseJQ(jq)
				if err != nil {
					return usageError("%s", oneLine(err.Error()))
				}
				s.JQ = q
				if s.Format == output.FormatTable {
					s.Format = output.FormatJSON
				}
			}
			if s.StorePath == "" {
				s.StorePath = defaultStorePath()
			}
			s.StorePath = expandHome(s.StorePath)
			if s.Timeout <= 0 {
				return usageError("--timeout must be positive")
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withHint(usageError("%s", err.Error()), fmt.Sprintf("see '%s --help'", c.CommandPath()))
	})

	pf := cmd.PersistentFlags()
	pf.StringVar(&s.ConfigPath, "config", "", "config file (default $XDG_CONFIG_HOME/keyctl/config.yaml)")
	pf.StringVar(&s.Profile, "profile", "", "profile of the config file to use")
	pf.StringVar(&s.StorePath, "store", "", "key store: a SQLite file, or a postgres:// DSN (default $XDG_DATA_HOME/keyctl/keys.db)")
	pf.StringVar(&s.APIURL, "api-url", "", "use the remote key service at this URL instead of a local store")
	pf.StringVar(&s.CACert, "ca-cert", "", "PEM file of a CA to trust for the key service's TLS certificate, besides the system's")
	pf.DurationVar(&s.Timeout, "timeout", 30*time.Second, "bound on each remote command, retries included")
	pf.StringVarP(&s.Format, "output", "o", output.FormatTable, "output format: table, json or jsonl")
	pf.StringVar(&jq, "jq", "", "filter JSON output with a jq expression")
	pf.BoolVar(&noColor, "no-color", false, "disable color (also NO_COLOR)")

	// A run builds only the command it runs when args name one for sure:
	// the others' flags and help are work it does not need.
	only := ""
	if name := commandName(pf, args); slices.ContainsFunc(topCommands, func(c topCommand) bool { return c.name == name }) {
		only = name
	}
	for _, g := range commandGroups {
		cmd.AddGroup(&cobra.Group{ID: g.id, Title: g.title})
	}
	for _, c := range topCommands {
		if only == "" || c.name == only {
			sub := c.build(f)
			sub.GroupID = c.group
			cmd.AddCommand(sub)
		}
	}
	cmd.SetHelpCommandGroupID("other")
	cmd.CompletionOptions.DisableDefaultCmd = true
	// --version reads the build information only when it is asked for.
	cmd.Version = "keyctl"
	cobra.AddTemplateFunc("keyctlVersion", func() string { return buildInfo().String() })
	cmd.SetVersionTemplate("{{keyctlVersion}}\n")
	return cmd
}

// existingStore annotates the commands that work on keys a store holds
// already: on a local store file that does not exist they refuse, rather
// than create an empty store (a typo in --store would otherwise pass
// silently).
var existingStore = map[string]string{"store": "existing"}

// flagChanged reports whether the user set a flag, directly or through the
// environment or config file.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// noArgs and friends turn cobra's argument errors into usage errors.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("%s takes no arguments, got %s", cmd.CommandPath(), keystore.Quote(args[0]))
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return withHint(usageError("%s needs %s", cmd.CommandPath(), what), fmt.Sprintf("see '%s --help'", cmd.CommandPath()))
		}
		return nil
	}
}
