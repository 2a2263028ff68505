package price_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// What the catalog tells people and tools: the view of the prices in force
// (GET /v1/prices), the history of a model with its changes, comparisons,
// what an amount buys, and the rule kinds a version uses.

const viewFileA = `vendor: acme
tokenizers:
  - {name: tk, zh_tokens_per_char: "0.5", en_tokens_per_word: "1.25"}
calendars:
  - name: cal
    holidays: [{name: h, from: "2026-10-01", to: "2026-10-07"}]
models:
  - name: a-chat
    title: A Chat
    aliases: [a]
    tokenizer: tk
    free_quota: {tokens: 1000}
    note: the first
    versions:
      - {effective_from: "2026-01-01T00:00:00Z", currency: USD, unit: per_1m, source: u1, prices: {input: "1", output: "4"}}
      - {effective_from: "2026-01-01T00:00:00Z", currency: GBP, unit: per_1m, source: g1, prices: {input: "1"}}
      - {effective_from: "2026-01-01T00:00:00Z", currency: CNY, unit: per_1m, source: s1, prices: {input: "2", output: "8"}}
      - effective_from: "2026-06-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: s2
        checked: "2026-05-30"
        unverified: true
        note: cut
        prices: {input: "1", output: "8", cached_input: "0.1", search_call: {price: "0", per: 1000}}
        tiers: [{above: 1000, prices: {input: "3"}}]
        batch: "0.5"
        service_tiers: {flex: "0.5"}
        schedule:
          zone: Asia/Shanghai
          calendar: cal
          default_period: off
          windows:
            - {name: peak, days: [weekdays], from: "09:00", to: "12:00:30", multiplier: "2", skip_holidays: true}
            - {name: night, from: "22:00", to: "24:00", multiplier: "0.5"}
            - {name: weekend, days: [sat, sun], from: "06:00", to: "07:00", multiplier: "3"}
            - {name: odd, days: [mon, wed], from: "05:45", to: "06:34:56", multiplier: "3"}
      - {effective_from: "2026-09-01T00:00:00Z", currency: CNY, unit: per_1m, source: s3, free: true}
      - {effective_from: "2026-12-01T00:00:00Z", currency: CNY, unit: per_1k, source: s4, prices: {input: "0.002", output: "0.008"}}
  - name: t-chat
    versions:
      - {effective_from: "2026-03-01T00:00:00Z", currency: CNY, unit: per_1m, source: t1, prices: {input: "3", output: "9"}, tiers: [{above: 100, prices: {input: "6"}}]}
      - {effective_from: "2026-04-01T00:00:00Z", currency: CNY, unit: per_1m, source: t2, prices: {input: "4", output: "9"}, tiers: [{above: 100, prices: {input: "6"}}]}
      - {effective_from: "2026-05-01T00:00:00Z", currency: CNY, unit: per_1m, source: t3, prices: {input: "4", output: "9"}, tiers: [{above: 200, prices: {input: "6"}}]}
  - name: e-only
    kind: embedding
    versions:
      - {effective_from: "2026-01-01T00:00:00Z", currency: EUR, unit: per_1m, source: e1, prices: {input: "1"}}
      - {effective_from: "2026-12-01T00:00:00Z", currency: EUR, unit: per_1m, source: e2, prices: {input: "2"}}
`

const viewFileB = `vendor: beta
models:
  - name: b-chat
    versions:
      - {effective_from: "2026-01-01T00:00:00Z", currency: CNY, unit: per_1m, source: b1, prices: {input: "1", output: "8"}}
`

func viewCatalog(t *testing.T) *price.Catalog {
	return catalogOf(t, "b.yaml", viewFileB, "a.yaml", viewFileA)
}

