package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"baimo/internal/store/records"
	"baimo/internal/usage"

	"baimo/internal/store/ledgerrows"
)

var _ usage.Store = (*DB)(nil)

var insertRecord = `INSERT INTO usage_records (` + records.InsertColumns + `)
	VALUES (` + placeholders(records.NumInsertColumns) + `)
	ON CONFLICT (request_id) DO NOTHING`

// placeholders returns "$1,$2,...,$n".
func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(i))
	}
	return b.String()
}

// WriteRecords stores recs in one transaction; a request id already stored
// is left as it was.
func (db *DB) WriteRecords(ctx context.Context, recs []usage.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx pgx.Tx) error { return WriteRecordsTx(ctx, tx, recs) })
}

// WriteRecordsTx stores recs inside tx (in one round trip), so that callers
// can commit them with other writes (a ledger settlement) atomically.
func WriteRecordsTx(ctx context.Context, tx pgx.Tx, recs []usage.Record) error {
	if len(recs) == 1 {
		if _, err := tx.Exec(ctx, insertRecord, recordArgs(&recs[0])...); err != nil {
			return fmt.Errorf("write usage record %s: %w", recs[0].RequestID, err)
		}
		return nil
	}
	var b pgx.Batch
	for i := range recs {
		b.Queue(insertRecord, recordArgs(&recs[i])...)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write %d usage records: %w", len(recs), err)
	}
	return nil
}

func recordArgs(r *usage.Record) []any {
	return records.Args(r, func(b bool) any { return b })
}

func where(f usage.Filter) (string, []any) {
	return records.Where(f, func(n int) string { return "$" + strconv.Itoa(n) })
}

// ListRecords returns the records f selects, newest first.
func (db *DB) ListRecords(ctx context.Context, f usage.Filter) ([]usage.Record, error) {
	w, args := where(f)
	rows, err := db.pool.Query(ctx, `SELECT `+records.SelectColumns+` FROM usage_records`+w+
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
	rows, err := db.pool.Query(ctx, `SELECT currency, count(*), coalesce(sum(input_tokens),0)::bigint,
		coalesce(sum(cached_input_tokens),0)::bigint, coalesce(sum(output_tokens),0)::bigint,
		coalesce(sum(reasoning_tokens),0)::bigint, coalesce(sum(cost_nanos),0)::bigint
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
	q := `SELECT channel, upstream_model, count(*), sum(input_tokens)::bigint, sum(counted_input)::bigint FROM usage_records
		WHERE counted_input > 0 AND source = 'vendor'`
	var args []any
	if !from.IsZero() {
		args = append(args, from.UnixNano())
		q += fmt.Sprintf(` AND start_ns >= $%d`, len(args))
	}
	if !to.IsZero() {
		args = append(args, to.UnixNano())
		q += fmt.Sprintf(` AND start_ns < $%d`, len(args))
	}
	rows, err := db.pool.Query(ctx, q+` GROUP BY channel, upstream_model ORDER BY channel, upstream_model`, args...)
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

// Times are stored as Unix nanoseconds, 0 for none, as the ledger's rows.
var (
	unixNanos     = ledgerrows.UnixNanos
	fromUnixNanos = ledgerrows.FromUnixNanos
)
