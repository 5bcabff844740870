package commands

import (
	"context"
	"io"
	"os"
)

// payload is the input of a command that reads a FILE or - (import,
// sign-webhook, verify-webhook): stdin or an open file.
type payload struct {
	io.Reader
	file    *os.File // nil for stdin
	regular bool     // a regular file, which can be opened again
}

func (p *payload) Close() error {
	if p.file == nil {
		return nil
	}
	return p.file.Close()
}

// openPayload opens FILE, or takes stdin for -.
func openPayload(f *Factory, name string) (*payload, error) {
	if name == "-" {
		return &payload{Reader: f.IO.In}, nil
	}
	file, err := os.Open(name)
	if err != nil {
		return nil, usageError("open %s: %s", name, pathErr(err))
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, usageError("open %s: %s", name, pathErr(err))
	}
	if info.IsDir() {
		file.Close()
		return nil, usageError("open %s: is a directory", name)
	}
	return &payload{Reader: file, file: file, regular: info.Mode().IsRegular()}, nil
}

// ctxReader stops a long read when the command is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
