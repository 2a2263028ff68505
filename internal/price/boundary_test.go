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

// The boundary instants of everything dated in the catalog: price versions,
// time-of-day windows, holiday ranges, tiers, exchange rates and negotiated
// overrides. Each is in force from its first instant (inclusive) to its end
// (exclusive for instants, inclusive for a holiday range's last day).

// beijing is UTC+8, the zone of the test schedule (Asia/Shanghai has had no
// daylight saving since 1991).
var beijing = time.FixedZone("UTC+8", 8*3600)

func bj(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, beijing)
}

// boundaryFile prices sched-1 at 1 CNY per 1M input tokens, doubled in the
// weekday peaks (not on holidays) and halved at night; tiered-1 in three
// prompt-length tiers; dated-1 in three versions.
const boundaryFile = `vendor: test
calendars:
  - name: t
    holidays:
      - {name: National Day, from: "2026-10-01", to: "2026-10-07"}
      - {name: Dragon Boat, from: "2026-06-19"}
      - {name: New Year, from: "2026-12-31", to: "2027-01-01"}
models:
  - name: sched-1
    versions:
      - effective_from: "2026-01-01T00:00:00+08:00"
        currency: CNY
        unit: per_1m
        source: test
        prices: {input: "1", output: "1"}
        schedule:
          zone: Asia/Shanghai
          calendar: t
          default_period: off-peak
          windows:
            - {name: peak, days: [weekdays], from: "09:00", to: "12:00", multiplier: "2", skip_holidays: true}
            - {name: lunch, days: [weekdays], from: "12:30:15", to: "12:30:45", multiplier: "3", skip_holidays: true}
            - {name: night, from: "22:00", to: "24:00", multiplier: "0.5"}
            - {name: sunday, days: [sun], from: "00:00", to: "24:00", multiplier: "1.5"}
  - name: tiered-1
    versions:
      - effective_from: "2026-01-01T00:00:00+08:00"
        currency: CNY
        unit: per_1m
        source: test
        prices: {input: "1", output: "2"}
        tiers:
          - {above: 32000, prices: {input: "2"}}
          - {above: 128000, prices: {input: "4", output: "8"}}
  - name: dated-1
    versions:
      - {effective_from: "2026-01-01T00:00:00+08:00", currency: CNY, unit: per_1m, source: test, prices: {input: "1"}}
      - {effective_from: "2026-03-01T12:00:00+08:00", currency: CNY, unit: per_1m, source: test, prices: {input: "2"}}
      - {effective_from: "2026-06-01T00:00:00Z", currency: CNY, unit: per_1m, source: test, prices: {input: "3"}}
      - {effective_from: "2026-02-01T00:00:00Z", currency: USD, unit: per_1m, source: test, prices: {input: "1"}}
`

func boundaryCatalog(t *testing.T) *price.Catalog { return catalogOf(t, "b.yaml", boundaryFile) }

