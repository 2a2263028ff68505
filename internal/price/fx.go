package price

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"baimo/internal/money"
)

// ExchangeRate is the number of To units one From unit buys, in force from
// EffectiveFrom until the next rate of the same pair.
type ExchangeRate struct {
	From, To      money.Currency
	EffectiveFrom time.Time
	Rate          money.Ratio
	Source        string
	Note          string
	Unverified    bool
}

// ExchangeRates is a dated exchange-rate table, read from configuration or
// the catalog's reference table (never a constant in code). A nil table has
// no rates. A table may lie over a base table (Over): a pair it has no rate
// for at some time is looked up in the base.
type ExchangeRates struct {
	rates []ExchangeRate // by pair, then ascending EffectiveFrom
	base  *ExchangeRates
}

// Over returns a table that looks up x first and then base, for a pair x has
// no rate (direct or inverse) in force for at the time asked: the operator's
// configured rates over the catalog's reference rates. Either may be nil.
func (x *ExchangeRates) Over(base *ExchangeRates) *ExchangeRates {
	if base == nil {
		return x
	}
	if x == nil {
		return base
	}
	return &ExchangeRates{rates: x.rates, base: base}
}

// NewExchangeRates validates and indexes rates. Two rates of one pair may not
// start at the same instant.
func NewExchangeRates(rates []ExchangeRate) (*ExchangeRates, error) {
	rs := make([]ExchangeRate, len(rates))
	copy(rs, rates)
	for i, r := range rs {
		if r.From == "" || r.To == "" || r.From == r.To {
			return nil, fmt.Errorf("exchange rate %d: bad pair %s→%s", i, r.From, r.To)
		}
		if r.Rate.Num <= 0 || r.Rate.Den <= 0 {
			return nil, fmt.Errorf("exchange rate %d (%s→%s): rate must be positive", i, r.From, r.To)
		}
		if r.EffectiveFrom.IsZero() {
			return nil, fmt.Errorf("exchange rate %d (%s→%s): no effective_from", i, r.From, r.To)
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.EffectiveFrom.Before(b.EffectiveFrom)
	})
	for i := 1; i < len(rs); i++ {
		if rs[i].From == rs[i-1].From && rs[i].To == rs[i-1].To && rs[i].EffectiveFrom.Equal(rs[i-1].EffectiveFrom) {
			return nil, fmt.Errorf("two %s→%s rates start at %s", rs[i].From, rs[i].To, rs[i].EffectiveFrom.Format(time.RFC3339))
		}
	}
	return &ExchangeRates{rates: rs}, nil
}

// exchangeRateSpec is the configuration form of an ExchangeRate.
type exchangeRateSpec struct {
	From          string `yaml:"from"`
	To            string `yaml:"to"`
	EffectiveFrom string `yaml:"effective_from"`
	Rate          string `yaml:"rate"` // decimal, To units per From unit
	Source        string `yaml:"source"`
	Note          string `yaml:"note"`
	Unverified    bool   `yaml:"unverified"`
}

func (s exchangeRateSpec) build() (ExchangeRate, error) {
	t, err := time.Parse(time.RFC3339, s.EffectiveFrom)
	if err != nil {
		return ExchangeRate{}, fmt.Errorf("effective_from: want RFC 3339 with zone: %q", s.EffectiveFrom)
	}
	r, err := positiveRatio(s.Rate)
	if err != nil {
		return ExchangeRate{}, fmt.Errorf("rate: %w", err)
	}
	for _, c := range []string{s.From, s.To} {
		if len(c) != 3 || strings.ToUpper(c) != c {
			return ExchangeRate{}, fmt.Errorf("want ISO 4217 codes such as USD and CNY: %q", c)
		}
	}
	if len(s.Source) > maxTextLen || len(s.Note) > maxTextLen {
		return ExchangeRate{}, fmt.Errorf("source or note longer than %d bytes", maxTextLen)
	}
	return ExchangeRate{From: money.Currency(s.From), To: money.Currency(s.To), EffectiveFrom: t, Rate: r,
		Source: s.Source, Note: s.Note, Unverified: s.Unverified}, nil
}

// ParseExchangeRates reads a YAML list of rates, for example
//
//   - {from: USD, to: CNY, effective_from: "2026-11-01T00:00:00+08:00", rate: "7.1", source: "treasury"}
func ParseExchangeRates(b []byte) (*ExchangeRates, error) {
	var specs []exchangeRateSpec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil && len(bytes.TrimSpace(b)) > 0 {
		return nil, fmt.Errorf("exchange rates: %w", err)
	}
	rates := make([]ExchangeRate, 0, len(specs))
	for i, s := range specs {
		r, err := s.build()
		if err != nil {
			return nil, fmt.Errorf("exchange rates[%d]: %w", i, err)
		}
		rates = append(rates, r)
	}
	return NewExchangeRates(rates)
}

// Rates returns a copy of the table's own rates (not its base's).
func (x *ExchangeRates) Rates() []ExchangeRate {
	if x == nil {
		return nil
	}
	return append([]ExchangeRate(nil), x.rates...)
}

