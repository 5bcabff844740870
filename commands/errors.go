package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/chatbotplatform/keyctl/keystore"
)

// Exit statuses, the same for every command and every store.
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitVerifyFailed = 3
	exitUnauthorized = 4
	exitNotFound     = 5
	exitInterrupted  = 130
)

// cmdError is an error with the exit status it ends the command with and an
// optional hint line, which run prints after the error.
type cmdError struct {
	code int
	msg  string
	hint string
}

func (e *cmdError) Error() string { return e.msg }

// usageError is a bad flag, argument, scope or duration: exit 2.
func usageError(format string, args ...any) error {
	return &cmdError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// withHint adds a hint line to any error, keeping its exit status.
func withHint(err error, hint string) error {
	var ce *cmdError
	if errors.As(err, &ce) {
		c := *ce
		c.hint = hint
		return &c
	}
	return &cmdError{code: exitCode(err), msg: err.Error(), hint: hint}
}

// silentError ends a command with a status after it has said all it had
// to: run prints nothing more.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps an error to the documented exit status: a cmdError's or
// silentError's own, a store error's by its code (EINVALID and ETOOLARGE
// are usage errors), cobra's unknown command or flag a usage error too.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *cmdError
	if errors.As(err, &ce) {
		return ce.code
	}
	var se *silentError
	if errors.As(err, &se) {
		return se.code
	}
	switch keystore.ErrorCode(err) {
	case keystore.EINVALID, keystore.ETOOLARGE:
		return exitUsage
	case keystore.EUNAUTHORIZED, keystore.EFORBIDDEN:
		return exitUnauthorized
	case keystore.ENOTFOUND:
		return exitNotFound
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		return exitUsage
	}
	return exitError
}

// redactSecrets shortens every key-like word of an error message to its
// first 12 characters, as the hint shows them. Many messages repeat what
// the user typed (an unknown command, a stray argument), and a key typed in
// the wrong place must not end up in a terminal's scrollback or a CI log.
func redactSecrets(msg string) string {
	return keystore.RedactSecrets(msg)
}
