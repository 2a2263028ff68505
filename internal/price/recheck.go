package price

import (
	"fmt"
	"strings"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// PropagationBound is how far ahead a price version added on one gateway
// node must start when several nodes share a database: every node applies
// the versions added elsewhere within about a second (the price sync), so a
// version that starts at least this late is in force on every node from its
// first instant, and a request is rated at the version in force when it
// started on whichever node served it. The admin API refuses an earlier
// start, and reads "now" as now plus this bound.
const PropagationBound = 5 * time.Second

// LeadFor returns how far ahead a new version must start: PropagationBound
// when several nodes share the store, nothing for a single node.
func LeadFor(sharedStore bool) time.Duration {
	if sharedStore {
		return PropagationBound
	}
	return 0
}

// CheckLead reports, as a *LeadError, whether a version effective from
// may not be added at now on a gateway whose versions reach the other nodes
// within lead (0 for a single node): it starts in the past, or sooner than
// lead from now.
func CheckLead(from, now time.Time, lead time.Duration) error {
	if from.Before(now.Add(lead)) {
		return &LeadError{From: from, Now: now, Lead: lead}
	}
	return nil
}

// LeadError is a version that starts in the past (it is ErrHistory) or too
// soon for every node to have it when it starts.
type LeadError struct {
	From, Now time.Time
	Lead      time.Duration
}

func (e *LeadError) Error() string {
	if e.From.Before(e.Now) {
		return fmt.Sprintf("A price version cannot start in the past (%s is before now, %s): requests already rated keep their price.",
			e.From.UTC().Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("A price version must start at least %s from now (this one starts in %s): the other gateway nodes apply a new version within that bound, and would rate requests at the old price until then. Use \"now\" to start it as soon as every node has it.",
		e.Lead, e.From.Sub(e.Now).Round(time.Millisecond))
}

// Is makes a version that starts in the past ErrHistory.
func (e *LeadError) Is(target error) bool { return target == ErrHistory && e.From.Before(e.Now) }

// Recheck is what re-rating one usage record found.
type Recheck struct {
	RequestID string
	Model     string    // the catalog name rated by
	At        time.Time // the request's start
	// Recorded is the version the record carries and Want the one in
	// force at its start; RecordedCost is the record's cost and WantCost
	// the cost at Want's catalog prices (before any tenant price list).
	Recorded, Want         string
	RecordedCost, WantCost int64
	// Skipped says there is nothing to compare: the record was refused
	// before any upstream call, served free by configuration, or rated at
	// a tenant's negotiated price (price lists are replaced, not dated, so
	// their past cannot be re-rated).
	Skipped bool
}

// OK reports whether the record carries the version in force at its start.
func (r Recheck) OK() bool { return r.Skipped || r.Recorded == r.Want }

// String describes a mismatch for an audit report.
func (r Recheck) String() string {
	return fmt.Sprintf("request %s (%s at %s): rated at version %q (cost %s), but %q was in force then (%s at catalog prices)",
		r.RequestID, r.Model, r.At.UTC().Format(time.RFC3339Nano), r.Recorded, money.FormatNanos(r.RecordedCost),
		r.Want, money.FormatNanos(r.WantCost))
}

// RecheckRecord rates rec again, at its start, with the catalog as it
// stands now, and compares the version it was rated at with the one in
// force at its start: a gateway node that applied a price version late
// rated its requests at the version before. rates are the exchange rates
// the gateway rates with (nil: the catalog's reference rates). The version
// decides, not the cost, which a tenant's price list (a markup, replaced
// in place) may have changed since; the ledger's audit already checks that
// each request was charged its record's cost.
func (c *Catalog) RecheckRecord(rec *usage.Record, rates *ExchangeRates) (Recheck, error) {
	r := Recheck{RequestID: rec.RequestID, At: rec.Start, Recorded: rec.PriceVersion, RecordedCost: rec.CostNanos}
	if rec.PriceVersion == "" || rec.PriceVersion == "free" || strings.HasPrefix(rec.PriceVersion, priceListPrefix) {
		r.Skipped = true
		return r, nil
	}
	r.Model = c.RatingName(rec.Model, rec.UpstreamModel)
	var lines [16]Line
	rated, err := c.Rate(rec.Usage, RateContext{Model: r.Model, At: rec.Start, Batch: rec.IsBatch(), Currency: money.Currency(rec.Currency),
		Rates: rates, Variant: rec.Variant()}, lines[:0])
	if err != nil {
		return r, fmt.Errorf("recheck %s: %w", rec.RequestID, err)
	}
	r.Want, r.WantCost = rated.Version, rated.Total.Nanos
	return r, nil
}
