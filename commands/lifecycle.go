package commands

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// KeysOptions are the inputs of disable, enable and delete: key IDs.
type KeysOptions struct {
	f   *Factory
	IDs []string
	Yes bool // delete only
}

// keysAction is what disable, enable and delete do to one key, and how
// they talk about it.
type keysAction struct {
	verb, done string // "disable", "Disabled"
	do         func(s keystore.Store, ctx context.Context, id string) (*keystore.Key, error)
	check      func(k *keystore.Key) error              // before changing any key; may be nil
	when       func(p *printer, k *keystore.Key) string // the last column of a row
	prompt     string                                   // the question on a terminal; "" asks nothing
}

// NewCmdDisable builds keyctl disable.
func NewCmdDisable(f *Factory, runF func(*KeysOptions) error) *cobra.Command {
	a := keysAction{
		verb: "disable", done: "Disabled",
		do: keystore.Store.Disable,
		check: func(k *keystore.Key) error {
			if k.RevokedAt != nil {
				return withHint(keystore.Errorf(keystore.ECONFLICT, "key %s is revoked: revoking is final", k.ID), "nothing was disabled")
			}
			return nil
		},
		when: func(p *printer, k *keystore.Key) string { return p.io.Time(k.DisabledAt, p.now) },
	}
	return newCmdKeys(f, runF, a, &cobra.Command{
		Use:   "disable KEY_ID...",
		Short: "Stop keys until they are enabled again",
		Long: `Disable one or more API keys: they stop working at once, everywhere, and
verify reports the code disabled (exit status 3), until keyctl enable brings
them back. Unlike revoke, this can be undone; a revoked key cannot be
disabled or enabled. Disabling a disabled key is not an error.`,
		Example: `  keyctl disable key_3nF8a9QzLm2Xc7Pb
  keyctl disable key_3nF8a9QzLm2Xc7Pb key_Zt5Yw1Qe8Rk2Lp0M -o json`,
	})
}

// NewCmdEnable builds keyctl enable.
func NewCmdEnable(f *Factory, runF func(*KeysOptions) error) *cobra.Command {
	a := keysAction{
		verb: "enable", done: "Enabled",
		do: keystore.Store.Enable,
		check: func(k *keystore.Key) error {
			if k.RevokedAt != nil {
				return withHint(keystore.Errorf(keystore.ECONFLICT, "key %s is revoked: revoking is final", k.ID), "create a new key with keyctl create; nothing was enabled")
			}
			return nil
		},
		when: func(p *printer, k *keystore.Key) string { return "" },
	}
	return newCmdKeys(f, runF, a, &cobra.Command{
		Use:   "enable KEY_ID...",
		Short: "Let disabled keys work again",
		Long: `Enable one or more keys stopped by keyctl disable: they work again at once.
A revoked key stays revoked. Enabling a key that is not disabled is not an
error.`,
		Example: `  keyctl enable key_3nF8a9QzLm2Xc7Pb
  keyctl enable key_3nF8a9QzLm2Xc7Pb -o json --jq '.[].status'`,
	})
}

// NewCmdDelete builds keyctl delete.
func NewCmdDelete(f *Factory, runF func(*KeysOptions) error) *cobra.Command {
	a := keysAction{
		verb: "delete", done: "Deleted",
		do: keystore.Store.Delete,
		check: func(k *keystore.Key) error {
			if k.RevokedAt == nil {
				return withHint(keystore.Errorf(keystore.ECONFLICT, "key %s is not revoked: only a revoked key can be deleted", k.ID),
					"revoke it first: keyctl revoke "+k.ID)
			}
			return nil
		},
		when:   func(p *printer, k *keystore.Key) string { return "deleted" },
		prompt: "Delete %s for good? The record goes; its audit events stay. [y/N] ",
	}
	return newCmdKeys(f, runF, a, &cobra.Command{
		Use:   "delete KEY_ID...",
		Short: "Remove revoked keys for good",
		Long: `Delete one or more revoked keys: their records go for good, their audit
events stay, and an event records each deletion. A key that is not revoked is
refused (revoke it first); so is the whole command, before anything changes,
if any key is.

On a terminal keyctl asks before deleting; elsewhere (scripts, CI) pass --yes.`,
		Example: `  keyctl revoke --yes key_3nF8a9QzLm2Xc7Pb && keyctl delete --yes key_3nF8a9QzLm2Xc7Pb
  keyctl list --status revoked -o json --jq '.[].id' | xargs keyctl delete --yes`,
	})
}

func newCmdKeys(f *Factory, runF func(*KeysOptions) error, a keysAction, cmd *cobra.Command) *cobra.Command {
	opts := &KeysOptions{f: f}
	cmd.Annotations = existingStore
	cmd.Args = keyIDsArgs(a.verb)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.IDs = args
		if a.prompt != "" && !opts.Yes && !f.IO.CanPrompt() {
			return withHint(usageError("%s needs --yes when not run on a terminal", a.verb), "keyctl "+a.verb+" --yes "+strings.Join(args, " "))
		}
		if runF != nil {
			return runF(opts)
		}
		return keysRun(cmd.Context(), opts, a)
	}
	if a.prompt != "" {
		cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, a.verb+" without asking")
	}
	return cmd
}

func keysRun(ctx context.Context, opts *KeysOptions, a keysAction) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	// Check every key before changing any: a typo in the third ID must not
	// leave the first two changed and the command failed.
	keys := make([]*keystore.Key, 0, len(opts.IDs))
	for _, id := range opts.IDs {
		k, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		if a.check != nil {
			if err := a.check(k); err != nil {
				return err
			}
		}
		keys = append(keys, k)
	}
	if a.prompt != "" && !opts.Yes {
		ok, err := confirm(ctx, f, fmt.Sprintf(a.prompt, joinIDs(keys)))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(f.IO.ErrOut, "nothing %sd\n", strings.TrimSuffix(a.verb, "e"))
			return &silentError{code: exitError}
		}
	}
	actx := f.Context(ctx)
	done := make([]*keystore.Key, 0, len(keys))
	for _, k := range keys {
		r, err := a.do(store, actx, k.ID)
		if err != nil {
			return err
		}
		done = append(done, r)
		success(f.IO, "%s %s (%s)", a.done, r.ID, output.Escape(r.Name))
	}
	return printKeyResults(f, done, a.when)
}

// printKeyResults prints the keys a command changed: always a JSON array
// (one element or many), and off a terminal one row per key.
func printKeyResults(f *Factory, keys []*keystore.Key, when func(*printer, *keystore.Key) string) error {
	p := f.printer()
	if !p.isTable() {
		items := make([]any, len(keys))
		for i, k := range keys {
			items[i] = k
		}
		return p.json(items)
	}
	if f.IO.IsStdoutTTY() {
		return nil // the success lines said it
	}
	t := f.IO.NewTable()
	for _, k := range keys {
		t.Row(k.ID, output.Escape(k.Name), k.Status, when(p, k))
	}
	return t.Render()
}

// confirm asks a yes/no question on stderr and reads the answer from stdin.
// An interrupt (Ctrl-C) ends the wait at once: the read cannot be
// cancelled, so it runs apart, and the command returns ctx's error.
func confirm(ctx context.Context, f *Factory, question string) (bool, error) {
	fmt.Fprint(f.IO.ErrOut, question)
	answer := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(f.IO.In).ReadString('\n')
		answer <- s
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(f.IO.ErrOut)
		return false, ctx.Err()
	case s := <-answer:
		a := strings.ToLower(strings.TrimSpace(s))
		return a == "y" || a == "yes", nil
	}
}
