package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/output"
)

// RotateOptions are the inputs of keyctl rotate.
type RotateOptions struct {
	f *Factory

	ID              string
	Self            bool
	Grace           string
	OlderThan       string
	Env             string
	Scope           string
	Meta            []string
	DryRun          bool
	Exec            string
	FailFast        bool
	IncludeSelf     bool
	DeliveryTimeout string

	Rotate keystore.RotateOptions
	Filter keystore.ListFilter // batch mode
}

// rotation is the result of one key in a batch rotation.
type rotation struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Result string        `json:"result"` // rotated, would_rotate, skipped, undelivered, in_delivery, failed
	NewKey *keystore.Key `json:"new_key"`
	Error  *string       `json:"error"`
}

// Results of a key in a batch rotation.
const (
	resultRotated     = "rotated"      // rotated, and the new secret delivered
	resultWouldRotate = "would_rotate" // --dry-run
	resultSkipped     = "skipped"      // rotated or revoked by someone else meanwhile
	resultUndelivered = "undelivered"  // the new secret was not delivered: the rotation was undone
	resultInDelivery  = "in_delivery"  // another run is delivering this key's new secret
	resultFailed      = "failed"       // the rotation failed
)

// NewCmdRotate builds keyctl rotate.
func NewCmdRotate(f *Factory, runF func(*RotateOptions) error) *cobra.Command {
	opts := &RotateOptions{f: f}
	cmd := &cobra.Command{
		Annotations: existingStore,
		Use:         "rotate {KEY_ID | --self | --older-than DURATION}",
		Short:       "Replace a key with a new secret",
		Long: `Replace a key with a new one that has the same name, scopes, environment
and metadata, and hand its new secret over once. The old key stops working
once the new secret is delivered: at once, or at the end of --grace so that
clients can switch over.

A rotation is done only when its new secret was delivered: printed on
stdout, or, with --exec, taken by the command, which exited 0. A rotation
whose secret was not delivered is undone (the new key revoked, the old one
untouched); a run killed before it knew is taken over by the next run once
--delivery-timeout has passed. A rerun of the same command therefore ends
with every key rotated once and every new secret delivered.

With --exec CMD, keyctl runs CMD with sh -c once per rotated key, the new
secret on its standard input (without a newline; never in its arguments or
environment), and these variables: KEYCTL_KEY_ID, KEYCTL_KEY_NAME,
KEYCTL_KEY_ENV, KEYCTL_KEY_HINT, KEYCTL_OLD_KEY_ID, and KEYCTL_META_<NAME>
for each metadata entry (NAME upper-cased, other characters than A-Z and
0-9 made _). CMD's output goes to stderr. Exit 0 confirms the delivery;
anything else undoes the rotation of that key, and the batch goes on
(or stops, with --fail-fast). The results then omit the secrets.

With --older-than, rotate every active key created longer ago than that,
one result per key, selected further by --env, --scope (a scope or a
pattern such as bots:*) and --meta. Through the key service, the key that
keyctl authenticates with is left out unless --include-self is given: it is
then rotated last, and keyctl uses its new secret for the rest of the run.
--self rotates that key alone, which needs no admin scope.

Exit status: 0 when every selected key was rotated and delivered (or
skipped because someone else rotated it); 1 when any failed, was not
delivered, or is being delivered by another run, after a summary on stderr.`,
		Example: `  keyctl rotate key_3nF8a9QzLm2Xc7Pb --grace 24h
  keyctl rotate --older-than 90d --env live --dry-run
  keyctl rotate --older-than 90d --grace 24h -o json

  # Each new secret straight into a secret store:
  keyctl rotate --older-than 90d --grace 24h --meta team=platform \
    --exec 'vault kv put "secret/keyctl/$KEYCTL_KEY_NAME" key=-'
  keyctl rotate key_3nF8a9QzLm2Xc7Pb --grace 1h --exec 'gh secret set CHATBOT_API_KEY'
  keyctl rotate key_3nF8a9QzLm2Xc7Pb --exec 'umask 077; cat > "$HOME/.config/bot/$KEYCTL_KEY_NAME.key"'

  # The key this job authenticates with, through the key service:
  keyctl rotate --self --grace 1h --exec 'gh secret set CHATBOT_API_KEY'`,
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
			if opts.ID != "" || opts.Self {
				return rotateRun(cmd.Context(), opts)
			}
			return rotateBatchRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Grace, "grace", "0", "keep the old key working this long after the delivery, such as 24h")
	fl.StringVar(&opts.OlderThan, "older-than", "", "batch: rotate every active key older than this, such as 90d")
	fl.StringVar(&opts.Env, "env", "", "batch: only keys of this environment")
	fl.StringVar(&opts.Scope, "scope", "", "batch: only keys granted this scope, or any scope of a pattern such as bots:*")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "batch: only keys with this metadata, key=value (repeatable)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "batch: print what would be rotated, change nothing")
	fl.StringVar(&opts.Exec, "exec", "", "deliver each new secret on the standard input of this command (sh -c)")
	fl.BoolVar(&opts.FailFast, "fail-fast", false, "batch: stop at the first key that fails or is not delivered")
	fl.BoolVar(&opts.IncludeSelf, "include-self", false, "batch: also rotate the key keyctl authenticates with, last")
	fl.BoolVar(&opts.Self, "self", false, "rotate the key keyctl authenticates with (key service only)")
	fl.StringVar(&opts.DeliveryTimeout, "delivery-timeout", defaultDeliveryTimeout.String(), "time a run has to deliver a new secret before a rerun may take over")
	return cmd
}

