package console

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// Report dimensions on top of the store's: vendor is folded from models.
const dimVendor usage.Dim = "vendor"

// otherGroup names the row that sums the groups past the top N. It cannot
// collide with a real name: none starts with a NUL.
const otherGroup = "\x00other"

// maxTop bounds top-N.
const maxTop = 100

// reportRequest is a usage report as the API and the pages ask for it.
type reportRequest struct {
	Query usage.ReportQuery
	Group usage.Dim // the store's GroupBy, or dimVendor
	Top   int       // 0: every group
}

// reportView is a usage report as the API answers it: per-group totals (top
// N by cost, then requests, the rest in one "other" row, so the groups add
// up to the total) and, with buckets, a series per group.
type reportView struct {
	Object  string       `json:"object"`
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Zone    string       `json:"zone"`
	GroupBy string       `json:"group_by"`
	Bucket  string       `json:"bucket"`
	Totals  sumsView     `json:"totals"`
	Groups  []groupView  `json:"groups"`
	Series  []bucketView `json:"series"`
	// Buckets lists every bucket start of the range, in order, so that a
	// bucket with no requests shows as 0 and one after now as no data.
	Buckets []time.Time `json:"buckets"`
}

// sumsView is usage.Sums for the API: costs by currency as exact decimals,
// TTFT percentiles in milliseconds (null when no request had a first token).
type sumsView struct {
	Requests    int64             `json:"requests"`
	Errors      int64             `json:"errors"`
	Input       int64             `json:"input_tokens"`
	CachedInput int64             `json:"cached_input_tokens"`
	CacheWrite  int64             `json:"cache_write_tokens"`
	Output      int64             `json:"output_tokens"`
	Reasoning   int64             `json:"reasoning_tokens"`
	Cost        map[string]string `json:"cost"`
	TTFTp50ms   *int64            `json:"ttft_p50_ms"`
	TTFTp95ms   *int64            `json:"ttft_p95_ms"`

	sums      usage.Sums
	costNanos map[string]int64
}

type groupView struct {
	Group string `json:"group"`
	Other bool   `json:"other,omitempty"`
	sumsView
}

type bucketView struct {
	Start time.Time `json:"start"`
	Group string    `json:"group,omitempty"`
	Other bool      `json:"other,omitempty"`
	sumsView
}

// acc sums rows that may be in several currencies.
type acc struct {
	sums usage.Sums
	cost map[string]int64
}

func (a *acc) add(r *usage.ReportRow) {
	a.sums.Add(&r.Sums)
	if r.Currency != "" {
		if a.cost == nil {
			a.cost = map[string]int64{}
		}
		a.cost[r.Currency] += r.CostNanos
	}
}

func (a *acc) view() sumsView {
	s := a.sums
	v := sumsView{Requests: s.Requests, Errors: s.Errors, Input: s.Input, CachedInput: s.CachedInput,
		CacheWrite: s.CacheWrite, Output: s.Output, Reasoning: s.Reasoning, Cost: map[string]string{}, sums: s,
		costNanos: a.cost}
	for cur, n := range a.cost {
		v.Cost[cur] = money.FormatNanos(n)
	}
	if d, ok := s.TTFTPercentile(50); ok {
		ms := d.Milliseconds()
		v.TTFTp50ms = &ms
	}
	if d, ok := s.TTFTPercentile(95); ok {
		ms := d.Milliseconds()
		v.TTFTp95ms = &ms
	}
	return v
}