// catalogOf loads a catalog from files given as name, content, name, ...
func catalogOf(t testing.TB, nameContent ...string) *price.Catalog {
	t.Helper()
	var names []string
	files := map[string][]byte{}
	for i := 0; i+1 < len(nameContent); i += 2 {
		names = append(names, nameContent[i])
		files[nameContent[i]] = []byte(nameContent[i+1])
	}
	c, err := price.LoadFiles(names, files)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestScheduleBoundaries: a window [From, To) applies from its first second
// to the second before To, on its days in the schedule's zone, and not on the
// calendar's holidays (first and last day of a range included) when it skips
// them.
func TestScheduleBoundaries(t *testing.T) {
	c := boundaryCatalog(t)
	tests := []struct {
		name   string
		at     time.Time
		period string
		total  int64 // nanos for 1M input tokens
	}{
		{"before the peak", bj(2026, 10, 8, 8, 59, 59), "off-peak", money.Scale},
		{"first second of the peak", bj(2026, 10, 8, 9, 0, 0), "peak", 2 * money.Scale},
		{"last second of the peak", bj(2026, 10, 8, 11, 59, 59), "peak", 2 * money.Scale},
		{"the peak's end is outside it", bj(2026, 10, 8, 12, 0, 0), "off-peak", money.Scale},
		{"a window to the second: before", bj(2026, 10, 8, 12, 30, 14), "off-peak", money.Scale},
		{"a window to the second: first", bj(2026, 10, 8, 12, 30, 15), "lunch", 3 * money.Scale},
		{"a window to the second: last", bj(2026, 10, 8, 12, 30, 44), "lunch", 3 * money.Scale},
		{"a window to the second: end", bj(2026, 10, 8, 12, 30, 45), "off-peak", money.Scale},
		{"before the night", bj(2026, 10, 8, 21, 59, 59), "off-peak", money.Scale},
		{"night", bj(2026, 10, 8, 22, 0, 0), "night", money.Scale / 2},
		{"last second of the day (to 24:00)", bj(2026, 10, 8, 23, 59, 59), "night", money.Scale / 2},
		{"midnight is the next day's", bj(2026, 10, 9, 0, 0, 0), "off-peak", money.Scale},
		{"the zone decides the hour", time.Date(2026, 10, 8, 1, 0, 0, 0, time.UTC), "peak", 2 * money.Scale},
		{"the zone decides the day", time.Date(2026, 10, 9, 16, 0, 0, 0, time.UTC), "off-peak", money.Scale}, // Sat 00:00 local
		{"friday's peak", bj(2026, 10, 9, 10, 0, 0), "peak", 2 * money.Scale},
		{"saturday is not a weekday", bj(2026, 10, 10, 10, 0, 0), "off-peak", money.Scale},
		{"sunday has its own window", bj(2026, 10, 11, 10, 0, 0), "sunday", 3 * money.Scale / 2},
		{"first listed window wins (sunday night)", bj(2026, 10, 11, 23, 0, 0), "night", money.Scale / 2},
		{"monday's peak", bj(2026, 10, 12, 9, 0, 0), "peak", 2 * money.Scale},
		{"the day before a holiday", bj(2026, 9, 30, 10, 0, 0), "peak", 2 * money.Scale},
		{"first day of a holiday", bj(2026, 10, 1, 10, 0, 0), "off-peak", money.Scale},
		{"inside a holiday", bj(2026, 10, 5, 10, 0, 0), "off-peak", money.Scale},
		{"last day of a holiday", bj(2026, 10, 7, 10, 0, 0), "off-peak", money.Scale},
		{"last second of a holiday", bj(2026, 10, 7, 23, 59, 59), "night", money.Scale / 2},
		{"holiday lunch skipped too", bj(2026, 10, 7, 12, 30, 20), "off-peak", money.Scale},
		{"the day after a holiday", bj(2026, 10, 8, 10, 0, 0), "peak", 2 * money.Scale},
		{"a one-day holiday", bj(2026, 6, 19, 10, 0, 0), "off-peak", money.Scale},
		{"the day before a one-day holiday", bj(2026, 6, 18, 10, 0, 0), "peak", 2 * money.Scale},
		{"a holiday across the new year: first day", bj(2026, 12, 31, 10, 0, 0), "off-peak", money.Scale},
		{"a holiday across the new year: last day", bj(2027, 1, 1, 10, 0, 0), "off-peak", money.Scale},
		{"after the new year holiday", bj(2027, 1, 4, 10, 0, 0), "peak", 2 * money.Scale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "sched-1", At: tt.at, Currency: money.CNY}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Period != tt.period || r.Total.Nanos != tt.total {
				t.Errorf("at %s: period %q total %d; want %q %d", tt.at.Format(time.RFC3339), r.Period, r.Total.Nanos, tt.period, tt.total)
			}
		})
	}
}

// TestHolidayCalendar: a range's first and last days are holidays, the days
// around it are not.
func TestHolidayCalendar(t *testing.T) {
	cal, ok := boundaryCatalog(t).Calendar("t")
	if !ok {
		t.Fatal("no calendar t")
	}
	tests := []struct {
		date    string
		holiday bool
	}{
		{"2026-09-30", false}, {"2026-10-01", true}, {"2026-10-04", true}, {"2026-10-07", true}, {"2026-10-08", false},
		{"2026-06-18", false}, {"2026-06-19", true}, {"2026-06-20", false},
		{"2026-12-30", false}, {"2026-12-31", true}, {"2027-01-01", true}, {"2027-01-02", false},
		{"2025-10-01", false}, {"2027-10-01", false},
	}
	for _, tt := range tests {
		d, _ := time.Parse(time.DateOnly, tt.date)
		if got := cal.IsHoliday(d.Year(), d.Month(), d.Day()); got != tt.holiday {
			t.Errorf("IsHoliday(%s) = %v, want %v", tt.date, got, tt.holiday)
		}
	}
}

