package commands

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/postgres"
	"github.com/chatbotplatform/keyctl/output"
)

// Shells keyctl writes completion scripts for.
var shells = []string{"bash", "zsh", "fish", "powershell"}

// CompletionOptions are the inputs of keyctl completion.
type CompletionOptions struct {
	f     *Factory
	root  *cobra.Command
	Shell string
}

// NewCmdCompletion builds keyctl completion.
func NewCmdCompletion(f *Factory, runF func(*CompletionOptions) error) *cobra.Command {
	opts := &CompletionOptions{f: f}
	cmd := &cobra.Command{
		Use:   "completion {bash|zsh|fish|powershell}",
		Short: "Print a shell completion script",
		Long: `Print the completion script for a shell. It completes commands, flags, key
IDs (with each key's name and status) from the configured store, scopes,
profiles and flag values.

bash (needs the bash-completion package):
  mkdir -p ~/.local/share/bash-completion/completions
  keyctl completion bash > ~/.local/share/bash-completion/completions/keyctl

zsh (then add fpath=(~/.zfunc $fpath) to ~/.zshrc before compinit, and
start a new shell):
  mkdir -p ~/.zfunc
  keyctl completion zsh > ~/.zfunc/_keyctl

fish:
  mkdir -p ~/.config/fish/completions
  keyctl completion fish > ~/.config/fish/completions/keyctl.fish

PowerShell:
  keyctl completion powershell | Out-String | Invoke-Expression`,
		Example:   "  source <(keyctl completion bash)",
		ValidArgs: shells,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(shells, args[0]) {
				return usageError("completion needs one shell: bash, zsh, fish or powershell")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Shell = args[0]
			opts.root = cmd.Root()
			if runF != nil {
				return runF(opts)
			}
			return writeCompletion(opts.root, opts.Shell, f.IO.Out)
		},
	}
	return cmd
}

// writeCompletion writes the completion script of root for shell.
func writeCompletion(root *cobra.Command, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return usageError("unknown shell %s", keystore.Quote(shell))
}

// registerCompletions adds dynamic completion to every command of root that
// has the flags or arguments it knows about.
func registerCompletions(root *cobra.Command, f *Factory) {
	fixed := func(values ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
	}
	byFlag := map[string]cobra.CompletionFunc{
		"output":       fixed(output.Formats...),
		"env":          fixed(keystore.EnvLive, keystore.EnvTest),
		"status":       fixed(keystore.StatusActive, keystore.StatusDisabled, keystore.StatusExpired, keystore.StatusRevoked),
		"action":       fixed(keystore.Actions...),
		"scheme":       fixed("standard", "stripe", "github"),
		"scope":        completeScopes,
		"remove-scope": completeScopes,
		"profile":      completeProfiles(f),
		"key":          completeKeyIDs(f, true, keystore.ListFilter{}),
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		register := func(fl *pflag.Flag) {
			if fn, ok := byFlag[fl.Name]; ok {
				_ = c.RegisterFlagCompletionFunc(fl.Name, fn)
			}
		}
		c.Flags().VisitAll(register)
		c.PersistentFlags().VisitAll(register)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	// Each command is offered the keys it can act on.
	for _, c := range root.Commands() {
		switch c.Name() {
		case "show":
			c.ValidArgsFunction = completeKeyIDs(f, true, keystore.ListFilter{})
		case "update":
			c.ValidArgsFunction = completeKeyIDs(f, false, keystore.ListFilter{Revocable: true})
		case "rotate":
			c.ValidArgsFunction = completeKeyIDs(f, false, keystore.ListFilter{Rotatable: true})
		case "revoke", "disable":
			c.ValidArgsFunction = completeKeyIDs(f, true, keystore.ListFilter{Revocable: true})
		case "enable":
			c.ValidArgsFunction = completeKeyIDs(f, true, keystore.ListFilter{Status: keystore.StatusDisabled})
		case "delete":
			c.ValidArgsFunction = completeKeyIDs(f, true, keystore.ListFilter{Status: keystore.StatusRevoked})
		}
	}
}

// completeScopes offers scopes and patterns. In a comma-separated list
// (--scope bots:read,ch) it completes the last item, after the ones given.
func completeScopes(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	values := slices.Clone(keystore.AllScopes)
	values = append(values, "*", "*:read", "*:write")
	for _, s := range keystore.AllScopes {
		if r, _, ok := strings.Cut(s, ":"); ok && !slices.Contains(values, r+":*") {
			values = append(values, r+":*")
		}
	}
	i := strings.LastIndexByte(toComplete, ',')
	if i < 0 {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
	head, given := toComplete[:i+1], strings.Split(toComplete[:i], ",")
	var out []cobra.Completion
	for _, v := range values {
		if !slices.Contains(given, v) {
			out = append(out, head+v)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionSettings reads the config for the line being completed: the
// root's PersistentPreRunE does not run during __complete.
func completionSettings(cmd *cobra.Command, f *Factory) error {
	if err := loadConfig(cmd, f.Settings); err != nil {
		return err
	}
	if f.Settings.StorePath == "" {
		f.Settings.StorePath = defaultStorePath()
	}
	f.Settings.StorePath = expandHome(f.Settings.StorePath)
	return nil
}

func completeProfiles(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		v, _, err := readConfig(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return profileNames(v), cobra.ShellCompDirectiveNoFileComp
	}
}

// maxKeyCompletions bounds the IDs offered at once: the shell shows them all.
const maxKeyCompletions = 1000

// completeKeyIDs offers the IDs of the configured store's keys that match
// filter and start with what was typed, found by a prefix query over the
// whole store, each described by its name and status. With many, the
// command takes several IDs (an ID already on the line is not offered
// again); otherwise only the first argument is completed.
func completeKeyIDs(f *Factory, many bool, filter keystore.ListFilter) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if !many && len(args) > 0 {
			return nil, none
		}
		if err := completionSettings(cmd, f); err != nil {
			return nil, none
		}
		if f.Settings.APIURL == "" && !postgres.IsDSN(f.Settings.StorePath) {
			if _, err := os.Stat(f.Settings.StorePath); err != nil {
				return nil, none // completing must not create a store
			}
		}
		store, err := f.Store()
		if err != nil {
			return nil, none
		}
		if keystore.CheckIDPrefix(toComplete) != nil {
			return nil, none
		}
		q := keystore.ListOptions{ListFilter: filter, Limit: maxKeyCompletions + len(args)}
		q.IDPrefix = toComplete
		var out []cobra.Completion
		for k, err := range store.List(cmd.Context(), q) {
			if err != nil {
				return nil, none
			}
			if !slices.Contains(args, k.ID) && len(out) < maxKeyCompletions {
				out = append(out, cobra.CompletionWithDesc(k.ID, fmt.Sprintf("%s (%s)", k.Name, k.Status)))
			}
		}
		return out, none
	}
}
