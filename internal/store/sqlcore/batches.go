package sqlcore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"baimo/internal/batch"
)

// TxFunc runs fn in one write transaction of a store.
type TxFunc func(ctx context.Context, fn func(Querier) error) error

// Batches is the batch store (batch.Store) on a store's queriers and its
// write transactions.
type Batches struct {
	s    *Store
	inTx TxFunc
}

var _ batch.Store = (*Batches)(nil)

// Batches returns the batch store, writing its transactions with inTx.
func (s *Store) Batches(inTx TxFunc) *Batches { return &Batches{s: s, inTx: inTx} }

const fileCols = `id, tenant_id, key_id, purpose, filename, bytes, lines, created_at`

func scanFile(r Row) (batch.File, error) {
	var f batch.File
	var created int64
	err := r.Scan(&f.ID, &f.TenantID, &f.KeyID, &f.Purpose, &f.Filename, &f.Bytes, &f.Lines, &created)
	f.CreatedAt = FromUnixNanos(created)
	return f, err
}

// CreateFile records a file.
func (b *Batches) CreateFile(ctx context.Context, f batch.File) error {
	_, err := b.s.write.Exec(ctx, `INSERT INTO batch_files (`+fileCols+`) VALUES (`+Placeholders(1, 8)+`)`,
		f.ID, f.TenantID, f.KeyID, f.Purpose, f.Filename, f.Bytes, f.Lines, UnixNanos(f.CreatedAt))
	if err != nil {
		return fmt.Errorf("create file %s: %w", f.ID, err)
	}
	return nil
}

// File returns a file that is not deleted.
func (b *Batches) File(ctx context.Context, id string) (batch.File, error) {
	f, err := scanFile(b.s.read.QueryRow(ctx, `SELECT `+fileCols+` FROM batch_files WHERE id = $1 AND deleted = $2`, id, false))
	if noRows(err) {
		return batch.File{}, fmt.Errorf("file %s: %w", id, batch.ErrNotFound)
	}
	if err != nil {
		return batch.File{}, fmt.Errorf("file %s: %w", id, err)
	}
	return f, nil
}