// parseReport reads a report's parameters (from, to, tz, group_by, bucket,
// top, and the filters tenant_id, key_id, model, channel). The range
// defaults to the last 24 hours; range=7d and the like set from = to - range.
func (c *Console) parseReport(q url.Values, now time.Time) (reportRequest, error) {
	var rr reportRequest
	zone := c.opt.Zone
	if name := q.Get("tz"); name != "" {
		z, err := time.LoadLocation(name)
		if err != nil || len(name) > 64 {
			return rr, fmt.Errorf("tz must be an IANA time zone such as Asia/Shanghai")
		}
		zone = z
	}
	to, from := now, time.Time{}
	var err error
	if s := q.Get("to"); s != "" {
		if to, err = parseWhen(s, zone); err != nil {
			return rr, fmt.Errorf("to: %v", err)
		}
	}
	if s := q.Get("from"); s != "" {
		if from, err = parseWhen(s, zone); err != nil {
			return rr, fmt.Errorf("from: %v", err)
		}
	} else {
		d, err := parseRange(q.Get("range"))
		if err != nil {
			return rr, err
		}
		from = to.Add(-d)
	}
	rr.Query = usage.ReportQuery{From: from, To: to, Zone: zone, Bucket: usage.Bucket(q.Get("bucket")),
		TenantID: q.Get("tenant_id"), KeyID: q.Get("key_id"), Model: q.Get("model"), Channel: q.Get("channel")}
	rr.Group = usage.Dim(q.Get("group_by"))
	rr.Query.GroupBy = rr.Group
	if rr.Group == dimVendor {
		rr.Query.GroupBy = usage.DimModel
	}
	if s := q.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTop {
			return rr, fmt.Errorf("top must be a whole number from 1 to %d", maxTop)
		}
		rr.Top = n
	}
	for _, f := range []string{rr.Query.TenantID, rr.Query.KeyID, rr.Query.Model, rr.Query.Channel} {
		if len(f) > 256 {
			return rr, fmt.Errorf("a filter is longer than 256 characters")
		}
	}
	if rr.Query.Bucket == usage.BucketHour && to.Sub(from) > 31*24*time.Hour {
		return rr, fmt.Errorf("hour buckets span at most 31 days; use bucket=day")
	}
	return rr, rr.Query.Check()
}

// parseWhen reads an RFC 3339 time, or a date (midnight in zone).
func parseWhen(s string, zone *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, zone); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04", s, zone); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-12-01T09:00:00+08:00) or a date (2026-12-01)")
}

// ranges are the ranges the pages offer.
var ranges = []string{"1h", "24h", "7d", "30d", "90d"}