func (opts *RotateOptions) resolve(cmd *cobra.Command, args []string) error {
	grace, err := keystore.ParseDuration(opts.Grace)
	if err != nil {
		return err
	}
	opts.Rotate.Grace = grace
	timeout, err := keystore.ParseDuration(opts.DeliveryTimeout)
	if err != nil {
		return err
	}
	if timeout < time.Second {
		return usageError("--delivery-timeout must be at least 1s")
	}
	opts.Rotate.AwaitDelivery = timeout
	if flagChanged(cmd.Flags(), "exec") && strings.TrimSpace(opts.Exec) == "" {
		return usageError("--exec needs a command")
	}
	fl := cmd.Flags()
	batchOnly := flagChanged(fl, "env") || flagChanged(fl, "scope") || flagChanged(fl, "meta") || opts.DryRun || opts.FailFast || opts.IncludeSelf
	switch {
	case opts.Self && (len(args) == 1 || opts.OlderThan != ""):
		return usageError("give --self, a key ID or --older-than, one of them")
	case len(args) == 1 && opts.OlderThan != "":
		return usageError("give a key ID or --older-than, not both")
	case len(args) == 1 || opts.Self:
		if batchOnly {
			return usageError("--env, --scope, --meta, --dry-run, --fail-fast and --include-self go with --older-than")
		}
		if opts.Self {
			return nil
		}
		opts.ID = args[0]
		return keystore.CheckID(opts.ID)
	case opts.OlderThan == "":
		return withHint(usageError("rotate needs a key ID, --self or --older-than"), "keyctl rotate KEY_ID, or keyctl rotate --older-than 90d")
	}
	filter, err := keyFilter(opts.f, keystore.StatusActive, opts.Env, opts.Scope, opts.OlderThan)
	if err != nil {
		return err
	}
	if filter.Metadata, err = metaFilter(opts.Meta); err != nil {
		return err
	}
	filter.Rotatable = true
	opts.Filter = filter
	return nil
}

// selfID returns the ID of the key a remote store authenticates with, or
// "" for a local store.
func selfID(ctx context.Context, store keystore.Store) (string, error) {
	c, ok := keystore.As[keystore.Caller](store)
	if !ok {
		return "", nil
	}
	k, err := c.Self(ctx)
	if err != nil {
		return "", err
	}
	return k.ID, nil
}

