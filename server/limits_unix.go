//go:build unix

package server

import "syscall"

// openFileLimit is the process's limit of open files (RLIMIT_NOFILE), which
// Go raised to the hard limit at start.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