func utc(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func modelNames(ms []price.ModelView) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestView(t *testing.T) {
	c := viewCatalog(t)
	v := c.View(price.ViewOptions{At: utc(2026, 7, 1)})
	if got := modelNames(v.Models); !slices.Equal(got, []string{"a-chat", "e-only", "t-chat", "b-chat"}) {
		t.Fatalf("models in force = %v, want by vendor then name", got)
	}
	a := v.Models[0]
	if a.Vendor != "acme" || a.Title != "A Chat" || a.Kind != "chat" || !slices.Equal(a.Aliases, []string{"a"}) ||
		a.Tokenizer != "tk" || a.FreeQuota == nil || a.FreeQuota.Tokens != 1000 || a.Note != "the first" {
		t.Errorf("model view = %+v", a)
	}
	var ids []string
	for _, ver := range a.Versions {
		ids = append(ids, string(ver.Currency)+" "+ver.Source)
	}
	if !slices.Equal(ids, []string{"CNY s2", "GBP g1", "USD u1"}) {
		t.Fatalf("versions in force = %v, want one per currency, currencies sorted", ids)
	}
	cny := a.Versions[0]
	wantTo := utc(2026, 9, 1)
	if cny.EffectiveTo == nil || !cny.EffectiveTo.Equal(wantTo) || a.Versions[2].EffectiveTo != nil {
		t.Errorf("effective_to = %v and %v, want %v and none", cny.EffectiveTo, a.Versions[2].EffectiveTo, wantTo)
	}
	wantPrices := map[string]price.PriceSpec{"input": {Price: "1", Per: 1_000_000}, "output": {Price: "8", Per: 1_000_000},
		"cached_input": {Price: "0.1", Per: 1_000_000}, "search_call": {Price: "0", Per: 1000}}
	if !reflect.DeepEqual(cny.Prices, wantPrices) {
		t.Errorf("prices = %v, want %v", cny.Prices, wantPrices)
	}
	// A tier lists only the prices it changes.
	if len(cny.Tiers) != 1 || cny.Tiers[0].Above != 1000 || !reflect.DeepEqual(cny.Tiers[0].Prices, map[string]price.PriceSpec{"input": {Price: "3", Per: 1_000_000}}) {
		t.Errorf("tiers = %+v", cny.Tiers)
	}
	if cny.Unit != "per_1m" || cny.Batch != "0.5" || !reflect.DeepEqual(cny.ServiceTiers, map[string]string{"flex": "0.5"}) ||
		cny.Checked != "2026-05-30" || !cny.Unverified || cny.Note != "cut" || cny.Free {
		t.Errorf("version view = %+v", cny)
	}
	s := cny.Schedule
	if s == nil || s.Zone != "Asia/Shanghai" || s.Default != "off" || s.Calendar != "cal" || len(s.Windows) != 4 {
		t.Fatalf("schedule = %+v", s)
	}
	wantWindows := []price.WindowSpec{
		{Name: "peak", Days: []string{"weekdays"}, From: "09:00", To: "12:00:30", Multiplier: "2", SkipHolidays: true},
		{Name: "night", Days: []string{"all"}, From: "22:00", To: "24:00", Multiplier: "0.5"},
		{Name: "weekend", Days: []string{"sun", "sat"}, From: "06:00", To: "07:00", Multiplier: "3"},
		{Name: "odd", Days: []string{"mon", "wed"}, From: "05:45", To: "06:34:56", Multiplier: "3"},
	}
	if !reflect.DeepEqual(s.Windows, wantWindows) {
		t.Errorf("windows = %+v, want %+v", s.Windows, wantWindows)
	}
	if gbp := a.Versions[1]; gbp.Batch != "" || gbp.ServiceTiers != nil || gbp.Schedule != nil || gbp.Tiers != nil {
		t.Errorf("a plain version shows rules it has not: %+v", gbp)
	}

	// The free version has no prices to show.
	free := c.View(price.ViewOptions{At: utc(2026, 10, 1), Vendor: "acme", Currency: money.CNY})
	if got := modelNames(free.Models); !slices.Equal(got, []string{"a-chat", "t-chat"}) {
		t.Fatalf("acme CNY models = %v", got)
	}
	if fv := free.Models[0].Versions; len(fv) != 1 || !fv[0].Free || fv[0].Prices != nil {
		t.Errorf("free version view = %+v", fv)
	}
	// Filters: vendor (any case), currency; before any version, nothing.
	if got := modelNames(c.View(price.ViewOptions{At: utc(2026, 7, 1), Vendor: "BETA"}).Models); !slices.Equal(got, []string{"b-chat"}) {
		t.Errorf("vendor BETA = %v", got)
	}
	if got := modelNames(c.View(price.ViewOptions{At: utc(2026, 7, 1), Currency: "EUR"}).Models); !slices.Equal(got, []string{"e-only"}) {
		t.Errorf("EUR = %v", got)
	}
	if none := c.View(price.ViewOptions{At: utc(2025, 1, 1)}); none.Models == nil || len(none.Models) != 0 {
		t.Errorf("before every version = %#v, want an empty list", none.Models)
	}
	// At a version's start it is in force and the one before is not.
	if got := c.View(price.ViewOptions{At: utc(2026, 6, 1), Currency: money.CNY}).Models[0].Versions; len(got) != 1 || got[0].Source != "s2" {
		t.Errorf("at 2026-06-01 = %+v, want s2 alone", got)
	}
	if got := c.View(price.ViewOptions{At: utc(2026, 6, 1).Add(-time.Nanosecond), Currency: money.CNY}).Models[0].Versions; len(got) != 1 || got[0].Source != "s1" {
		t.Errorf("just before 2026-06-01 = %+v, want s1 alone", got)
	}
	// History shows every version.
	h := c.View(price.ViewOptions{History: true, Vendor: "acme"})
	if n := len(h.Models[0].Versions); n != 6 {
		t.Errorf("history of a-chat has %d versions, want 6", n)
	}
	if _, err := json.Marshal(v); err != nil {
		t.Error(err)
	}
}

func TestHistoryChanges(t *testing.T) {
	c := viewCatalog(t)
	h, err := c.History("a") // by alias
	if err != nil {
		t.Fatal(err)
	}
	var cny []price.HistoryEntry
	for _, e := range h {
		if e.Version.Currency == money.CNY {
			cny = append(cny, e)
		}
	}
	if len(h) != 6 || len(cny) != 4 {
		t.Fatalf("history has %d entries, %d in CNY", len(h), len(cny))
	}
	type change struct {
		kind, old, new, percent string
		per                     int64
	}
	changes := func(e price.HistoryEntry) []change {
		var out []change
		for _, ch := range e.Changes {
			out = append(out, change{ch.Kind.String(), ch.Old, ch.New, ch.Percent, ch.Per})
		}
		return out
	}
	want := [][]change{
		nil,
		{{"input", "2", "1", "-50%", 1_000_000}, {"cached_input", "", "0.1", "", 1_000_000}, {"search_call", "", "0", "", 1000}},
		{{"input", "1", "free", "-100%", 1_000_000}, {"cached_input", "0.1", "free", "-100%", 1_000_000},
			{"output", "8", "free", "-100%", 1_000_000}, {"search_call", "0", "free", "", 1000}},
		{{"input", "free", "0.002", "", 1000}, {"output", "free", "0.008", "", 1000}},
	}
	for i, e := range cny {
		if got := changes(e); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("CNY version %d (%s) changes = %+v, want %+v", i, e.Version.Source, got, want[i])
		}
	}
	if !cny[1].TiersChange || !cny[2].TiersChange || cny[3].TiersChange {
		t.Errorf("tiers changed = %v %v %v, want true true false", cny[1].TiersChange, cny[2].TiersChange, cny[3].TiersChange)
	}
	th, err := c.History("t-chat")
	if err != nil {
		t.Fatal(err)
	}
	if len(th) != 3 || th[1].TiersChange || !th[2].TiersChange {
		t.Fatalf("t-chat tiers changed = %+v", th)
	}
	if got := changes(th[1]); !reflect.DeepEqual(got, []change{{"input", "3", "4", "+33.3%", 1_000_000}}) {
		t.Errorf("t-chat changes = %+v", got)
	}
	if len(th[2].Changes) != 0 {
		t.Errorf("a tier move shows price changes %+v", th[2].Changes)
	}
	// Kinds priced in neither version are not listed.
	eh, err := c.History("e-only")
	if err != nil || len(eh) != 2 {
		t.Fatalf("e-only history = %+v, %v", eh, err)
	}
	if got := changes(eh[1]); !reflect.DeepEqual(got, []change{{"input", "1", "2", "+100%", 1_000_000}}) {
		t.Errorf("e-only changes = %+v", got)
	}
	if _, err := c.History("nope"); !errors.Is(err, price.ErrNoPrice) {
		t.Errorf("History(unknown) err = %v", err)
	}
}

