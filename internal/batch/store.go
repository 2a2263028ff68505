package batch

import (
	"context"
	"io"
	"time"
)

// Store keeps files, batches and their lines (package sqlcore, for SQLite
// and PostgreSQL, one conformance suite: storetest). Every write of a
// runner names the batch's epoch and changes nothing when the epoch has
// moved on (a later claim): it reports false, or ErrFenced.
type Store interface {
	// CreateFile records a file whose content Blobs holds.
	CreateFile(ctx context.Context, f File) error
	// File returns a file (ErrNotFound, also for a deleted one).
	File(ctx context.Context, id string) (File, error)
	// Files lists a tenant's files, newest first, of purpose ("" any),
	// created before the file after ("" from the newest), at most limit.
	Files(ctx context.Context, tenantID, purpose, after string, limit int) ([]File, error)
	// DeleteFile marks a file deleted (ErrNotFound when there is none).
	DeleteFile(ctx context.Context, id string) error

	// CreateBatch stores a batch and its lines, all or nothing.
	CreateBatch(ctx context.Context, b Batch, lines []Line) error
	// Batch returns a batch (ErrNotFound).
	Batch(ctx context.Context, id string) (Batch, error)
	// Batches lists batches newest first: a tenant's ("" every tenant's),
	// created before the batch after ("" from the newest), at most limit.
	Batches(ctx context.Context, tenantID, after string, limit int) ([]Batch, error)
	// Claimable returns up to limit batches owner should run: active ones
	// whose lease ended before now, or that owner holds (a restart of it).
	Claimable(ctx context.Context, owner string, now time.Time, limit int) ([]Batch, error)
	// Claim takes a batch for owner until until if its lease ended before
	// now (or owner holds it already), raising its epoch; ok is false when
	// another runner holds it.
	Claim(ctx context.Context, id, owner string, now, until time.Time) (b Batch, ok bool, err error)
	// Renew extends the lease of the runner at epoch; false when fenced.
	Renew(ctx context.Context, id string, epoch int64, until time.Time) (bool, error)
	// SetBatch writes a batch's status and doc, if its epoch is epoch and
	// its status is from; false otherwise.
	SetBatch(ctx context.Context, id string, epoch int64, from, to Status, d Doc) (bool, error)
	// Cancel asks a batch in one of the statuses from to stop: it becomes
	// Cancelling, with CancelledAt at. ErrEnded when it is not in one.
	Cancel(ctx context.Context, id string, from []Status, at time.Time) (Batch, error)

	// StartLines moves up to limit pending lines, in order, to running at
	// epoch and returns them (none when fenced).
	StartLines(ctx context.Context, batchID string, epoch int64, limit int) ([]Line, error)
	// Requeue moves running lines of the batch not running at epoch back
	// to pending (a new runner's first act), and returns how many.
	Requeue(ctx context.Context, batchID string, epoch int64) (int, error)
	// Retry moves the given lines, running at epoch, back to pending.
	Retry(ctx context.Context, batchID string, epoch int64, idx []int) error
	// KeepResults writes each result (Status, Body, Record, Cost, Input,
	// Output of rs) to its line if it is running at epoch, making it done,
	// in one transaction; kept[i] says whether rs[i] was.
	KeepResults(ctx context.Context, batchID string, epoch int64, rs []Line) (kept []bool, err error)
	// MarkSettled moves done lines to settled.
	MarkSettled(ctx context.Context, batchID string, idx []int) error
	// Unsettled returns up to limit done lines after index after, in order.
	Unsettled(ctx context.Context, batchID string, after, limit int) ([]Line, error)
	// EndPending moves every pending line to state (cancelled or expired)
	// if the batch is at epoch; it returns how many.
	EndPending(ctx context.Context, batchID string, epoch int64, state LineState) (int, error)
	// PendingHold sums the holds of the pending lines.
	PendingHold(ctx context.Context, batchID string) (int64, error)
	// Lines returns up to limit lines after index after (-1: from the
	// first), in order, results included.
	Lines(ctx context.Context, batchID string, after, limit int) ([]Line, error)
	// Count counts a batch's lines by outcome.
	Count(ctx context.Context, batchID string) (Counts, error)
}

// Blobs keeps the content of files: under the data directory on a single
// node (DiskBlobs), in the database when several nodes share it.
type Blobs interface {
	// Put stores all of r under id and returns its size; an id is written
	// once.
	Put(ctx context.Context, id string, r io.Reader) (int64, error)
	// Open reads a file from its start.
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	// ReadAt reads n bytes at off.
	ReadAt(ctx context.Context, id string, off, n int64) ([]byte, error)
	// Delete removes a file's content (no error when there is none).
	Delete(ctx context.Context, id string) error
}