func parseRange(s string) (time.Duration, error) {
	if s == "" {
		return 24 * time.Hour, nil
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 1 || n > 400 {
		return 0, fmt.Errorf("range must be like 24h, 7d or 30d")
	}
	switch s[len(s)-1] {
	case 'h':
		return time.Duration(n) * time.Hour, nil
	case 'd':
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("range must be like 24h, 7d or 30d")
}

// buildReport turns the store's rows into the API's view.
func (c *Console) buildReport(rr reportRequest, rows []usage.ReportRow) reportView {
	q := rr.Query
	v := reportView{Object: "usage_report", From: q.From, To: q.To, Zone: q.Zone.String(), GroupBy: string(rr.Group),
		Bucket: string(q.Bucket), Groups: []groupView{}, Series: []bucketView{}, Buckets: []time.Time{}}
	switch rr.Group {
	case dimVendor:
		for i := range rows {
			rows[i].Group = c.vendorOf(rows[i].Group)
		}
	case usage.DimModel: // requests refused before their model was read
		for i := range rows {
			rows[i].Group = usage.ShownModel(rows[i].Group)
		}
	}
	var total acc
	groups := map[string]*acc{}
	for i := range rows {
		total.add(&rows[i])
		if groups[rows[i].Group] == nil {
			groups[rows[i].Group] = &acc{}
		}
		groups[rows[i].Group].add(&rows[i])
	}
	v.Totals = total.view()
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	main := string(c.opt.Currency)
	slices.SortFunc(names, func(a, b string) int {
		ga, gb := groups[a], groups[b]
		return cmp.Or(cmp.Compare(gb.cost[main], ga.cost[main]), cmp.Compare(gb.sums.Requests, ga.sums.Requests),
			strings.Compare(a, b))
	})
	kept := map[string]bool{}
	var other acc
	for i, g := range names {
		if rr.Top > 0 && i >= rr.Top {
			other.sums.Add(&groups[g].sums)
			for cur, n := range groups[g].cost {
				if other.cost == nil {
					other.cost = map[string]int64{}
				}
				other.cost[cur] += n
			}
			continue
		}
		kept[g] = true
		v.Groups = append(v.Groups, groupView{Group: g, sumsView: groups[g].view()})
	}
	if len(names) > len(kept) {
		v.Groups = append(v.Groups, groupView{Group: otherGroup, Other: true, sumsView: other.view()})
	}
	if q.Bucket == usage.BucketNone {
		return v
	}
	v.Buckets = bucketStarts(q)
	type key struct {
		start time.Time
		group string
	}
	series := map[key]*acc{}
	var order []key
	for i := range rows {
		g := rows[i].Group
		if !kept[g] {
			g = otherGroup
		}
		k := key{rows[i].Start, g}
		if series[k] == nil {
			series[k] = &acc{}
			order = append(order, k)
		}
		series[k].add(&rows[i])
	}
	slices.SortFunc(order, func(a, b key) int { return cmp.Or(a.start.Compare(b.start), strings.Compare(a.group, b.group)) })
	for _, k := range order {
		v.Series = append(v.Series, bucketView{Start: k.start, Group: k.group, Other: k.group == otherGroup,
			sumsView: series[k].view()})
	}
	return v
}

// bucketStarts lists the starts of every bucket that overlaps [From, To).
func bucketStarts(q usage.ReportQuery) []time.Time {
	var out []time.Time
	t := q.From.In(q.Zone)
	switch q.Bucket {
	case usage.BucketHour:
		// UTC hours, as the rollups keep them: the local hours of every zone
		// a whole number of hours from UTC.
		for t := q.From.Truncate(time.Hour); t.Before(q.To) && len(out) < 24*40; t = t.Add(time.Hour) {
			out = append(out, t.UTC())
		}
	case usage.BucketDay:
		t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, q.Zone)
		for ; t.Before(q.To) && len(out) < 500; t = t.AddDate(0, 0, 1) {
			out = append(out, t.UTC())
		}
	}
	return out
}

// vendorOf returns the vendor of a model in the catalog, or "other".
func (c *Console) vendorOf(model string) string {
	if c.opt.Catalog != nil {
		if m, ok := c.opt.Catalog.Model(model); ok && m.Vendor != "" {
			return m.Vendor
		}
	}
	return "unknown"
}

// csvSafe guards a text cell against spreadsheet formula injection: a cell
// that starts with =, +, -, @, a tab or a carriage return is read as a
// formula by Excel and others, so it gets a leading apostrophe.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeReportCSV writes the report's groups (and buckets, if any) with one
// total row per currency. Costs are exact decimals; bucket starts are in the
// report's zone.
func writeReportCSV(w io.Writer, v reportView, zone *time.Location) error {
	cw := csv.NewWriter(w)
	head := []string{"group", "currency", "requests", "errors", "input_tokens", "cached_input_tokens",
		"cache_write_tokens", "output_tokens", "reasoning_tokens", "cost"}
	bucketed := v.Bucket != ""
	if bucketed {
		head = append([]string{"bucket_start"}, head...)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	row := func(start, group string, s sumsView) error {
		curs := make([]string, 0, len(s.costNanos))
		for cur := range s.costNanos {
			curs = append(curs, cur)
		}
		slices.Sort(curs)
		if len(curs) == 0 {
			curs = []string{""}
		}
		for i, cur := range curs {
			// Counts go on the first currency's line only, so columns add up.
			n := func(x int64) string {
				if i > 0 {
					return "0"
				}
				return strconv.FormatInt(x, 10)
			}
			rec := []string{csvSafe(group), cur, n(s.Requests), n(s.Errors), n(s.Input), n(s.CachedInput),
				n(s.CacheWrite), n(s.Output), n(s.Reasoning), money.FormatNanos(s.costNanos[cur])}
			if bucketed {
				rec = append([]string{start}, rec...)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		return nil
	}
	name := func(g string) string {
		if g == otherGroup {
			return "(other)"
		}
		return g
	}
	if bucketed {
		for _, b := range v.Series {
			if err := row(b.Start.In(zone).Format(time.RFC3339), name(b.Group), b.sumsView); err != nil {
				return err
			}
		}
	} else {
		for _, g := range v.Groups {
			if err := row("", name(g.Group), g.sumsView); err != nil {
				return err
			}
		}
	}
	if err := row("", "TOTAL", v.Totals); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