func TestCompareRanks(t *testing.T) {
	c := viewCatalog(t)
	at := time.Date(2026, 7, 4, 3, 0, 0, 0, time.UTC) // a Saturday, 11:00 in Shanghai: no window
	ranked, skipped, err := c.Compare(price.CompareOptions{Workload: price.Workload{Input: 1000, Output: 1000}, At: at, Currency: money.CNY})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range ranked {
		got = append(got, r.Model.Name+" "+money.FormatNanos(r.Rated.Total.Nanos)+" "+money.FormatNanos(r.PerMillion.Nanos))
	}
	// a-chat and b-chat cost the same (ties by name); t-chat more (its prompt
	// tier starts above 200); e-only is no chat model.
	if want := []string{"a-chat 0.009 4.5", "b-chat 0.009 4.5", "t-chat 0.015 7.5"}; !slices.Equal(got, want) {
		t.Errorf("ranked = %v, want %v", got, want)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped = %+v", skipped)
	}
	// Before t-chat has a price, it is skipped with the reason.
	_, skipped, err = c.Compare(price.CompareOptions{Workload: price.Workload{Input: 1000}, At: utc(2026, 2, 1), Currency: money.CNY, Vendor: "acme"})
	if err != nil || len(skipped) != 1 || skipped[0].Model != "t-chat" || !errors.Is(skipped[0].Err, price.ErrNoPrice) {
		t.Errorf("skipped = %+v, %v", skipped, err)
	}
	for _, tt := range []struct {
		w  price.Workload
		ok bool
	}{
		{price.Workload{Input: 1000, Output: 1000}, true},
		{price.Workload{Input: 0, Output: 1000}, true},
		{price.Workload{Input: 1000, Output: 0}, true},
		{price.Workload{Input: 1000, Cached: 1000}, true},
		{price.Workload{Input: 1000, Cached: 0, Output: 1}, true},
		{price.Workload{Input: 1000, Cached: 1001}, false},
		{price.Workload{Input: -1, Output: 1000}, false},
		{price.Workload{Input: 1000, Output: -1}, false},
		{price.Workload{Input: 1000, Cached: -1}, false},
		{price.Workload{}, false},
	} {
		_, _, err := c.Compare(price.CompareOptions{Workload: tt.w, At: at, Currency: money.CNY})
		if (err == nil) != tt.ok {
			t.Errorf("Compare(%+v) err = %v, want ok %v", tt.w, err, tt.ok)
		}
	}
}