// TestShippedHolidays checks the boundary days of the shipped cn calendar
// through the DeepSeek schedule that uses it: the last day of a statutory
// holiday is off-peak all day, the first working day after it is not.
func TestShippedHolidays(t *testing.T) {
	c := loadCatalog(t)
	rate := func(at time.Time) string {
		t.Helper()
		r, err := c.Rate(usage.Usage{Input: 1000}, price.RateContext{Model: "deepseek-flash", At: at, Currency: money.CNY}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Period
	}
	for _, tt := range []struct {
		at     time.Time
		period string
	}{
		{bj(2026, 9, 30, 10, 0, 0), "peak"},     // Wednesday before National Day
		{bj(2026, 10, 1, 10, 0, 0), "off-peak"}, // first day
		{bj(2026, 10, 7, 10, 0, 0), "off-peak"}, // last day (a Wednesday)
		{bj(2026, 10, 7, 15, 0, 0), "off-peak"}, // last day, afternoon peak hours
		{bj(2026, 10, 8, 10, 0, 0), "peak"},     // Thursday after
		{bj(2027, 10, 7, 10, 0, 0), "off-peak"}, // 2027's last day (a Thursday)
		{bj(2027, 10, 8, 9, 0, 0), "peak"},      // Friday after
		{bj(2026, 10, 8, 12, 0, 0), "off-peak"}, // between the two peaks
		{bj(2026, 10, 8, 17, 59, 59), "peak"},   // last second of the afternoon peak
		{bj(2026, 10, 8, 18, 0, 0), "off-peak"}, // its end
	} {
		if got := rate(tt.at); got != tt.period {
			t.Errorf("deepseek-flash at %s: period %q, want %q", tt.at.Format(time.RFC3339), got, tt.period)
		}
	}
}

// TestVersionInForce: a price version is in force from its EffectiveFrom
// instant (inclusive) until the next one starts; before the first there is
// no price.
func TestVersionInForce(t *testing.T) {
	c := boundaryCatalog(t)
	v2 := bj(2026, 3, 1, 12, 0, 0)
	v3 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		at    time.Time
		input int64 // nanos per 1M tokens; 0: no price
	}{
		{bj(2025, 12, 31, 23, 59, 59), 0},
		{bj(2026, 1, 1, 0, 0, 0), money.Scale},
		{v2.Add(-time.Nanosecond), money.Scale},
		{v2, 2 * money.Scale},
		{v3.Add(-time.Nanosecond), 2 * money.Scale},
		{v3, 3 * money.Scale},
		{v3.AddDate(5, 0, 0), 3 * money.Scale},
	}
	for _, tt := range tests {
		r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "dated-1", At: tt.at, Currency: money.CNY}, nil)
		if tt.input == 0 {
			if !errors.Is(err, price.ErrNoPrice) {
				t.Errorf("at %s: err = %v, want no price", tt.at.Format(time.RFC3339Nano), err)
			}
			continue
		}
		if err != nil || r.Total.Nanos != tt.input {
			t.Errorf("at %s: total %d, %v; want %d", tt.at.Format(time.RFC3339Nano), r.Total.Nanos, err, tt.input)
		}
	}
	m, _ := c.Model("dated-1")
	if v, ok := m.At(money.USD, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)); !ok || v.Currency != money.USD {
		t.Errorf("USD list at its start: %v, %v", v, ok)
	}
	if _, ok := m.At(money.USD, time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC)); ok {
		t.Error("USD list in force before its first version")
	}
	if _, ok := m.At("EUR", v3); ok {
		t.Error("a currency with no list has a version")
	}
}

// TestTierBoundaries: a tier's prices apply to prompts longer than Above; a
// prompt of exactly Above tokens stays in the tier below. The whole request
// is rated at one tier.
func TestTierBoundaries(t *testing.T) {
	c := boundaryCatalog(t)
	at := bj(2026, 10, 8, 10, 0, 0)
	tests := []struct {
		input int64
		tier  int
		total int64 // input at the tier's price plus 1000 output tokens
	}{
		{32000, 0, 32000*1000 + 1000*2000},
		{32001, 1, 32001*2000 + 1000*2000},
		{128000, 1, 128000*2000 + 1000*2000},
		{128001, 2, 128001*4000 + 1000*8000},
	}
	for _, tt := range tests {
		r, err := c.Rate(usage.Usage{Input: tt.input, Output: 1000}, price.RateContext{Model: "tiered-1", At: at, Currency: money.CNY}, nil)
		if err != nil || r.Tier != tt.tier || r.Total.Nanos != tt.total {
			t.Errorf("prompt %d: tier %d total %d, %v; want tier %d total %d", tt.input, r.Tier, r.Total.Nanos, err, tt.tier, tt.total)
		}
	}
}

