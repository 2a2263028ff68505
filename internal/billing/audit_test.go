package billing

import (
	"context"
	"strings"
	"testing"
	"time"

	"baimo/internal/price"
	"baimo/internal/usage"
)

// TestAuditRecordCosts: re-rating each record from its usage at its start
// finds a record charged other than its version's rating (here: settled at
// 0) and every record settled Unrated (charged its hold), and passes the
// records rated right; a tenant with a price list is not compared by cost
// (its markup may have been replaced since).
func TestAuditRecordCosts(t *testing.T) {
	r := testRater(t)
	pl, err := price.NewList("resold", 1500)
	if err != nil {
		t.Fatal(err)
	}
	r.SetPriceLists(map[string]*price.List{"resold": pl})
	rated := func(id, tenant string) usage.Record {
		rec := usage.Record{RequestID: id, TenantID: tenant, Model: "cheap", Channel: "c", Start: t0.Add(time.Minute),
			Usage: usage.Usage{Input: 1000, Output: 100, Source: usage.SourceVendor}}
		if err := r.RateRecord(&rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	zero := rated("zero", "acme")
	zero.CostNanos = 0
	markedUp := rated("marked-up", "resold")
	unrated := rated("unrated", "acme")
	unrated.PriceVersion, unrated.CostNanos, unrated.Lines = Unrated, 123_000, nil
	st := &pagedRecords{recs: []usage.Record{rated("right", "acme"), zero, markedUp, unrated}}
	cs, err := r.AuditRecords(context.Background(), st, t0, t0.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != CheckRatedInForce || !cs[0].OK || cs[1].Name != CheckRatedCost || cs[1].OK {
		t.Fatalf("checks %+v; want the versions right and the costs wrong", cs)
	}
	p := cs[1].Problems
	if len(p) != 2 || !strings.Contains(p[0], "request zero ") || !strings.Contains(p[0], "charged 0 CNY") ||
		!strings.Contains(p[1], "request unrated ") || !strings.Contains(p[1], "could not be rated") || !strings.Contains(p[1], "0.000123 CNY") {
		t.Errorf("problems %q; want the record settled at 0 and the unrated one", p)
	}
}
