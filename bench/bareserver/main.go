// Command bareserver is the reference of bench/run's server benchmark: a
// net/http handler that returns a fixed JSON reply, with nothing else.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

var reply = []byte(`{"data":{"valid":true,"code":"valid","key":null,"missing_scopes":[]}}` + "\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String())
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
