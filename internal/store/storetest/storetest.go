// Package storetest is the conformance suite that every store implementation
// (sqlite, postgres) must pass, so that they behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"baimo/internal/batch"
	"baimo/internal/channels"
	"baimo/internal/conversation"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// Store is everything the suite exercises.
type Store interface {
	keys.Store
	keys.LoginStore
	usage.Store
	usage.Auditor
	usage.Reporter
	// SetReportZone registers a reporting zone whose days the rollups keep.
	SetReportZone(ctx context.Context, zone *time.Location, now time.Time) error
	ledger.Store
	channels.Store
	price.Store
	price.ListStore
	conversation.Store
	BatchStore() batch.Store
	BatchBlobs() batch.Blobs
}

// Run runs the whole suite. open must return a new, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Keys", func(t *testing.T) { testKeys(t, open(t)) })
	t.Run("UsageRecords", func(t *testing.T) { testUsage(t, open(t)) })
	t.Run("UsageFilters", func(t *testing.T) { testUsageFilters(t, open(t)) })
	t.Run("UsageTenantFilter", func(t *testing.T) { testUsageTenantFilter(t, open(t)) })
	t.Run("UsagePages", func(t *testing.T) { testUsagePages(t, open(t)) })
	t.Run("VendorDrift", func(t *testing.T) { testDrift(t, open(t)) })
	t.Run("UsageReports", func(t *testing.T) { testReport(t, open(t)) })
	t.Run("Channels", func(t *testing.T) { testChannels(t, open(t)) })
	t.Run("Logins", func(t *testing.T) { testLogins(t, open(t)) })
	t.Run("PriceVersions", func(t *testing.T) { testPrices(t, open(t)) })
	t.Run("RoutingEvents", func(t *testing.T) { testRouting(t, open(t)) })
	t.Run("Responses", func(t *testing.T) { testResponses(t, open(t)) })
	t.Run("Batches", func(t *testing.T) { testBatches(t, open(t)) })
	t.Run("BatchBlobs", func(t *testing.T) { testBatchBlobs(t, open(t)) })
	runLedger(t, open)
}

func testKeys(t *testing.T, s Store) {
	ctx := context.Background()
	created := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	secret, k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k.ID, k.Name, k.Models, k.CreatedAt = "key_1", "first", []string{"sim-chat", "deepseek-chat"}, created
	k.ExpiresAt = created.Add(24 * time.Hour)
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if err := s.CreateKey(ctx, k); err == nil {
		t.Fatal("CreateKey with a duplicate id succeeded")
	}
	got, err := s.KeyByHash(ctx, keys.Hash(secret))
	if err != nil {
		t.Fatalf("KeyByHash: %v", err)
	}
	if got.ID != "key_1" || got.Name != "first" || len(got.Models) != 2 || got.Models[1] != "deepseek-chat" ||
		!got.ExpiresAt.Equal(k.ExpiresAt) || !got.CreatedAt.Equal(created) || got.Disabled || got.Prefix != k.Prefix {
		t.Errorf("KeyByHash = %+v, want %+v", got, k)
	}
	if _, err := s.KeyByHash(ctx, keys.Hash("sk-baimo-nope")); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("KeyByHash(unknown) err = %v, want ErrNotFound", err)
	}
	_, k2, _ := keys.Generate()
	k2.ID, k2.Name, k2.CreatedAt = "key_2", "second", created.Add(time.Second)
	if err := s.CreateKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetKeyDisabled(ctx, "key_2", true); err != nil {
		t.Fatalf("SetKeyDisabled: %v", err)
	}
	list, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "key_1" || list[1].ID != "key_2" || !list[1].Disabled || len(list[1].Models) != 0 {
		t.Errorf("ListKeys = %+v", list)
	}
	if err := s.DeleteKey(ctx, "key_1"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if err := s.DeleteKey(ctx, "key_1"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("DeleteKey twice err = %v, want ErrNotFound", err)
	}
	if err := s.SetKeyDisabled(ctx, "key_1", false); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("SetKeyDisabled(deleted) err = %v, want ErrNotFound", err)
	}
}

