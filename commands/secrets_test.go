//go:build unix

package commands

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

var secretInOutput = regexp.MustCompile(`sk_(live|test)_[0-9A-Za-z]{38}`)

// A realistic session, successful commands and mistakes alike, leaves no
// secret anywhere but in the replies to create and rotate: not in the store
// file, its -wal or -shm, not in list, show, verify or audit output, not in
// any message on stderr, even when a secret is pasted where an ID or a
// command belongs. The store and its folders are private whatever the
// umask, also when --store names a file in folders that do not exist yet.
func TestSecretsStayOutOfFilesAndOutput(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	store := filepath.Join(dir, "a", "b", "keys.db")
	env := childEnv(home)

	var (
		secrets  []string // every key secret keyctl handed out
		leakable []result // output that must not hold any secret
		ids      = map[string]string{}
	)
	// issue runs a create or rotate, whose stdout carries the new secret.
	issue := func(name string, args ...string) {
		t.Helper()
		r := keyctlRun(t, env, "", append([]string{"--store", store}, args...)...)
		if r.code != 0 {
			t.Fatalf("keyctl %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		found := secretInOutput.FindAllString(r.stdout, -1)
		if len(found) != 1 {
			t.Fatalf("keyctl %s printed %d secrets, want 1:\n%s", strings.Join(args, " "), len(found), r.stdout)
		}
		secrets = append(secrets, found[0])
		if m := regexp.MustCompile(`key_[0-9A-Za-z]{16}`).FindAllString(r.stdout, -1); len(m) > 0 {
			ids[name] = m[0]
		}
		r.stdout = "" // the one place a secret belongs
		leakable = append(leakable, r)
	}
	// use runs any other command, which must exit with code.
	use := func(code int, stdin string, args ...string) result {
		t.Helper()
		r := keyctlRun(t, env, stdin, append([]string{"--store", store}, args...)...)
		if r.code != code {
			t.Fatalf("keyctl %s: exit %d, want %d: %s", strings.Join(args, " "), r.code, code, r.stderr)
		}
		leakable = append(leakable, r)
		return r
	}

	issue("web", "create", "--name", "web", "--scope", "bots:read", "--meta", "team=web", "-o", "json")
	// Hold the store open, as a long-running keyctl serve would: its -wal
	// and -shm files then stay, with everything written since.
	holder := rawStore(t, store)
	if err := holder.QueryRow("SELECT count(*) FROM keys").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	issue("ci", "create", "--name", "ci", "--env", "test", "--scope", "*:read", "--expires-in", "30d")
	issue("admin", "create", "-q", "--name", "admin")
	var web keystore.Key
	show := use(0, "", "show", ids["web"], "-o", "json")
	if err := json.Unmarshal([]byte(show.stdout), &web); err != nil {
		t.Fatal(err)
	}
	ids["admin"] = strings.TrimSpace(use(0, "", "list", "--limit", "1", "-o", "json", "--jq", ".[0].id").stdout)

	use(0, "", "verify", secrets[0])
	use(0, secrets[1]+"\n", "verify", "-", "--scope", "bots:read", "-o", "json")
	issue("web2", "rotate", ids["web"], "-o", "json")
	issue("ci2", "rotate", ids["ci"], "--grace", "1h")
	batch := keyctlRun(t, env, "", "--store", store, "rotate", "--older-than", "0s", "--env", "live", "-o", "jsonl")
	for line := range strings.Lines(batch.stdout) {
		found := secretInOutput.FindAllString(line, -1)
		if batch.code != 0 || len(found) != 1 {
			t.Fatalf("batch rotation: exit %d, line %q has %d secrets", batch.code, line, len(found))
		}
		secrets = append(secrets, found[0])
	}
	batch.stdout = ""
	leakable = append(leakable, batch)
	use(0, "", "revoke", "--yes", ids["admin"])
	use(0, "", "list", "--all")
	use(0, "", "list", "-o", "jsonl")
	use(0, "", "show", ids["web2"])
	use(0, "", "audit")
	use(0, "", "audit", "-o", "json")
	use(0, "", "audit", "--key", ids["web"], "-o", "jsonl")

	// Mistakes, with secrets in the wrong places.
	latest := secrets[len(secrets)-1]
	typo := []byte(latest)
	typo[20] = map[bool]byte{true: 'x', false: 'y'}[typo[20] != 'x']
	use(3, "", "verify", secrets[0])                                   // rotated
	use(3, "", "verify", secrets[2])                                   // revoked (rotated by the batch)
	use(3, "", "verify", string(typo))                                 // mistyped
	use(3, "", "verify", latest[:40])                                  // truncated
	use(3, "", "verify", secrets[4], "--scope", "admin", "-o", "json") // ci's successor: *:read
	use(2, "", "verify", latest, "--scope", latest)
	use(2, "", "show", latest)
	use(2, "", "rotate", latest)
	use(2, "", "revoke", "--yes", latest)
	use(2, "", "audit", "--key", latest)
	use(2, "", "list", latest)
	use(2, "", latest)
	use(2, "", "create", "--name", "x", "--scope", "bots:read", latest)
	use(2, "", "--profile", latest, "list")
	use(2, "", "list", "--status", latest)
	// The random part alone, where no prefix gives it away.
	bare := latest[len("sk_live_"):]
	use(2, "", "list", "--status", bare)
	use(2, "", "list", "--env", bare)
	use(2, "", "list", "--scope", bare)
	use(2, "", "list", "--older-than", bare)
	use(2, "", "show", bare)
	use(2, "", "-o", bare, "list")
	use(2, "", "--profile", bare, "list")
	use(2, "", "create", "--name", "x", "--scope", bare)
	use(2, "", "create", "--name", "x", "--scope", "bots:read", "--env", bare)
	use(2, "", "create", "--name", "x", "--scope", "bots:read", "--expires-at", bare)
	use(2, "", "create", "--name", "x", "--scope", "bots:read", "--meta", bare)
	use(2, "", "completion", bare)
	use(2, "", "list", "--older-than", latest)
	use(2, "", "create", "--name", "x", "--scope", "bots:read", "--expires-at", latest)
	use(2, "", "sign-webhook", "--secret", "whsec_"+latest, "-")
	use(2, "", "verify-webhook", "--secret", webhookSecret, "-H", latest, "-")
	use(3, "{}", "verify-webhook", "--secret", webhookSecret, "-H", "webhook-id: "+latest, "-H", "webhook-timestamp: 1", "-H", "webhook-signature: v1,"+latest, "-")
	use(1, "", "--store", filepath.Join(dir, "a"), "verify", latest) // a folder, not a store

	// The store's files, while a process still has the store open.
	files := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(store + suffix)
		if err != nil {
			t.Fatalf("%v (the holder should keep the file)", err)
		}
		files[filepath.Base(store+suffix)] = b
	}
	// The hashes being there shows the search looks at the right bytes.
	all := bytes.Join([][]byte{files["keys.db"], files["keys.db-wal"]}, nil)
	for _, s := range secrets {
		if h := keystore.HashToken(s); !bytes.Contains(all, h[:]) {
			t.Errorf("the hash of %s… is not in the store", s[:12])
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(store + suffix); err != nil || fi.Mode() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", store+suffix, err)
		}
	}
	holder.Close()
	b, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	files["keys.db after the last close"] = b

	if len(secrets) < 6 {
		t.Fatalf("the session handed out %d secrets, want at least 6", len(secrets))
	}
	for _, s := range secrets {
		parts := []string{s, s[8:24], s[24:40]} // whole, and each half of the random part
		for name, content := range files {
			for _, p := range parts {
				if bytes.Contains(content, []byte(p)) {
					t.Errorf("%s holds (part of) the secret %s…", name, s[:12])
				}
			}
		}
		for _, r := range leakable {
			for _, p := range parts {
				if strings.Contains(r.stdout, p) || strings.Contains(r.stderr, p) {
					t.Errorf("keyctl %s printed (part of) the secret %s…:\nstdout: %s\nstderr: %s",
						strings.Join(r.args, " "), s[:12], r.stdout, r.stderr)
				}
			}
		}
	}
	ws := strings.TrimPrefix(webhookSecret, "whsec_")
	for _, r := range leakable {
		if strings.Contains(r.stdout, ws) || strings.Contains(r.stderr, ws) {
			t.Errorf("keyctl %s printed the webhook secret", strings.Join(r.args, " "))
		}
	}

	// Private files and folders, whatever the umask.
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	modes := map[string]fs.FileMode{
		filepath.Join(dir, "probe"): 0o666, // the umask really is 0
		filepath.Join(dir, "a"):     fs.ModeDir | 0o700,
		filepath.Dir(store):         fs.ModeDir | 0o700,
		store:                       0o600,
	}
	// And the default store, under XDG_DATA_HOME.
	mustRun(t, env, "create", "-q", "--name", "default", "--scope", "bots:read")
	def := filepath.Join(home, ".local", "share", "keyctl", "keys.db")
	modes[filepath.Dir(def)] = fs.ModeDir | 0o700
	modes[def] = 0o600
	for path, want := range modes {
		fi, err := os.Stat(path)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if len(files["keys.db-wal"]) == 0 {
		t.Error("the -wal file was empty: the test did not look at a live WAL")
	}
}
