package price

import (
	"fmt"
	"sort"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// View is a JSON-serialisable picture of the catalog (GET /v1/prices, and
// `baimo prices list --json`).
type View struct {
	At     time.Time   `json:"at"`
	Models []ModelView `json:"models"`
}

// ModelView is one model in a View.
type ModelView struct {
	Name      string     `json:"name"`
	Vendor    string     `json:"vendor"`
	Title     string     `json:"title,omitempty"`
	Kind      string     `json:"kind"`
	Aliases   []string   `json:"aliases,omitempty"`
	Tokenizer string     `json:"tokenizer,omitempty"`
	FreeQuota *FreeQuota `json:"free_quota,omitempty"`
	Note      string     `json:"note,omitempty"`
	// ContextWindow and MaxOutput are token limits, omitted when unknown.
	ContextWindow int64           `json:"context_window,omitempty"`
	MaxOutput     int64           `json:"max_output,omitempty"`
	Modalities    *ModalitiesSpec `json:"modalities,omitempty"`
	Versions      []VersionView   `json:"versions"`
}

// VersionView is one price version in a View. Prices are decimal strings.
type VersionView struct {
	ID            string         `json:"id"`
	Currency      money.Currency `json:"currency"`
	EffectiveFrom time.Time      `json:"effective_from"`
	EffectiveTo   *time.Time     `json:"effective_to,omitempty"`
	Unit          string         `json:"unit"`
	Free          bool           `json:"free,omitempty"`
	Retired       bool           `json:"retired,omitempty"`
	// Origin is "catalog" for a shipped version, "operator" for one added
	// at run time.
	Origin       string               `json:"origin"`
	Prices       map[string]PriceSpec `json:"prices,omitempty"`
	Tiers        []TierSpec           `json:"tiers,omitempty"`
	Batch        string               `json:"batch,omitempty"`
	ServiceTiers map[string]string    `json:"service_tiers,omitempty"`
	Schedule     *ScheduleSpec        `json:"schedule,omitempty"`
	Source       string               `json:"source"`
	Checked      string               `json:"checked,omitempty"`
	Unverified   bool                 `json:"unverified,omitempty"`
	Note         string               `json:"note,omitempty"`
}

// ViewOptions selects what a View shows.
type ViewOptions struct {
	At       time.Time      // versions in force at At (ignored with History)
	Vendor   string         // only this vendor; "" for all
	Currency money.Currency // only this currency; "" for all
	History  bool           // every version, not only those in force
}

// View returns the catalog as data.
func (c *Catalog) View(o ViewOptions) View {
	out := View{At: o.At, Models: []ModelView{}}
	s := c.snap()
	for _, m := range s.list {
		if !matchVendor(m, o.Vendor) {
			continue
		}
		mv := ModelView{Name: m.Name, Vendor: m.Vendor, Title: m.Title, Kind: m.Kind,
			Aliases:   append(append([]string(nil), m.Aliases...), s.aliasesOf(m.Name)...),
			FreeQuota: m.FreeQuota, Note: m.Note, ContextWindow: m.ContextWindow, MaxOutput: m.MaxOutput}
		if m.InputModalities != nil {
			mv.Modalities = &ModalitiesSpec{Input: m.InputModalities, Output: m.OutputModalities}
		}
		if m.Tokenizer != nil {
			mv.Tokenizer = m.Tokenizer.Name
		}
		for _, cur := range m.Currencies() {
			if o.Currency != "" && cur != o.Currency {
				continue
			}
			vs := m.Lists[cur]
			for i, v := range vs {
				var to *time.Time
				if i+1 < len(vs) {
					t := vs[i+1].EffectiveFrom
					to = &t
				}
				if !o.History && (v.EffectiveFrom.After(o.At) || (to != nil && !to.After(o.At))) {
					continue
				}
				mv.Versions = append(mv.Versions, viewVersion(v, to))
			}
		}
		if len(mv.Versions) > 0 {
			out.Models = append(out.Models, mv)
		}
	}
	return out
}

func viewPrices(p *Prices, base *Prices) map[string]PriceSpec {
	m := map[string]PriceSpec{}
	for k, x := range p {
		if !x.Set() || (base != nil && base[k] == x) {
			continue
		}
		m[Kind(k).String()] = PriceSpec{Price: money.FormatNanos(x.Nanos), Per: x.Per}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func viewVersion(v *Version, to *time.Time) VersionView {
	vv := VersionView{ID: v.ID, Currency: v.Currency, EffectiveFrom: v.EffectiveFrom, EffectiveTo: to, Unit: v.Unit,
		Free: v.Free, Retired: v.Retired, Origin: v.Origin, Prices: viewPrices(&v.Prices, nil), Source: v.Source,
		Checked: v.Checked, Unverified: v.Unverified, Note: v.Note}
	for i := range v.Tiers {
		vv.Tiers = append(vv.Tiers, TierSpec{Above: v.Tiers[i].Above, Prices: viewPrices(&v.Tiers[i].Prices, &v.Prices)})
	}
	if v.Batch.Den != 0 {
		vv.Batch = v.Batch.String()
	}
	if len(v.ServiceTiers) > 0 {
		vv.ServiceTiers = map[string]string{}
		for k, r := range v.ServiceTiers {
			vv.ServiceTiers[k] = r.String()
		}
	}
	if s := v.Schedule; s != nil {
		ss := &ScheduleSpec{Zone: s.ZoneName, Default: s.Default}
		if s.Calendar != nil {
			ss.Calendar = s.Calendar.Name
		}
		for _, w := range s.Windows {
			ss.Windows = append(ss.Windows, WindowSpec{Name: w.Name, Days: dayList(w.Days), From: clockString(w.From),
				To: clockString(w.To), Multiplier: w.Multiplier.String(), SkipHolidays: w.SkipHolidays})
		}
		vv.Schedule = ss
	}
	return vv
}

func dayList(d [7]bool) []string {
	all, wk := true, d[1] && d[2] && d[3] && d[4] && d[5] && !d[0] && !d[6]
	for _, x := range d {
		all = all && x
	}
	switch {
	case all:
		return []string{"all"}
	case wk:
		return []string{"weekdays"}
	}
	names := [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	var out []string
	for i, x := range d {
		if x {
			out = append(out, names[i])
		}
	}
	return out
}

func clockString(s int32) string {
	if s%60 != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/3600, s/60%60)
}

// Change is how one kind's base price moved from one version to the next.
type Change struct {
	Kind Kind   `json:"kind"`
	Old  string `json:"old"` // decimal price per Per, "" when unset, "free" when free
	New  string `json:"new"`
	Per  int64  `json:"per"`
	// Percent is the change for display ("-97.5%"), computed with integers
	// and rounded half away from zero to a tenth; "" when not comparable.
	Percent string `json:"percent,omitempty"`
}

// HistoryEntry is one version of a model with its changes from the previous
// version in the same currency.
type HistoryEntry struct {
	Version     VersionView `json:"version"`
	Changes     []Change    `json:"changes,omitempty"`
	TiersChange bool        `json:"tiers_changed,omitempty"`
}

// History returns every version of a model (all currencies, each in time
// order) with the percent change per kind.
func (c *Catalog) History(model string) ([]HistoryEntry, error) {
	m, ok := c.Model(model)
	if !ok {
		return nil, &NoPriceError{Model: model, Detail: "model not in the catalog"}
	}
	var out []HistoryEntry
	for _, cur := range m.Currencies() {
		vs := m.Lists[cur]
		for i, v := range vs {
			var to *time.Time
			if i+1 < len(vs) {
				t := vs[i+1].EffectiveFrom
				to = &t
			}
			e := HistoryEntry{Version: viewVersion(v, to)}
			if i > 0 {
				e.Changes, e.TiersChange = diff(vs[i-1], v)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func diff(a, b *Version) ([]Change, bool) {
	var out []Change
	for k := Kind(0); k < numKinds; k++ {
		pa, pb := a.Prices[k], b.Prices[k]
		if !pa.Set() && !pb.Set() && !(a.Free != b.Free && (k == KindInput || k == KindOutput)) {
			continue
		}
		ch := Change{Kind: k, Old: priceText(a, pa), New: priceText(b, pb), Per: pb.Per}
		if ch.Per == 0 {
			ch.Per = pa.Per
		}
		switch {
		case b.Free && pa.Set() && pa.Nanos > 0:
			ch.Percent = "-100%"
		case pa.Set() && pb.Set() && !a.Free && !b.Free:
			ch.Percent = percent(pa, pb)
		}
		if ch.Percent == "+0%" { // same price, perhaps restated per another unit
			continue
		}
		out = append(out, ch)
	}
	tiers := len(a.Tiers) != len(b.Tiers)
	for i := 0; !tiers && i < len(a.Tiers); i++ {
		tiers = a.Tiers[i] != b.Tiers[i]
	}
	return out, tiers
}

func priceText(v *Version, p Price) string {
	if v.Free {
		return "free"
	}
	if !p.Set() {
		return ""
	}
	return money.FormatNanos(p.Nanos)
}

// percent formats (b-a)/a for prices quoted per different units, in tenths.
func percent(a, b Price) string {
	if a.Nanos == 0 {
		return ""
	}
	// b/bPer vs a/aPer: compare b*aPer with a*bPer.
	nb, err1 := money.MulNanos(b.Nanos, a.Per)
	na, err2 := money.MulNanos(a.Nanos, b.Per)
	if err1 != nil || err2 != nil {
		return ""
	}
	d, err := money.AddNanos(nb, -na)
	if err != nil {
		return ""
	}
	tenths, err := money.MulDiv(d, 1000, na)
	if err != nil {
		return ""
	}
	sign := "+"
	if tenths < 0 {
		sign, tenths = "-", -tenths
	}
	if tenths%10 == 0 {
		return fmt.Sprintf("%s%d%%", sign, tenths/10)
	}
	return fmt.Sprintf("%s%d.%d%%", sign, tenths/10, tenths%10)
}

// Workload is a token mix to compare models by.
type Workload struct {
	Input  int64 // prompt tokens, cached included
	Cached int64 // of which read from the cache
	Output int64
}

// CompareOptions selects the models to compare and how to price them.
type CompareOptions struct {
	Workload Workload
	At       time.Time
	Currency money.Currency
	Rates    *ExchangeRates
	Vendor   string
	Batch    bool
}

// Ranked is one model's cost for a workload.
type Ranked struct {
	Model      *Model
	Rated      Rated
	PerMillion money.Amount // cost per million tokens of the workload (input+output), rounded to the nano
}

// Skipped is a model that could not be priced for a comparison, and why.
type Skipped struct {
	Model string
	Err   error
}

// Compare rates the workload on every chat model and ranks them by cost,
// cheapest first (ties by name). Models without a usable price are returned
// as skipped.
func (c *Catalog) Compare(o CompareOptions) ([]Ranked, []Skipped, error) {
	w := o.Workload
	if w.Input < 0 || w.Output < 0 || w.Cached < 0 || w.Cached > w.Input || w.Input+w.Output == 0 {
		return nil, nil, fmt.Errorf("compare: bad workload %+v", w)
	}
	u := usage.Usage{Input: w.Input, CachedInput: w.Cached, Output: w.Output}
	var out []Ranked
	var skipped []Skipped
	for _, m := range c.snap().list {
		if m.Kind != "chat" || !matchVendor(m, o.Vendor) {
			continue
		}
		r, err := c.Rate(u, RateContext{Model: m.Name, At: o.At, Batch: o.Batch, Currency: o.Currency, Rates: o.Rates}, nil)
		if err != nil {
			skipped = append(skipped, Skipped{Model: m.Name, Err: err})
			continue
		}
		pm, err := money.MulDiv(r.Total.Nanos, 1_000_000, w.Input+w.Output)
		if err != nil {
			skipped = append(skipped, Skipped{Model: m.Name, Err: err})
			continue
		}
		out = append(out, Ranked{Model: m, Rated: r, PerMillion: money.New(pm, o.Currency)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rated.Total.Nanos != out[j].Rated.Total.Nanos {
			return out[i].Rated.Total.Nanos < out[j].Rated.Total.Nanos
		}
		return out[i].Model.Name < out[j].Model.Name
	})
	return out, skipped, nil
}

// Buys says what an amount of money buys on a model.
type Buys struct {
	Model        string
	Amount       money.Amount
	Version      string
	Period       string
	InputTokens  int64 // uncached input tokens, at the lowest tier
	OutputTokens int64 // output tokens (non-reasoning price), at the lowest tier
	// Rough text equivalents from the model's measured token densities; zero
	// when the catalog has no tokenizer data for the model.
	Tokenizer                    *Tokenizer
	InputZhChars, InputEnWords   int64
	OutputZhChars, OutputEnWords int64
}

// Buys returns how many input and output tokens amount buys on model at t,
// and roughly how much Chinese and English text that is. These figures are
// for people; they are never used to charge.
func (c *Catalog) Buys(model string, amount money.Amount, at time.Time, rates *ExchangeRates) (Buys, error) {
	b := Buys{Model: model, Amount: amount}
	if amount.Nanos <= 0 {
		return b, fmt.Errorf("buys: amount must be positive: %s", amount)
	}
	s := c.snap()
	rc := RateContext{Model: model, At: at, Currency: amount.Currency, Rates: rates}
	m, alias, ok := s.resolve(model, at)
	if !ok {
		return b, s.unknownModel(model, rc, alias != "")
	}
	b.Model, b.Tokenizer = m.Name, m.Tokenizer
	v, rate, err := pick(m, rc)
	if err != nil {
		return b, err
	}
	fx := rate.Rate
	if v.Free {
		return b, fmt.Errorf("buys: %s is free (version %s)", m.Name, v.ID)
	}
	b.Version = v.ID
	mul := fx
	if v.Schedule != nil {
		b.Period = v.Schedule.Default
		if w, ok := v.Schedule.At(at); ok {
			b.Period = w.Name
			if mul, err = mul.Mul(w.Multiplier); err != nil {
				return b, err
			}
		}
	}
	tokens := func(p Price) (int64, error) {
		if !p.Set() || p.Nanos == 0 {
			return 0, nil
		}
		// amount / (P × mul / Per) = amount × Per × mul.Den / (P × mul.Num)
		den, err := money.MulNanos(p.Nanos, mul.Num)
		if err != nil {
			return 0, err
		}
		return money.MulDiv3(amount.Nanos, p.Per, mul.Den, den)
	}
	if b.InputTokens, err = tokens(v.Prices[KindInput]); err != nil {
		return b, fmt.Errorf("buys %s: %w", model, err)
	}
	if b.OutputTokens, err = tokens(v.Prices[KindOutput]); err != nil {
		return b, fmt.Errorf("buys %s: %w", model, err)
	}
	if tk := m.Tokenizer; tk != nil {
		text := func(n int64, r money.Ratio) int64 {
			x, err := money.MulDiv(n, r.Den, r.Num)
			if err != nil {
				return 0
			}
			return x
		}
		b.InputZhChars, b.InputEnWords = text(b.InputTokens, tk.ZhTokensPerChar), text(b.InputTokens, tk.EnTokensPerWord)
		b.OutputZhChars, b.OutputEnWords = text(b.OutputTokens, tk.ZhTokensPerChar), text(b.OutputTokens, tk.EnTokensPerWord)
	}
	return b, nil
}

// RuleKinds names the rules a version uses: its priced line kinds plus
// "tiers", "schedule", "holidays", "batch", "service_tier" and "free".
func (v *Version) RuleKinds() []string {
	var out []string
	for k := Kind(0); k < numKinds; k++ {
		if v.Prices[k].Set() {
			out = append(out, k.String())
		}
	}
	if len(v.Tiers) > 0 {
		out = append(out, "tiers")
	}
	if v.Schedule != nil {
		out = append(out, "schedule")
		for _, w := range v.Schedule.Windows {
			if w.SkipHolidays {
				out = append(out, "holidays")
				break
			}
		}
	}
	if v.Batch.Den != 0 {
		out = append(out, "batch")
	}
	if len(v.ServiceTiers) > 0 {
		out = append(out, "service_tier")
	}
	if v.Free {
		out = append(out, "free")
	}
	return out
}

// AllRuleKinds lists every rule kind RuleKinds can name.
func AllRuleKinds() []string {
	out := make([]string, 0, numKinds+6)
	for k := Kind(0); k < numKinds; k++ {
		out = append(out, k.String())
	}
	return append(out, "tiers", "schedule", "holidays", "batch", "service_tier", "free")
}
