package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// Rater prices requests with the catalog: it refuses, before any upstream
// call, a model that has no price (unless the operator marked it free), and
// rates each usage record at the price in force when its request started.
type Rater struct {
	Catalog  *price.Catalog
	Currency money.Currency
	Rates    *price.ExchangeRates
	// Free lists public model names the operator serves free of charge.
	Free map[string]bool

	lists atomic.Pointer[map[string]*price.List] // tenant id → price list
}

// SetPriceLists swaps in the tenants' price lists (a markup or negotiated
// prices for operators who resell). Lists are never edited in place.
func (r *Rater) SetPriceLists(m map[string]*price.List) { r.lists.Store(&m) }

// PriceList returns a tenant's price list, or nil for catalog prices.
func (r *Rater) PriceList(tenantID string) *price.List {
	if tenantID == "" {
		tenantID = "default"
	}
	if m := r.lists.Load(); m != nil {
		return (*m)[tenantID]
	}
	return nil
}

// ratingModel returns the catalog name for a request: the upstream name when
// the catalog knows it (it is the vendor's own name), else the public one.
func (r *Rater) ratingModel(public, upstream string) string {
	return r.Catalog.RatingName(public, upstream)
}

// NotPricedError says a model has no price (or no exchange rate to the
// billing currency) at a time: the gateway refuses to serve it unpriced.
type NotPricedError struct {
	Model    string
	Currency money.Currency
	Err      error
}

func (e *NotPricedError) Error() string {
	return fmt.Sprintf("no price for model %s in %s: %v", e.Model, e.Currency, e.Err)
}

// Unwrap returns the cause.
func (e *NotPricedError) Unwrap() error { return e.Err }

// Check reports whether the request for public, served as upstream, can be
// rated at at: nil, a *NotPricedError, or another error (a catalog fault).
func (r *Rater) Check(public, upstream string, at time.Time) error {
	if r == nil || r.Free[public] {
		return nil
	}
	m := r.ratingModel(public, upstream)
	_, err := r.Catalog.Quote(0, 0, price.RateContext{Model: m, At: at, Currency: r.Currency, Rates: r.Rates})
	if err == nil {
		return nil
	}
	var np *price.NoPriceError
	if errors.As(err, &np) || errors.Is(err, price.ErrNoRate) {
		return &NotPricedError{Model: public, Currency: r.Currency, Err: err}
	}
	return err
}

// RateRecord fills the record's cost, currency, price version and lines.
func (r *Rater) RateRecord(rec *usage.Record) error {
	if r == nil || rec.Channel == "" {
		return nil // refused before routing: nothing to rate
	}
	rec.Currency = string(r.Currency)
	if r.Free[rec.Model] {
		rec.CostNanos, rec.PriceVersion, rec.Lines = 0, "free", nil
		return nil
	}
	m := r.ratingModel(rec.Model, rec.UpstreamModel)
	var lines [16]price.Line
	rated, err := r.Catalog.Rate(rec.Usage, price.RateContext{Model: m, At: rec.Start, Batch: rec.IsBatch(), Currency: r.Currency,
		Rates: r.Rates, PriceList: r.PriceList(rec.TenantID), Variant: rec.Variant()}, lines[:0])
	if err != nil {
		return fmt.Errorf("rate %s (%s): %w", rec.RequestID, m, err)
	}
	rec.CostNanos, rec.PriceVersion = rated.Total.Nanos, rated.Version
	rec.Lines = price.AppendLines(nil, rated.Lines, rated.Currency, rated.Version)
	return nil
}

// Cost returns what prompt input and out output tokens of a request cost at
// the channel's model (its upstream name when the catalog knows it), for the
// cost routing policy. ok is false when the model has no price.
func (r *Rater) Cost(tenantID, public, upstream string, prompt, out int64, at time.Time) (int64, bool) {
	if r.Free[public] {
		return 0, true
	}
	m := r.ratingModel(public, upstream)
	rated, err := r.Catalog.Quote(prompt, out, price.RateContext{Model: m, At: at, Currency: r.Currency, Rates: r.Rates,
		PriceList: r.PriceList(tenantID)})
	if err != nil {
		return 0, false
	}
	return rated.Total.Nanos, true
}

// LoadPriceLists reads every tenant's price list from st and swaps them in.
// A list that no longer builds (a catalog model gone) is skipped and named in
// the error; the others still apply.
func (r *Rater) LoadPriceLists(ctx context.Context, st price.ListStore) error {
	raw, err := st.PriceLists(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*price.List, len(raw))
	var errs []error
	for tenant, b := range raw {
		var spec price.ListSpec
		if err := json.Unmarshal(b, &spec); err != nil {
			errs = append(errs, fmt.Errorf("price list of %s: %w", tenant, err))
			continue
		}
		pl, err := spec.Build(tenant)
		if err != nil {
			errs = append(errs, fmt.Errorf("price list of %s: %w", tenant, err))
			continue
		}
		m[tenant] = pl
	}
	r.SetPriceLists(m)
	return errors.Join(errs...)
}
