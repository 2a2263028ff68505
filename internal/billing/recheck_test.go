package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"baimo/internal/price"
	"baimo/internal/usage"
)

// pagedRecords is a usage.Store whose listing pages through recs (newest
// first) two at a time.
type pagedRecords struct {
	usage.Store
	recs  []usage.Record
	calls int
}

func (p *pagedRecords) ListRecords(_ context.Context, f usage.Filter) (usage.Page, error) {
	p.calls++
	start := 0
	if !f.After.IsZero() {
		start = int(f.After.Seq)
	}
	end := min(start+2, len(p.recs), start+f.Limit)
	page := usage.Page{Records: p.recs[start:end]}
	if end < len(p.recs) {
		page.Next = usage.Cursor{Start: 1, Seq: int64(end)}
	}
	return page, nil
}

// TestAuditRecords: after a price change, a record of a request that
// started after it but was rated at the old version (a node that applied
// the change late) is reported; records rated right, free ones and those
// refused before routing are not.
func TestAuditRecords(t *testing.T) {
	r := testRater(t)
	change := t0.Add(time.Hour)
	if _, err := r.Catalog.AddVersion(price.VersionSpec{Model: "cheap", EffectiveFrom: change.Format(time.RFC3339), Currency: "CNY",
		Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "3"}, "output": {Price: "4"}}}); err != nil {
		t.Fatal(err)
	}
	rated := func(id string, start time.Time) usage.Record {
		rec := usage.Record{RequestID: id, Model: "cheap", Channel: "c", Start: start, Usage: usage.Usage{Input: 1000, Output: 100}}
		if err := r.RateRecord(&rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	late := rated("late", change.Add(-time.Second)) // rated at the old version...
	late.Start = change.Add(time.Second)            // ...for a request that started after the change
	st := &pagedRecords{recs: []usage.Record{
		rated("after", change.Add(2*time.Second)),
		late,
		{RequestID: "refused", Model: "cheap", Start: change},
		rated("before", change.Add(-time.Minute)),
		{RequestID: "free", Model: "zero", PriceVersion: "free", Start: change},
	}}
	cs, err := r.AuditRecords(context.Background(), st, t0, change.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if c.Name != CheckRatedInForce || c.OK || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "request late ") {
		t.Fatalf("check %+v; want one problem, the late-rated request", c)
	}
	if st.calls != 3 {
		t.Errorf("%d pages read, want all 3", st.calls)
	}
	// The bound on records is kept.
	st.calls = 0
	if cs, err := r.AuditRecords(context.Background(), st, t0, change.Add(time.Hour), 1); err != nil || !cs[0].OK || st.calls != 1 {
		t.Errorf("with max 1: %+v, %v, %d pages; want only the newest record read", cs, err, st.calls)
	}
}

// TestAuditRecordsBounds: the records read stop at max even mid-page, and
// each check lists at most 100 problems and then how many more there were.
func TestAuditRecordsBounds(t *testing.T) {
	r := testRater(t)
	rated := func(id string, cost int64) usage.Record {
		rec := usage.Record{RequestID: id, Model: "cheap", Channel: "c", Start: t0.Add(time.Minute), Usage: usage.Usage{Input: 1000, Output: 100}}
		if err := r.RateRecord(&rec); err != nil {
			t.Fatal(err)
		}
		if cost >= 0 {
			rec.CostNanos = cost
		}
		return rec
	}
	ctx := context.Background()
	// Newest first: three right, then one charged 0 that max 3 must not reach.
	st := &pagedRecords{recs: []usage.Record{rated("a", -1), rated("b", -1), rated("c", -1), rated("wrong", 0)}}
	if cs, err := r.AuditRecords(ctx, st, t0, t0.Add(time.Hour), 3); err != nil || !cs[1].OK {
		t.Errorf("with max 3: %+v, %v; want the fourth record unread", cs, err)
	}
	if cs, err := r.AuditRecords(ctx, st, t0, t0.Add(time.Hour), 4); err != nil || cs[1].OK {
		t.Errorf("with max 4: %+v, %v; want the fourth record read", cs, err)
	}
	for _, tt := range []struct {
		wrong int
		want  int    // problems listed
		last  string // the last one
	}{
		{99, 99, "request w98 "},
		{100, 100, "request w99 "},
		{101, 101, "... and 1 more"},
		{150, 101, "... and 50 more"},
	} {
		st := &pagedRecords{}
		for i := range tt.wrong {
			st.recs = append(st.recs, rated(fmt.Sprint("w", i), 0))
		}
		cs, err := r.AuditRecords(ctx, st, t0, t0.Add(time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		p := cs[1].Problems
		if cs[1].OK || len(p) != tt.want || !strings.Contains(p[len(p)-1], tt.last) {
			t.Errorf("%d records charged 0: %d problems ending %q; want %d ending %q", tt.wrong, len(p), p[len(p)-1], tt.want, tt.last)
		}
	}
}

// failingRecords is a usage store that cannot be read.
type failingRecords struct{ usage.Store }

func (failingRecords) ListRecords(context.Context, usage.Filter) (usage.Page, error) {
	return usage.Page{}, errors.New("store down")
}

// TestAuditRecordsFaults: a record store that cannot be read fails the
// audit, and a record that can no longer be rated (its model gone from the
// catalog) is reported, not skipped.
func TestAuditRecordsFaults(t *testing.T) {
	r := testRater(t)
	ctx := context.Background()
	if _, err := r.AuditRecords(ctx, failingRecords{}, t0, t0.Add(time.Hour), 10); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("unreadable records: err %v", err)
	}
	gone := usage.Record{RequestID: "gone", Model: "retired", Channel: "c", Start: t0, PriceVersion: "retired/CNY/2024-01-01T00:00:00Z",
		Currency: "CNY", CostNanos: 5, Usage: usage.Usage{Input: 10}}
	cs, err := r.AuditRecords(ctx, &pagedRecords{recs: []usage.Record{gone}}, t0, t0.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].OK || len(cs[0].Problems) != 1 || !strings.Contains(cs[0].Problems[0], "gone") || !cs[1].OK {
		t.Errorf("checks %+v; want the unratable record reported as not rated at its version", cs)
	}
}