func TestBuysAmounts(t *testing.T) {
	c := viewCatalog(t)
	yuan := money.New(money.Scale, money.CNY)
	offPeak := time.Date(2026, 7, 4, 3, 0, 0, 0, time.UTC) // Saturday 11:00 Shanghai
	peak := time.Date(2026, 7, 6, 2, 0, 0, 0, time.UTC)    // Monday 10:00 Shanghai
	tests := []struct {
		name    string
		model   string
		amount  money.Amount
		at      time.Time
		rates   string
		period  string
		in, out int64
		zh, en  int64 // from the input tokens
		wantErr string
	}{
		{name: "off-peak", model: "a-chat", amount: yuan, at: offPeak, period: "off", in: 1_000_000, out: 125_000, zh: 2_000_000, en: 800_000},
		{name: "peak costs double", model: "a-chat", amount: yuan, at: peak, period: "peak", in: 500_000, out: 62_500, zh: 1_000_000, en: 400_000},
		{name: "no schedule", model: "b-chat", amount: yuan, at: peak, in: 1_000_000, out: 125_000},
		{name: "one nano buys no whole token", model: "b-chat", amount: money.New(1, money.CNY), at: peak},
		{name: "half a token rounds up", model: "b-chat", amount: money.New(500, money.CNY), at: peak, in: 1},
		{name: "converted", model: "e-only", amount: yuan, at: peak, rates: `- {from: EUR, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "8"}`,
			in: 125_000},
		{name: "nothing", model: "b-chat", amount: money.New(0, money.CNY), at: peak, wantErr: "must be positive"},
		{name: "less than nothing", model: "b-chat", amount: money.New(-1, money.CNY), at: peak, wantErr: "must be positive"},
		{name: "free", model: "a-chat", amount: yuan, at: utc(2026, 10, 1), wantErr: "is free"},
		{name: "unknown", model: "nope", amount: yuan, at: peak, wantErr: "no price for model nope"},
		{name: "no rate", model: "e-only", amount: yuan, at: peak, wantErr: "no exchange rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rates *price.ExchangeRates
			if tt.rates != "" {
				var err error
				if rates, err = price.ParseExchangeRates([]byte(tt.rates)); err != nil {
					t.Fatal(err)
				}
			}
			b, err := c.Buys(tt.model, tt.amount, tt.at, rates)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Period != tt.period || b.InputTokens != tt.in || b.OutputTokens != tt.out || b.InputZhChars != tt.zh || b.InputEnWords != tt.en {
				t.Errorf("Buys = %+v", b)
			}
			if tt.model == "a-chat" && (b.OutputZhChars != 2*tt.out || b.OutputEnWords != tt.out*4/5 || b.Tokenizer == nil) {
				t.Errorf("output text = %d zh, %d en", b.OutputZhChars, b.OutputEnWords)
			}
		})
	}
}

