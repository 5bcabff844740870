// Command loadgen is bench/run's HTTP load generator: a fixed number of
// keep-alive connections, each sending one request after another for a
// fixed time, reporting requests per second and latency percentiles as one
// JSON line. It writes prepared request bytes and parses replies with
// net/http, so that it costs the machine little and the same for any
// server.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type header []string

func (h *header) String() string     { return strings.Join(*h, ", ") }
func (h *header) Set(v string) error { *h = append(*h, v); return nil }

type report struct {
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Non2xx      int     `json:"non_2xx"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50Micros   float64 `json:"p50_us"`
	P90Micros   float64 `json:"p90_us"`
	P99Micros   float64 `json:"p99_us"`
	P999Micros  float64 `json:"p999_us"`
	MaxMicros   float64 `json:"max_us"`
	Concurrency int     `json:"concurrency"`
}

func main() {
	var headers header
	target := flag.String("url", "", "URL to send requests to")
	method := flag.String("method", "POST", "request method")
	body := flag.String("body", "", "request body")
	conc := flag.Int("c", 16, "connections, each with one request in flight")
	dur := flag.Duration("d", 5*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", time.Second, "how long to send before measuring")
	tsv := flag.Bool("tsv", false, "print requests, rps, p50_us, p99_us, errors and non_2xx tab-separated instead of JSON")
	flag.Var(&headers, "H", `request header "Name: value" (repeatable)`)
	flag.Parse()
	rep, err := run(*target, *method, *body, headers, *conc, *warmup, *dur)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if *tsv {
		fmt.Printf("%d\t%.0f\t%.0f\t%.0f\t%d\t%d\n", rep.Requests, rep.RPS, rep.P50Micros, rep.P99Micros, rep.Errors, rep.Non2xx)
		return
	}
	json.NewEncoder(os.Stdout).Encode(rep)
}

func run(target, method, body string, headers []string, conc int, warmup, dur time.Duration) (report, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" {
		return report{}, fmt.Errorf("want an http:// URL, got %q", target)
	}
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadgen\r\n", method, u.RequestURI(), u.Host)
	for _, h := range headers {
		fmt.Fprintf(&req, "%s\r\n", h)
	}
	if body != "" || method == "POST" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	raw := []byte(req.String())

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		rep      = report{Concurrency: conc}
		lat      []time.Duration
		start    = time.Now()
		measure  = start.Add(warmup)
		end      = measure.Add(dur)
		firstErr error
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				mine            []time.Duration
				n, errs, non2xx int
				conn            net.Conn
				br              *bufio.Reader
			)
			defer func() {
				if conn != nil {
					conn.Close()
				}
				mu.Lock()
				lat = append(lat, mine...)
				rep.Requests += n
				rep.Errors += errs
				rep.Non2xx += non2xx
				mu.Unlock()
			}()
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				if conn == nil {
					c, err := net.Dial("tcp", u.Host)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					conn, br = c, bufio.NewReaderSize(c, 16<<10)
				}
				status, err := roundTrip(conn, br, raw)
				t1 := time.Now()
				if err != nil {
					conn.Close()
					conn = nil
				}
				if t0.Before(measure) {
					continue
				}
				switch {
				case err != nil:
					errs++
				case status < 200 || status > 299:
					non2xx++
				}
				n++
				mine = append(mine, t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	if firstErr != nil && rep.Requests == 0 {
		return rep, firstErr
	}
	rep.Seconds = dur.Seconds()
	rep.RPS = float64(rep.Requests) / dur.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		rep.P50Micros = micros(lat[len(lat)*50/100])
		rep.P90Micros = micros(lat[len(lat)*90/100])
		rep.P99Micros = micros(lat[len(lat)*99/100])
		rep.P999Micros = micros(lat[len(lat)*999/1000])
		rep.MaxMicros = micros(lat[len(lat)-1])
	}
	return rep, nil
}

func roundTrip(conn net.Conn, br *bufio.Reader, raw []byte) (int, error) {
	if _, err := conn.Write(raw); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		return resp.StatusCode, io.EOF // the server closes: dial again
	}
	return resp.StatusCode, nil
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
