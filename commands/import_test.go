package commands

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
	"github.com/chatbotplatform/keyctl/output"
)

func TestImportOptions(t *testing.T) {
	tests := []struct {
		line    string
		tty     bool
		file    string
		strict  bool
		wantErr string
	}{
		{line: "keys.jsonl", file: "keys.jsonl"},
		{line: "--strict -", file: "-", strict: true},
		{line: "", file: "-"}, // stdin is not a terminal
		{line: "", tty: true, wantErr: "import needs a FILE, or - for standard input"},
		{line: "- -", wantErr: "import reads one file, got 2 arguments"},
		{line: "''", wantErr: "empty file name"},
	}
	for _, tt := range tests {
		var got *ImportOptions
		cmd := NewCmdImport(testFactory(tt.tty), func(o *ImportOptions) error { got = o; return nil })
		err := parse(t, cmd, tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("import %s: error %v, want usage error %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("import %s: %v", tt.line, err)
			continue
		}
		if got.File != tt.file || got.Strict != tt.strict || got.BatchSize != keystore.MaxImportBatch {
			t.Errorf("import %s = %+v", tt.line, got)
		}
	}
}

// refusingStore refuses, as a store may, every key named "refuse", and
// records the size of each batch.
type refusingStore struct {
	keystore.Store
	batches []int
}

func (s *refusingStore) Import(ctx context.Context, keys []keystore.ImportKey) (keystore.ImportResult, error) {
	s.batches = append(s.batches, len(keys))
	var (
		keep []keystore.ImportKey
		pos  []int
		res  keystore.ImportResult
	)
	for i, k := range keys {
		if k.Params.Name == "refuse" {
			res.Failed++
			res.Errors = append(res.Errors, keystore.ImportFailed{Line: i + 1, Message: "refused by the store"})
			continue
		}
		keep, pos = append(keep, k), append(pos, i+1)
	}
	got, err := s.Store.Import(ctx, keep)
	res.Imported, res.Skipped = got.Imported, got.Skipped
	for _, e := range got.Errors {
		res.Errors = append(res.Errors, keystore.ImportFailed{Line: pos[e.Line-1], Message: e.Message})
	}
	return res, err
}

func TestImportRunBatches(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	secrets := map[int]string{}
	for i := 1; i <= 7; i++ {
		name := fmt.Sprint("k", i)
		if i == 3 || i == 6 {
			name = "refuse"
		}
		secret, err := keystore.NewToken(keystore.EnvLive, nil)
		if err != nil {
			t.Fatal(err)
		}
		secrets[i] = secret
		lines = append(lines, `{"name": "`+name+`", "scopes": ["bots:read"], "key": "`+secret+`"}`)
	}
	lines = append(lines[:4], append([]string{"", `{"name": "bad"}`}, lines[4:]...)...) // lines 5 and 6
	path := filepath.Join(dir, "keys.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	local, err := sqlite.Open(filepath.Join(dir, "keys.db"), sqlite.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	store := &refusingStore{Store: local}

	var out, errOut bytes.Buffer
	io := output.Test(strings.NewReader(""), &out, &errOut)
	io.SetTTY(true)
	f := NewFactory(io, func() time.Time { return testNow })
	f.Settings.Format = output.FormatTable
	f.Store = func() (keystore.Store, error) { return store, nil }

	err = importRun(t.Context(), &ImportOptions{f: f, File: path, BatchSize: 2})
	if exitCode(err) != exitError || !strings.Contains(err.Error(), "3 of 8 records") {
		t.Errorf("importRun = %v, want exit 1 for 3 of 8 records", err)
	}
	// Lines 3 and 8 hold the keys the store refused; line 5 is blank.
	stderr := errOut.String()
	for _, want := range []string{"line 3: refused by the store\n", "line 6: a record needs key or key_sha256\n", "line 8: refused by the store\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%q", want, stderr)
		}
	}
	if !strings.Contains(stderr, "importing [") || !strings.Contains(stderr, "records\x1b[K") {
		t.Errorf("no progress bar on a terminal:\n%q", stderr)
	}
	for _, s := range secrets {
		if strings.Contains(stderr+out.String(), s[8:20]) {
			t.Errorf("output shows a secret")
		}
	}
	if got := fmt.Sprint(store.batches); got != "[2 2 2 1]" {
		t.Errorf("batches %s, want [2 2 2 1]", got)
	}
	for _, want := range []string{"imported", "5", "skipped", "failed", "3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary %q lacks %q", out.String(), want)
		}
	}
	n, err := local.Count(t.Context(), keystore.ListFilter{})
	if err != nil || n != 5 {
		t.Errorf("Count = %d, %v; want 5", n, err)
	}
}
