//go:build unix

package commands

import (
	"io"
	"syscall"
)

// openScanFile opens a file to scan with plain system calls: os.Open adds
// four fcntl calls and an epoll registration per file (a regular file
// cannot be polled), which took as long as reading the file itself on a
// tree of small files (bench/run, goal 7). With noFollow, a path that
// became a symbolic link since the walk saw it is refused (O_NOFOLLOW).
func openScanFile(path string, noFollow bool) (scanFile, error) {
	flags := syscall.O_RDONLY | syscall.O_CLOEXEC
	if noFollow {
		flags |= syscall.O_NOFOLLOW
	}
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return fdFile(fd), nil
	}
}

type fdFile int

func (f fdFile) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Size is the file's size, and whether it is a regular file.
func (f fdFile) Size() (int64, bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f), &st); err != nil {
		return 0, false, err
	}
	return st.Size, st.Mode&syscall.S_IFMT == syscall.S_IFREG, nil
}

func (f fdFile) Close() error { return syscall.Close(int(f)) }