func rotateRun(ctx context.Context, opts *RotateOptions) error {
	f := opts.f
	store, err := f.Store()
	if err != nil {
		return err
	}
	self := ""
	var key *keystore.Key
	if opts.Self {
		c, ok := keystore.As[keystore.Caller](store)
		if !ok {
			return withHint(usageError("rotate --self needs the key service: a local store has no calling key"), "keyctl --api-url URL rotate --self")
		}
		if self, err = selfID(ctx, store); err != nil {
			return err
		}
		key, err = c.RotateSelf(f.Context(context.WithoutCancel(ctx)), opts.Rotate)
	} else {
		if self, err = selfID(ctx, store); err != nil {
			return err
		}
		// Not cancelled: a rotation under way is finished and delivered.
		key, err = store.Rotate(f.Context(context.WithoutCancel(ctx)), opts.ID, opts.Rotate)
	}
	if err != nil {
		return err
	}
	p := f.printer()
	print := func(k *keystore.Key) error {
		if !p.isTable() {
			return p.json(k)
		}
		success(f.IO, "Rotated %s to %s (%s)", deref(k.RotatedFrom), k.ID, output.Escape(k.Name))
		return p.keyDetails(k)
	}
	old := deref(key.RotatedFrom)
	if opts.Exec != "" {
		derr := execDelivery(f, opts.Exec, key)
		if err := settle(ctx, f, store, key, derr == nil, self); err != nil {
			if derr != nil {
				return fmt.Errorf("key %s not rotated: %v; %v", old, derr, err)
			}
			return err
		}
		if derr != nil {
			return fmt.Errorf("key %s not rotated: %v (the new key %s was revoked; the old key is unchanged)", old, derr, key.ID)
		}
		shown := *key
		shown.Secret = "" // delivered to the command alone
		return print(&shown)
	}
	// The secret is written before anything else can happen.
	if err := print(key); err != nil {
		settle(ctx, f, store, key, false, self) // undo: nobody has the secret
		return err
	}
	if err := settle(ctx, f, store, key, true, self); err != nil {
		return err
	}
	if f.IO.IsStderrTTY() && p.isTable() {
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
	self, err := selfID(ctx, store)
	if err != nil {
		return err
	}
	// Collect the candidates first: rotating creates keys, and a listing
	// must not see the keys it causes. Keys whose rotation another run is
	// delivering are not done yet either: they are waited for, and taken
	// over if that run died.
	busyFilter := opts.Filter
	busyFilter.Rotatable, busyFilter.Delivering = false, true
	var todo []*keystore.Key
	var selfKey *keystore.Key
	for _, filter := range []keystore.ListFilter{opts.Filter, busyFilter} {
		for k, err := range store.List(ctx, keystore.ListOptions{ListFilter: filter}) {
			if err != nil {
				return err
			}
			if k.ID == self {
				if opts.IncludeSelf {
					selfKey = k
				}
				continue
			}
			todo = append(todo, k)
		}
	}
	// The caller's own key goes last: once it is rotated, the run goes on
	// with its new secret.
	if selfKey != nil {
		todo = append(todo, selfKey)
	}

	// Each result is written as soon as it is known, so that a job killed
	// half way has already printed the new secrets of the keys it rotated.
	emit, finish := rotationPrinter(f)
	var (
		notDone []string // summary lines
		held    []*keystore.Key
		total   = len(todo)
	)
	fail := func(r rotation, what string) {
		notDone = append(notDone, fmt.Sprintf("%s (%s): %s", r.ID, r.Name, what))
	}
	bar := f.IO.NewProgress("rotating", len(todo))
	defer bar.Done()
	stopped := false
keys:
	for i, k := range todo {
		r := rotation{ID: k.ID, Name: k.Name}
		if opts.DryRun {
			r.Result = resultWouldRotate
			if _, err := emit(r); err != nil {
				return err
			}
			continue
		}
		if ctx.Err() != nil || stopped {
			break
		}
		bar.Set(i)
		newKey, err := opts.rotateWaiting(ctx, store, k)
		if newKey == nil && ctx.Err() != nil {
			break keys // interrupted before this key was rotated
		}
		switch {
		case errors.Is(err, errInDelivery):
			r.Result = resultInDelivery
			msg := err.Error()
			r.Error = &msg
			fail(r, msg)
			stopped = opts.FailFast
		case keystore.ErrorCode(err) == keystore.ECONFLICT:
			// Rotated or revoked by someone else since the listing.
			r.Result = resultSkipped
			msg := err.Error()
			r.Error = &msg
		case err != nil:
			r.Result = resultFailed
			msg := err.Error()
			r.Error = &msg
			fail(r, msg)
			stopped = opts.FailFast
		}
		if err != nil {
			if _, err := emit(r); err != nil {
				return err
			}
			continue
		}
		r.Result, r.NewKey = resultRotated, newKey
		var derr error
		if opts.Exec != "" {
			derr = execDelivery(f, opts.Exec, newKey)
		} else {
			// The secret is written before anything else can happen.
			written, err := emit(r)
			if err != nil {
				settle(ctx, f, store, newKey, false, self) // undo: nobody has the secret
				return err
			}
			if !written {
				held = append(held, newKey)
				continue
			}
		}
		serr := settle(ctx, f, store, newKey, derr == nil, self)
		if derr != nil || serr != nil {
			msg := joinErrors(derr, serr)
			r.Result, r.Error = resultUndelivered, &msg
			fail(r, "not delivered: "+msg)
			stopped = opts.FailFast
		}
		if opts.Exec != "" {
			nk := *newKey
			nk.Secret = "" // delivered to the command alone
			r.NewKey = &nk
			if _, err := emit(r); err != nil {
				return err
			}
		}
	}
	bar.Done()
	if err := finish(); err != nil {
		return err
	}
	// The secrets held for a terminal table or a --jq filter are
	// delivered now that they are printed.
	for _, nk := range held {
		if err := settle(ctx, f, store, nk, true, self); err != nil {
			notDone = append(notDone, fmt.Sprintf("%s (%s): %v", deref(nk.RotatedFrom), nk.Name, err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if total == 0 && f.IO.IsStderrTTY() {
		notice(f.IO.ErrOut, "no keys to rotate")
	}
	if len(notDone) > 0 {
		for _, line := range notDone {
			fmt.Fprintln(f.IO.ErrOut, "not rotated: "+redactSecrets(oneLine(line)))
		}
		err := fmt.Errorf("%d of %d keys not rotated", len(notDone), total)
		return withHint(err, "rerun the same command: it rotates only what is not done")
	}
	return nil
}

// errInDelivery: another run is delivering the new secret of a key, and
// its lease did not run out while this run waited.
var errInDelivery = errors.New("another run is still delivering the new secret of this key")

// rotateWaiting rotates k. While another run delivers the new secret of
// k, it waits: until that run confirms (then k is rotated, a conflict) or
// its lease runs out (then this run takes over), for at most its own
// --delivery-timeout and a little more.
func (opts *RotateOptions) rotateWaiting(ctx context.Context, store keystore.Store, k *keystore.Key) (*keystore.Key, error) {
	f := opts.f
	deadline := time.Now().Add(opts.Rotate.AwaitDelivery + 30*time.Second)
	told := false
	for {
		// Not cancelled: a rotation under way is finished and delivered
		// before an interrupted run stops.
		nk, err := store.Rotate(f.Context(context.WithoutCancel(ctx)), k.ID, opts.Rotate)
		if keystore.ErrorCode(err) != keystore.ECONFLICT {
			return nk, err
		}
		busy, berr := inDelivery(ctx, store, k.ID)
		if berr != nil || !busy {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, errInDelivery
		}
		if !told && f.IO.IsStderrTTY() {
			notice(f.IO.ErrOut, "waiting for another run to deliver the new secret of %s (%s)", k.ID, k.Name)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// inDelivery reports whether key id was rotated to a successor that awaits
// delivery and is not revoked: another run is delivering it.
func inDelivery(ctx context.Context, store keystore.Store, id string) (bool, error) {
	k, err := store.Get(ctx, id)
	if err != nil || k.RotatedTo == nil || k.RevokedAt != nil {
		return false, err
	}
	nk, err := store.Get(ctx, *k.RotatedTo)
	if err != nil {
		return false, err
	}
	return nk.Delivery != nil && *nk.Delivery == keystore.DeliveryPending && nk.RevokedAt == nil, nil
}

func joinErrors(errs ...error) string {
	var parts []string
	for _, err := range errs {
		if err != nil {
			parts = append(parts, err.Error())
		}
	}
	return strings.Join(parts, "; ")
}

// rotationPrinter returns emit, called once per result, and finish, called
// at the end. JSON Lines and piped tables print each result at once; a JSON
// array is streamed element by element; only a terminal table and a --jq
// filter wait for the end.
func rotationPrinter(f *Factory) (emit func(rotation) (written bool, err error), finish func() error) {
	p := f.printer()
	var held []any
	switch {
	case p.jq != nil:
		emit = func(r rotation) (bool, error) { held = append(held, r); return false, nil }
		finish = func() error {
			if held == nil {
				held = []any{}
			}
			return p.json(held)
		}
	case p.format == output.FormatJSONL:
		emit = func(r rotation) (bool, error) { return true, output.WriteJSONLine(f.IO.Out, r, nil) }
		finish = func() error { return nil }
	case p.format == output.FormatJSON:
		n := 0
		emit = func(r rotation) (bool, error) {
			b, err := json.MarshalIndent(r, "  ", "  ")
			if err != nil {
				return false, err
			}
			sep := ",\n  "
			if n == 0 {
				sep = "[\n  "
			}
			n++
			_, err = fmt.Fprintf(f.IO.Out, "%s%s", sep, b)
			return err == nil, err
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
		emit = func(r rotation) (bool, error) {
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
				err := t.Flush()
				return err == nil, err
			}
			return false, nil
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
