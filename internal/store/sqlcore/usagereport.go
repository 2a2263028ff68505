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

// reportSQL returns the query of q's sums over one rollup table for
// [lo, hi) of its time column, and its arguments: rows of (bucket start in
// Unix ns, group, currency, then scanReport's sums), for a reportAccumulator.
// zone is "" for the hour table, else the day table's zone.
func reportSQL(q usage.ReportQuery, zone string, lo, hi int64) (string, []any) {
	var b strings.Builder
	table, at := "usage_rollup_hour", "bucket_ns"
	if zone != "" {
		table, at = "usage_rollup_day", "day_ns"
	}
	if q.Bucket == usage.BucketNone {
		b.WriteString("SELECT 0, ")
	} else {
		b.WriteString("SELECT " + at + ", ")
	}
	b.WriteString(groupColumns[q.GroupBy] + ", currency")
	for _, c := range rollupSums {
		b.WriteString(", CAST(sum(" + c + ") AS BIGINT)")
	}
	args := []any{lo, hi}
	fmt.Fprintf(&b, " FROM %s WHERE %s >= $1 AND %s < $2", table, at, at)
	if zone != "" {
		args = append(args, zone)
		fmt.Fprintf(&b, " AND zone = $%d", len(args))
	}
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
// that holds the time ns: UTC hours (the local hours of every zone a whole
// number of hours from UTC), local days of q's zone; 0 without buckets.
func bucketStart(q usage.ReportQuery, ns int64) int64 {
	zone := q.Zone
	if zone == nil {
		zone = time.UTC
	}
	t := time.Unix(0, ns).In(zone)
	switch q.Bucket {
	case usage.BucketHour:
		return floorTo(ns, int64(time.Hour))
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

// Report answers a usage report (usage.Reporter) from the rollups: whole
// UTC hours (From rounded down, To up), and for day buckets, or none, the
// day sums of q's zone where it is registered and its midnights fall on
// whole UTC hours, the hours only at the range's ends.
func (s *Store) Report(ctx context.Context, q usage.ReportQuery) ([]usage.ReportRow, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	if q.Zone == nil {
		q.Zone = time.UTC
	}
	hour := int64(time.Hour)
	lo, hi := floorTo(q.From.UnixNano(), hour), -floorTo(-q.To.UnixNano(), hour)
	type span struct {
		zone   string
		lo, hi int64
		dim    bool
	}
	_, _, _, byDim := dimQuery(q)
	spans := []span{{"", lo, hi, byDim}}
	if q.Bucket != usage.BucketHour {
		var since int64
		err := s.read.QueryRow(ctx, `SELECT since_ns FROM usage_rollup_zones WHERE zone = $1`, q.Zone.String()).Scan(&since)
		if err != nil && !noRows(err) {
			return nil, fmt.Errorf("usage report: %w", err)
		}
		if err == nil {
			d0, d1 := nextMidnight(max(lo, since), q.Zone), prevMidnight(hi, q.Zone)
			if d0 < d1 && d0%hour == 0 && d1%hour == 0 {
				spans = []span{{"", lo, d0, byDim}, {q.Zone.String(), d0, d1, byDim}, {"", d1, hi, byDim}}
			}
		}
	}
	acc := newReportAccumulator(q)
	for _, sp := range spans {
		if sp.lo >= sp.hi {
			continue
		}
		text, args := reportSQL(q, sp.zone, sp.lo, sp.hi)
		if sp.dim {
			text, args = dimSQL(q, sp.zone, sp.lo, sp.hi)
		}
		if err := s.readReport(ctx, acc, text, args); err != nil {
			return nil, err
		}
	}
	return acc.report(), nil
}

func (s *Store) readReport(ctx context.Context, acc *reportAccumulator, text string, args []any) error {
	rows, err := s.read.Query(ctx, text, args...)
	if err != nil {
		return fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		start, r, err := scanReport(rows)
		if err != nil {
			return fmt.Errorf("usage report: %w", err)
		}
		acc.add(start, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("usage report: %w", err)
	}
	return nil
}

// dimQuery says whether q can read usage_rollup_dim, and how: grouped by
// at most one of model, channel or tenant, with no filter but one on the
// dimension it groups by (or, ungrouped, one filter on any of them).
func dimQuery(q usage.ReportQuery) (dim, value string, grouped, ok bool) {
	var filters []struct{ dim, value string }
	for _, f := range []struct{ dim, value string }{{"tenant", q.TenantID}, {"model", q.Model}, {"channel", q.Channel}} {
		if f.value != "" {
			filters = append(filters, f)
		}
	}
	if q.KeyID != "" || q.GroupBy == usage.DimKey || len(filters) > 1 {
		return "", "", false, false
	}
	group := string(q.GroupBy)
	switch {
	case len(filters) == 0 && group == "":
		return dimTotal, "", false, true
	case len(filters) == 0:
		return group, "", true, true
	case group == "" || group == filters[0].dim:
		v := filters[0].value
		if filters[0].dim == "tenant" {
			v = ledger.TenantFor(v)
		}
		return filters[0].dim, v, group != "", true
	}
	return "", "", false, false
}

// dimSQL is reportSQL over usage_rollup_dim (dimQuery(q) must be ok):
// zone "" reads the hours.
func dimSQL(q usage.ReportQuery, zone string, lo, hi int64) (string, []any) {
	dim, value, grouped, _ := dimQuery(q)
	var b strings.Builder
	if q.Bucket == usage.BucketNone {
		b.WriteString("SELECT 0, ")
	} else {
		b.WriteString("SELECT start_ns, ")
	}
	if grouped {
		b.WriteString("value, currency")
	} else {
		b.WriteString("'', currency")
	}
	for _, c := range rollupSums {
		b.WriteString(", CAST(sum(" + c + ") AS BIGINT)")
	}
	args := []any{lo, hi, zone, dim}
	b.WriteString(" FROM usage_rollup_dim WHERE zone = $3 AND dim = $4 AND start_ns >= $1 AND start_ns < $2")
	if value != "" {
		args = append(args, value)
		b.WriteString(" AND value = $5")
	}
	b.WriteString(" GROUP BY 1, 2, 3")
	return b.String(), args
}

// floorTo rounds ns down to a multiple of step.
func floorTo(ns, step int64) int64 {
	r := ns % step
	if r < 0 {
		r += step
	}
	return ns - r
}

// nextMidnight returns the first local midnight of zone at or after ns.
func nextMidnight(ns int64, zone *time.Location) int64 {
	t := time.Unix(0, ns).In(zone)
	m := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, zone)
	if m.UnixNano() < ns {
		m = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, zone)
	}
	return m.UnixNano()
}

// prevMidnight returns the last local midnight of zone at or before ns.
func prevMidnight(ns int64, zone *time.Location) int64 {
	t := time.Unix(0, ns).In(zone)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, zone).UnixNano()
}
