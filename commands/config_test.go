package commands

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestDefaultPaths(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("the fallbacks checked here are those of Linux and the BSDs")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		name, configHome, dataHome string
		config, store              string
	}{
		{"unset", "", "",
			filepath.Join(home, ".config/keyctl/config.yaml"), filepath.Join(home, ".local/share/keyctl/keys.db")},
		{"absolute", "/etc/xdg", "/srv/data",
			"/etc/xdg/keyctl/config.yaml", "/srv/data/keyctl/keys.db"},
		{"tilde", "~/cfg", "~/data",
			filepath.Join(home, "cfg/keyctl/config.yaml"), filepath.Join(home, "data/keyctl/keys.db")},
		{"relative, ignored as the XDG specification says", "cfg", "./data",
			filepath.Join(home, ".config/keyctl/config.yaml"), filepath.Join(home, ".local/share/keyctl/keys.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", tc.configHome)
			t.Setenv("XDG_DATA_HOME", tc.dataHome)
			if got := defaultConfigPath(); got != tc.config {
				t.Errorf("config path %q, want %q", got, tc.config)
			}
			if got := defaultStorePath(); got != tc.store {
				t.Errorf("store path %q, want %q", got, tc.store)
			}
		})
	}
}
