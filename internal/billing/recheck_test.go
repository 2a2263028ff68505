package billing

import (
	"context"
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
