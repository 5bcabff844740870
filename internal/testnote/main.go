// Command testnote ends the README's test command with one line saying
// which tests `go test ./...` skipped and how to run them, since go test
// shows nothing of a package that passes.
package main

import (
	"fmt"
	"os"
)

func main() {
	if os.Getenv("KEYCTL_TEST_POSTGRES") == "" {
		fmt.Println("skipped: the PostgreSQL tests (keystore/postgres, and the postgres cases of commands); run them with KEYCTL_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go test ./...")
	}
}