// TestExchangeRateInForce: an exchange rate is in force from its own start
// instant (inclusive) until the next rate of the pair; the inverse pair is
// used, exactly inverted, when no direct rate is in force.
func TestExchangeRateInForce(t *testing.T) {
	r1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r2 := bj(2026, 7, 1, 0, 0, 0)
	rates, err := price.ParseExchangeRates([]byte(`
- {from: USD, to: CNY, effective_from: "2026-07-01T00:00:00+08:00", rate: "7.2"}
- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "7.1"}
- {from: EUR, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "7.8"}
- {from: CNY, to: EUR, effective_from: "2026-07-01T00:00:00+08:00", rate: "0.125"}
- {from: USD, to: EUR, effective_from: "2026-01-01T00:00:00Z", rate: "0.9"}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := func(n, d int64) money.Ratio { return money.Ratio{Num: n, Den: d} }
	tests := []struct {
		from, to money.Currency
		at       time.Time
		want     money.Ratio // zero: none in force
	}{
		{money.USD, money.CNY, r1.Add(-time.Nanosecond), money.Ratio{}},
		{money.USD, money.CNY, r1, r(71, 10)},
		{money.USD, money.CNY, r2.Add(-time.Nanosecond), r(71, 10)},
		{money.USD, money.CNY, r2, r(36, 5)},
		{money.CNY, money.USD, r1.Add(-time.Nanosecond), money.Ratio{}},
		{money.CNY, money.USD, r1, r(10, 71)},
		{money.CNY, money.USD, r2, r(5, 36)},
		{"EUR", money.CNY, r1, r(39, 5)},
		{"EUR", money.CNY, r2, r(39, 5)}, // the direct rate, though an inverse one started later
		{money.CNY, "EUR", r1, r(5, 39)}, // inverse while no direct rate is in force
		{money.CNY, "EUR", r2, r(1, 8)},  // direct from its start
		{money.USD, "EUR", r2, r(9, 10)},
		{money.USD, "JPY", r2, money.Ratio{}},
		{money.CNY, money.CNY, r1.AddDate(-10, 0, 0), money.One},
	}
	for _, tt := range tests {
		got, ok := rates.Lookup(tt.from, tt.to, tt.at)
		if ok != (tt.want != money.Ratio{}) || got != tt.want {
			t.Errorf("Lookup(%s→%s at %s) = %v, %v; want %v", tt.from, tt.to, tt.at.Format(time.RFC3339Nano), got, ok, tt.want)
		}
	}
	var none *price.ExchangeRates
	if _, ok := none.Lookup(money.USD, money.CNY, r2); ok {
		t.Error("a nil table has a rate")
	}
	if got := none.Rates(); got != nil {
		t.Errorf("nil table Rates() = %v", got)
	}
	var order []string
	for _, x := range rates.Rates() {
		order = append(order, string(x.From)+"→"+string(x.To)+" "+x.Rate.String())
	}
	if want := []string{"CNY→EUR 0.125", "EUR→CNY 7.8", "USD→CNY 7.1", "USD→CNY 7.2", "USD→EUR 0.9"}; strings.Join(order, ", ") != strings.Join(want, ", ") {
		t.Errorf("Rates() = %v, want %v (by from, to, then start)", order, want)
	}

	// Rating converts at the rate in force when the request started.
	c := boundaryCatalog(t)
	rate := func(at time.Time) int64 {
		t.Helper()
		rt, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "dated-1", At: at, Currency: "EUR", Rates: rates}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rt.Total.Nanos
	}
	// dated-1 costs 3 CNY per 1M then: 3 × 5/39 EUR, rounded half away from zero to the nano.
	if got := rate(r2.Add(-time.Nanosecond)); got != 384_615_385 {
		t.Errorf("CNY price in EUR before the direct rate: %d", got)
	}
	if got := rate(r2); got != 3*money.Scale/8 {
		t.Errorf("CNY price in EUR at the direct rate's start: %d", got)
	}
}

func TestExchangeRateErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{`- {from: USD, to: USD, effective_from: "2026-01-01T00:00:00Z", rate: "1"}`, "bad pair"},
		{`- {from: "", to: USD, effective_from: "2026-01-01T00:00:00Z", rate: "1"}`, "ISO 4217"},
		{`- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "0"}`, "must be positive"},
		{`- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "-7"}`, "rate"},
		{`- {from: USD, to: CNY, effective_from: "2026-01-01", rate: "7"}`, "effective_from"},
		{`- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "7", extra: 1}`, "extra"},
		{"- {from: USD, to: CNY, effective_from: \"2026-01-01T00:00:00Z\", rate: \"7\"}\n" +
			"- {from: USD, to: CNY, effective_from: \"2026-01-01T08:00:00+08:00\", rate: \"7.1\"}", "start at"},
	} {
		if _, err := price.ParseExchangeRates([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseExchangeRates(%s): err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	if x, err := price.ParseExchangeRates([]byte("  \n")); err != nil || len(x.Rates()) != 0 {
		t.Errorf("empty table: %v, %v", x, err)
	}
	if _, err := price.ParseExchangeRates([]byte("- {from: [")); err == nil {
		t.Error("malformed YAML gave no error")
	}
	// Rates of different pairs may start at the same instant.
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := price.NewExchangeRates([]price.ExchangeRate{
		{From: money.USD, To: money.CNY, EffectiveFrom: at, Rate: money.One},
		{From: "EUR", To: money.CNY, EffectiveFrom: at, Rate: money.One},
		{From: money.USD, To: "EUR", EffectiveFrom: at, Rate: money.One},
	}); err != nil {
		t.Errorf("rates of three pairs at one instant: %v", err)
	}
	for _, bad := range []money.Ratio{{Num: 0, Den: 1}, {Num: 1, Den: 0}, {Num: -1, Den: 1}, {Num: 1, Den: -1}} {
		if _, err := price.NewExchangeRates([]price.ExchangeRate{{From: money.USD, To: money.CNY, EffectiveFrom: at, Rate: bad}}); err == nil {
			t.Errorf("rate %d/%d was accepted", bad.Num, bad.Den)
		}
	}
	if _, err := price.NewExchangeRates([]price.ExchangeRate{{From: money.USD, To: money.CNY, Rate: money.One}}); err == nil {
		t.Error("a rate without a start was accepted")
	}
	if _, err := price.NewExchangeRates([]price.ExchangeRate{{From: money.USD, To: money.CNY, Rate: money.Ratio{Num: 1},
		EffectiveFrom: time.Now()}}); err == nil {
		t.Error("a rate with a zero denominator was accepted")
	}
}

// TestOverrideInForce: a tenant's negotiated version replaces the catalog's
// (without markup) from its own start instant; before it, the catalog's price
// with the markup applies.
func TestOverrideInForce(t *testing.T) {
	c := boundaryCatalog(t)
	pl, err := price.NewList("acme", 1500)
	if err != nil {
		t.Fatal(err)
	}
	spec := price.VersionSpec{Model: "dated-1", EffectiveFrom: "2026-04-01T00:00:00+08:00", Currency: "CNY", Unit: "per_1m",
		Source: "contract", Prices: map[string]price.PriceSpec{"input": {Price: "0.5"}}}
	if err := pl.Override(spec); err != nil {
		t.Fatal(err)
	}
	from := bj(2026, 4, 1, 0, 0, 0)
	for _, tt := range []struct {
		at       time.Time
		total    int64
		override bool
	}{
		{from.Add(-time.Nanosecond), 2 * money.Scale * 115 / 100, false},
		{from, money.Scale / 2, true},
		{bj(2026, 7, 1, 0, 0, 0), money.Scale / 2, true}, // the catalog's later version does not replace it
	} {
		r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "dated-1", At: tt.at, Currency: money.CNY, PriceList: pl}, nil)
		if err != nil || r.Total.Nanos != tt.total || r.Override != tt.override || r.PriceList != "acme" {
			t.Errorf("at %s: total %d override %v list %q, %v; want %d %v", tt.at.Format(time.RFC3339Nano), r.Total.Nanos,
				r.Override, r.PriceList, err, tt.total, tt.override)
		}
	}
	// A later override of the same model must start later.
	same := spec
	same.Prices = map[string]price.PriceSpec{"input": {Price: "0.4"}}
	if err := pl.Override(same); !errors.Is(err, price.ErrHistory) {
		t.Errorf("an override starting at the same instant: err = %v, want ErrHistory", err)
	}
	later := same
	later.EffectiveFrom = "2026-05-01T00:00:00+08:00"
	if err := pl.Override(later); err != nil {
		t.Fatal(err)
	}
	r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "dated-1", At: bj(2026, 5, 1, 0, 0, 0), Currency: money.CNY, PriceList: pl}, nil)
	if err != nil || r.Total.Nanos != money.Scale*4/10 || r.Version != "pricelist/acme/dated-1/CNY/2026-05-01T00:00:00+08:00" {
		t.Errorf("after the later override: %d %q, %v", r.Total.Nanos, r.Version, err)
	}
}
