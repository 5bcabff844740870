package output

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTablePipedIsTabSeparatedWithoutHeader(t *testing.T) {
	var out bytes.Buffer
	s := Test(nil, &out, &bytes.Buffer{})
	tbl := s.NewTable("ID", "NAME")
	tbl.Row("key_1", "a\tb")
	tbl.Row("key_2", "line\nbreak")
	if err := tbl.Render(); err != nil {
		t.Fatal(err)
	}
	if want := "key_1\ta b\nkey_2\tline break\n"; out.String() != want {
		t.Errorf("piped table = %q, want %q", out.String(), want)
	}
}

func TestTableOnTerminalHasHeaderAndAlignment(t *testing.T) {
	var out bytes.Buffer
	s := Test(nil, &out, &bytes.Buffer{})
	s.SetTTY(true)
	tbl := s.NewTable("ID", "NAME")
	tbl.Row("key_1", "Production Server")
	tbl.Row("key_22", "x")
	if err := tbl.Render(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || strings.Index(lines[1], "Production") != strings.Index(lines[0], "NAME") {
		t.Errorf("terminal table not aligned under its header:\n%s", out.String())
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-10 * time.Second:     "just now",
		-2 * time.Minute:      "2 minutes ago",
		-time.Hour:            "1 hour ago",
		-3 * 24 * time.Hour:   "3 days ago",
		48 * time.Hour:        "in 2 days",
		-400 * 24 * time.Hour: "1 year ago",
	} {
		if got := Relative(now.Add(d), now); got != want {
			t.Errorf("Relative(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTimeInPipeIsRFC3339(t *testing.T) {
	s := Test(nil, &bytes.Buffer{}, &bytes.Buffer{})
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if got := s.Time(&ts, ts); got != "2026-01-02T02:04:05Z" {
		t.Errorf("Time = %q", got)
	}
	if got := s.Time(nil, ts); got != "" {
		t.Errorf("nil Time in a pipe = %q, want empty", got)
	}
}

func TestColorOnlyWhenEnabled(t *testing.T) {
	s := Test(nil, &bytes.Buffer{}, &bytes.Buffer{})
	if got := s.Colorize("active", "active"); got != "active" {
		t.Errorf("color off: %q", got)
	}
	s.SetColor(true)
	if got := s.Colorize("revoked", "revoked"); !strings.Contains(got, "\x1b[31m") {
		t.Errorf("color on: %q", got)
	}
}

func TestProgressOnlyOnTerminal(t *testing.T) {
	var errOut bytes.Buffer
	s := Test(nil, &bytes.Buffer{}, &errOut)
	p := s.NewProgress("rotating", 4)
	p.Set(2)
	p.Done()
	if errOut.Len() != 0 {
		t.Errorf("progress off a terminal wrote %q", errOut.String())
	}
	s.SetTTY(true)
	p = s.NewProgress("rotating", 4)
	p.Set(2)
	if !strings.Contains(errOut.String(), "2/4") {
		t.Errorf("progress on a terminal wrote %q", errOut.String())
	}
}

func TestProgressShow(t *testing.T) {
	var errOut bytes.Buffer
	s := Test(nil, &bytes.Buffer{}, &errOut)
	s.NewProgress("importing", 0).Show(5, "5 keys")
	if errOut.Len() != 0 {
		t.Errorf("progress off a terminal wrote %q", errOut.String())
	}
	s.SetTTY(true)
	p := s.NewProgress("importing", 0)
	p.Show(5, "5 keys")
	if got := errOut.String(); !strings.Contains(got, "importing 5 keys") || strings.Contains(got, "[=") {
		t.Errorf("a count wrote %q", got)
	}
	p.Done()
	errOut.Reset()
	s.NewProgress("importing", 100).Show(50, "7 keys")
	if got := errOut.String(); !strings.Contains(got, "[===============               ] 7 keys") {
		t.Errorf("a bar with text wrote %q", got)
	}
}

func TestJQ(t *testing.T) {
	q, err := ParseJQ(".[] | select(.n > 1) | .name")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteJSON(&out, []map[string]any{{"name": "a", "n": 1}, {"name": "b", "n": 2}}, q); err != nil {
		t.Fatal(err)
	}
	if out.String() != "b\n" {
		t.Errorf("jq output = %q, want b", out.String())
	}
	if _, err := ParseJQ(".["); err == nil || !strings.HasPrefix(err.Error(), "invalid --jq expression") {
		t.Errorf("bad expression: err = %v", err)
	}
}
