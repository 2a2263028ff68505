package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"baimo/internal/usage"
)

// InsertRecords stores recs inside the caller's transaction q, in
// multi-row statements, and adds those it stored to the rollups; a request
// id already stored keeps its first record.
func (s *Store) InsertRecords(ctx context.Context, q Querier, recs []usage.Record) error {
	l := s.Ledger(q)
	if _, err := l.InsertRecords(ctx, recs); err != nil {
		return err
	}
	return l.FlushRollups(ctx)
}

// records reads the records of query, their names resolved.
func (s *Store) records(ctx context.Context, query string, args ...any) ([]usage.Record, error) {
	rows, err := queryAll(ctx, s.read, scanRecord, query, args...)
	if err != nil {
		return nil, err
	}
	res := s.names.resolver(s.read)
	for i := range rows {
		res.want(rows[i].refs[:]...)
	}
	if err := res.fetch(ctx); err != nil {
		return nil, err
	}
	out := make([]usage.Record, len(rows))
	for i := range rows {
		if out[i], err = rows[i].finish(res); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListRecords returns a page of the records f selects, newest first.
func (s *Store) ListRecords(ctx context.Context, f usage.Filter) (usage.Page, error) {
	w, where, err := s.where(ctx, f)
	if err != nil || w.none {
		return usage.Page{}, err
	}
	limit := listLimit(f)
	// One more than the page, to know whether another follows.
	recs, err := s.records(ctx, `SELECT `+recordSelect+` FROM usage_records`+where+
		` ORDER BY start_ns DESC, seq DESC LIMIT `+strconv.Itoa(limit+1), w.args...)
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
	t := usage.Totals{CostNanos: map[string]int64{}}
	w, where, err := s.where(ctx, f)
	if err != nil || w.none {
		return t, err
	}
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
		FROM usage_records`+where+` GROUP BY currency`, w.args...)
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
	vendor, ok, err := s.names.lookup(ctx, s.read, usage.SourceVendor.String())
	if err != nil || !ok {
		return nil, err
	}
	args := []any{vendor}
	q := `SELECT channel_ref, upstream_ref, count(*), CAST(sum(input_tokens) AS BIGINT), CAST(sum(counted_input) AS BIGINT)
		FROM usage_records WHERE counted_input > 0 AND source_ref = $1`
	if !from.IsZero() {
		args = append(args, from.UnixNano())
		q += ` AND start_ns >= $` + strconv.Itoa(len(args))
	}
	if !to.IsZero() {
		args = append(args, to.UnixNano())
		q += ` AND start_ns < $` + strconv.Itoa(len(args))
	}
	type drift struct {
		usage.Drift
		channel, upstream int64
	}
	rows, err := queryAll(ctx, s.read, func(r Row) (drift, error) {
		var d drift
		return d, r.Scan(&d.channel, &d.upstream, &d.Requests, &d.VendorInput, &d.CountedInput)
	}, q+` GROUP BY channel_ref, upstream_ref`, args...)
	if err != nil {
		return nil, fmt.Errorf("vendor drift: %w", err)
	}
	res := s.names.resolver(s.read)
	for _, d := range rows {
		res.want(d.channel, d.upstream)
	}
	if err := res.fetch(ctx); err != nil {
		return nil, fmt.Errorf("vendor drift: %w", err)
	}
	out := make([]usage.Drift, len(rows))
	for i, d := range rows {
		out[i] = d.Drift
		out[i].Channel, out[i].UpstreamModel = res.name(d.channel), res.name(d.upstream)
	}
	slices.SortFunc(out, func(a, b usage.Drift) int {
		return cmp.Or(strings.Compare(a.Channel, b.Channel), strings.Compare(a.UpstreamModel, b.UpstreamModel))
	})
	return out, nil
}
