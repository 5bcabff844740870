// Command libref links the libraries keyctl is built on and exits: the
// least start-up that any keyctl command can have, since Go initialises
// every linked package before main. bench/run prints it beside goal 3 to
// show how much of a cold keyctl verify is that floor.
package main

import (
	_ "net/http" // the remote store and keyctl serve

	_ "github.com/itchyny/gojq"           // --jq
	_ "github.com/jackc/pgx/v5/pgxpool"   // the PostgreSQL store
	_ "github.com/olekukonko/tablewriter" // tables
	_ "github.com/spf13/cobra"            // the command line
	_ "github.com/spf13/viper"            // configuration
	_ "modernc.org/sqlite"                // the local store
)

func main() {}
