package commands

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at release time with -ldflags "-X github.com/chatbotplatform/keyctl/commands.version=…".
var (
	version = ""
	commit  = ""
	date    = ""
)

// BuildInfo says which keyctl this is.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// buildInfo reads the ldflags values, falling back on what the Go toolchain
// recorded, so that `go install …@v1.2.3` builds also know their version.
func buildInfo() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

func (b BuildInfo) String() string {
	s := "keyctl " + b.Version
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (" + c
		if b.Date != "" {
			s += ", " + b.Date
		}
		s += ")"
	}
	return s + " " + b.GoVersion + " " + b.Platform
}

// VersionOptions are the inputs of keyctl version.
type VersionOptions struct{ f *Factory }

// NewCmdVersion builds keyctl version.
func NewCmdVersion(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{f: f}
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of keyctl",
		Long:    "Print keyctl's version, the commit it was built from, and when.",
		Example: "  keyctl version\n  keyctl version -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return versionRun(cmd.Context(), opts)
		},
	}
}

func versionRun(_ context.Context, opts *VersionOptions) error {
	p := opts.f.printer()
	b := buildInfo()
	if !p.isTable() {
		return p.json(b)
	}
	_, err := fmt.Fprintln(opts.f.IO.Out, b.String())
	return err
}
