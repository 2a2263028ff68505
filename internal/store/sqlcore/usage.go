package sqlcore

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"baimo/internal/usage"
)

// InsertRecords stores recs with q (inside the caller's transaction), one
// statement each, and adds those it stored to the rollups; a request id
// already stored keeps its first record.
func (s *Store) InsertRecords(ctx context.Context, q Querier, recs []usage.Record) error {
	l := s.Ledger(q)
	for i := range recs {
		if _, err := l.InsertRecord(ctx, recs[i]); err != nil {
			return err
		}
		// A record takes tens of microseconds in pure-Go SQLite; let
		// requests waiting on the same core run between records instead
		// of after the whole batch.
		runtime.Gosched()
	}
	return l.FlushRollups(ctx)
}

// ListRecords returns a page of the records f selects, newest first.
func (s *Store) ListRecords(ctx context.Context, f usage.Filter) (usage.Page, error) {
	w, args := where(f)
	limit := listLimit(f)
	// One more than the page, to know whether another follows.
	recs, err := queryAll(ctx, s.read, scanRecord, `SELECT `+recordSelect+` FROM usage_records`+w+
		` ORDER BY start_ns DESC, seq DESC LIMIT `+strconv.Itoa(limit+1), args...)
	if err != nil {
		return usage.Page{}, fmt.Errorf("list usage records: %w", err)
	}
	p := usage.Page{Records: recs}
	if len(recs) > limit {
		p.Records = recs[:limit]
		p.Next = usage.CursorAfter(&p.Records[limit-1])
	}
	return p, nil
}

// TotalRecords sums the records f selects.
func (s *Store) TotalRecords(ctx context.Context, f usage.Filter) (usage.Totals, error) {
	f.After = usage.Cursor{}
	w, args := where(f)
	t := usage.Totals{CostNanos: map[string]int64{}}
	type byCurrency struct {
		cur                           string
		served, refused, failed       int64
		in, cached, out, reason, cost int64
	}
	sum := func(col string) string { return `CAST(coalesce(sum(` + col + `), 0) AS BIGINT)` }
	count := func(cond string) string { return sum(`CASE WHEN ` + cond + ` THEN 1 ELSE 0 END`) }
	rows, err := queryAll(ctx, s.read, func(r Row) (byCurrency, error) {
		var c byCurrency
		return c, r.Scan(&c.cur, &c.served, &c.refused, &c.failed, &c.in, &c.cached, &c.out, &c.reason, &c.cost)
	}, `SELECT currency, `+count(servedSQL)+`, `+count(refusedSQL)+`, `+count(failedSQL)+`, `+sum("input_tokens")+`, `+
		sum("cached_input_tokens")+`, `+sum("output_tokens")+`, `+sum("reasoning_tokens")+`, `+sum("cost_nanos")+`
		FROM usage_records`+w+` GROUP BY currency`, args...)
	if err != nil {
		return usage.Totals{}, fmt.Errorf("total usage records: %w", err)
	}
	for _, c := range rows {
		t.Served += c.served
		t.Refused += c.refused
		t.Failed += c.failed
		t.Input += c.in
		t.CachedInput += c.cached
		t.Output += c.out
		t.Reasoning += c.reason
		if c.cur != "" {
			t.CostNanos[c.cur] += c.cost
		}
	}
	t.Requests = t.Served + t.Refused + t.Failed
	return t, nil
}

// VendorDrift sums, per channel and upstream model, the audited requests
// (those with baimo's own count and a vendor-reported usage) in [from, to).
func (s *Store) VendorDrift(ctx context.Context, from, to time.Time) ([]usage.Drift, error) {
	q := `SELECT channel, upstream_model, count(*), CAST(sum(input_tokens) AS BIGINT), CAST(sum(counted_input) AS BIGINT)
		FROM usage_records WHERE counted_input > 0 AND source = 'vendor'`
	var args []any
	if !from.IsZero() {
		args = append(args, from.UnixNano())
		q += ` AND start_ns >= $` + strconv.Itoa(len(args))
	}
	if !to.IsZero() {
		args = append(args, to.UnixNano())
		q += ` AND start_ns < $` + strconv.Itoa(len(args))
	}
	out, err := queryAll(ctx, s.read, func(r Row) (usage.Drift, error) {
		var d usage.Drift
		return d, r.Scan(&d.Channel, &d.UpstreamModel, &d.Requests, &d.VendorInput, &d.CountedInput)
	}, q+` GROUP BY channel, upstream_model ORDER BY channel, upstream_model`, args...)
	if err != nil {
		return nil, fmt.Errorf("vendor drift: %w", err)
	}
	return out, nil
}
