package price_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

func TestCheckLead(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	lead := price.PropagationBound
	tests := []struct {
		from    time.Time
		lead    time.Duration
		ok      bool
		history bool // the error is ErrHistory (the past)
		says    string
	}{
		{now, 0, true, false, ""},                                  // one node: now is fine
		{now.Add(-time.Nanosecond), 0, false, true, "in the past"}, // never the past
		{now, lead, false, false, "at least 5s from now"},          // several nodes: not now
		{now.Add(lead - time.Millisecond), lead, false, false, "starts in 4.999s"},
		{now.Add(lead), lead, true, false, ""},
		{now.Add(-time.Hour), lead, false, true, "in the past"},
	}
	for _, tt := range tests {
		err := price.CheckLead(tt.from, now, tt.lead)
		if (err == nil) != tt.ok || errors.Is(err, price.ErrHistory) != tt.history || (err != nil && !strings.Contains(err.Error(), tt.says)) {
			t.Errorf("CheckLead(now%+v, lead %s) = %v; want ok %v, ErrHistory %v, saying %q", tt.from.Sub(now), tt.lead, err, tt.ok, tt.history, tt.says)
		}
	}
	if price.LeadFor(true) != lead || price.LeadFor(false) != 0 {
		t.Errorf("LeadFor: shared %s, single %s", price.LeadFor(true), price.LeadFor(false))
	}
}

// TestRecheckRecord: a record rated at the version in force at its start
// passes; one that a node rated late, at the version before, is found;
// records the catalog did not rate are skipped.
func TestRecheckRecord(t *testing.T) {
	c, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(validFile)})
	if err != nil {
		t.Fatal(err)
	}
	change := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	v2, err := c.AddVersion(price.VersionSpec{Model: "acme-1", EffectiveFrom: change.Format(time.RFC3339), Currency: "CNY",
		Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "0.5"}, "output": {Price: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	u := usage.Usage{Input: 1_000_000, Output: 1_000_000}
	rated := func(at time.Time) *usage.Record {
		r, err := c.Rate(u, price.RateContext{Model: "acme-1", At: at, Currency: money.CNY}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &usage.Record{RequestID: "r", Model: "acme-1", Usage: u, Start: at, Currency: "CNY", CostNanos: r.Total.Nanos, PriceVersion: r.Version}
	}
	before, after := change.Add(-time.Second), change.Add(time.Second)
	old := rated(before) // the version before the change, with its cost

	// Rated right, on either side of the change.
	for _, rec := range []*usage.Record{old, rated(after)} {
		if r, err := c.RecheckRecord(rec, nil); err != nil || !r.OK() || r.Skipped {
			t.Errorf("record rated at %s: %+v, %v; want it to pass", rec.PriceVersion, r, err)
		}
	}
	// A node that had not applied the change yet rated a request that
	// started after it at the old version and price.
	late := *old
	late.Start = after
	r, err := c.RecheckRecord(&late, nil)
	if err != nil || r.OK() || r.Recorded != old.PriceVersion || r.Want != v2.ID || r.WantCost != 3*money.Scale/2 || r.RecordedCost != 3*money.Scale {
		t.Fatalf("late-rated record: %+v, %v; want version %s (cost 1.5) found against %s (cost 3)", r, err, v2.ID, old.PriceVersion)
	}
	if !strings.Contains(r.String(), v2.ID) || !strings.Contains(r.String(), "was in force") {
		t.Errorf("report %q does not say which version was in force", r.String())
	}
	// Not rated by the catalog: refused before routing, free by config, or
	// at a tenant's negotiated price.
	for _, v := range []string{"", "free", "pricelist/acme/acme-1/CNY/2025-01-01T00:00:00+08:00"} {
		rec := *old
		rec.PriceVersion, rec.CostNanos = v, 0
		if r, err := c.RecheckRecord(&rec, nil); err != nil || !r.Skipped || !r.OK() {
			t.Errorf("record with version %q: %+v, %v; want skipped", v, r, err)
		}
	}
	// A batch's line is re-rated at the batch rule, as it was rated.
	half, err := c.AddVersion(price.VersionSpec{Model: "acme-1", EffectiveFrom: change.Add(time.Hour).Format(time.RFC3339), Currency: "CNY",
		Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "0.5"}, "output": {Price: "1"}}, Batch: "0.5"})
	if err != nil {
		t.Fatal(err)
	}
	line := *rated(change.Add(2 * time.Hour))
	line.Endpoint, line.CostNanos = usage.BatchEndpoint("chat"), 3*money.Scale/4
	if r, err := c.RecheckRecord(&line, nil); err != nil || !r.OK() || r.Want != half.ID || r.WantCost != 3*money.Scale/4 {
		t.Errorf("batch line: %+v, %v; want its cost at the batch rule, 0.75", r, err)
	}
	// A model the catalog does not know cannot be re-rated: an error.
	unknown := *old
	unknown.Model = "nobody-9"
	if _, err := c.RecheckRecord(&unknown, nil); err == nil {
		t.Error("a record of an unknown model re-rated without error")
	}
}
