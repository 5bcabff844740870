package commands

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/chatbotplatform/keyctl/output"
)

// TestMain lets scripts run keyctl as a real child process, in-process
// code and all, with the clock taken from KEYCTL_TEST_NOW when a script
// sets it (a hook that exists only in the test binary).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"keyctl": func() {
			now := time.Now
			if s := os.Getenv("KEYCTL_TEST_NOW"); s != "" {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					panic(err)
				}
				now = func() time.Time { return t }
			}
			os.Exit(run(output.System(), now, os.Args[1:]))
		},
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			home := env.WorkDir + "/home"
			env.Setenv("HOME", home)
			env.Setenv("XDG_CONFIG_HOME", home+"/.config")
			env.Setenv("XDG_DATA_HOME", home+"/.local/share")
			env.Setenv("NO_COLOR", "")
			env.Setenv("USER", "tester")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"filemode": cmdFileMode,
			"capture":  cmdCapture,
			"exits":    cmdExits,
			"freeport": cmdFreePort,
			"waitfor":  cmdWaitFor,
			"expand":   cmdExpand,
		},
	})
}

// cmdFileMode asserts a file's permission bits: filemode PATH 0600.
func cmdFileMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: filemode PATH MODE")
	}
	info, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := fmt.Sprintf("%04o", info.Mode().Perm())
	if (got == args[1]) == neg {
		ts.Fatalf("%s has mode %s, want %s%s", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
	}
}

// cmdCapture sets an environment variable from the last command's stdout,
// trimmed, so a script can use an ID or secret it was just given:
// capture ID.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: capture NAME")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile("stdout")))
}

// cmdExits runs a command and asserts its exit status, which testscript's
// own "! cmd" cannot: exits 2 keyctl create.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: exits STATUS COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("run %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdFreePort sets an environment variable to a TCP port that is free on
// 127.0.0.1 now, for a server the script starts: freeport PORT.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: freeport NAME")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ts.Check(ln.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}

// cmdWaitFor polls a URL until it answers 200, for up to 10 seconds, so a
// script can use a server it started in the background: waitfor URL.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: waitfor URL")
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(args[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not answer 200 within 10s (last: %v)", args[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdExpand replaces $NAME and ${NAME} in a file with the script's
// environment variables, for a config file that names a port chosen by
// freeport: expand FILE.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: expand FILE")
	}
	path := ts.MkAbs(args[0])
	ts.Check(os.WriteFile(path, []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o600))
}