// Base returns the table x lies over, or nil.
func (x *ExchangeRates) Base() *ExchangeRates {
	if x == nil {
		return nil
	}
	return x.base
}

// Lookup returns the rate from→to in force at t: a direct rate, or the exact
// inverse of a to→from rate when no direct one is in force.
func (x *ExchangeRates) Lookup(from, to money.Currency, t time.Time) (money.Ratio, bool) {
	r, err := x.lookup(from, to, t)
	return r.Rate, err == nil
}

// RateAt is Lookup returning the whole rate used (its date and source); an
// inverse keeps the source of the rate it inverts.
func (x *ExchangeRates) RateAt(from, to money.Currency, t time.Time) (ExchangeRate, bool) {
	r, err := x.lookup(from, to, t)
	return r, err == nil
}

func (x *ExchangeRates) lookup(from, to money.Currency, t time.Time) (ExchangeRate, error) {
	if from == to {
		return ExchangeRate{From: from, To: to, Rate: money.One}, nil
	}
	for tab := x; tab != nil; tab = tab.base {
		if r, ok := tab.find(from, to, t); ok {
			return *r, nil
		}
		if r, ok := tab.find(to, from, t); ok {
			if inv, err := r.Rate.Inverse(); err == nil {
				out := *r
				out.From, out.To, out.Rate = from, to, inv
				return out, nil
			}
		}
	}
	return ExchangeRate{}, fmt.Errorf("%w %s→%s at %s", ErrNoRate, from, to, t.UTC().Format(time.RFC3339))
}

func (x *ExchangeRates) find(from, to money.Currency, t time.Time) (*ExchangeRate, bool) {
	var best *ExchangeRate
	for i := range x.rates {
		r := &x.rates[i]
		if r.From == from && r.To == to && !r.EffectiveFrom.After(t) {
			best = r // ascending, so the last match is the one in force
		}
	}
	return best, best != nil
}

// List is a tenant's price list for operators who resell: a markup on
// every catalog price and negotiated per-model overrides. Build a list fully
// before rating with it; to change a list in service, build a new one and
// swap it in (Rate reads it without locks).
type List struct {
	Name string
	// Markup multiplies every catalog price (1.15 for +15%); One or the
	// zero value means none. Overrides are not marked up.
	Markup    money.Ratio
	overrides map[string]*Version
}

// NewList returns a price list with a markup in basis points
// (1500 = +15%, -1000 = 10% off; at least -10000).
func NewList(name string, markupBP int64) (*List, error) {
	if err := checkName("name", name); err != nil {
		return nil, fmt.Errorf("price list: %w", err)
	}
	if markupBP < -10000 || markupBP > 1_000_000 {
		return nil, fmt.Errorf("price list %s: markup %d basis points out of range", name, markupBP)
	}
	m, err := money.NewRatio(10000+markupBP, 10000)
	if err != nil {
		return nil, fmt.Errorf("price list %s: %w", name, err)
	}
	return &List{Name: name, Markup: m, overrides: map[string]*Version{}}, nil
}

// priceListPrefix starts the id of a price list's negotiated version.
const priceListPrefix = "pricelist/"

// Override sets a negotiated price for one model: spec is a full version (its
// own currency, unit, prices, tiers) that replaces the catalog's versions for
// this tenant from spec.EffectiveFrom on. spec.Model names the model. A later
// Override of the same model replaces the earlier one from then on only if it
// starts later.
func (p *List) Override(spec VersionSpec) error {
	if err := checkName("model", spec.Model); err != nil {
		return fmt.Errorf("price list %s: override: %w", p.Name, err)
	}
	vendor := spec.Vendor
	if vendor == "" {
		vendor = "pricelist"
	}
	var s snapshot // overrides may not use calendars; schedules need zones only
	v, err := s.buildVersion(spec, spec.Model, vendor)
	if err != nil {
		return fmt.Errorf("price list %s: override of %s: %w", p.Name, spec.Model, err)
	}
	v.ID = priceListPrefix + p.Name + "/" + v.ID
	if old, ok := p.overrides[spec.Model]; ok && !v.EffectiveFrom.After(old.EffectiveFrom) {
		return fmt.Errorf("price list %s: override of %s must start after %s: %w", p.Name, spec.Model,
			old.EffectiveFrom.Format(time.RFC3339), ErrHistory)
	}
	if p.overrides == nil {
		p.overrides = map[string]*Version{}
	}
	p.overrides[spec.Model] = v
	return nil
}

// override returns the negotiated version for name (or its catalog model)
// in force at t, or nil.
func (p *List) override(name string, m *Model, t time.Time) *Version {
	if len(p.overrides) == 0 {
		return nil
	}
	v, ok := p.overrides[name]
	if !ok && m != nil {
		v, ok = p.overrides[m.Name]
	}
	if !ok || v.EffectiveFrom.After(t) {
		return nil
	}
	return v
}