// Files lists a tenant's files, newest first (ids sort by time).
func (b *Batches) Files(ctx context.Context, tenantID, purpose, after string, limit int) ([]batch.File, error) {
	q := `SELECT ` + fileCols + ` FROM batch_files WHERE tenant_id = $1 AND deleted = $2`
	args := []any{tenantID, false}
	if purpose != "" {
		args = append(args, purpose)
		q += ` AND purpose = $` + strconv.Itoa(len(args))
	}
	if after != "" {
		args = append(args, after)
		q += ` AND id < $` + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	q += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	out, err := queryAll(ctx, b.s.read, scanFile, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	return out, nil
}

// DeleteFile marks a file deleted.
func (b *Batches) DeleteFile(ctx context.Context, id string) error {
	n, err := b.s.write.Exec(ctx, `UPDATE batch_files SET deleted = $2 WHERE id = $1 AND deleted = $3`, id, true, false)
	if err != nil {
		return fmt.Errorf("delete file %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("file %s: %w", id, batch.ErrNotFound)
	}
	return nil
}

const batchCols = `id, api, tenant_id, key_id, endpoint, input_file_id, status, created_at, expires_at, cancelled_at, owner, lease_until, epoch, doc`

func scanBatch(r Row) (batch.Batch, error) {
	var b batch.Batch
	var api, status, doc string
	var created, expires, cancelled, lease int64
	if err := r.Scan(&b.ID, &api, &b.TenantID, &b.KeyID, &b.Endpoint, &b.InputFileID, &status, &created, &expires, &cancelled,
		&b.Owner, &lease, &b.Epoch, &doc); err != nil {
		return b, err
	}
	b.API, b.Status = batch.API(api), batch.Status(status)
	b.CreatedAt, b.ExpiresAt, b.CancelledAt, b.LeaseUntil = FromUnixNanos(created), FromUnixNanos(expires),
		FromUnixNanos(cancelled), FromUnixNanos(lease)
	if err := json.Unmarshal([]byte(doc), &b.Doc); err != nil {
		return b, fmt.Errorf("batch %s: doc: %w", b.ID, err)
	}
	return b, nil
}

// lineInsertRows is how many lines one INSERT writes.
const lineInsertRows = 256

const lineInsertCols = `batch_id, idx, custom_id, model, state, body_off, body_len, hold, tokens`

// CreateBatch stores a batch and its lines in one transaction.
func (b *Batches) CreateBatch(ctx context.Context, bt batch.Batch, lines []batch.Line) error {
	doc, err := json.Marshal(bt.Doc)
	if err != nil {
		return err
	}
	err = b.inTx(ctx, func(q Querier) error {
		if _, err := q.Exec(ctx, `INSERT INTO batches (`+batchCols+`) VALUES (`+Placeholders(1, 14)+`)`,
			bt.ID, string(bt.API), bt.TenantID, bt.KeyID, bt.Endpoint, bt.InputFileID, string(bt.Status), UnixNanos(bt.CreatedAt),
			UnixNanos(bt.ExpiresAt), UnixNanos(bt.CancelledAt), bt.Owner, UnixNanos(bt.LeaseUntil), bt.Epoch, string(doc)); err != nil {
			return err
		}
		const n = 9
		args := make([]any, 0, n*lineInsertRows)
		for start := 0; start < len(lines); start += lineInsertRows {
			chunk := lines[start:min(start+lineInsertRows, len(lines))]
			var sb strings.Builder
			sb.WriteString(`INSERT INTO batch_lines (` + lineInsertCols + `) VALUES `)
			args = args[:0]
			for i, l := range chunk {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(" + Placeholders(i*n+1, n) + ")")
				args = append(args, bt.ID, l.Index, l.CustomID, l.Model, string(batch.LinePending), l.Offset, l.Length, l.Hold, l.Tokens)
			}
			if _, err := q.Exec(ctx, sb.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create batch %s: %w", bt.ID, err)
	}
	return nil
}

// Batch returns a batch.
func (b *Batches) Batch(ctx context.Context, id string) (batch.Batch, error) {
	bt, err := scanBatch(b.s.read.QueryRow(ctx, `SELECT `+batchCols+` FROM batches WHERE id = $1`, id))
	if noRows(err) {
		return batch.Batch{}, fmt.Errorf("batch %s: %w", id, batch.ErrNotFound)
	}
	if err != nil {
		return batch.Batch{}, fmt.Errorf("batch %s: %w", id, err)
	}
	return bt, nil
}

// Batches lists batches, newest first (ids sort by time).
func (b *Batches) Batches(ctx context.Context, tenantID, after string, limit int) ([]batch.Batch, error) {
	q := `SELECT ` + batchCols + ` FROM batches WHERE 1 = 1`
	var args []any
	if tenantID != "" {
		args = append(args, tenantID)
		q += ` AND tenant_id = $` + strconv.Itoa(len(args))
	}
	if after != "" {
		args = append(args, after)
		q += ` AND id < $` + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	q += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	out, err := queryAll(ctx, b.s.read, scanBatch, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return out, nil
}

// activeStatuses are the statuses a runner works on, for SQL.
const activeStatuses = `('in_progress', 'finalizing', 'cancelling')`

// Claimable returns active batches whose lease ended, or that owner holds.
func (b *Batches) Claimable(ctx context.Context, owner string, now time.Time, limit int) ([]batch.Batch, error) {
	out, err := queryAll(ctx, b.s.read, scanBatch, `SELECT `+batchCols+` FROM batches WHERE status IN `+activeStatuses+`
		AND (lease_until < $1 OR owner = $2) ORDER BY id LIMIT $3`, UnixNanos(now), owner, limit)
	if err != nil {
		return nil, fmt.Errorf("claimable batches: %w", err)
	}
	return out, nil
}

// Claim takes a batch whose lease ended (or that owner holds), raising
// its epoch.
func (b *Batches) Claim(ctx context.Context, id, owner string, now, until time.Time) (batch.Batch, bool, error) {
	n, err := b.s.write.Exec(ctx, `UPDATE batches SET owner = $2, lease_until = $3, epoch = epoch + 1
		WHERE id = $1 AND status IN `+activeStatuses+` AND (lease_until < $4 OR owner = $2)`, id, owner, UnixNanos(until), UnixNanos(now))
	if err != nil || n == 0 {
		return batch.Batch{}, false, err
	}
	bt, err := b.Batch(ctx, id)
	if err != nil {
		return batch.Batch{}, false, err
	}
	// The row read after the update is ours unless another claim came
	// between (then its owner or epoch differs from what we wrote).
	return bt, bt.Owner == owner && bt.LeaseUntil.Equal(FromUnixNanos(UnixNanos(until))), nil
}

// Renew extends a runner's lease.
func (b *Batches) Renew(ctx context.Context, id string, epoch int64, until time.Time) (bool, error) {
	n, err := b.s.write.Exec(ctx, `UPDATE batches SET lease_until = $3 WHERE id = $1 AND epoch = $2`, id, epoch, UnixNanos(until))
	return n == 1, err
}

// SetBatch writes a batch's status and doc at epoch, from status from.
func (b *Batches) SetBatch(ctx context.Context, id string, epoch int64, from, to batch.Status, d batch.Doc) (bool, error) {
	doc, err := json.Marshal(d)
	if err != nil {
		return false, err
	}
	n, err := b.s.write.Exec(ctx, `UPDATE batches SET status = $4, doc = $5 WHERE id = $1 AND epoch = $2 AND status = $3`,
		id, epoch, string(from), string(to), string(doc))
	if err != nil {
		return false, fmt.Errorf("set batch %s: %w", id, err)
	}
	return n == 1, nil
}

// Cancel moves a batch in one of the statuses from to cancelling.
func (b *Batches) Cancel(ctx context.Context, id string, from []batch.Status, at time.Time) (batch.Batch, error) {
	args := []any{id, UnixNanos(at)}
	var in []string
	for _, s := range from {
		args = append(args, string(s))
		in = append(in, "$"+strconv.Itoa(len(args)))
	}
	n, err := b.s.write.Exec(ctx, `UPDATE batches SET status = 'cancelling', cancelled_at = $2
		WHERE id = $1 AND status IN (`+strings.Join(in, ", ")+`)`, args...)
	if err != nil {
		return batch.Batch{}, fmt.Errorf("cancel batch %s: %w", id, err)
	}
	bt, err := b.Batch(ctx, id)
	if err != nil {
		return bt, err
	}
	if n == 0 {
		return bt, batch.ErrEnded
	}
	return bt, nil
}

const lineCols = `batch_id, idx, custom_id, model, state, epoch, body_off, body_len, hold, tokens, status, cost, input, output`

func scanLine(r Row) (batch.Line, error) {
	var l batch.Line
	var state string
	err := r.Scan(&l.BatchID, &l.Index, &l.CustomID, &l.Model, &state, &l.Epoch, &l.Offset, &l.Length, &l.Hold, &l.Tokens,
		&l.Status, &l.Cost, &l.Input, &l.Output)
	l.State = batch.LineState(state)
	return l, err
}

func scanLineResult(r Row) (batch.Line, error) {
	var l batch.Line
	var state string
	var record *string
	err := r.Scan(&l.BatchID, &l.Index, &l.CustomID, &l.Model, &state, &l.Epoch, &l.Offset, &l.Length, &l.Hold, &l.Tokens,
		&l.Status, &l.Cost, &l.Input, &l.Output, &l.Body, &record)
	l.State = batch.LineState(state)
	if record != nil {
		l.Record = []byte(*record)
	}
	return l, err
}

// StartLines moves up to limit pending lines to running at epoch, if the
// batch is at epoch.
func (b *Batches) StartLines(ctx context.Context, batchID string, epoch int64, limit int) ([]batch.Line, error) {
	var out []batch.Line
	err := b.inTx(ctx, func(q Querier) error {
		if err := atEpoch(ctx, q, batchID, epoch); err != nil {
			return err
		}
		lines, err := queryAll(ctx, q, scanLine, `SELECT `+lineCols+` FROM batch_lines
			WHERE batch_id = $1 AND state = 'pending' ORDER BY idx LIMIT $2`, batchID, limit)
		if err != nil || len(lines) == 0 {
			out = nil
			return err
		}
		if _, err := q.Exec(ctx, `UPDATE batch_lines SET state = 'running', epoch = $2
			WHERE batch_id = $1 AND state = 'pending' AND idx >= $3 AND idx <= $4`,
			batchID, epoch, lines[0].Index, lines[len(lines)-1].Index); err != nil {
			return err
		}
		for i := range lines {
			lines[i].State, lines[i].Epoch = batch.LineRunning, epoch
		}
		out = lines
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start lines of %s: %w", batchID, err)
	}
	return out, nil
}

// atEpoch returns batch.ErrFenced unless the batch is at epoch.
func atEpoch(ctx context.Context, q Querier, batchID string, epoch int64) error {
	var cur int64
	if err := q.QueryRow(ctx, `SELECT epoch FROM batches WHERE id = $1`, batchID).Scan(&cur); err != nil {
		return err
	}
	if cur != epoch {
		return batch.ErrFenced
	}
	return nil
}

// Requeue moves lines running at another epoch back to pending.
func (b *Batches) Requeue(ctx context.Context, batchID string, epoch int64) (int, error) {
	n, err := b.s.write.Exec(ctx, `UPDATE batch_lines SET state = 'pending' WHERE batch_id = $1 AND state = 'running' AND epoch <> $2`,
		batchID, epoch)
	if err != nil {
		return 0, fmt.Errorf("requeue lines of %s: %w", batchID, err)
	}
	return int(n), nil
}

// inList is "$from, ..." for n ids and the ids as arguments.
func inList(from int, idx []int) (string, []any) {
	args := make([]any, len(idx))
	for i, x := range idx {
		args[i] = x
	}
	return Placeholders(from, len(idx)), args
}

// Retry moves lines running at epoch back to pending.
func (b *Batches) Retry(ctx context.Context, batchID string, epoch int64, idx []int) error {
	for start := 0; start < len(idx); start += lineInsertRows {
		chunk := idx[start:min(start+lineInsertRows, len(idx))]
		in, args := inList(3, chunk)
		if _, err := b.s.write.Exec(ctx, `UPDATE batch_lines SET state = 'pending'
			WHERE batch_id = $1 AND epoch = $2 AND state = 'running' AND idx IN (`+in+`)`,
			append([]any{batchID, epoch}, args...)...); err != nil {
			return fmt.Errorf("retry lines of %s: %w", batchID, err)
		}
	}
	return nil
}

// KeepResults writes results to lines running at epoch.
func (b *Batches) KeepResults(ctx context.Context, batchID string, epoch int64, rs []batch.Line) ([]bool, error) {
	kept := make([]bool, len(rs))
	err := b.inTx(ctx, func(q Querier) error {
		if err := atEpoch(ctx, q, batchID, epoch); err != nil {
			if errors.Is(err, batch.ErrFenced) {
				return nil // nothing kept
			}
			return err
		}
		for i, l := range rs {
			n, err := q.Exec(ctx, `UPDATE batch_lines SET state = 'done', status = $4, body = $5, record = $6, cost = $7,
				input = $8, output = $9 WHERE batch_id = $1 AND idx = $2 AND epoch = $3 AND state = 'running'`,
				batchID, l.Index, epoch, l.Status, l.Body, string(l.Record), l.Cost, l.Input, l.Output)
			if err != nil {
				return err
			}
			kept[i] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keep results of %s: %w", batchID, err)
	}
	return kept, nil
}

// MarkSettled moves done lines to settled.
func (b *Batches) MarkSettled(ctx context.Context, batchID string, idx []int) error {
	for start := 0; start < len(idx); start += lineInsertRows {
		chunk := idx[start:min(start+lineInsertRows, len(idx))]
		in, args := inList(2, chunk)
		if _, err := b.s.write.Exec(ctx, `UPDATE batch_lines SET state = 'settled' WHERE batch_id = $1 AND state = 'done' AND idx IN (`+in+`)`,
			append([]any{batchID}, args...)...); err != nil {
			return fmt.Errorf("mark lines of %s settled: %w", batchID, err)
		}
	}
	return nil
}

// Unsettled returns done lines after index after.
func (b *Batches) Unsettled(ctx context.Context, batchID string, after, limit int) ([]batch.Line, error) {
	out, err := queryAll(ctx, b.s.read, scanLineResult, `SELECT `+lineCols+`, body, record FROM batch_lines
		WHERE batch_id = $1 AND state = 'done' AND idx > $2 ORDER BY idx LIMIT $3`, batchID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("unsettled lines of %s: %w", batchID, err)
	}
	return out, nil
}

// EndPending moves pending lines to state, if the batch is at epoch.
func (b *Batches) EndPending(ctx context.Context, batchID string, epoch int64, state batch.LineState) (int, error) {
	var n int64
	err := b.inTx(ctx, func(q Querier) error {
		if err := atEpoch(ctx, q, batchID, epoch); err != nil {
			return err
		}
		var err error
		n, err = q.Exec(ctx, `UPDATE batch_lines SET state = $2 WHERE batch_id = $1 AND state = 'pending'`, batchID, string(state))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("end lines of %s: %w", batchID, err)
	}
	return int(n), nil
}

// PendingHold sums the holds of pending lines.
func (b *Batches) PendingHold(ctx context.Context, batchID string) (int64, error) {
	var sum int64
	err := b.s.read.QueryRow(ctx, `SELECT CAST(coalesce(sum(hold), 0) AS BIGINT) FROM batch_lines WHERE batch_id = $1 AND state = 'pending'`,
		batchID).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("pending holds of %s: %w", batchID, err)
	}
	return sum, nil
}

// Lines returns lines after index after, with their results.
func (b *Batches) Lines(ctx context.Context, batchID string, after, limit int) ([]batch.Line, error) {
	out, err := queryAll(ctx, b.s.read, scanLineResult, `SELECT `+lineCols+`, body, record FROM batch_lines
		WHERE batch_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`, batchID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("lines of %s: %w", batchID, err)
	}
	return out, nil
}

// Count counts a batch's lines by outcome.
func (b *Batches) Count(ctx context.Context, batchID string) (batch.Counts, error) {
	type group struct {
		state         string
		ok            bool
		n             int
		cost, in, out int64
	}
	gs, err := queryAll(ctx, b.s.read, func(r Row) (group, error) {
		var g group
		var ok int64
		err := r.Scan(&g.state, &ok, &g.n, &g.cost, &g.in, &g.out)
		g.ok = ok == 1
		return g, err
	}, `SELECT state, CAST(CASE WHEN status >= 200 AND status < 300 THEN 1 ELSE 0 END AS BIGINT), count(*),
		CAST(coalesce(sum(cost), 0) AS BIGINT), CAST(coalesce(sum(input), 0) AS BIGINT), CAST(coalesce(sum(output), 0) AS BIGINT)
		FROM batch_lines WHERE batch_id = $1 GROUP BY state, CASE WHEN status >= 200 AND status < 300 THEN 1 ELSE 0 END`, batchID)
	if err != nil {
		return batch.Counts{}, fmt.Errorf("count lines of %s: %w", batchID, err)
	}
	var c batch.Counts
	for _, g := range gs {
		c.Total += g.n
		c.CostNanos += g.cost
		c.Input += g.in
		c.Output += g.out
		switch batch.LineState(g.state) {
		case batch.LinePending, batch.LineRunning:
			c.Pending += g.n
		case batch.LineCancelled:
			c.Cancelled += g.n
		case batch.LineExpired:
			c.Expired += g.n
		case batch.LineDone, batch.LineSettled:
			if g.ok {
				c.Succeeded += g.n
			} else {
				c.Errored += g.n
			}
			if batch.LineState(g.state) == batch.LineDone {
				c.Unsettled += g.n
			}
		}
	}
	return c, nil
}