func TestRuleKinds(t *testing.T) {
	c := viewCatalog(t)
	m, _ := c.Model("a-chat")
	var got [][]string
	for _, v := range m.Lists[money.CNY] {
		got = append(got, v.RuleKinds())
	}
	want := [][]string{
		{"input", "output"},
		{"input", "cached_input", "output", "search_call", "tiers", "schedule", "holidays", "batch", "service_tier"},
		{"free"},
		{"input", "output"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rule kinds = %v, want %v", got, want)
	}
	all := price.AllRuleKinds()
	wantAll := []string{"input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "reasoning", "image", "audio_second",
		"character", "search_call", "tiers", "schedule", "holidays", "batch", "service_tier", "free"}
	if !slices.Equal(all, wantAll) {
		t.Errorf("AllRuleKinds = %v", all)
	}
	// A schedule that never skips holidays does not name them.
	pl, _ := price.NewList("x", 0)
	if err := pl.Override(price.VersionSpec{Model: "m", EffectiveFrom: "2026-01-01T00:00:00Z", Currency: "CNY", Unit: "per_1m", Source: "s",
		Prices: map[string]price.PriceSpec{"input": {Price: "1"}}, Schedule: &price.ScheduleSpec{Zone: "UTC",
			Windows: []price.WindowSpec{{Name: "w", From: "01:00", To: "02:00", Multiplier: "2"}}}}); err != nil {
		t.Fatal(err)
	}
}

func TestKinds(t *testing.T) {
	ks := price.Kinds()
	if len(ks) != 10 || ks[0] != price.KindInput || ks[9] != price.KindSearchCall {
		t.Fatalf("Kinds() = %v", ks)
	}
	for _, k := range ks {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back price.Kind
		if err := back.UnmarshalText(b); err != nil || back != k || k.String() != string(b) {
			t.Errorf("kind %d: %q, %v, %v", k, b, back, err)
		}
		if k.IsToken() != (k <= price.KindReasoning) {
			t.Errorf("%s IsToken = %v", k, k.IsToken())
		}
	}
	if !price.KindReasoning.IsToken() || price.KindImage.IsToken() {
		t.Error("reasoning is a token kind, image is not")
	}
	unknown := price.Kind(len(ks))
	if s := unknown.String(); s != "kind(10)" {
		t.Errorf("unknown kind String = %q", s)
	}
	if _, err := unknown.MarshalText(); err == nil {
		t.Error("an unknown kind marshalled")
	}
	var k price.Kind
	if err := k.UnmarshalText([]byte("tokens")); err == nil {
		t.Error("an unknown kind name unmarshalled")
	}
	if _, ok := price.ParseKind("Input"); ok {
		t.Error("kind names are case-sensitive")
	}
}

func TestCurrencies(t *testing.T) {
	m, _ := viewCatalog(t).Model("a-chat")
	if got := m.Currencies(); !slices.Equal(got, []money.Currency{"CNY", "GBP", "USD"}) {
		t.Errorf("Currencies() = %v", got)
	}
}

// TestAddVersionCatalog: a version added at run time joins its model (by name
// or alias) without disturbing the others, and creates a model it names for
// the first time, even in an empty catalog.
func TestAddVersionCatalog(t *testing.T) {
	c := viewCatalog(t)
	spec := price.VersionSpec{Model: "a", EffectiveFrom: "2027-01-01T00:00:00Z", Currency: "CNY", Unit: "per_1m", Source: "admin",
		Prices: map[string]price.PriceSpec{"input": {Price: "5"}}}
	wrong := spec
	wrong.Vendor = "beta"
	if _, err := c.AddVersion(wrong); err == nil || !strings.Contains(err.Error(), "differs from the catalog's") {
		t.Errorf("vendor mismatch err = %v", err)
	}
	same := spec
	same.Vendor = "acme"
	v, err := c.AddVersion(same)
	if err != nil || v.Model != "a-chat" || v.Vendor != "acme" {
		t.Fatalf("AddVersion by alias = %+v, %v", v, err)
	}
	var names []string
	for _, m := range c.Models() {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"a-chat", "e-only", "t-chat", "b-chat"}) {
		t.Errorf("models after AddVersion = %v", names)
	}
	if m, ok := c.Model("a"); !ok || len(m.Lists[money.CNY]) != 5 || len(m.Lists[money.USD]) != 1 {
		t.Errorf("a-chat after AddVersion: %+v", m)
	}
	if _, err := c.AddVersion(price.VersionSpec{Model: "", Vendor: "x"}); err == nil {
		t.Error("a version without a model was added")
	}
	if _, err := c.AddVersion(price.VersionSpec{Model: "new", Vendor: "bad vendor", EffectiveFrom: "2027-01-01T00:00:00Z"}); err == nil {
		t.Error("a model with a bad vendor name was created")
	}

	var empty price.Catalog
	if len(empty.Models()) != 0 {
		t.Fatal("an empty catalog has models")
	}
	nm := spec
	nm.Model, nm.Vendor = "fresh", "newco"
	if _, err := empty.AddVersion(nm); err != nil {
		t.Fatalf("AddVersion to an empty catalog: %v", err)
	}
	if ms := empty.Models(); len(ms) != 1 || ms[0].Name != "fresh" || ms[0].Vendor != "newco" || ms[0].Kind != "chat" {
		t.Errorf("models = %+v", ms)
	}
	if _, ok := empty.Calendar("cal"); ok {
		t.Error("an empty catalog has a calendar")
	}
	if len(empty.Tokenizers()) != 0 || len(c.Tokenizers()) != 1 || c.Tokenizers()["tk"] == nil {
		t.Error("tokenizers are wrong")
	}
}

