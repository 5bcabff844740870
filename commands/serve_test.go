package commands

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/remote"
	"github.com/chatbotplatform/keyctl/output"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"0": 0, "0/s": 0, "100/s": 100, "6000/m": 100, "1/s": 1, "30/m": 0.5, "7200/h": 2, "2.5/s": 2.5,
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100", "100/d", "/s", "-1/s", "x/s", "1e3/s", "Inf/s", "NaN/s", "100/ s", "0x10/s", "1/s/s"} {
		if _, err := parseRate(in); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "invalid --rate-limit") {
			t.Errorf("parseRate(%q): %v, want a usage error", in, err)
		}
	}
}

func TestServeOptions(t *testing.T) {
	tests := []struct {
		line    string
		apiURL  string
		rate    float64
		wantErr string
	}{
		{line: "", rate: 100},
		{line: "--addr 127.0.0.1:0 --rate-limit 0", rate: 0},
		{line: "--rate-limit 6000/m --tls-cert c.pem --tls-key k.pem", rate: 100},
		{line: "--tls-key k.pem", wantErr: "--tls-cert and --tls-key go together"},
		{line: "--rate-limit fast", wantErr: `invalid --rate-limit "fast"`},
		{line: "--addr localhost", wantErr: `invalid --addr "localhost"`},
		{line: "", apiURL: "http://keys.example/v1", wantErr: "serve serves a local store"},
		{line: "extra", wantErr: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := testFactory(false)
			f.Settings.APIURL = tt.apiURL
			var got *ServeOptions
			err := parse(t, NewCmdServe(f, func(o *ServeOptions) error { got = o; return nil }), tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
					t.Fatalf("err = %v (exit %d), want a usage error containing %q", err, exitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Rate != tt.rate {
				t.Errorf("rate = %v, want %v", got.Rate, tt.rate)
			}
		})
	}
}

// serve over TLS on a port the system picks, then shut down gracefully.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	logs := &lockedBuffer{}
	f := NewFactory(output.Test(strings.NewReader(""), &bytes.Buffer{}, logs), time.Now)
	f.Settings.StorePath = filepath.Join(dir, "keys.db")
	defer f.Close()
	store, err := f.Store()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := store.Create(context.Background(), keystore.CreateParams{Name: "admin", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serveRun(ctx, &ServeOptions{f: f, Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile})
	}()
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`"msg":"listening on (https://127\.0\.0\.1:\d+)"`).FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", logs)
		}
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	rs, err := remote.Open(url+"/v1", admin.Secret, remote.Options{HTTPClient: client, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rs.Count(context.Background(), keystore.ListFilter{}); err != nil || n != 1 {
		t.Errorf("Count over TLS = %d, %v; want 1", n, err)
	}

	// The CLI: a certificate it does not trust fails at once, not after
	// retrying for --timeout; --ca-cert trusts it.
	webhookEnv(t)
	t.Setenv("CHATBOT_API_KEY", admin.Secret)
	began := time.Now()
	code, _, stderr := runKeyctl(t, nil, "--api-url", url+"/v1", "list")
	if code != exitError || !strings.Contains(stderr, "not trusted") || !strings.Contains(stderr, "--ca-cert") || time.Since(began) > 5*time.Second {
		t.Errorf("list with an untrusted certificate: exit %d after %v, %q", code, time.Since(began), stderr)
	}
	code, stdout, stderr := runKeyctl(t, nil, "--api-url", url+"/v1", "--ca-cert", certFile, "list", "-o", "json", "--jq", ".[].name")
	if code != 0 || stdout != "admin\n" {
		t.Errorf("list with --ca-cert: exit %d, %q, %q", code, stdout, stderr)
	}
	t.Setenv("KEYCTL_CA_CERT", certFile) // a global option: from the environment too
	if code, _, stderr := runKeyctl(t, nil, "--api-url", url+"/v1", "list"); code != 0 {
		t.Errorf("list with KEYCTL_CA_CERT: exit %d, %q", code, stderr)
	}
	code, _, stderr = runKeyctl(t, nil, "--api-url", url+"/v1", "--ca-cert", keyFile, "list")
	if code != exitUsage || !strings.Contains(stderr, "no PEM certificate in it") {
		t.Errorf("--ca-cert of a key file: exit %d, %q", code, stderr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}
	// The request lines, held in memory, were written by the shutdown at
	// the latest, before the last line.
	if i := strings.Index(logs.String(), `"msg":"request","method":"GET","path":"/v1/api-keys"`); i < 0 || i > strings.Index(logs.String(), `"msg":"stopped"`) {
		t.Errorf("the request line is missing, or after the last line:\n%s", logs)
	}
	if strings.Contains(logs.String(), admin.Secret[8:24]) {
		t.Errorf("the log holds the admin secret")
	}
}

func TestServeBadCertificate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	f := testFactory(false)
	f.Settings.StorePath = filepath.Join(dir, "keys.db")
	err := serveRun(context.Background(), &ServeOptions{f: f, Addr: "127.0.0.1:0", TLSCert: bad, TLSKey: bad})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "cannot load --tls-cert") {
		t.Errorf("err = %v, want a usage error", err)
	}
	if _, err := os.Stat(f.Settings.StorePath); err == nil {
		t.Errorf("a refused serve made a store")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keyctl test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// lockedBuffer is written by the server's goroutines while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
