// Command coldref is the reference of bench/run's cold verify: the least a
// Go program does to look a key up in a key store, opening the SQLite file
// with the same driver and running one query.
package main

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: coldref STORE KEY")
		os.Exit(2)
	}
	db, err := sql.Open("sqlite", "file:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer db.Close()
	hash := sha256.Sum256([]byte(os.Args[2]))
	var id, name string
	err = db.QueryRow("SELECT id, name FROM keys WHERE secret_hash = ?", hash[:]).Scan(&id, &name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(id, name)
}
