package commands

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// goreleaser itself is too slow to install in CI; this locks the shape of
// its config so a release builds what the README promises.
func TestGoreleaserConfig(t *testing.T) {
	raw, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int `yaml:"version"`
		Builds  []struct {
			Main    string   `yaml:"main"`
			Env     []string `yaml:"env"`
			Flags   []string `yaml:"flags"`
			Ldflags []string `yaml:"ldflags"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
		} `yaml:"builds"`
		Archives []struct {
			Files []string `yaml:"files"`
		} `yaml:"archives"`
		Checksum struct {
			Algorithm string `yaml:"algorithm"`
		} `yaml:"checksum"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 2 || len(cfg.Builds) != 1 || len(cfg.Archives) != 1 {
		t.Fatalf("want version 2 with one build and one archive, got %+v", cfg)
	}
	b := cfg.Builds[0]
	if b.Main != "./cmd/keyctl" || !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") {
		t.Errorf("build = %+v, want ./cmd/keyctl, CGO_ENABLED=0, -trimpath", b)
	}
	for _, v := range []string{"version", "commit", "date"} {
		if !strings.Contains(strings.Join(b.Ldflags, " "), "github.com/chatbotplatform/keyctl/commands."+v+"=") {
			t.Errorf("ldflags do not set commands.%s", v)
		}
	}
	for _, os := range []string{"linux", "darwin", "windows"} {
		if !slices.Contains(b.Goos, os) {
			t.Errorf("goos lacks %s", os)
		}
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if !slices.Contains(b.Goarch, arch) {
			t.Errorf("goarch lacks %s", arch)
		}
	}
	for _, want := range []string{"README.md", "LICENSE", "completions/*", "docs/man/*"} {
		if !slices.Contains(cfg.Archives[0].Files, want) {
			t.Errorf("archives lack %s", want)
		}
		if m, _ := filepath.Glob(filepath.Join("..", want)); len(m) == 0 {
			t.Errorf("archive file %s matches nothing", want)
		}
	}
	if cfg.Checksum.Algorithm != "sha256" {
		t.Errorf("checksum algorithm = %q, want sha256", cfg.Checksum.Algorithm)
	}
}
