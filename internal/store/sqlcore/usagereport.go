package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// groupColumns maps a report dimension to its column.
var _ usage.Reporter = (*Store)(nil)

var groupColumns = map[usage.Dim]string{
	usage.DimNone: "''", usage.DimModel: "model", usage.DimChannel: "channel",
	usage.DimTenant: "tenant_id", usage.DimKey: "key_id",
}

// reportStep returns the width, in nanoseconds, of the buckets the store
// groups by: an hour, or a quarter of an hour when the zone's offset is not a
// whole number of hours (days are then summed from them exactly); 0 without
// buckets.
func reportStep(q usage.ReportQuery) int64 {
	if q.Bucket == usage.BucketNone {
		return 0
	}
	zone := q.Zone
	if zone == nil {
		zone = time.UTC
	}
	for _, t := range []time.Time{q.From, q.To} {
		if _, off := t.In(zone).Zone(); off%3600 != 0 {
			return int64(15 * time.Minute)
		}
	}
	return int64(time.Hour)
}

// reportSQL returns the query for q over usage_records and its arguments.
// Rows are (bucket start in Unix ns, group, currency, then scanReport's sums),
// folded by a reportAccumulator.
func reportSQL(q usage.ReportQuery) (string, []any) {
	var b strings.Builder
	step := reportStep(q)
	if step == 0 {
		b.WriteString("SELECT 0, ")
	} else {
		fmt.Fprintf(&b, "SELECT (start_ns / %d) * %d, ", step, step)
	}
	b.WriteString(groupColumns[q.GroupBy])
	b.WriteString(", currency, count(*), ")
	sums := []string{"CASE WHEN status >= 400 THEN 1 ELSE 0 END", "input_tokens", "cached_input_tokens",
		"cache_write_5m + cache_write_1h", "output_tokens", "reasoning_tokens", "cost_nanos", "duration_ns",
		"CASE WHEN ttft_ns > 0 THEN ttft_ns ELSE 0 END"}
	lo := int64(1)
	for _, ms := range usage.TTFTBoundsMs {
		hi := ms * int64(time.Millisecond)
		sums = append(sums, fmt.Sprintf("CASE WHEN ttft_ns >= %d AND ttft_ns < %d THEN 1 ELSE 0 END", lo, hi))
		lo = hi
	}
	sums = append(sums, fmt.Sprintf("CASE WHEN ttft_ns >= %d THEN 1 ELSE 0 END", lo))
	for i, s := range sums {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("CAST(coalesce(sum(" + s + "), 0) AS BIGINT)")
	}
	b.WriteString(" FROM usage_records WHERE start_ns >= ")
	args := []any{q.From.UnixNano(), q.To.UnixNano()}
	b.WriteString("$1 AND start_ns < $2")
	add := func(col, v string) {
		if v == "" {
			return
		}
		args = append(args, v)
		fmt.Fprintf(&b, " AND %s = $%d", col, len(args))
	}
	if q.TenantID != "" {
		id, alt := tenantIDs(q.TenantID)
		args = append(args, id, alt)
		fmt.Fprintf(&b, " AND tenant_id IN ($%d, $%d)", len(args)-1, len(args))
	}
	add("key_id", q.KeyID)
	add("model", q.Model)
	add("channel", q.Channel)
	b.WriteString(" GROUP BY 1, 2, 3")
	return b.String(), args
}

// scanReport reads one row of reportSQL's query, returning its bucket start
// in Unix nanoseconds.
func scanReport(row Row) (int64, usage.ReportRow, error) {
	var start int64
	var r usage.ReportRow
	s := &r.Sums
	dest := []any{&start, &r.Group, &r.Currency, &s.Requests, &s.Errors, &s.Input, &s.CachedInput, &s.CacheWrite,
		&s.Output, &s.Reasoning, &s.CostNanos, &s.DurationNs, &s.TTFTSumNanos}
	for i := range s.TTFT {
		dest = append(dest, &s.TTFT[i])
	}
	err := row.Scan(dest...)
	return start, r, err
}

// reportAccumulator folds the rows of reportSQL's query into a report: hours
// and days of the query's zone, the default tenant's two spellings as one.
type reportAccumulator struct {
	q    usage.ReportQuery
	rows map[reportKey]*usage.ReportRow
}

type reportKey struct {
	start           int64
	group, currency string
}

func newReportAccumulator(q usage.ReportQuery) *reportAccumulator {
	return &reportAccumulator{q: q, rows: map[reportKey]*usage.ReportRow{}}
}

// add adds one scanned row.
func (a *reportAccumulator) add(start int64, r usage.ReportRow) {
	if a.q.GroupBy == usage.DimTenant {
		r.Group = ledger.TenantFor(r.Group)
	}
	start = bucketStart(a.q, start)
	k := reportKey{start, r.Group, r.Currency}
	if have, ok := a.rows[k]; ok {
		have.Add(&r.Sums)
		return
	}
	if a.q.Bucket != usage.BucketNone {
		r.Start = time.Unix(0, start).UTC()
	}
	a.rows[k] = &r
}

// bucketStart returns the start, in Unix nanoseconds, of the bucket of q
// that holds the time ns: local hours and days of q's zone; 0 without buckets.
func bucketStart(q usage.ReportQuery, ns int64) int64 {
	zone := q.Zone
	if zone == nil {
		zone = time.UTC
	}
	t := time.Unix(0, ns).In(zone)
	switch q.Bucket {
	case usage.BucketHour:
		_, off := t.Zone()
		local := ns + int64(off)*int64(time.Second)
		return local - local%int64(time.Hour) - int64(off)*int64(time.Second)
	case usage.BucketDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, zone).UnixNano()
	}
	return 0
}

// report returns the rows in bucket, group, currency order.
func (a *reportAccumulator) report() []usage.ReportRow {
	out := make([]usage.ReportRow, 0, len(a.rows))
	for _, r := range a.rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(x, y usage.ReportRow) int {
		return cmp.Or(x.Start.Compare(y.Start), strings.Compare(x.Group, y.Group), strings.Compare(x.Currency, y.Currency))
	})
	return out
}

// Report answers a usage report (usage.Reporter).
func (s *Store) Report(ctx context.Context, q usage.ReportQuery) ([]usage.ReportRow, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	text, args := reportSQL(q)
	rows, err := s.read.Query(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()
	acc := newReportAccumulator(q)
	for rows.Next() {
		start, r, err := scanReport(rows)
		if err != nil {
			return nil, fmt.Errorf("usage report: %w", err)
		}
		acc.add(start, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return acc.report(), nil
}
