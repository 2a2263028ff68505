package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DiskBlobs keeps files' content under a directory: one file each, written
// to a temporary name, synced and renamed, so a crash leaves either the
// whole file or none.
type DiskBlobs struct {
	Dir string
}

var _ Blobs = DiskBlobs{}

// path is where id lives; ids are made by NewFileID, checked anyway.
func (d DiskBlobs) path(id string) (string, error) {
	if !fileID(id) {
		return "", fmt.Errorf("batch: bad file id %q", id)
	}
	return filepath.Join(d.Dir, id+".jsonl"), nil
}

// Put writes r to id's file.
func (d DiskBlobs) Put(_ context.Context, id string, r io.Reader) (int64, error) {
	p, err := d.path(id)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return 0, fmt.Errorf("batch files: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, ".put-*")
	if err != nil {
		return 0, fmt.Errorf("batch files: %w", err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return n, err
	}
	return n, nil
}

// Open opens id's file.
func (d DiskBlobs) Open(_ context.Context, id string) (io.ReadCloser, error) {
	p, err := d.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("content of file %s: %w", id, ErrNotFound)
	}
	return f, err
}

// ReadAt reads n bytes of id's file at off.
func (d DiskBlobs) ReadAt(ctx context.Context, id string, off, n int64) ([]byte, error) {
	rc, err := d.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := rc.(*os.File).ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read file %s at %d: %w", id, off, err)
	}
	return b, nil
}

// Delete removes id's file.
func (d DiskBlobs) Delete(_ context.Context, id string) error {
	p, err := d.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// fileID reports whether id could be a file's id: letters, digits, '-' and
// '_', at most 64 bytes (ids a client sends are checked before any use).
func fileID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
