package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"time"

	"baimo/internal/store/records"
	"baimo/internal/usage"
)

var _ usage.Store = (*DB)(nil)

var insertRecord = `INSERT INTO usage_records (` + records.InsertColumns + `)
	VALUES (?` + strings.Repeat(",?", records.NumInsertColumns-1) + `)
	ON CONFLICT (request_id) DO NOTHING`

// WriteRecords stores recs in one transaction.
func (db *DB) WriteRecords(ctx context.Context, recs []usage.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error { return WriteRecordsTx(ctx, tx, recs) })
}

// WriteRecordsTx stores recs inside tx, so that callers can commit them with
// other writes (a ledger settlement) atomically.
func WriteRecordsTx(ctx context.Context, tx *sql.Tx, recs []usage.Record) error {
	stmt, err := tx.PrepareContext(ctx, insertRecord)
	if err != nil {
		return fmt.Errorf("write usage records: %w", err)
	}
	defer stmt.Close()
	for i := range recs {
		if _, err := stmt.ExecContext(ctx, RecordArgs(&recs[i])...); err != nil {
			return fmt.Errorf("write usage record %s: %w", recs[i].RequestID, err)
		}
		// A batch takes tens of microseconds a record in pure-Go SQLite; let
		// requests waiting on the same core run between records instead of
		// after the whole batch.
		runtime.Gosched()
	}
	return nil
}

// RecordArgs returns the column values of r in insertRecord's order.
func RecordArgs(r *usage.Record) []any {
	return records.Args(r, func(b bool) any { return boolInt(b) })
}

func where(f usage.Filter) (string, []any) {
	return records.Where(f, func(int) string { return "?" })
}

// ListRecords returns the records f selects, newest first.
func (db *DB) ListRecords(ctx context.Context, f usage.Filter) ([]usage.Record, error) {
	w, args := where(f)
	rows, err := db.read.QueryContext(ctx, `SELECT `+records.SelectColumns+` FROM usage_records`+w+
		fmt.Sprintf(` ORDER BY start_ns DESC, seq DESC LIMIT %d`, records.Limit(f)), args...)
	if err != nil {
		return nil, fmt.Errorf("list usage records: %w", err)
	}
	defer rows.Close()
	var out []usage.Record
	for rows.Next() {
		r, err := records.Scan(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list usage records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list usage records: %w", err)
	}
	return out, nil
}

// TotalRecords sums the records f selects.
func (db *DB) TotalRecords(ctx context.Context, f usage.Filter) (usage.Totals, error) {
	w, args := where(f)
	rows, err := db.read.QueryContext(ctx, `SELECT currency, count(*), coalesce(sum(input_tokens),0), coalesce(sum(cached_input_tokens),0),
		coalesce(sum(output_tokens),0), coalesce(sum(reasoning_tokens),0), coalesce(sum(cost_nanos),0)
		FROM usage_records`+w+` GROUP BY currency`, args...)
	if err != nil {
		return usage.Totals{}, fmt.Errorf("total usage records: %w", err)
	}
	defer rows.Close()
	t := usage.Totals{CostNanos: map[string]int64{}}
	for rows.Next() {
		var cur string
		var n, in, cached, out, reasoning, cost int64
		if err := rows.Scan(&cur, &n, &in, &cached, &out, &reasoning, &cost); err != nil {
			return usage.Totals{}, fmt.Errorf("total usage records: %w", err)
		}
		t.Requests += n
		t.Input += in
		t.CachedInput += cached
		t.Output += out
		t.Reasoning += reasoning
		if cur != "" {
			t.CostNanos[cur] += cost
		}
	}
	return t, rows.Err()
}

var _ usage.Auditor = (*DB)(nil)

// VendorDrift sums, per channel and upstream model, the audited requests
// (those with baimo's own count and a vendor-reported usage) in [from, to).
func (db *DB) VendorDrift(ctx context.Context, from, to time.Time) ([]usage.Drift, error) {
	q := `SELECT channel, upstream_model, count(*), sum(input_tokens), sum(counted_input) FROM usage_records
		WHERE counted_input > 0 AND source = 'vendor'`
	var args []any
	if !from.IsZero() {
		q += ` AND start_ns >= ?`
		args = append(args, from.UnixNano())
	}
	if !to.IsZero() {
		q += ` AND start_ns < ?`
		args = append(args, to.UnixNano())
	}
	rows, err := db.read.QueryContext(ctx, q+` GROUP BY channel, upstream_model ORDER BY channel, upstream_model`, args...)
	if err != nil {
		return nil, fmt.Errorf("vendor drift: %w", err)
	}
	defer rows.Close()
	var out []usage.Drift
	for rows.Next() {
		var d usage.Drift
		if err := rows.Scan(&d.Channel, &d.UpstreamModel, &d.Requests, &d.VendorInput, &d.CountedInput); err != nil {
			return nil, fmt.Errorf("vendor drift: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
