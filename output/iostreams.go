package output

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// IOStreams are the standard streams of a command, with what is known about
// the terminal behind them.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	color     bool
	width     int // of the terminal of stdout; 0: not a terminal or unknown
}

// System returns the process's streams. Color is on when stdout is a
// terminal, NO_COLOR is unset or empty, and TERM is not dumb.
func System() *IOStreams {
	isTTY := func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		stdinTTY:  isTTY(os.Stdin),
		stdoutTTY: isTTY(os.Stdout),
		stderrTTY: isTTY(os.Stderr),
	}
	s.color = s.stdoutTTY && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	if s.stdoutTTY {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 0 {
			s.width = w
		}
	}
	return s
}

// Width is the number of columns of the terminal of stdout, 0 when stdout
// is not a terminal or its size is unknown.
func (s *IOStreams) Width() int { return s.width }

// SetWidth sets the terminal width (for tests).
func (s *IOStreams) SetWidth(w int) { s.width = w }

// ReadSecret reads one line from stdin without echoing it when stdin is a
// terminal, after printing prompt on stderr, as a password prompt does.
// Off a terminal it returns ok false and reads nothing.
func (s *IOStreams) ReadSecret(prompt string) (secret string, ok bool, err error) {
	f, isFile := s.In.(*os.File)
	if !s.stdinTTY || !isFile {
		return "", false, nil
	}
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", true, err
	}
	// Echo is off while reading: an interrupt must not leave the terminal
	// so. The process takes the signal as it would have, once the
	// terminal is as it was; the caller must not catch it meanwhile.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			term.Restore(fd, state)
			io.WriteString(s.ErrOut, "\n")
			signal.Stop(sigs)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Signal(sig)
			}
		case <-done:
		}
	}()
	io.WriteString(s.ErrOut, prompt)
	b, err := term.ReadPassword(fd)
	close(done)
	signal.Stop(sigs)
	io.WriteString(s.ErrOut, "\n") // the user's Enter was not echoed either
	return string(b), true, err
}

// Test returns streams over the given reader and writers, none a terminal.
func Test(in io.Reader, out, errOut io.Writer) *IOStreams {
	return &IOStreams{In: in, Out: out, ErrOut: errOut}
}

// SetTTY marks all three streams as terminals or not (for tests).
func (s *IOStreams) SetTTY(tty bool) { s.stdinTTY, s.stdoutTTY, s.stderrTTY = tty, tty, tty }

func (s *IOStreams) IsStdinTTY() bool  { return s.stdinTTY }
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// CanPrompt reports whether the user can answer a question: both stdin and
// stderr are terminals.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY && s.stderrTTY }

// ColorEnabled reports whether output may carry ANSI colors.
func (s *IOStreams) ColorEnabled() bool { return s.color }

// SetColor turns color on or off (--no-color turns it off).
func (s *IOStreams) SetColor(on bool) { s.color = on }
