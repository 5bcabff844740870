package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/chatbotplatform/keyctl/output"
)

// Settings are the global options after flags, environment, config file
// and defaults have been merged, in that order of precedence.
type Settings struct {
	ConfigPath string // the config file read, or that would be read
	Profile    string
	StorePath  string
	APIURL     string
	APIKeyEnv  string // the environment variable holding the remote API key
	Timeout    time.Duration
	Format     string
	JQ         *output.JQ
}

// defaultAPIKeyEnv holds the API key for the remote store. Keys are never
// read from the config file.
const defaultAPIKeyEnv = "CHATBOT_API_KEY"

func defaultConfigPath() string {
	return filepath.Join(baseDir("XDG_CONFIG_HOME", ".config"), "keyctl", "config.yaml")
}

func defaultStorePath() string {
	return filepath.Join(baseDir("XDG_DATA_HOME", filepath.Join(".local", "share")), "keyctl", "keys.db")
}

// baseDir is an XDG base directory: the variable env when it holds an
// absolute path (a leading ~ is the home folder), else the platform's
// place for it: ~/unixPath on Linux and the BSDs, ~/Library/Application
// Support on macOS and %LOCALAPPDATA% on Windows, for config and data
// alike, as the github.com/adrg/xdg library had them. Computing it here
// spares every command that library's start-up work.
func baseDir(env, unixPath string) string {
	if dir := expandHome(os.Getenv(env)); dir != "" && filepath.IsAbs(dir) {
		return dir
	}
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "darwin", "ios":
		return filepath.Join(home, "Library", "Application Support")
	case "windows":
		if dir := os.Getenv("LOCALAPPDATA"); dir != "" {
			return dir
		}
		return filepath.Join(home, "AppData", "Local")
	}
	return filepath.Join(home, unixPath)
}

// envName is the environment variable for a flag: KEYCTL_ and the flag name
// in upper case with dashes as underscores.
func envName(flag string) string {
	return "KEYCTL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configKey is the config file key for a flag: dashes become underscores.
func configKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// flags never taken from the environment or the config file.
var notConfigurable = []string{"help", "version", "config", "profile"}

// loadConfig reads the config file into a fresh viper and fills every flag
// of cmd that the user did not set from KEYCTL_* variables, the selected
// profile, or the file's top level, in that order.
func loadConfig(cmd *cobra.Command, s *Settings) error {
	flags := cmd.Flags()
	v, path, err := readConfig(cmd)
	if err != nil {
		return err
	}
	s.ConfigPath = path
	haveFile := v.ConfigFileUsed() != ""

	profile := v.GetString("profile")
	if e := os.Getenv(envName("profile")); e != "" {
		profile = e
	}
	if f := flags.Lookup("profile"); f != nil && f.Changed {
		profile = f.Value.String()
	}
	if profile != "" && !v.IsSet("profiles."+profile) {
		known := profileNames(v)
		if !haveFile {
			return withHint(usageError("profile %q not found: no config file at %s", profile, path), "create it with a profiles: section, or pass --config")
		}
		return withHint(usageError("profile %q not found in %s", profile, path), "known profiles: "+strings.Join(known, ", "))
	}
	s.Profile = profile

	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || slices.Contains(notConfigurable, f.Name) {
			return
		}
		var val any
		if e := os.Getenv(envName(f.Name)); e != "" {
			val = e
		} else if k := "profiles." + profile + "." + configKey(f.Name); profile != "" && v.IsSet(k) {
			val = v.Get(k)
		} else if v.IsSet(configKey(f.Name)) {
			val = v.Get(configKey(f.Name))
		}
		if val == nil {
			return
		}
		err = setFlag(flags, f, val)
	})
	if err != nil {
		return err
	}
	if profile != "" {
		s.APIKeyEnv = v.GetString("profiles." + profile + ".api_key_env")
	}
	if s.APIKeyEnv == "" {
		s.APIKeyEnv = defaultAPIKeyEnv
	}
	return nil
}

// readConfig reads the config file named by --config or KEYCTL_CONFIG, or
// the default one if it exists, into a fresh viper.
func readConfig(cmd *cobra.Command) (v *viper.Viper, path string, err error) {
	v = viper.New()
	v.SetConfigType("yaml")
	explicit := false
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	} else if p := os.Getenv(envName("config")); p != "" {
		path, explicit = p, true
	} else {
		path = defaultConfigPath()
	}
	if _, err := os.Stat(path); err == nil {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, path, fmt.Errorf("read config %s: %s", path, oneLine(err.Error()))
		}
	} else if explicit || !errors.Is(err, fs.ErrNotExist) {
		return nil, path, usageError("config file %s: %s", path, oneLine(pathErr(err)))
	}
	return v, path, nil
}

// setFlag gives an unset flag a value from the environment or config file,
// as if typed, so that commands read only their flags.
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, val any) error {
	var values []string
	switch x := val.(type) {
	case []any:
		for _, e := range x {
			values = append(values, fmt.Sprint(e))
		}
	default:
		values = []string{fmt.Sprint(x)}
	}
	for _, s := range values {
		if err := flags.Set(f.Name, s); err != nil {
			return usageError("invalid value %q for --%s (from %s or the config file): %s", s, f.Name, envName(f.Name), oneLine(err.Error()))
		}
	}
	return nil
}

func profileNames(v *viper.Viper) []string {
	var names []string
	for name := range v.GetStringMap("profiles") {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// expandHome turns a leading ~ into the home folder.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
