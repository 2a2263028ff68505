package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// TestRaterCheck: a model is served only when it can be rated in the billing
// currency at the request's time, or the operator serves it free.
func TestRaterCheck(t *testing.T) {
	r := testRater(t)
	r.Free = map[string]bool{"gift": true}
	var np *NotPricedError
	for _, tt := range []struct {
		public, upstream string
		ok               bool
	}{
		{"m", "cheap", true},     // the upstream name is the catalog's
		{"cheap", "", true},      // the public name is
		{"cheap", "nope", true},  // an upstream unknown to the catalog: the public name
		{"gift", "nope", true},   // marked free
		{"nope", "nope2", false}, // neither is priced
	} {
		err := r.Check(tt.public, tt.upstream, t0)
		if (err == nil) != tt.ok || (err != nil && (!errors.As(err, &np) || np.Model != tt.public || np.Currency != money.CNY)) {
			t.Errorf("Check(%s, %s) = %v, want ok %v", tt.public, tt.upstream, err, tt.ok)
		}
	}
	if err := r.Check("cheap", "", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.As(err, &np) {
		t.Errorf("before the first version: err %v, want NotPricedError", err)
	}
	usd := testRater(t)
	usd.Currency = money.USD
	if err := usd.Check("cheap", "", t0); !errors.As(err, &np) || !errors.Is(err, price.ErrNoRate) {
		t.Errorf("no exchange rate: err %v, want NotPricedError for want of a rate", err)
	}
	if !strings.Contains(np.Error(), "no price for model cheap in USD") {
		t.Errorf("NotPricedError reads %q", np.Error())
	}
	rates, err := price.ParseExchangeRates([]byte(`- {from: CNY, to: USD, effective_from: "2024-01-01T00:00:00Z", rate: "0.14"}`))
	if err != nil {
		t.Fatal(err)
	}
	usd.Rates = rates
	if err := usd.Check("cheap", "", t0); err != nil {
		t.Errorf("with a rate: %v", err)
	}
	var none *Rater
	if err := none.Check("anything", "", t0); err != nil {
		t.Errorf("no rater: %v", err)
	}
}

// TestRateRecord: a record is rated at the price in force when its request
// started, at the upstream model the catalog knows, with the tenant's price
// list; a free model costs nothing; a request refused before routing is not
// rated.
func TestRateRecord(t *testing.T) {
	r := testRater(t)
	r.Free = map[string]bool{"gift": true}
	pl, err := price.NewList("acme", 1000) // +10%
	if err != nil {
		t.Fatal(err)
	}
	r.SetPriceLists(map[string]*price.List{"acme": pl})
	u := usage.Usage{Input: 1_000_000, Output: 1_000_000, Source: usage.SourceVendor}
	tests := []struct {
		name    string
		rec     usage.Record
		cost    int64
		version string
		lines   bool
	}{
		{"upstream priced", usage.Record{RequestID: "a", Model: "m", Channel: "c", UpstreamModel: "cheap", Usage: u, Start: t0},
			3 * money.Scale, "cheap/CNY/2024-01-01T00:00:00Z", true},
		{"public priced", usage.Record{RequestID: "b", Model: "dear", Channel: "c", UpstreamModel: "vendor-name", Usage: u, Start: t0},
			30 * money.Scale, "dear/CNY/2024-01-01T00:00:00Z", true},
		{"tenant's markup", usage.Record{RequestID: "c", TenantID: "acme", Model: "m", Channel: "c", UpstreamModel: "cheap", Usage: u, Start: t0},
			33 * money.Scale / 10, "cheap/CNY/2024-01-01T00:00:00Z", true},
		{"marked free", usage.Record{RequestID: "d", Model: "gift", Channel: "c", UpstreamModel: "dear", Usage: u, Start: t0},
			0, "free", false},
	}
	for _, tt := range tests {
		rec := tt.rec
		if err := r.RateRecord(&rec); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if rec.CostNanos != tt.cost || rec.PriceVersion != tt.version || rec.Currency != "CNY" || (len(rec.Lines) > 0) != tt.lines {
			t.Errorf("%s: cost %d version %q currency %q lines %s", tt.name, rec.CostNanos, rec.PriceVersion, rec.Currency, rec.Lines)
		}
		if tt.lines {
			lines, err := price.ParseLines(rec.Lines, money.Currency(rec.Currency), rec.PriceVersion)
			var sum int64
			for _, l := range lines {
				sum += l.Amount.Nanos
			}
			if err != nil || len(lines) != 2 || sum != tt.cost {
				t.Errorf("%s: lines %s = %+v, %v; want two adding up to the cost", tt.name, rec.Lines, lines, err)
			}
		}
	}
	refused := usage.Record{RequestID: "e", Model: "m", Usage: u, Start: t0}
	if err := r.RateRecord(&refused); err != nil || refused.Currency != "" || refused.CostNanos != 0 {
		t.Errorf("a record without a channel was rated: %+v, %v", refused, err)
	}
	gone := usage.Record{RequestID: "f", Model: "m", Channel: "c", UpstreamModel: "nope", Usage: u, Start: t0}
	if err := r.RateRecord(&gone); err == nil || !strings.Contains(err.Error(), "rate f (m)") {
		t.Errorf("an unpriced record: err %v", err)
	}
	var none *Rater
	if err := none.RateRecord(&refused); err != nil {
		t.Errorf("no rater: %v", err)
	}
}

func TestCost(t *testing.T) {
	r := testRater(t)
	r.Free = map[string]bool{"gift": true}
	for _, tt := range []struct {
		tenant, public, upstream string
		cost                     int64
		ok                       bool
	}{
		{"", "m", "cheap", 1000*1000 + 500*2000, true},
		{"", "m", "dear", 1000*10_000 + 500*20_000, true},
		{"", "gift", "dear", 0, true},
		{"", "m", "nope", 0, false},
	} {
		c, ok := r.Cost(tt.tenant, tt.public, tt.upstream, 1000, 500, t0)
		if c != tt.cost || ok != tt.ok {
			t.Errorf("Cost(%s, %s) = %d, %v; want %d, %v", tt.public, tt.upstream, c, ok, tt.cost, tt.ok)
		}
	}
	b := New(Options{Rater: r, Log: quiet()})
	defer b.Close(context.Background())
	if c, ok := b.Cost("", "m", "cheap", 1000, 0, t0); !ok || c != 1000*1000 || b.Currency() != money.CNY || b.Rater() != r {
		t.Errorf("Biller.Cost = %d, %v", c, ok)
	}
	if err := b.Check("nope", "", t0); err == nil {
		t.Error("Biller.Check of an unpriced model passed")
	}
	unrated := New(Options{Log: quiet()})
	defer unrated.Close(context.Background())
	if _, ok := unrated.Cost("", "m", "cheap", 1, 1, t0); ok || unrated.Currency() != "" || unrated.Rater() != nil {
		t.Error("a biller without a rater costs requests")
	}
}

// fakeLists is a store of tenants' price lists (JSON of price.ListSpec).
type fakeLists struct {
	lists map[string][]byte
	err   error
}

func (f fakeLists) SetPriceList(context.Context, string, []byte) error { return nil }
func (f fakeLists) PriceLists(context.Context) (map[string][]byte, error) {
	return f.lists, f.err
}

func TestLoadPriceLists(t *testing.T) {
	r := testRater(t)
	err := r.LoadPriceLists(context.Background(), fakeLists{lists: map[string][]byte{
		"good":    []byte(`{"markup_bp": 2000}`),
		"badjson": []byte(`{"markup_bp": "x"}`),
		"badspec": []byte(`{"markup_bp": -20000}`),
	}})
	if err == nil || !strings.Contains(err.Error(), "price list of badjson") || !strings.Contains(err.Error(), "price list of badspec") {
		t.Errorf("err = %v, want both bad lists named", err)
	}
	if pl := r.PriceList("good"); pl == nil || pl.Markup != (money.Ratio{Num: 6, Den: 5}) {
		t.Errorf("good list = %+v", pl)
	}
	if r.PriceList("badjson") != nil || r.PriceList("badspec") != nil || r.PriceList("other") != nil {
		t.Error("a list that does not build was kept")
	}
	// The default tenant's list answers for a request without a tenant.
	if err := r.LoadPriceLists(context.Background(), fakeLists{lists: map[string][]byte{"default": []byte(`{"markup_bp": 100}`)}}); err != nil {
		t.Fatal(err)
	}
	if pl := r.PriceList(""); pl == nil || pl.Name != "default" || r.PriceList("good") != nil {
		t.Errorf("the lists were not replaced as a whole: %+v", pl)
	}
	if err := r.LoadPriceLists(context.Background(), fakeLists{err: errors.New("store down")}); err == nil {
		t.Error("a store error was not returned")
	}
	if r.PriceList("") == nil {
		t.Error("a store error dropped the lists in force")
	}
}

// fakeVersions is the store of price versions added at run time.
type fakeVersions struct {
	list []price.StoredVersion
	err  error
}

func (f *fakeVersions) AddPriceVersion(_ context.Context, v price.StoredVersion) error {
	f.list = append(f.list, v)
	return nil
}
func (f *fakeVersions) DeletePriceVersion(context.Context, string) error { return nil }
func (f *fakeVersions) ListPriceVersions(context.Context) ([]price.StoredVersion, error) {
	return f.list, f.err
}

func versionJSON(t *testing.T, model, from, input string) []byte {
	t.Helper()
	b, err := json.Marshal(price.VersionSpec{Model: model, EffectiveFrom: from, Currency: "CNY", Unit: "per_1m", Source: "admin",
		Prices: map[string]price.PriceSpec{"input": {Price: input}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

// TestPriceVersionsReplayAndSync: versions added through the admin API are
// replayed at start in order, and those other nodes add later are applied
// once each; a version the catalog already passed is logged, not fatal.
func TestPriceVersionsReplayAndSync(t *testing.T) {
	ctx := context.Background()
	r := testRater(t)
	st := &fakeVersions{list: []price.StoredVersion{
		{ID: "v1", Spec: versionJSON(t, "cheap", "2026-01-01T00:00:00Z", "5")},
		{ID: "v0", Spec: versionJSON(t, "cheap", "2025-01-01T00:00:00Z", "4")}, // before v1: not applied
	}}
	var logs bytes.Buffer
	seen, err := ReplayVersions(ctx, r.Catalog, st, logTo(&logs))
	if err != nil || !seen["v1"] || !seen["v0"] || len(seen) != 2 {
		t.Fatalf("ReplayVersions = %v, %v", seen, err)
	}
	if !strings.Contains(logs.String(), "stored price version not applied") || !strings.Contains(logs.String(), "id=v0") {
		t.Errorf("the superseded version was not logged: %s", logs.String())
	}
	if got := rate(t, r, "cheap", usage.Usage{Input: 1_000_000}); got != 5*money.Scale {
		t.Errorf("after replay cheap costs %d per 1M input", got)
	}
	if _, err := ReplayVersions(ctx, r.Catalog, &fakeVersions{err: errors.New("down")}, quiet()); err == nil {
		t.Error("a store error was not returned")
	}
	if _, err := ReplayVersions(ctx, r.Catalog, &fakeVersions{list: []price.StoredVersion{{ID: "x", Spec: []byte("{")}}}, quiet()); err == nil {
		t.Error("an unreadable version was not an error")
	}

	logs.Reset()
	lists := fakeLists{lists: map[string][]byte{"acme": []byte(`{"markup_bp": 500}`)}}
	ps := NewPriceSync(st, lists, r, seen, time.Minute, logTo(&logs))
	st.list = append(st.list,
		price.StoredVersion{ID: "v2", Spec: versionJSON(t, "cheap", "2026-05-01T00:00:00Z", "6")},
		price.StoredVersion{ID: "bad", Spec: []byte("not json")},
		price.StoredVersion{ID: "old", Spec: versionJSON(t, "cheap", "2026-02-01T00:00:00Z", "9")}, // before v2: history
		price.StoredVersion{ID: "unknown", Spec: versionJSON(t, "", "2026-02-01T00:00:00Z", "9")},
	)
	ps.Once(ctx)
	if got := rate(t, r, "cheap", usage.Usage{Input: 1_000_000}); got != 6*money.Scale {
		t.Errorf("after sync cheap costs %d per 1M input", got)
	}
	if r.PriceList("acme") == nil {
		t.Error("price lists were not synced")
	}
	out := logs.String()
	if !strings.Contains(out, "id=bad") || !strings.Contains(out, "id=unknown") || strings.Contains(out, "id=old") {
		t.Errorf("sync logs = %s; want the unreadable and the invalid versions named, not the one history passed", out)
	}
	logs.Reset()
	ps.Once(ctx) // nothing new: nothing logged, nothing applied twice
	if logs.Len() != 0 {
		t.Errorf("a second sync logged %s", logs.String())
	}
	st.err = errors.New("down")
	ps.Once(ctx)
	if !strings.Contains(logs.String(), "sync price versions") {
		t.Errorf("a store error was not logged: %s", logs.String())
	}
	logs.Reset()
	ps2 := NewPriceSync(&fakeVersions{}, fakeLists{err: errors.New("down")}, r, nil, time.Minute, logTo(&logs))
	ps2.Once(ctx)
	if !strings.Contains(logs.String(), "sync price lists") {
		t.Errorf("a price list store error was not logged: %s", logs.String())
	}
}

// sweepBooks counts sweeps.
type sweepBooks struct {
	fakeBooks
	sweeps chan struct{}
	res    ledger.SweepResult
	err    error
}

func (s *sweepBooks) Sweep(context.Context) (ledger.SweepResult, error) {
	s.sweeps <- struct{}{}
	return s.res, s.err
}

// TestRun: the background work syncs prices every sync interval and sweeps
// expired holds every sweep interval, on the Biller's clock, until stopped.
func TestRun(t *testing.T) {
	r := testRater(t)
	clk := clock.NewFake(t0)
	books := &sweepBooks{sweeps: make(chan struct{}, 10), res: ledger.SweepResult{Voided: 1}}
	var logs bytes.Buffer
	b := New(Options{Rater: r, Books: books, Clock: clk, Log: logTo(&logs)})
	defer b.Close(context.Background())
	st := &fakeVersions{}
	ps := NewPriceSync(st, nil, r, nil, time.Minute, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, ps, 30*time.Second); close(done) }()
	for clk.Waiters() < 2 {
		time.Sleep(time.Millisecond)
	}
	st.list = []price.StoredVersion{{ID: "v9", Spec: versionJSON(t, "cheap", "2026-05-01T00:00:00Z", "7")}}
	clk.Advance(30 * time.Second)
	<-books.sweeps
	clk.Advance(30 * time.Second) // a sweep and the first sync
	<-books.sweeps
	deadline := time.Now().Add(10 * time.Second)
	for rate(t, r, "cheap", usage.Usage{Input: 1_000_000}) != 7*money.Scale {
		if time.Now().After(deadline) {
			t.Fatal("the price sync did not run")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "swept expired holds") {
		t.Errorf("a sweep that voided holds was not logged: %s", logs.String())
	}

	// Without books or a sync, Run only waits; a failing sweep is logged.
	logs.Reset()
	books.err = errors.New("down")
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { b.Run(ctx, nil, 30*time.Second); close(done) }()
	for clk.Waiters() < 1 {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(30 * time.Second)
	<-books.sweeps
	cancel()
	<-done
	if !strings.Contains(logs.String(), "sweep expired holds") {
		t.Errorf("a failed sweep was not logged: %s", logs.String())
	}
	nb := New(Options{Rater: r, Clock: clk, Log: quiet()})
	defer nb.Close(context.Background())
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	nb.Run(ctx, nil, time.Second) // returns at once: nothing to do, ctx done
}

func TestErrorTexts(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&InsufficientError{Need: 1_500_000_000, Currency: money.CNY, Err: ledger.ErrInsufficientFunds}, "cannot cover a hold of 1.5 CNY"},
		{&QuotaError{What: "tokens", Limit: 1000, Reset: time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)},
			"daily quota of 1000 tokens is used up until 2026-06-02T00:00:00Z"},
		{&UnavailableError{What: "check the account", Err: errors.New("down")}, "billing: cannot check the account: down"},
		{&LimitError{What: "choices", Value: 9, Max: 8}, "9 choices asked, at most 8"},
		{&LimitError{What: "output", Value: 9000, Max: 8000, Model: "dear"}, "9000 output tokens asked, dear produces at most 8000"},
	} {
		if got := tt.err.Error(); !strings.Contains(got, tt.want) {
			t.Errorf("%T reads %q, want %q", tt.err, got, tt.want)
		}
	}
	if !errors.Is(&UnavailableError{Err: ledger.ErrClosed}, ledger.ErrClosed) || !errors.Is(&InsufficientError{Err: ledger.ErrInsufficientFunds}, ledger.ErrInsufficientFunds) {
		t.Error("causes are not unwrapped")
	}
}
