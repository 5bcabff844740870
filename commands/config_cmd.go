package commands

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
)

// ConfigOptions are the inputs of keyctl config and its subcommands.
type ConfigOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Action string // path, view or profiles
}

// NewCmdConfig builds keyctl config.
func NewCmdConfig(f *Factory, runF func(*ConfigOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config {path|view|profiles}",
		Short: "Show keyctl's configuration",
		Long: `Show where keyctl reads its configuration and what it resolves to.
The global options (--store, --api-url, --ca-cert, --timeout, --output,
--no-color)
come from flags, then KEYCTL_* environment variables, then the selected
profile of the config file, then its top level, then defaults. A command's
own flags (such as --yes) come only from the command line. API keys are
never read from the config file and never printed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return withHint(usageError("config needs a subcommand: path, view or profiles"), "keyctl config view")
			}
			return usageError("unknown config subcommand %s (want path, view or profiles)", keystore.Quote(args[0]))
		},
		RunE: func(cmd *cobra.Command, args []string) error { return nil },
	}
	for _, sub := range []struct{ name, short, example string }{
		{"path", "Print the path of the config file", "  keyctl config path"},
		{"view", "Print the settings in effect, without secrets", "  keyctl config view\n  keyctl --profile prod config view -o json"},
		{"profiles", "List the profiles of the config file", "  keyctl config profiles"},
	} {
		opts := &ConfigOptions{f: f, Action: sub.name}
		cmd.AddCommand(&cobra.Command{
			Use:     sub.name,
			Short:   sub.short,
			Long:    sub.short + ".",
			Example: sub.example,
			Args:    noArgs,
			RunE: func(c *cobra.Command, args []string) error {
				opts.cmd = c
				if runF != nil {
					return runF(opts)
				}
				return configRun(c.Context(), opts)
			},
		})
	}
	return cmd
}

// configView is what keyctl config view prints. It holds the name of the
// variable with the API key and whether it is set, never its value.
type configView struct {
	ConfigFile       string `json:"config_file"`
	ConfigFileExists bool   `json:"config_file_exists"`
	Profile          string `json:"profile"`
	Store            string `json:"store"`
	APIURL           string `json:"api_url"`
	APIKeyEnv        string `json:"api_key_env"`
	APIKeySet        bool   `json:"api_key_set"`
	Timeout          string `json:"timeout"`
	Output           string `json:"output"`
}

func configRun(_ context.Context, opts *ConfigOptions) error {
	f, s := opts.f, opts.f.Settings
	p := f.printer()
	switch opts.Action {
	case "path":
		if !p.isTable() {
			return p.json(map[string]string{"config_file": s.ConfigPath})
		}
		_, err := fmt.Fprintln(f.IO.Out, s.ConfigPath)
		return err
	case "profiles":
		v, _, err := readConfig(opts.cmd)
		if err != nil {
			return err
		}
		type profile struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Store   string `json:"store"`
			APIURL  string `json:"api_url"`
		}
		var list []any
		t := f.IO.NewTable("", "NAME", "STORE", "API URL")
		for _, name := range profileNames(v) {
			pr := profile{Name: name, Current: name == s.Profile,
				Store:  v.GetString("profiles." + name + ".store"),
				APIURL: v.GetString("profiles." + name + ".api_url")}
			list = append(list, pr)
			mark := ""
			if pr.Current {
				mark = "*"
			}
			t.Row(mark, pr.Name, pr.Store, pr.APIURL)
		}
		if !p.isTable() {
			if list == nil {
				list = []any{}
			}
			return p.json(list)
		}
		if len(list) == 0 {
			if f.IO.IsStderrTTY() {
				notice(f.IO.ErrOut, "no profiles in %s", s.ConfigPath)
			}
			return nil
		}
		return t.Render()
	}
	_, statErr := os.Stat(s.ConfigPath)
	view := configView{
		ConfigFile: s.ConfigPath, ConfigFileExists: statErr == nil,
		Profile: s.Profile, Store: s.StorePath, APIURL: s.APIURL,
		APIKeyEnv: s.APIKeyEnv, APIKeySet: os.Getenv(s.APIKeyEnv) != "",
		Timeout: s.Timeout.String(), Output: s.Format,
	}
	if view.APIURL != "" {
		view.Store = ""
	}
	if !p.isTable() {
		return p.json(view)
	}
	t := f.IO.NewTable()
	t.Row("config_file", view.ConfigFile)
	t.Row("config_file_exists", fmt.Sprint(view.ConfigFileExists))
	t.Row("profile", view.Profile)
	t.Row("store", view.Store)
	t.Row("api_url", view.APIURL)
	t.Row("api_key_env", view.APIKeyEnv)
	t.Row("api_key_set", fmt.Sprint(view.APIKeySet))
	t.Row("timeout", view.Timeout)
	t.Row("output", view.Output)
	return t.Render()
}
