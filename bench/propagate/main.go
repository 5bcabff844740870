// Command propagate is bench/run's measure of how long a revocation made
// through one keyctl serve replica takes to be refused by another: N times,
// it creates a key through A, checks that B verifies it, revokes it
// through A, and verifies it on B until B says revoked. It prints the
// rounds, p50 and p99 in microseconds, tab-separated.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"
)

func main() {
	a := flag.String("a", "", "base URL of replica A (http://HOST:PORT)")
	b := flag.String("b", "", "base URL of replica B")
	n := flag.Int("n", 200, "rounds")
	flag.Parse()
	admin := os.Getenv("CHATBOT_API_KEY")
	if *a == "" || *b == "" || admin == "" {
		fmt.Fprintln(os.Stderr, "usage: CHATBOT_API_KEY=ADMIN propagate -a URL -b URL [-n N]")
		os.Exit(2)
	}
	lags, err := run(*a, *b, admin, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "propagate:", err)
		os.Exit(1)
	}
	slices.Sort(lags)
	us := func(d time.Duration) int64 { return d.Microseconds() }
	fmt.Printf("%d\t%d\t%d\n", len(lags), us(lags[len(lags)/2]), us(lags[len(lags)*99/100]))
}

func call(method, url, token, body string, out any) error {
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(&struct{ Data any }{out})
}

func run(a, b, admin string, n int) ([]time.Duration, error) {
	var lags []time.Duration
	for i := range n {
		var k struct{ ID, Key string }
		if err := call("POST", a+"/v1/api-keys", admin, fmt.Sprintf(`{"name":"propagate %d","scopes":["bots:read"]}`, i), &k); err != nil {
			return nil, err
		}
		verify := func() (string, error) {
			var v struct{ Code string }
			err := call("POST", b+"/v1/api-keys/verify", admin, `{"key":"`+k.Key+`"}`, &v)
			return v.Code, err
		}
		if code, err := verify(); err != nil || code != "valid" {
			return nil, fmt.Errorf("B says %q, %v for a new key", code, err)
		}
		if err := call("DELETE", a+"/v1/api-keys/"+k.ID, admin, "", nil); err != nil {
			return nil, err
		}
		start := time.Now()
		for {
			code, err := verify()
			if err != nil {
				return nil, err
			}
			if code == "revoked" {
				lags = append(lags, time.Since(start))
				break
			}
			if time.Since(start) > 10*time.Second {
				return nil, fmt.Errorf("B still says %q 10 s after the revocation", code)
			}
		}
	}
	return lags, nil
}