// TestRatePaths: the ways a price reaches the account's currency, and usage
// rating refuses.
func TestRatePaths(t *testing.T) {
	c := viewCatalog(t)
	at := time.Date(2026, 7, 4, 3, 0, 0, 0, time.UTC)
	eur, err := price.ParseExchangeRates([]byte(`- {from: EUR, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "8"}
- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "7"}`))
	if err != nil {
		t.Fatal(err)
	}
	// A model priced only in a third currency converts at its rate.
	r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "e-only", At: at, Currency: money.CNY, Rates: eur}, nil)
	if err != nil || r.Total.Nanos != 8*money.Scale || r.PriceCurrency != "EUR" || r.ExchangeRate != (money.Ratio{Num: 8, Den: 1}) {
		t.Errorf("EUR model in CNY = %+v, %v", r, err)
	}
	_, err = c.Rate(usage.Usage{Input: 1}, price.RateContext{Model: "e-only", At: at, Currency: money.CNY}, nil)
	if !errors.Is(err, price.ErrNoPrice) || !errors.Is(err, price.ErrNoRate) {
		t.Errorf("EUR model without a rate: err = %v, want no price because no rate", err)
	}
	// The account's own currency wins over a converted one.
	r, err = c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "a-chat", At: at, Currency: money.USD, Rates: eur}, nil)
	if err != nil || r.Total.Nanos != money.Scale || r.PriceCurrency != money.USD {
		t.Errorf("a-chat in USD = %+v, %v", r, err)
	}
	// A negotiated version in another currency converts at the rate in force.
	pl, _ := price.NewList("t1", 0)
	if err := pl.Override(price.VersionSpec{Model: "b-chat", EffectiveFrom: "2026-01-01T00:00:00Z", Currency: "USD", Unit: "per_1m",
		Source: "contract", Prices: map[string]price.PriceSpec{"input": {Price: "1"}}}); err != nil {
		t.Fatal(err)
	}
	r, err = c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "b-chat", At: at, Currency: money.CNY, Rates: eur, PriceList: pl}, nil)
	if err != nil || r.Total.Nanos != 7*money.Scale || !r.Override || r.ExchangeRate != (money.Ratio{Num: 7, Den: 1}) {
		t.Errorf("USD override on a CNY account = %+v, %v", r, err)
	}
	if _, err := c.Rate(usage.Usage{Input: 1}, price.RateContext{Model: "b-chat", At: at, Currency: money.CNY, PriceList: pl}, nil); !errors.Is(err, price.ErrNoRate) {
		t.Errorf("USD override without a rate: err = %v", err)
	}
	// An override named by the model's name applies to its aliases.
	pa, _ := price.NewList("t2", 0)
	if err := pa.Override(price.VersionSpec{Model: "a-chat", EffectiveFrom: "2026-01-01T00:00:00Z", Currency: "CNY", Unit: "per_1m",
		Source: "contract", Prices: map[string]price.PriceSpec{"input": {Price: "0.25"}}}); err != nil {
		t.Fatal(err)
	}
	r, err = c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "a", At: at, Currency: money.CNY, PriceList: pa}, nil)
	if err != nil || !r.Override || r.Total.Nanos != money.Scale/4 {
		t.Errorf("override through an alias = %+v, %v", r, err)
	}
	// Cache reads and writes together may not exceed the prompt.
	for _, u := range []usage.Usage{
		{Input: 10, CachedInput: 6, CacheWrite5m: 5},
		{Input: 10, CachedInput: 6, CacheWrite1h: 5},
		{Input: 10, CacheWrite5m: 6, CacheWrite1h: 5},
		{Input: 10, Output: 1, Reasoning: 2},
		{Input: 10, Images: -1},
	} {
		if _, err := c.Rate(u, price.RateContext{Model: "b-chat", At: at, Currency: money.CNY}, nil); !errors.Is(err, price.ErrBadUsage) {
			t.Errorf("Rate(%+v): err = %v, want bad usage", u, err)
		}
	}
	if _, err := c.Rate(usage.Usage{Input: 10, CachedInput: 4, CacheWrite5m: 3, CacheWrite1h: 3}, price.RateContext{Model: "b-chat", At: at, Currency: money.CNY}, nil); err != nil {
		t.Errorf("cache parts adding up to the prompt: %v", err)
	}
}