func record(i int, start time.Time) usage.Record {
	return usage.Record{
		RequestID: fmt.Sprintf("req_%03d", i), KeyID: []string{"key_a", "key_b"}[i%2], TenantID: "t1",
		Endpoint: "chat", Model: []string{"sim-chat", "deepseek-chat"}[i%2], Channel: "sim", UpstreamModel: "sim-chat",
		Stream: i%3 == 0, Status: 200, Complete: i%5 != 0,
		Usage: usage.Usage{Input: int64(100 + i), CachedInput: int64(i), Output: int64(10 + i), Reasoning: int64(i % 4),
			CacheWrite5m: 1, SearchCalls: int64(i % 2), Source: usage.SourceVendor},
		Start: start.Add(time.Duration(i) * time.Minute), TTFT: 150 * time.Millisecond, Duration: time.Second,
		Attempts: []usage.Attempt{{Channel: "backup", Key: "k1", Status: 502, ErrorClass: usage.ErrUpstream, Duration: time.Millisecond},
			{Channel: "sim", Key: "k0", Status: 200, Duration: time.Second}},
		Currency: "CNY", CostNanos: int64(1000 * i), PriceVersion: "sim-chat@2024", Lines: []byte(`[{"kind":"input"}]`),
		CountedInput: int64(i * 3),
	}
}

func testUsage(t *testing.T, s Store) {
	ctx := context.Background()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var recs []usage.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, record(i, start))
	}
	if err := s.WriteRecords(ctx, recs[:6]); err != nil {
		t.Fatalf("WriteRecords: %v", err)
	}
	// A retried batch overlapping the first is a no-op for the records already stored.
	dup := recs[4:]
	dup[0].Status = 599
	if err := s.WriteRecords(ctx, dup); err != nil {
		t.Fatalf("WriteRecords (retry): %v", err)
	}
	all := list(t, s, usage.Filter{})
	if len(all) != 10 {
		t.Fatalf("ListRecords returned %d records, want 10", len(all))
	}
	if all[0].RequestID != "req_009" || all[9].RequestID != "req_000" {
		t.Errorf("ListRecords order: first %s last %s, want newest first", all[0].RequestID, all[9].RequestID)
	}
	for _, r := range all {
		if r.RequestID == "req_004" && r.Status != 200 {
			t.Errorf("retried record was overwritten: status %d", r.Status)
		}
	}
	got := all[9-7] // req_007
	want := record(7, start)
	want.Seq = got.Seq
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	byKey := list(t, s, usage.Filter{KeyID: "key_b", Limit: 2})
	if len(byKey) != 2 || byKey[0].RequestID != "req_009" || byKey[1].RequestID != "req_007" {
		t.Errorf("ListRecords(key_b, limit 2) = %v", ids(byKey))
	}
	window := usage.Filter{Model: "sim-chat", From: start.Add(2 * time.Minute), To: start.Add(6 * time.Minute)}
	win := list(t, s, window)
	if fmt.Sprint(ids(win)) != "[req_004 req_002]" {
		t.Errorf("ListRecords(model, window) = %v, want [req_004 req_002]", ids(win))
	}
	tot, err := s.TotalRecords(ctx, window)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Requests != 2 || tot.Input != 206 || tot.CachedInput != 6 || tot.Output != 26 || tot.CostNanos["CNY"] != 6000 {
		t.Errorf("TotalRecords(window) = %+v", tot)
	}
	if served := list(t, s, usage.Filter{Status: 599}); len(served) != 0 {
		t.Errorf("ListRecords(status 599) = %d records; want none (the retried record kept status 200)", len(served))
	}
	ok200, err := s.TotalRecords(ctx, usage.Filter{Status: 200})
	if err != nil || ok200.Requests != 10 {
		t.Errorf("TotalRecords(status 200) = %+v, %v", ok200, err)
	}
	all10, err := s.TotalRecords(ctx, usage.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if all10.Requests != 10 || all10.CostNanos["CNY"] != 45000 {
		t.Errorf("TotalRecords(all) = %+v", all10)
	}
}

