package price

import (
	"errors"
	"fmt"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// ErrNoPrice is matched (errors.Is) by every *NoPriceError.
var ErrNoPrice = errors.New("no price")

// ErrNoRate is returned when a price must be converted to the account's
// currency and no exchange rate is in force.
var ErrNoRate = errors.New("no exchange rate")

// ErrRetired is the cause of a NoPriceError for a model retired at that time.
var ErrRetired = errors.New("model retired")

// ErrHistory is returned when a new version would rewrite history.
var ErrHistory = errors.New("price history is append-only")

// ErrBadUsage is returned for usage that cannot be rated (negative counts).
var ErrBadUsage = errors.New("bad usage")

// NoPriceError says that a model (or one kind of its usage) has no price.
type NoPriceError struct {
	Model    string
	Currency money.Currency
	At       time.Time
	Kind     string // the line kind without a price, or "" for the whole model
	Detail   string
	Err      error // the cause, such as ErrNoRate, or nil
}

// Error reads "no price for model X in CNY" (with the kind or detail when known).
func (e *NoPriceError) Error() string {
	s := "no price for model " + e.Model
	if e.Kind != "" {
		s = "no " + e.Kind + " price for model " + e.Model
	}
	if e.Currency != "" {
		s += " in " + string(e.Currency)
	}
	if !e.At.IsZero() {
		s += " at " + e.At.UTC().Format(time.RFC3339)
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrNoPrice) true.
func (e *NoPriceError) Is(target error) bool { return target == ErrNoPrice }

// Unwrap returns the cause, if any.
func (e *NoPriceError) Unwrap() error { return e.Err }

// RateContext is everything besides usage that decides a request's price.
type RateContext struct {
	Model       string         // the model that served the request
	At          time.Time      // request start: the version in force then applies
	Batch       bool           // submitted through a batch API
	ServiceTier string         // "", "default", "standard" or "auto" mean the standard tier
	PriceList   *List          // the tenant's price list, or nil
	Currency    money.Currency // the account's currency
	Rates       *ExchangeRates // dated exchange rates, or nil
	// Variant is the request's variant a model may price apart (images:
	// "size/quality"); "" for none.
	Variant string
}

// Line is one priced part of a request.
type Line struct {
	Kind     Kind  `json:"kind"`
	Quantity int64 `json:"quantity"`
	// Price is the listed price per Per units, in the version's currency.
	Price money.Amount `json:"-"`
	Per   int64        `json:"per"`
	// Multiplier combines time of day, batch, service tier, markup and
	// exchange rate; 1 when none applies.
	Multiplier money.Ratio  `json:"-"`
	Amount     money.Amount `json:"-"`
	Version    string       `json:"version"`
	// ExchangeRate is the part of Multiplier that converts the price's
	// currency into the account's (zero when they are the same), and
	// RateSource where that rate comes from.
	ExchangeRate money.Ratio `json:"-"`
	RateSource   string      `json:"-"`
}

// Rated is the result of rating one request.
type Rated struct {
	Model         string         // catalog name of the model
	Alias         string         // the alias table name the request used, "" when none
	Version       string         // ID of the version applied
	Origin        string         // OriginCatalog or OriginOperator: where the version applied comes from
	Currency      money.Currency // the account's currency
	PriceCurrency money.Currency // the currency of the version applied
	ExchangeRate  money.Ratio    // account units per price unit; 1 when the same
	RateSource    string         // where ExchangeRate comes from ("" when 1)
	Tier          int            // 0 for the base prices, i for Tiers[i-1]
	Variant       string         // the variant priced apart, "" when none was
	Period        string         // schedule window in force, "" when none
	Free          bool
	PriceList     string // tenant price list applied, "" when none
	Override      bool   // the price list's negotiated version was used
	Lines         []Line
	Total         money.Amount // exact sum of Lines
}

// Rate prices u under rc, appending the lines to dst[:0] (pass a reused slice
// with room for numKinds lines to rate without allocating). The catalog's
// version in force at rc.At applies; a model with no price is refused with a
// *NoPriceError unless its version is marked free.
func (c *Catalog) Rate(u usage.Usage, rc RateContext, dst []Line) (Rated, error) {
	r := Rated{Lines: dst[:0], Currency: rc.Currency, ExchangeRate: money.One}
	if err := checkUsage(u); err != nil {
		return r, err
	}
	if rc.Currency == "" {
		return r, fmt.Errorf("rate %s: no account currency", rc.Model)
	}
	s := c.snap()
	m, alias, ok := s.resolve(rc.Model, rc.At)
	r.Alias = alias
	var v *Version
	markup := money.One
	if rc.PriceList != nil {
		r.PriceList = rc.PriceList.Name
		if ov := rc.PriceList.override(rc.Model, m, rc.At); ov != nil {
			v, r.Override = ov, true
		} else if !rc.PriceList.Markup.IsOne() && rc.PriceList.Markup.Den != 0 {
			markup = rc.PriceList.Markup
		}
	}
	var fx ExchangeRate
	if v == nil {
		if !ok {
			return r, s.unknownModel(rc.Model, rc, alias != "")
		}
		var err error
		if v, fx, err = pick(m, rc); err != nil {
			return r, err
		}
		r.Model = m.Name
	} else {
		r.Model = v.Model
		if v.Currency != rc.Currency {
			var err error
			if fx, err = rc.Rates.lookup(v.Currency, rc.Currency, rc.At); err != nil {
				return r, fmt.Errorf("rate %s: %w", rc.Model, err)
			}
		}
	}
	if v.Currency != rc.Currency {
		r.ExchangeRate, r.RateSource = fx.Rate, fx.Source
	}
	r.Version, r.PriceCurrency, r.Free, r.Origin = v.ID, v.Currency, v.Free, v.Origin
	tier, prices := v.pricesFor(u.Input)
	if vp, ok := v.variant(rc.Variant); ok {
		prices, r.Variant = vp, rc.Variant
	}
	r.Tier = tier

	// Multipliers: tokens get time of day, batch and service tier; every
	// kind gets the markup and the exchange rate.
	flat, err := markup.Mul(r.ExchangeRate)
	if err != nil {
		return r, fmt.Errorf("rate %s: multiplier: %w", rc.Model, err)
	}
	tok := flat
	if v.Schedule != nil {
		r.Period = v.Schedule.Default
		if w, ok := v.Schedule.At(rc.At); ok {
			r.Period = w.Name
			if tok, err = tok.Mul(w.Multiplier); err != nil {
				return r, fmt.Errorf("rate %s: multiplier: %w", rc.Model, err)
			}
		}
	}
	if rc.Batch && v.Batch.Den != 0 {
		if tok, err = tok.Mul(v.Batch); err != nil {
			return r, fmt.Errorf("rate %s: multiplier: %w", rc.Model, err)
		}
	}
	switch rc.ServiceTier {
	case "", "default", "standard", "auto":
	default:
		st, ok := v.ServiceTiers[rc.ServiceTier]
		if !ok {
			return r, &NoPriceError{Model: r.Model, Currency: v.Currency, At: rc.At, Kind: "service tier " + rc.ServiceTier}
		}
		if tok, err = tok.Mul(st); err != nil {
			return r, fmt.Errorf("rate %s: multiplier: %w", rc.Model, err)
		}
	}

	// Quantities per kind.
	var q [numKinds]int64
	q[KindInput] = u.UncachedInput()
	q[KindCachedInput] = u.CachedInput
	q[KindCacheWrite5m] = u.CacheWrite5m
	q[KindCacheWrite1h] = u.CacheWrite1h
	q[KindOutput] = u.Output
	if prices[KindReasoning].Set() {
		q[KindReasoning] = u.Reasoning
		q[KindOutput] = u.Output - u.Reasoning
	}
	q[KindImage] = u.Images
	q[KindAudioSecond] = u.AudioSeconds
	q[KindCharacter] = u.Characters
	q[KindSearchCall] = u.SearchCalls

	// A media request (images, seconds of audio, characters) is rated in
	// the kinds its model is priced in: per image, second or character, or
	// per token (gpt-image-1, gpt-4o-transcribe); what it is not priced in
	// is recorded for information. Usage in no priced kind is refused.
	media := u.Images > 0 || u.AudioSeconds > 0 || u.Characters > 0
	total := money.Zero(rc.Currency)
	for k := Kind(0); k < numKinds; k++ {
		n := q[k]
		if n == 0 {
			continue
		}
		p := prices[k]
		if !p.Set() && !v.Free {
			switch k {
			case KindCachedInput, KindCacheWrite5m, KindCacheWrite1h:
				// A vendor without a cache price bills those tokens as input.
				p = prices[KindInput]
			}
		}
		if !p.Set() && !v.Free {
			if media {
				continue
			}
			return r, &NoPriceError{Model: r.Model, Currency: v.Currency, At: rc.At, Kind: k.String()}
		}
		mul := flat
		if k.IsToken() {
			mul = tok
		}
		line := Line{Kind: k, Quantity: n, Per: p.Per, Multiplier: mul, Version: v.ID,
			Price: money.New(p.Nanos, v.Currency), Amount: money.Zero(rc.Currency)}
		if v.Currency != rc.Currency {
			line.ExchangeRate, line.RateSource = r.ExchangeRate, r.RateSource
		}
		if v.Free {
			line.Per, line.Multiplier = 1, money.One
		} else {
			den, err := money.MulNanos(p.Per, mul.Den)
			if err != nil {
				return r, fmt.Errorf("rate %s %s: %w", rc.Model, k, err)
			}
			amt, err := money.MulDiv3(n, p.Nanos, mul.Num, den)
			if err != nil {
				return r, fmt.Errorf("rate %s %s: %w", rc.Model, k, err)
			}
			line.Amount.Nanos = amt
		}
		if total, err = total.Add(line.Amount); err != nil {
			return r, fmt.Errorf("rate %s: total: %w", rc.Model, err)
		}
		r.Lines = append(r.Lines, line)
	}
	if media && len(r.Lines) == 0 {
		return r, &NoPriceError{Model: r.Model, Currency: v.Currency, At: rc.At, Kind: "media",
			Detail: "priced in none of the units this request used"}
	}
	r.Total = total
	return r, nil
}

// Quote prices a request before it runs: promptTokens of input and at most
// maxOutput tokens of output, so the result is the most the request can cost
// (at the tier its prompt selects).
func (c *Catalog) Quote(promptTokens, maxOutput int64, rc RateContext) (Rated, error) {
	return c.Rate(usage.Usage{Input: promptTokens, Output: maxOutput}, rc, nil)
}

func checkUsage(u usage.Usage) error {
	for _, n := range [...]int64{u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning,
		u.Images, u.AudioSeconds, u.Characters, u.SearchCalls} {
		if n < 0 {
			return fmt.Errorf("%w: negative count", ErrBadUsage)
		}
	}
	if u.CachedInput+u.CacheWrite5m+u.CacheWrite1h > u.Input {
		return fmt.Errorf("%w: cached and cache-write tokens exceed input", ErrBadUsage)
	}
	if u.Reasoning > u.Output {
		return fmt.Errorf("%w: reasoning tokens exceed output", ErrBadUsage)
	}
	return nil
}

// pick returns the version of m for the account currency at rc.At: the list
// in that currency when one is in force, else another currency's list
// converted with the rate in force. A retired version counts as none.
func pick(m *Model, rc RateContext) (*Version, ExchangeRate, error) {
	var retired *Version
	inForce := func(cur money.Currency) (*Version, bool) {
		v, ok := m.At(cur, rc.At)
		if ok && v.Retired {
			if retired == nil || v.EffectiveFrom.After(retired.EffectiveFrom) {
				retired = v
			}
			return nil, false
		}
		return v, ok
	}
	if v, ok := inForce(rc.Currency); ok {
		return v, ExchangeRate{Rate: money.One}, nil
	}
	var missing error
	try := func(cur money.Currency) (*Version, ExchangeRate, bool) {
		v, ok := inForce(cur)
		if !ok {
			return nil, ExchangeRate{}, false
		}
		fx, err := rc.Rates.lookup(cur, rc.Currency, rc.At)
		if err != nil {
			missing = err
			return nil, ExchangeRate{}, false
		}
		return v, fx, true
	}
	// Try other currencies in a fixed order so results are reproducible.
	for _, cur := range [...]money.Currency{money.CNY, money.USD} {
		if cur == rc.Currency {
			continue
		}
		if v, fx, ok := try(cur); ok {
			return v, fx, nil
		}
	}
	for cur := range m.Lists {
		if cur == rc.Currency || cur == money.CNY || cur == money.USD {
			continue
		}
		if v, fx, ok := try(cur); ok {
			return v, fx, nil
		}
	}
	if missing != nil {
		return nil, ExchangeRate{}, &NoPriceError{Model: m.Name, Currency: rc.Currency, At: rc.At, Detail: missing.Error(), Err: missing}
	}
	if retired != nil {
		return nil, ExchangeRate{}, &NoPriceError{Model: m.Name, Currency: rc.Currency, At: rc.At,
			Detail: "retired from " + retired.EffectiveFrom.UTC().Format(time.RFC3339), Err: ErrRetired}
	}
	return nil, ExchangeRate{}, &NoPriceError{Model: m.Name, Currency: rc.Currency, At: rc.At}
}