// TestPriceLists: markups in basis points within their range, overrides that
// only move forward, and the stored form.
func TestPriceLists(t *testing.T) {
	for _, tt := range []struct {
		bp  int64
		ok  bool
		mul money.Ratio
	}{
		{-10000, true, money.Ratio{Num: 0, Den: 1}},
		{-10001, false, money.Ratio{}},
		{0, true, money.One},
		{1500, true, money.Ratio{Num: 23, Den: 20}},
		{1_000_000, true, money.Ratio{Num: 101, Den: 1}},
		{1_000_001, false, money.Ratio{}},
	} {
		pl, err := price.NewList("p", tt.bp)
		if (err == nil) != tt.ok || (err == nil && pl.Markup != tt.mul) {
			t.Errorf("NewPriceList(%d) = %+v, %v; want ok %v markup %v", tt.bp, pl, err, tt.ok, tt.mul)
		}
	}
	if _, err := price.NewList("bad name", 0); err == nil {
		t.Error("a price list name with a space was accepted")
	}
	override := price.VersionSpec{Model: "b-chat", EffectiveFrom: "2026-01-01T00:00:00Z", Currency: "CNY", Unit: "per_1m",
		Source: "contract", Prices: map[string]price.PriceSpec{"input": {Price: "1"}}}
	pl, err := price.ListSpec{MarkupBP: 500, Overrides: []price.VersionSpec{override}}.Build("acme")
	if err != nil || pl.Name != "acme" || pl.Markup != (money.Ratio{Num: 21, Den: 20}) {
		t.Fatalf("Build = %+v, %v", pl, err)
	}
	bad := override
	bad.Unit = "per_2k"
	if _, err := (price.ListSpec{Overrides: []price.VersionSpec{override, bad}}).Build("acme"); err == nil ||
		!strings.HasPrefix(err.Error(), "overrides[1]: ") {
		t.Errorf("Build with a bad override: err = %v", err)
	}
	if _, err := (price.ListSpec{MarkupBP: -20000}).Build("acme"); err == nil {
		t.Error("Build with a markup below -100% succeeded")
	}
	if err := pl.Override(price.VersionSpec{Model: "bad model", EffectiveFrom: "2026-01-01T00:00:00Z"}); err == nil {
		t.Error("an override of a bad model name was accepted")
	}
	// A price list built field by field takes overrides too.
	zero := &price.List{Name: "z"}
	if err := zero.Override(override); err != nil {
		t.Fatalf("Override on a zero list: %v", err)
	}
	c := viewCatalog(t)
	r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "b-chat", At: utc(2026, 7, 1), Currency: money.CNY, PriceList: zero}, nil)
	if err != nil || !r.Override || r.Total.Nanos != money.Scale {
		t.Errorf("rated with the zero list = %+v, %v", r, err)
	}
	// A list with no override leaves the catalog's version and applies its markup.
	r, err = c.Rate(usage.Usage{Input: 100}, price.RateContext{Model: "t-chat", At: utc(2026, 7, 1), Currency: money.CNY, PriceList: pl}, nil)
	if err != nil || r.Override || r.Total.Nanos != 420_000 {
		t.Errorf("markup only = %+v, %v", r, err)
	}
}
