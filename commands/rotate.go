package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// RotateOptions are the inputs of keyctl rotate.
type RotateOptions struct {
	f *Factory

	ID        string
	Grace     string
	OlderThan string
	Env       string
	Scope     string
	DryRun    bool

	Rotate keystore.RotateOptions
	Filter keystore.ListFilter // batch mode
}

// rotation is the result of one key in a batch rotation.
type rotation struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Result string        `json:"result"` // rotated, would_rotate, skipped, failed
	NewKey *keystore.Key `json:"new_key"`
	Error  *string       `json:"error"`
}

// NewCmdRotate builds keyctl rotate.
func NewCmdRotate(f *Factory, runF func(*RotateOptions) error) *cobra.Command {
	opts := &RotateOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "rotate {KEY_ID | --older-than DURATION}",
		Short:       "Replace a key with a new secret",
		Long: `Replace a key with a new one that has the same name, scopes, environment
and metadata, and print the new secret once. The old key stops working at
once, or at the end of --grace so that clients can switch over.

With --older-than, rotate every active key created longer ago than that, one
result per key. This batch form is safe to rerun: a key that was already
rotated is never rotated again, so a job that died half way can simply be
started again.`,
		Example: `  keyctl rotate key_3nF8a9QzLm2Xc7Pb --grace 24h
  keyctl rotate --older-than 90d --env live --dry-run
  keyctl rotate --older-than 90d --grace 24h -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("rotate takes one key ID, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(cmd, args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			if opts.ID != "" {
				return rotateRun(cmd.Context(), opts)
			}
			return rotateBatchRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Grace, "grace", "0", "keep the old key working this long, such as 24h")
	fl.StringVar(&opts.OlderThan, "older-than", "", "batch: rotate every active key older than this, such as 90d")
	fl.StringVar(&opts.Env, "env", "", "batch: only keys of this environment")
	fl.StringVar(&opts.Scope, "scope", "", "batch: only keys granted this scope")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "batch: print what would be rotated, change nothing")
	return cmd
}

func (opts *RotateOptions) resolve(cmd *cobra.Command, args []string) error {
	grace, err := keystore.ParseDuration(opts.Grace)
	if err != nil {
		return asUsage(err)
	}
	opts.Rotate.Grace = grace
	batchOnly := flagChanged(cmd.Flags(), "env") || flagChanged(cmd.Flags(), "scope") || opts.DryRun
	switch {
	case len(args) == 1 && opts.OlderThan != "":
		return usageError("give a key ID or --older-than, not both")
	case len(args) == 1:
		if batchOnly {
			return usageError("--env, --scope and --dry-run go with --older-than")
		}
		opts.ID = args[0]
		return asUsage(keystore.CheckID(opts.ID))
	case opts.OlderThan == "":
		return withHint(usageError("rotate needs a key ID or --older-than"), "keyctl rotate KEY_ID, or keyctl rotate --older-than 90d")
	}
	filter, err := keyFilter(opts.f, keystore.StatusActive, opts.Env, opts.Scope, opts.OlderThan)
	if err != nil {
		return err
	}
	filter.Rotatable = true
	opts.Filter = filter
	return nil
}

func rotateRun(ctx context.Context, opts *RotateOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	key, err := store.Rotate(f.Context(ctx), opts.ID, opts.Rotate)
	if err != nil {
		return asUsage(err)
	}
	p := f.printer()
	if !p.isTable() {
		return p.json(key)
	}
	success(f.IO, "Rotated %s to %s (%s)", opts.ID, key.ID, output.Escape(key.Name))
	if err := p.keyDetails(key); err != nil {
		return err
	}
	if f.IO.IsStderrTTY() {
		if opts.Rotate.Grace > 0 {
			notice(f.IO.ErrOut, "The old key keeps working for %s. Copy the new key now: it will not be shown again.", opts.Grace)
		} else {
			notice(f.IO.ErrOut, "The old key has stopped working. Copy the new key now: it will not be shown again.")
		}
	}
	return nil
}

func rotateBatchRun(ctx context.Context, opts *RotateOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	// Collect the candidates first: rotating creates keys, and a listing
	// must not see the keys it causes.
	var todo []*keystore.Key
	for k, err := range store.List(ctx, keystore.ListOptions{ListFilter: opts.Filter}) {
		if err != nil {
			return asUsage(err)
		}
		todo = append(todo, k)
	}
	// Each result is written as soon as it is known, so that a job killed
	// half way has already printed the new secrets of the keys it rotated.
	emit, finish := rotationPrinter(f)
	failed := 0
	actx := f.Context(ctx)
	bar := f.IO.NewProgress("rotating", len(todo))
	defer bar.Done()
	for i, k := range todo {
		r := rotation{ID: k.ID, Name: k.Name}
		if opts.DryRun {
			r.Result = "would_rotate"
		} else {
			bar.Set(i)
			newKey, err := store.Rotate(actx, k.ID, opts.Rotate)
			switch {
			case ctx.Err() != nil:
				finish()
				return ctx.Err()
			case keystore.ErrorCode(err) == keystore.ECONFLICT:
				// Rotated or revoked by someone else since the listing.
				r.Result = "skipped"
				msg := err.Error()
				r.Error = &msg
			case err != nil:
				r.Result = "failed"
				msg := err.Error()
				r.Error = &msg
				failed++
			default:
				r.Result = "rotated"
				r.NewKey = newKey
			}
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	bar.Done()
	if err := finish(); err != nil {
		return err
	}
	if len(todo) == 0 && f.IO.IsStderrTTY() {
		notice(f.IO.ErrOut, "no keys to rotate")
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d rotations failed", failed, len(todo))
	}
	return nil
}

// rotationPrinter returns emit, called once per result, and finish, called
// at the end. JSON Lines and piped tables print each result at once; a JSON
// array is streamed element by element; only a terminal table and a --jq
// filter wait for the end.
func rotationPrinter(f *Factory) (emit func(rotation) error, finish func() error) {
	p := f.printer()
	var held []any
	switch {
	case p.jq != nil:
		emit = func(r rotation) error { held = append(held, r); return nil }
		finish = func() error {
			if held == nil {
				held = []any{}
			}
			return p.json(held)
		}
	case p.format == output.FormatJSONL:
		emit = func(r rotation) error { return output.WriteJSONLine(f.IO.Out, r, nil) }
		finish = func() error { return nil }
	case p.format == output.FormatJSON:
		n := 0
		emit = func(r rotation) error {
			b, err := json.MarshalIndent(r, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if n == 0 {
				sep = "[\n  "
			}
			n++
			_, err = fmt.Fprintf(f.IO.Out, "%s%s", sep, b)
			return err
		}
		finish = func() error {
			end := "\n]\n"
			if n == 0 {
				end = "[]\n"
			}
			_, err := io.WriteString(f.IO.Out, end)
			return err
		}
	default:
		t := f.IO.NewTable("ID", "NAME", "RESULT", "NEW ID", "KEY")
		rows := 0
		emit = func(r rotation) error {
			newID, secret := "", ""
			if r.NewKey != nil {
				newID, secret = r.NewKey.ID, r.NewKey.Secret
			}
			result := r.Result
			if r.Error != nil {
				result += ": " + *r.Error
			}
			t.Row(r.ID, output.Escape(r.Name), output.Escape(result), newID, secret)
			rows++
			if !f.IO.IsStdoutTTY() {
				return t.Flush()
			}
			return nil
		}
		finish = func() error {
			if rows == 0 {
				return nil
			}
			return t.Render()
		}
	}
	return emit, finish
}
