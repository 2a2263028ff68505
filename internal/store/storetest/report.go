package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// testReport checks usage reports against sums computed here, record by
// record, for every grouping, bucket and filter, in zones with whole-hour and
// half-hour offsets.
func testReport(t *testing.T, s Store) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var recs []usage.Record
	for i := 0; i < 400; i++ {
		r := usage.Record{RequestID: fmt.Sprintf("rep_%04d", i), KeyID: pick("key_a", "key_b", "key_c"),
			TenantID: pick("", ledger.DefaultTenantID, "t1", "t2"), Endpoint: "chat",
			Model: pick("sim-chat", "deepseek-chat", "qwen-max"), Channel: pick("sim", "ds", "qw"),
			Status: []int{200, 200, 200, 429, 502}[rng.IntN(5)], Complete: true,
			Usage: usage.Usage{Input: rng.Int64N(5000), CachedInput: rng.Int64N(100), CacheWrite5m: rng.Int64N(3),
				CacheWrite1h: rng.Int64N(2), Output: rng.Int64N(800), Reasoning: rng.Int64N(50), Source: usage.SourceVendor},
			Start:    base.Add(time.Duration(rng.Int64N(int64(72 * time.Hour)))),
			Duration: time.Duration(rng.Int64N(int64(5 * time.Second))),
			Currency: pick("CNY", "CNY", "USD", ""), CostNanos: rng.Int64N(1e9)}
		if rng.IntN(4) > 0 {
			r.TTFT = time.Duration(rng.Int64N(int64(70 * time.Second)))
		}
		recs = append(recs, r)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	// Shanghai's days are kept from the midnight before the records.
	if err := s.SetReportZone(ctx, shanghai, base.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// In two batches, the second retrying part of the first: the rollups
	// count each record once.
	if err := s.WriteRecords(ctx, recs[:300]); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRecords(ctx, recs[250:]); err != nil {
		t.Fatal(err)
	}
	rep := usage.Reporter(s)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	from, to := base.Add(5*time.Hour+30*time.Minute), base.Add(70*time.Hour)
	queries := []usage.ReportQuery{
		{From: from, To: to},
		{From: from, To: to, Bucket: usage.BucketHour, GroupBy: usage.DimModel},
		{From: from, To: to, Bucket: usage.BucketDay, Zone: shanghai, GroupBy: usage.DimTenant},
		{From: from, To: to, Bucket: usage.BucketDay, Zone: kolkata, GroupBy: usage.DimChannel},
		{From: from, To: to, Bucket: usage.BucketDay, GroupBy: usage.DimKey, TenantID: ledger.DefaultTenantID},
		{From: from, To: to, GroupBy: usage.DimModel, TenantID: "t1", Channel: "ds"},
		{From: from, To: to, Bucket: usage.BucketHour, Zone: kolkata, KeyID: "key_b", Model: "qwen-max"},
		// Shanghai's days, from the sums by one dimension where they serve.
		{From: from, To: to, Zone: shanghai},
		{From: from, To: to, Zone: shanghai, Bucket: usage.BucketDay},
		{From: from, To: to, Zone: shanghai, GroupBy: usage.DimModel},
		{From: from, To: to, Zone: shanghai, GroupBy: usage.DimChannel, Bucket: usage.BucketDay},
		{From: from, To: to, Zone: shanghai, TenantID: ledger.DefaultTenantID, Bucket: usage.BucketDay},
		{From: from, To: to, Zone: shanghai, TenantID: "t2", GroupBy: usage.DimTenant},
		{From: from, To: to, Zone: shanghai, Channel: "ds", GroupBy: usage.DimChannel},
		{From: from, To: to, Zone: shanghai, Model: "qwen-max", GroupBy: usage.DimKey, Bucket: usage.BucketDay},
		{From: from, To: to, Zone: shanghai, Model: "qwen-max", Channel: "qw"},
	}
	for _, q := range queries {
		got, err := rep.Report(ctx, q)
		if err != nil {
			t.Fatalf("Report(%+v): %v", q, err)
		}
		want := expectReport(q, recs)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Report(group %q, bucket %q, zone %v, filters %q %q %q %q):\n got %d rows %v\nwant %d rows %v",
				q.GroupBy, q.Bucket, q.Zone, q.TenantID, q.KeyID, q.Model, q.Channel, len(got), got, len(want), want)
		}
	}
	// The record filter agrees: the default tenant's records include those of
	// keys made without a tenant, and one record is found by its request id.
	var wantDefault int64
	for _, r := range recs {
		if ledger.TenantFor(r.TenantID) == ledger.DefaultTenantID {
			wantDefault++
		}
	}
	tot, err := s.TotalRecords(ctx, usage.Filter{TenantID: ledger.DefaultTenantID})
	if err != nil || tot.Requests != wantDefault {
		t.Errorf("TotalRecords(default tenant) = %d requests, %v; want %d", tot.Requests, err, wantDefault)
	}
	if one := list(t, s, usage.Filter{RequestID: "rep_0123"}); len(one) != 1 || one[0].RequestID != "rep_0123" {
		t.Errorf("ListRecords(request id) = %v", ids(one))
	}
	if _, err := rep.Report(ctx, usage.ReportQuery{From: to, To: from}); err == nil {
		t.Error("Report with to before from succeeded")
	}
	if _, err := rep.Report(ctx, usage.ReportQuery{From: from, To: to, GroupBy: "price; DROP TABLE usage_records"}); err == nil {
		t.Error("Report grouped by an unknown dimension succeeded")
	}
}

