//go:build !unix

package commands

import "os"

// openScanFile opens a file to scan; noFollow is best effort here: the
// walk itself never descends into symbolic links.
func openScanFile(path string, noFollow bool) (scanFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, bool, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	return info.Size(), info.Mode().IsRegular(), nil
}
