// Package commands is keyctl's command-line interface: one file per
// command, each an Options struct, a NewCmdX constructor and an xRun.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chatbotplatform/keyctl/output"
)

// Main runs keyctl with the process's arguments and returns its exit status.
func Main() int {
	return run(output.System(), time.Now, os.Args[1:])
}

func run(io *output.IOStreams, now func() time.Time, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	f := NewFactory(io, now)
	defer f.Close()
	root := NewCmdRoot(f)
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
	var se *silentError
	if !errors.As(err, &se) {
		fmt.Fprintln(io.ErrOut, "error: "+redactSecrets(oneLine(err.Error())))
		var ce *cmdError
		if errors.As(err, &ce) && ce.hint != "" {
			fmt.Fprintln(io.ErrOut, "hint: "+redactSecrets(ce.hint))
		}
	}
	return exitCode(err)
}

// NewCmdRoot builds a fresh command tree; nothing is global, so tests can
// build as many as they like.
func NewCmdRoot(f *Factory) *cobra.Command {
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
			if noColor {
				f.IO.SetColor(false)
			}
			if !output.ValidFormat(s.Format) {
				return usageError("invalid output format %q (want table, json or jsonl)", s.Format)
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
	pf.StringVar(&s.StorePath, "store", "", "SQLite key store file (default $XDG_DATA_HOME/keyctl/keys.db)")
	pf.StringVar(&s.APIURL, "api-url", "", "use the remote key service at this URL instead of a local store")
	pf.DurationVar(&s.Timeout, "timeout", 30*time.Second, "bound on each remote command, retries included")
	pf.StringVarP(&s.Format, "output", "o", output.FormatTable, "output format: table, json or jsonl")
	pf.StringVar(&jq, "jq", "", "filter JSON output with a jq expression")
	pf.BoolVar(&noColor, "no-color", false, "disable color (also NO_COLOR)")

	cmd.AddGroup(&cobra.Group{ID: "keys", Title: "Key commands:"})
	for _, c := range []*cobra.Command{
		NewCmdCreate(f, nil),
		NewCmdList(f, nil),
		NewCmdShow(f, nil),
		NewCmdRotate(f, nil),
		NewCmdRevoke(f, nil),
		NewCmdVerify(f, nil),
		NewCmdImport(f, nil),
		NewCmdAudit(f, nil),
	} {
		c.GroupID = "keys"
		cmd.AddCommand(c)
	}
	addWebhookCommands(cmd, f)
	addServiceCommands(cmd, f)

	cmd.AddGroup(&cobra.Group{ID: "other", Title: "Other commands:"})
	for _, c := range []*cobra.Command{
		NewCmdConfig(f, nil),
		NewCmdCompletion(f, nil),
		NewCmdVersion(f, nil),
	} {
		c.GroupID = "other"
		cmd.AddCommand(c)
	}
	cmd.SetHelpCommandGroupID("other")
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.Version = buildInfo().String()
	cmd.SetVersionTemplate("{{.Version}}\n")
	registerCompletions(cmd, f)
	return cmd
}

// flagChanged reports whether the user set a flag, directly or through the
// environment or config file.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// noArgs and friends turn cobra's argument errors into usage errors.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
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