// testUsageFilters checks the filters by channel, outcome and unknown
// model, and that the store's outcome of a record is usage.Record.Outcome.
func testUsageFilters(t *testing.T, s Store) {
	ctx := context.Background()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var recs []usage.Record
	for i, c := range []struct {
		status         int
		channel, model string
	}{
		{200, "sim", "sim-chat"}, {200, "other", "sim-chat"}, {206, "sim", "m"}, {399, "sim", "m"},
		{401, "", ""}, {429, "", "sim-chat"}, {400, "", "m"}, {500, "", ""},
		{502, "sim", "sim-chat"}, {499, "other", "m"}, {400, "sim", "m"}, {0, "sim", "m"}, {0, "", ""},
	} {
		r := record(i, start)
		r.Status, r.Channel, r.Model = c.status, c.channel, c.model
		recs = append(recs, r)
	}
	if err := s.WriteRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	want := map[usage.Outcome][]string{}
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		o := recs[i].Outcome()
		want[o] = append(want[o], recs[i].RequestID)
	}
	if len(want[usage.Served]) != 4 || len(want[usage.Refused]) != 5 || len(want[usage.Failed]) != 4 {
		t.Fatalf("the test's records have outcomes %v", want)
	}
	for _, o := range []usage.Outcome{usage.Served, usage.Refused, usage.Failed} {
		if got := ids(list(t, s, usage.Filter{Outcome: o})); fmt.Sprint(got) != fmt.Sprint(want[o]) {
			t.Errorf("ListRecords(outcome %s) = %v, want %v", o, got, want[o])
		}
	}
	tot, err := s.TotalRecords(ctx, usage.Filter{})
	if err != nil || tot.Requests != 13 || tot.Served != 4 || tot.Refused != 5 || tot.Failed != 4 {
		t.Errorf("TotalRecords = %+v, %v; want 13 requests: 4 served, 5 refused, 4 failed", tot, err)
	}
	tot, err = s.TotalRecords(ctx, usage.Filter{Outcome: usage.Failed, Channel: "sim"})
	if err != nil || tot.Requests != 3 || tot.Failed != 3 {
		t.Errorf("TotalRecords(failed on sim) = %+v, %v; want 3", tot, err)
	}
	if got := ids(list(t, s, usage.Filter{Model: usage.UnknownModel})); fmt.Sprint(got) != "[req_012 req_007 req_004]" {
		t.Errorf("ListRecords(model %s) = %v", usage.UnknownModel, got)
	}
	if got := ids(list(t, s, usage.Filter{Channel: "other"})); fmt.Sprint(got) != "[req_009 req_001]" {
		t.Errorf("ListRecords(channel other) = %v", got)
	}
	if got := ids(list(t, s, usage.Filter{Channel: "other", Outcome: usage.Served, Model: "sim-chat"})); fmt.Sprint(got) != "[req_001]" {
		t.Errorf("ListRecords(channel other, served, sim-chat) = %v", got)
	}
}

