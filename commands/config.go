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

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// Settings are the global options after flags, environment, config file
// and defaults have been merged, in that order of precedence.
type Settings struct {
	ConfigPath string // the config file read, or that would be read
	Profile    string
	StorePath  string
	StoreFrom  string // where StorePath comes from: --store, KEYCTL_STORE, the config file; "" for the default
	APIURL     string
	APIURLFrom string // where APIURL comes from, as StoreFrom
	CACert     string // PEM file of CAs trusted for the key service
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

// globalFlags are the options taken from KEYCTL_* variables and the config
// file, as in gh and kubectl: where the keys are and how to show them. A
// command's own flags never are: KEYCTL_YES or "yes: true" in a shared
// config must not answer revoke's question. (--config and --profile pick
// the file and profile, and are read first.)
var globalFlags = []string{"store", "api-url", "ca-cert", "timeout", "output", "no-color"}

// setting is where an unset flag's value comes from.
type setting struct {
	val  any
	from string // KEYCTL_STORE, profile "dev" of /path/config.yaml, /path/config.yaml
	rank int    // 1 environment, 2 profile, 3 top level of the file
}

// lookupSetting finds the value of flag name in the environment, the
// profile and the top level of the config file, in that order.
func lookupSetting(v *viper.Viper, path, profile, name string) (setting, bool) {
	if e := os.Getenv(envName(name)); e != "" {
		return setting{e, envName(name), 1}, true
	}
	if k := "profiles." + profile + "." + configKey(name); profile != "" && v.IsSet(k) {
		return setting{v.Get(k), fmt.Sprintf("profile %q of %s", profile, path), 2}, true
	}
	if v.IsSet(configKey(name)) {
		return setting{v.Get(configKey(name)), path, 3}, true
	}
	return setting{}, false
}

// loadConfig reads the config file into a fresh viper and fills every
// global flag that the user did not set from KEYCTL_* variables, the
// selected profile, or the file's top level, in that order. --store and
// --api-url name the store: given both on the line, they are a usage
// error; one given on the line wins over the other from the environment or
// the config file; from the environment and config, the closer source
// wins, and both at the same level are a usage error.
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
			return withHint(usageError("profile %s not found: no config file at %s", keystore.Quote(profile), path), "create it with a profiles: section, or pass --config")
		}
		return withHint(usageError("profile %s not found in %s", keystore.Quote(profile), path), "known profiles: "+strings.Join(known, ", "))
	}
	s.Profile = profile

	if err := checkStoreFlags(flags); err != nil {
		return err
	}
	found := map[string]setting{}
	for _, name := range globalFlags {
		if f := flags.Lookup(name); f != nil && !f.Changed {
			if set, ok := lookupSetting(v, path, profile, name); ok {
				found[name] = set
			}
		}
	}
	if err := pickStore(flags, found, s); err != nil {
		return err
	}
	for _, name := range globalFlags {
		if set, ok := found[name]; ok {
			if err := setFlag(flags, flags.Lookup(name), set); err != nil {
				return err
			}
		}
	}
	if profile != "" {
		s.APIKeyEnv = v.GetString("profiles." + profile + ".api_key_env")
	}
	if s.APIKeyEnv == "" {
		s.APIKeyEnv = defaultAPIKeyEnv
	}
	return nil
}

// checkStoreFlags refuses --store and --api-url given together on the
// line, and either given empty (which would mean the default store, or
// none, without saying so).
func checkStoreFlags(flags *pflag.FlagSet) error {
	store, api := flags.Lookup("store"), flags.Lookup("api-url")
	if store == nil || api == nil {
		return nil
	}
	if store.Changed && api.Changed {
		return withHint(usageError("--store and --api-url name two different key stores: give one"),
			"--store FILE works on a local store, --api-url URL on a key service")
	}
	if store.Changed && strings.TrimSpace(store.Value.String()) == "" {
		return withHint(usageError("--store needs a path: an empty one is not the default store"), "leave --store out for the default store, "+defaultStorePath())
	}
	if api.Changed && strings.TrimSpace(api.Value.String()) == "" {
		return usageError("--api-url needs a URL, such as https://keys.example.com/v1")
	}
	return nil
}

// pickStore keeps, of the store and api-url settings found in the
// environment and config file, the one that applies, and records where
// each setting in effect comes from.
func pickStore(flags *pflag.FlagSet, found map[string]setting, s *Settings) error {
	for name, from := range map[string]*string{"store": &s.StoreFrom, "api-url": &s.APIURLFrom} {
		if f := flags.Lookup(name); f != nil && f.Changed {
			*from = "--" + name
		}
	}
	st, haveStore := found["store"]
	api, haveAPI := found["api-url"]
	switch {
	case s.StoreFrom != "":
		delete(found, "api-url") // --store beats KEYCTL_API_URL and api_url
	case s.APIURLFrom != "":
		delete(found, "store")
	case haveStore && haveAPI && st.rank == api.rank:
		if st.rank == 1 {
			return withHint(usageError("both KEYCTL_STORE and KEYCTL_API_URL are set: keyctl cannot tell which store to use"),
				"unset one, or pass --store FILE or --api-url URL, which wins over both")
		}
		return withHint(usageError("%s sets both store and api_url: keyctl cannot tell which store to use", st.from),
			"keep one of them, or pass --store FILE or --api-url URL")
	case haveStore && haveAPI && st.rank < api.rank:
		delete(found, "api-url")
	case haveStore && haveAPI:
		delete(found, "store")
	}
	if set, ok := found["store"]; ok {
		s.StoreFrom = set.from
	}
	if set, ok := found["api-url"]; ok {
		s.APIURLFrom = set.from
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
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, set setting) error {
	var values []string
	switch x := set.val.(type) {
	case []any:
		for _, e := range x {
			values = append(values, fmt.Sprint(e))
		}
	default:
		values = []string{fmt.Sprint(x)}
	}
	for _, s := range values {
		if err := flags.Set(f.Name, s); err != nil {
			return usageError("invalid value %s for --%s (from %s): %s", keystore.Quote(s), f.Name, set.from, keystore.RedactSecrets(oneLine(err.Error())))
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
