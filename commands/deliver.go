package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// A rotation through keyctl awaits the delivery of its new secret
// (keystore.RotateOptions.AwaitDelivery): the successor is "pending" until
// keyctl has handed its secret over, and only then does keyctl confirm the
// delivery, which starts the old key's end (at once, or after --grace).
// Handed over means: written to stdout, or, with --exec, taken by the
// command, which exited 0. A secret that was not handed over is revoked at
// once when keyctl knows (the command failed); when keyctl was killed
// first, the next run finds the successor still pending past its lease
// (--delivery-timeout), revokes it and rotates the old key again. So a
// rerun of the same command after any failure ends with every key rotated
// once, each new secret delivered, and no successor whose secret nobody has.

// defaultDeliveryTimeout is the lease of a pending successor: how long a
// run has to deliver a new secret before a rerun may take over.
const defaultDeliveryTimeout = 10 * time.Minute

// confirmTimeout bounds the confirmation or revocation that follows a
// rotation, which runs even when the command was interrupted: a rotated
// key's fate must be settled before keyctl stops.
const confirmTimeout = 30 * time.Second

// settleCtx is ctx without its cancellation, bounded: for the steps that
// finish a rotation already made.
func settleCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
}

// execDelivery runs cmdline with sh -c, the new secret on its stdin (never
// in its arguments or environment) and the key's particulars in KEYCTL_*
// variables. Its stdout and stderr go to keyctl's stderr, so that keyctl's
// stdout stays the results. It is not killed when keyctl is interrupted:
// a delivery under way is let finish, and its result decides.
func execDelivery(f *Factory, cmdline string, k *keystore.Key) error {
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Stdin = strings.NewReader(k.Secret)
	cmd.Stdout = f.IO.ErrOut
	cmd.Stderr = f.IO.ErrOut
	cmd.Env = append(deliveryEnviron(os.Environ()), deliveryEnv(k)...)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("--exec command failed (%s)", ee.ProcessState.String())
	}
	if err != nil {
		return fmt.Errorf("--exec command: %v", err)
	}
	return nil
}

// deliveryEnviron is keyctl's environment without KEYCTL_KEY_* and
// KEYCTL_META_* variables, which execDelivery sets for each key.
func deliveryEnviron(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, "KEYCTL_KEY_") || strings.HasPrefix(kv, "KEYCTL_META_") || strings.HasPrefix(kv, "KEYCTL_OLD_KEY_ID=")
	})
}

// deliveryEnv describes k to an --exec command.
func deliveryEnv(k *keystore.Key) []string {
	env := []string{
		"KEYCTL_KEY_ID=" + k.ID,
		"KEYCTL_KEY_NAME=" + k.Name,
		"KEYCTL_KEY_ENV=" + k.Environment,
		"KEYCTL_KEY_HINT=" + k.Hint,
	}
	if k.RotatedFrom != nil {
		env = append(env, "KEYCTL_OLD_KEY_ID="+*k.RotatedFrom)
	}
	for _, name := range slices.Sorted(maps.Keys(k.Metadata)) {
		env = append(env, "KEYCTL_META_"+metaEnvName(name)+"="+k.Metadata[name])
	}
	return env
}

// metaEnvName makes a metadata name fit an environment variable's name:
// upper case, and _ for every character other than A-Z and 0-9.
func metaEnvName(s string) string {
	var b bytes.Buffer
	for _, r := range strings.ToUpper(s) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// settle finishes a rotation that awaited delivery: it confirms the
// delivery of nk when delivered, and otherwise revokes nk, which undoes
// the rotation (the old key stays as it was). When nk succeeds the key
// the store authenticates with, the store switches to nk's secret first.
// On success, nk's delivery is what the store now holds.
func settle(ctx context.Context, f *Factory, store keystore.Store, nk *keystore.Key, delivered bool, selfID string) error {
	sctx, cancel := settleCtx(f.Context(ctx))
	defer cancel()
	if !delivered {
		_, err := store.Revoke(sctx, nk.ID)
		if err != nil {
			return fmt.Errorf("revoke undelivered key %s: %w", nk.ID, err)
		}
		return nil
	}
	if c, ok := keystore.As[keystore.Caller](store); ok && selfID != "" && nk.RotatedFrom != nil && *nk.RotatedFrom == selfID {
		c.UseSecret(nk.Secret)
	}
	done, err := store.ConfirmDelivery(sctx, nk.ID)
	if err != nil {
		return fmt.Errorf("confirm delivery of key %s: %w", nk.ID, err)
	}
	nk.Delivery = done.Delivery
	return nil
}