// testUsageTenantFilter checks the filter by tenant, alone and with the
// others: a tenant's records only, and for the default tenant also those
// of keys made without a tenant (stored with an empty tenant id).
func testUsageTenantFilter(t *testing.T, s Store) {
	ctx := context.Background()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tenants := []string{"t1", "t2", "", ledger.DefaultTenantID, "t2", "t1", "t10", ""}
	var recs []usage.Record
	for i, tn := range tenants {
		r := record(i, start)
		r.TenantID = tn
		recs = append(recs, r)
	}
	if err := s.WriteRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    usage.Filter
		want string
	}{
		{usage.Filter{TenantID: "t1"}, "[req_005 req_000]"},
		{usage.Filter{TenantID: "t2"}, "[req_004 req_001]"},
		{usage.Filter{TenantID: ledger.DefaultTenantID}, "[req_007 req_003 req_002]"},
		{usage.Filter{TenantID: "nobody"}, "[]"},
		{usage.Filter{TenantID: "t2", KeyID: "key_a"}, "[req_004]"},
		{usage.Filter{TenantID: "t1", Model: "deepseek-chat"}, "[req_005]"},
		{usage.Filter{TenantID: ledger.DefaultTenantID, From: start.Add(3 * time.Minute)}, "[req_007 req_003]"},
	} {
		if got := ids(list(t, s, c.f)); fmt.Sprint(got) != c.want {
			t.Errorf("ListRecords(%+v) = %v, want %s", c.f, got, c.want)
		}
		tot, err := s.TotalRecords(ctx, c.f)
		if n := strings.Count(c.want, "req_"); err != nil || tot.Requests != int64(n) {
			t.Errorf("TotalRecords(%+v) = %d requests, %v; want %d", c.f, tot.Requests, err, n)
		}
	}
}

// testUsagePages pages through records with cursors while others are
// stored: no record stored before the first page is repeated or skipped.
func testUsagePages(t *testing.T, s Store) {
	ctx := context.Background()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var recs []usage.Record
	for i := 0; i < 40; i++ {
		r := record(i, start)
		r.Start = start.Add(time.Duration(i/4) * time.Second) // four records start at each second
		recs = append(recs, r)
	}
	if err := s.WriteRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var order []string
	f := usage.Filter{Limit: 7, KeyID: "key_a"}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("more pages than records")
		}
		p, err := s.ListRecords(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seen[r.RequestID]++
			order = append(order, r.RequestID)
		}
		if pages == 0 {
			// Others arrive meanwhile: newer, older, and at the same
			// time as the page's last record.
			var more []usage.Record
			for i, at := range []time.Time{start.Add(time.Hour), start.Add(-time.Hour), p.Records[len(p.Records)-1].Start} {
				r := record(100+2*i, start) // key_a
				r.Start = at
				more = append(more, r)
			}
			if err := s.WriteRecords(ctx, more); err != nil {
				t.Fatal(err)
			}
		}
		if p.Next.IsZero() {
			if len(p.Records) > f.Limit {
				t.Fatalf("page of %d records, limit %d", len(p.Records), f.Limit)
			}
			break
		}
		if len(p.Records) != f.Limit {
			t.Fatalf("a page before the last has %d records, want %d", len(p.Records), f.Limit)
		}
		if f.After, err = usage.ParseCursor(p.Next.String()); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		if r.KeyID == "key_a" && seen[r.RequestID] != 1 {
			t.Errorf("%s listed %d times, want once", r.RequestID, seen[r.RequestID])
		}
	}
	if seen["req_100"] != 0 || seen["req_102"] != 1 {
		t.Errorf("a newer record stored after the first page was listed %d times (want 0), an older one %d (want 1)",
			seen["req_100"], seen["req_102"])
	}
	if len(order) != 20+1+seen["req_104"] {
		t.Errorf("listed %d records: %v", len(order), order)
	}
	for _, id := range order {
		if seen[id] != 1 {
			t.Errorf("%s listed %d times", id, seen[id])
		}
	}
}

// list returns the page of records f selects.
func list(t *testing.T, s usage.Store, f usage.Filter) []usage.Record {
	t.Helper()
	p, err := s.ListRecords(context.Background(), f)
	if err != nil {
		t.Fatalf("ListRecords(%+v): %v", f, err)
	}
	return p.Records
}

func ids(rs []usage.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RequestID
	}
	return out
}
