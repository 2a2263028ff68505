package sqlcore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"baimo/internal/batch"
)

// Blobs keeps files' content in the database (batch_file_chunks), for
// nodes that share it: chunks of ChunkSize bytes.
type Blobs struct {
	s *Store
}

var _ batch.Blobs = Blobs{}

// Blobs returns the store of files' content in the database.
func (s *Store) Blobs() Blobs { return Blobs{s: s} }

// ChunkSize is the size of a stored chunk of a file.
const ChunkSize = 1 << 20

// Put stores r in chunks, each its own write.
func (b Blobs) Put(ctx context.Context, id string, r io.Reader) (int64, error) {
	buf := make([]byte, ChunkSize)
	var n int64
	for seq := 0; ; seq++ {
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			if _, werr := b.s.write.Exec(ctx, `INSERT INTO batch_file_chunks (file_id, seq, data) VALUES ($1, $2, $3)`,
				id, seq, buf[:m]); werr != nil {
				return n, fmt.Errorf("store file %s: %w", id, werr)
			}
			n += int64(m)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// chunk reads one chunk; ok is false past the end.
func (b Blobs) chunk(ctx context.Context, id string, seq int64) (data []byte, ok bool, err error) {
	err = b.s.read.QueryRow(ctx, `SELECT data FROM batch_file_chunks WHERE file_id = $1 AND seq = $2`, id, seq).Scan(&data)
	if noRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read file %s: %w", id, err)
	}
	return data, true, nil
}

// Open reads a file chunk by chunk.
func (b Blobs) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	first, ok, err := b.chunk(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("content of file %s: %w", id, batch.ErrNotFound)
	}
	return &chunkReader{b: b, ctx: ctx, id: id, cur: first}, nil
}

type chunkReader struct {
	b   Blobs
	ctx context.Context
	id  string
	seq int64
	cur []byte
	end bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.end {
			return 0, io.EOF
		}
		r.seq++
		next, ok, err := r.b.chunk(r.ctx, r.id, r.seq)
		if err != nil {
			return 0, err
		}
		if !ok {
			r.end = true
			return 0, io.EOF
		}
		r.cur = next
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *chunkReader) Close() error { return nil }

// ReadAt reads n bytes at off from the chunks that hold them.
func (b Blobs) ReadAt(ctx context.Context, id string, off, n int64) ([]byte, error) {
	out := make([]byte, 0, n)
	for seq := off / ChunkSize; int64(len(out)) < n; seq++ {
		data, ok, err := b.chunk(ctx, id, seq)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("read file %s at %d: %w", id, off, io.ErrUnexpectedEOF)
		}
		from := int64(0)
		if seq == off/ChunkSize {
			from = off % ChunkSize
		}
		if from > int64(len(data)) {
			return nil, fmt.Errorf("read file %s at %d: %w", id, off, io.ErrUnexpectedEOF)
		}
		out = append(out, data[from:min(int64(len(data)), from+n-int64(len(out)))]...)
	}
	return out, nil
}

// Delete removes a file's chunks.
func (b Blobs) Delete(ctx context.Context, id string) error {
	if _, err := b.s.write.Exec(ctx, `DELETE FROM batch_file_chunks WHERE file_id = $1`, id); err != nil {
		return fmt.Errorf("delete file %s: %w", id, err)
	}
	return nil
}
