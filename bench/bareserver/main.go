// Command bareserver is the reference of bench/run's server benchmark: a
// net/http handler that returns a fixed JSON reply, with nothing else.
//
// With -like URL, the fixed reply is the one that URL gives to a POST of
// -body with the -H headers, sent once at start, with its headers (but
// Date and Content-Length, which net/http writes): net/http sending
// keyctl's reply, without the work of making it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

var reply = []byte(`{"data":{"valid":true,"code":"valid","key":null,"missing_scopes":[]}}` + "\n")

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	like := flag.String("like", "", "serve the reply of this URL to one POST of -body with the -H headers")
	body := flag.String("body", "", "the body of the request sent to -like")
	var hs headers
	flag.Var(&hs, "H", "a header of the request sent to -like, as Name: value (repeatable)")
	flag.Parse()
	header := http.Header{"Content-Type": {"application/json"}}
	if *like != "" {
		var err error
		if header, reply, err = fetch(*like, hs, *body); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String())
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.Write(reply)
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// fetch returns the headers and body of url's reply to a POST of body.
func fetch(url string, hs headers, body string) (http.Header, []byte, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for _, h := range hs {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte("{")) {
		return nil, nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	resp.Header.Del("Date")
	resp.Header.Del("Content-Length")
	return resp.Header, b, nil
}
