package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"baimo/internal/usage"
)

var _ usage.Store = (*DB)(nil)

const insertRecord = `INSERT INTO usage_records (request_id, key_id, tenant_id, endpoint, model, channel, upstream_model,
	stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
	images, audio_seconds, characters, search_calls, source, complete, error_class, start_ns, ttft_ns, duration_ns,
	attempts, currency, cost_nanos, price_version, lines, counted_input)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,$30,$31)
	ON CONFLICT (request_id) DO NOTHING`

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
	attempts := "[]"
	if len(r.Attempts) > 0 {
		b, _ := json.Marshal(r.Attempts) // plain structs: cannot fail
		attempts = string(b)
	}
	lines := "[]"
	if len(r.Lines) > 0 {
		lines = string(r.Lines)
	}
	u := &r.Usage
	return []any{r.RequestID, r.KeyID, r.TenantID, r.Endpoint, r.Model, r.Channel, r.UpstreamModel,
		r.Stream, r.Status, u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning,
		u.Images, u.AudioSeconds, u.Characters, u.SearchCalls, u.Source.String(), r.Complete, string(r.ErrorClass),
		unixNanos(r.Start), int64(r.TTFT), int64(r.Duration), attempts, r.Currency, r.CostNanos, r.PriceVersion, lines,
		r.CountedInput}
}

func where(f usage.Filter) (string, []any) {
	var conds []string
	var args []any
	add := func(c string, a any) {
		args = append(args, a)
		conds = append(conds, fmt.Sprintf(c, len(args)))
	}
	if f.KeyID != "" {
		add("key_id = $%d", f.KeyID)
	}
	if f.TenantID != "" {
		add("tenant_id = $%d", f.TenantID)
	}
	if f.Model != "" {
		add("model = $%d", f.Model)
	}
	if !f.From.IsZero() {
		add("start_ns >= $%d", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		add("start_ns < $%d", f.To.UnixNano())
	}
	if f.Status != 0 {
		add("status = $%d", f.Status)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// ListRecords returns the records f selects, newest first.
func (db *DB) ListRecords(ctx context.Context, f usage.Filter) ([]usage.Record, error) {
	w, args := where(f)
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, request_id, key_id, tenant_id, endpoint, model, channel, upstream_model,
		stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
		images, audio_seconds, characters, search_calls, source, complete, error_class, start_ns, ttft_ns, duration_ns,
		attempts, currency, cost_nanos, price_version, lines, counted_input FROM usage_records`+w+
		fmt.Sprintf(` ORDER BY start_ns DESC, seq DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list usage records: %w", err)
	}
	defer rows.Close()
	var out []usage.Record
	for rows.Next() {
		var r usage.Record
		var source, errClass, attempts, lines string
		var start, ttft, dur int64
		u := &r.Usage
		if err := rows.Scan(&r.Seq, &r.RequestID, &r.KeyID, &r.TenantID, &r.Endpoint, &r.Model, &r.Channel, &r.UpstreamModel,
			&r.Stream, &r.Status, &u.Input, &u.CachedInput, &u.CacheWrite5m, &u.CacheWrite1h, &u.Output, &u.Reasoning,
			&u.Images, &u.AudioSeconds, &u.Characters, &u.SearchCalls, &source, &r.Complete, &errClass, &start, &ttft, &dur,
			&attempts, &r.Currency, &r.CostNanos, &r.PriceVersion, &lines, &r.CountedInput); err != nil {
			return nil, fmt.Errorf("list usage records: %w", err)
		}
		u.Source = usage.ParseSource(source)
		r.ErrorClass = usage.ErrorClass(errClass)
		r.Start, r.TTFT, r.Duration = fromUnixNanos(start), time.Duration(ttft), time.Duration(dur)
		if attempts != "[]" && attempts != "" {
			if err := json.Unmarshal([]byte(attempts), &r.Attempts); err != nil {
				return nil, fmt.Errorf("usage record %s attempts: %w", r.RequestID, err)
			}
		}
		if lines != "[]" {
			r.Lines = []byte(lines)
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

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
