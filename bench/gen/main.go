// Command gen makes the inputs of bench/run: N keys as keyctl import
// records (JSONL), the same rows as CSV for sqlite3's .import, a key store
// holding them, and a few of their secrets to verify.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/sqlite"
)

func main() {
	n := flag.Int("n", 100_000, "number of keys")
	jsonlPath := flag.String("jsonl", "", "write keyctl import records here")
	csvPath := flag.String("csv", "", "write the same rows as CSV, for sqlite3 .import")
	storePath := flag.String("store", "", "make a key store holding the keys here")
	secretsPath := flag.String("secrets", "", "write the secrets of the first 100 keys here, one a line")
	flag.Parse()
	if err := run(*n, *jsonlPath, *csvPath, *storePath, *secretsPath); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

type record struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	Key    string   `json:"key"`
}

func run(n int, jsonlPath, csvPath, storePath, secretsPath string) error {
	var (
		jsonl   *bufio.Writer
		rows    *csv.Writer
		secrets *bufio.Writer
		store   *sqlite.Store
		batch   []keystore.ImportKey
	)
	open := func(path string) (*bufio.Writer, func() error, error) {
		f, err := os.Create(path)
		if err != nil {
			return nil, nil, err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		return w, func() error {
			if err := w.Flush(); err != nil {
				return err
			}
			return f.Close()
		}, nil
	}
	var closers []func() error
	if jsonlPath != "" {
		w, c, err := open(jsonlPath)
		if err != nil {
			return err
		}
		jsonl, closers = w, append(closers, c)
	}
	if csvPath != "" {
		w, c, err := open(csvPath)
		if err != nil {
			return err
		}
		rows, closers = csv.NewWriter(w), append(closers, func() error { rows.Flush(); return c() })
	}
	if secretsPath != "" {
		w, c, err := open(secretsPath)
		if err != nil {
			return err
		}
		secrets, closers = w, append(closers, c)
	}
	if storePath != "" {
		s, err := sqlite.Open(storePath, sqlite.Options{})
		if err != nil {
			return err
		}
		store = s
		closers = append(closers, s.Close)
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := store.Import(context.Background(), batch)
		if err != nil {
			return err
		}
		if res.Imported != len(batch) {
			return fmt.Errorf("imported %d of %d keys", res.Imported, len(batch))
		}
		batch = batch[:0]
		return nil
	}

	scopes := []string{"bots:read", "bots:write", "conversations:read"}
	created := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	for i := range n {
		secret, err := keystore.NewToken(keystore.EnvLive, nil)
		if err != nil {
			return err
		}
		name := "bench key " + strconv.Itoa(i)
		hash := keystore.HashToken(secret)
		if jsonl != nil {
			b, _ := json.Marshal(record{name, scopes, secret})
			jsonl.Write(append(b, '\n'))
		}
		if rows != nil {
			id, err := keystore.NewID(nil)
			if err != nil {
				return err
			}
			rows.Write([]string{id, name, keystore.EnvLive, strings.Join(scopes, " "), hex.EncodeToString(hash[:]),
				keystore.Hint(secret), strconv.FormatInt(created.Unix(), 10), "{}"})
		}
		if secrets != nil && i < 100 {
			fmt.Fprintln(secrets, secret)
		}
		if store != nil {
			batch = append(batch, keystore.ImportKey{
				Params:    keystore.CreateParams{Name: name, Scopes: scopes, Environment: keystore.EnvLive},
				Hash:      hash,
				Hint:      keystore.Hint(secret),
				CreatedAt: created,
				Source:    keystore.ImportSourceKey,
			})
			if len(batch) == keystore.MaxImportBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if store != nil {
		if err := flush(); err != nil {
			return err
		}
	}
	for _, c := range closers {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}