// expectReport is the report of q over recs, computed one record at a time:
// whole hours (From rounded down, To up); hour buckets are UTC hours; a day
// bucket holds the records whose hour starts on that local day.
func expectReport(q usage.ReportQuery, recs []usage.Record) []usage.ReportRow {
	q.From, q.To = q.From.Truncate(time.Hour), q.To.Add(time.Hour-1).Truncate(time.Hour)
	zone := q.Zone
	if zone == nil {
		zone = time.UTC
	}
	type key struct {
		start           time.Time
		group, currency string
	}
	sums := map[key]*usage.Sums{}
	var order []key
	for i := range recs {
		r := &recs[i]
		tenant := ledger.TenantFor(r.TenantID)
		if r.Start.Before(q.From) || !r.Start.Before(q.To) || (q.TenantID != "" && tenant != q.TenantID) ||
			(q.KeyID != "" && r.KeyID != q.KeyID) || (q.Model != "" && r.Model != q.Model) ||
			(q.Channel != "" && r.Channel != q.Channel) {
			continue
		}
		k := key{currency: r.Currency}
		switch q.GroupBy {
		case usage.DimModel:
			k.group = r.Model
		case usage.DimChannel:
			k.group = r.Channel
		case usage.DimTenant:
			k.group = tenant
		case usage.DimKey:
			k.group = r.KeyID
		}
		hour := r.Start.Truncate(time.Hour)
		switch q.Bucket {
		case usage.BucketHour:
			k.start = hour.UTC()
		case usage.BucketDay:
			l := hour.In(zone)
			k.start = time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, zone).UTC()
		}
		if sums[k] == nil {
			sums[k] = &usage.Sums{}
			order = append(order, k)
		}
		sums[k].AddRecord(r)
	}
	out := make([]usage.ReportRow, 0, len(order))
	for _, k := range order {
		out = append(out, usage.ReportRow{Start: k.start, Group: k.group, Currency: k.currency, Sums: *sums[k]})
	}
	slices.SortFunc(out, func(x, y usage.ReportRow) int {
		return cmp.Or(x.Start.Compare(y.Start), strings.Compare(x.Group, y.Group), strings.Compare(x.Currency, y.Currency))
	})
	return out
}

// RollupsAgree fails the test if the usage rollups of s disagree with its
// records: requests, tokens and cost per currency, in total and per tenant.
func RollupsAgree(t testing.TB, s Store) {
	t.Helper()
	ctx := context.Background()
	page, err := s.ListRecords(ctx, usage.Filter{Limit: usage.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	recs := page.Records
	if len(recs) == 0 {
		return
	}
	from, to := recs[len(recs)-1].Start, recs[0].Start.Add(time.Nanosecond)
	rows, err := s.Report(ctx, usage.ReportQuery{From: from, To: to, GroupBy: usage.DimTenant})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	type key struct{ tenant, currency string }
	got, want := map[key]usage.Sums{}, map[key]usage.Sums{}
	for _, r := range rows {
		got[key{r.Group, r.Currency}] = r.Sums
	}
	for i := range recs {
		k := key{ledger.TenantFor(recs[i].TenantID), recs[i].Currency}
		w := want[k]
		w.AddRecord(&recs[i])
		want[k] = w
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("usage rollups disagree with the %d records:\n got %v\nwant %v", len(recs), got, want)
	}
}
