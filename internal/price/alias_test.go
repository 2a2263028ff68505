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

const aliasFile = `vendor: acme
models:
  - name: acme-1
    context_window: 128000
    max_output: 16384
    modalities: {input: [text, image], output: [text]}
    versions:
      - {effective_from: "2025-01-01T00:00:00Z", currency: USD, unit: per_1m, source: s, prices: {input: "1", output: "2"}}
      - {effective_from: "2025-06-01T00:00:00Z", currency: USD, unit: per_1m, source: s, prices: {input: "0.5", output: "1"}}
  - name: acme-2
    context_window: 1000000
    max_output: 65536
    versions:
      - {effective_from: "2025-03-01T00:00:00Z", currency: USD, unit: per_1m, source: s, prices: {input: "3", output: "9"}}
      - {effective_from: "2025-09-01T00:00:00Z", currency: USD, unit: per_1m, source: s, retired: true}
aliases:
  - {name: acme-1-2025-01-01, model: acme-1}
  - {name: acme-latest, model: acme-1, from: "2025-01-01T00:00:00Z"}
  - {name: acme-latest, model: acme-2, from: "2025-04-01T00:00:00Z", note: moved to acme-2}
exclusions:
  - {name: acme-0, reason: retired, note: "shut down 2024-12-31"}
exchange_rates:
  - {from: USD, to: CNY, effective_from: "2025-01-01T00:00:00+08:00", rate: "7.3", source: "reference A"}
  - {from: USD, to: CNY, effective_from: "2025-05-01T00:00:00+08:00", rate: "7.2", source: "reference B"}
`

func loadAlias(t *testing.T) *price.Catalog { return catalogOf(t, "a.yaml", aliasFile) }

func TestAliasTable(t *testing.T) {
	c := loadAlias(t)
	day := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t.Add(12 * time.Hour) }
	u := usage.Usage{Input: 1_000_000, Output: 1_000_000}
	tests := []struct {
		name, model, at string
		wantModel       string
		wantTotal       string // USD; "" for an error
		wantErr         string
	}{
		{"snapshot at the family's first price", "acme-1-2025-01-01", "2025-02-01", "acme-1", "3", ""},
		{"snapshot follows the family's price change", "acme-1-2025-01-01", "2025-07-01", "acme-1", "1.5", ""},
		{"latest before it moved", "acme-latest", "2025-02-01", "acme-1", "3", ""},
		{"latest after it moved", "acme-latest", "2025-05-01", "acme-2", "12", ""},
		{"latest before its first target", "acme-latest", "2024-12-01", "", "", "an alias that names no model at that time"},
		{"target retired", "acme-latest", "2025-10-01", "", "", "retired from 2025-09-01T00:00:00Z"},
		{"excluded name", "acme-0", "2025-02-01", "", "", "not priced by baimo: retired, shut down 2024-12-31"},
		{"unknown name", "acme-9", "2025-02-01", "", "", "model not in the catalog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Rate(u, price.RateContext{Model: tt.model, At: day(tt.at), Currency: money.USD}, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, price.ErrNoPrice) {
					t.Fatalf("err %v, want a no-price error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Model != tt.wantModel || money.FormatNanos(r.Total.Nanos) != tt.wantTotal {
				t.Errorf("rated %s at %s, want %s at %s", r.Model, money.FormatNanos(r.Total.Nanos), tt.wantModel, tt.wantTotal)
			}
			if tt.model != tt.wantModel && r.Alias != tt.model {
				t.Errorf("Alias %q, want %q", r.Alias, tt.model)
			}
			if _, err := c.Quote(10, 10, price.RateContext{Model: tt.model, At: day(tt.at), Currency: money.USD}); err != nil {
				t.Errorf("quote: %v", err)
			}
		})
	}
	if m, ok := c.Model("acme-latest"); !ok || m.Name != "acme-2" {
		t.Errorf("Model(acme-latest) = %v, want its latest target acme-2", m)
	}
	if m, ok := c.Resolve("acme-latest", day("2025-02-01")); !ok || m.Name != "acme-1" {
		t.Errorf("Resolve(acme-latest, Feb) = %v, want acme-1", m)
	}
	h, err := c.History("acme-1-2025-01-01")
	if err != nil || len(h) != 2 {
		t.Errorf("history through an alias: %d entries, %v", len(h), err)
	}
	v := c.View(price.ViewOptions{History: true})
	for _, m := range v.Models {
		if m.Name == "acme-1" && strings.Join(m.Aliases, ",") != "acme-1-2025-01-01,acme-latest" {
			t.Errorf("view aliases of acme-1: %v", m.Aliases)
		}
	}
}

func TestInfo(t *testing.T) {
	c := loadAlias(t)
	feb := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	info, ok := c.Info("acme-latest", feb)
	if !ok || info.Name != "acme-1" || info.ContextWindow != 128000 || info.MaxOutput != 16384 ||
		strings.Join(info.InputModalities, ",") != "text,image" || strings.Join(info.OutputModalities, ",") != "text" {
		t.Errorf("Info(acme-latest, Feb) = %+v, %v", info, ok)
	}
	info, ok = c.Info("acme-latest", feb.AddDate(0, 3, 0))
	if !ok || info.Name != "acme-2" || info.ContextWindow != 1_000_000 || info.MaxOutput != 65536 || info.InputModalities != nil {
		t.Errorf("Info(acme-latest, May) = %+v, %v", info, ok)
	}
	if _, ok := c.Info("acme-9", feb); ok {
		t.Error("Info of an unknown model is ok")
	}
	// An operator's model gets its limits with its first version.
	if _, err := c.AddVersion(price.VersionSpec{Model: "acme-3", Vendor: "acme", EffectiveFrom: "2025-02-01T00:00:00Z",
		Currency: "USD", Unit: "per_1m", Source: "operator", Prices: map[string]price.PriceSpec{"input": {Price: "1"}},
		Kind: "embedding", ContextWindow: 8192, Modalities: &price.ModalitiesSpec{Input: []string{"text"}, Output: []string{"embedding"}}}); err != nil {
		t.Fatal(err)
	}
	info, ok = c.Info("acme-3", feb)
	if !ok || info.Kind != "embedding" || info.ContextWindow != 8192 || info.MaxOutput != 0 || info.OutputModalities[0] != "embedding" {
		t.Errorf("Info(acme-3) = %+v", info)
	}
	if _, err := c.AddVersion(price.VersionSpec{Model: "acme-4", Vendor: "acme", EffectiveFrom: "2025-02-01T00:00:00Z",
		Currency: "USD", Unit: "per_1m", Source: "operator", Prices: map[string]price.PriceSpec{"input": {Price: "1"}},
		ContextWindow: 1000, MaxOutput: 2000}); err == nil || !strings.Contains(err.Error(), "more than the context window") {
		t.Errorf("max_output above the context window: %v", err)
	}
}

func TestReferenceRatesUnderConfigured(t *testing.T) {
	c := loadAlias(t)
	ref := c.ReferenceRates()
	jun := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	r, ok := ref.RateAt(money.USD, money.CNY, jun)
	if !ok || r.Rate.String() != "7.2" || r.Source != "reference B" {
		t.Fatalf("reference USD→CNY in June: %+v %v", r, ok)
	}
	inv, ok := ref.RateAt(money.CNY, money.USD, jun)
	if !ok || inv.Rate.String() != "5/36" || inv.Source != "reference B" {
		t.Errorf("inverse: %+v %v", inv, ok)
	}
	cfg, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2025-06-01T00:00:00Z", rate: "7.1", source: operator}`))
	if err != nil {
		t.Fatal(err)
	}
	both := cfg.Over(ref)
	for _, tt := range []struct {
		at         time.Time
		rate, from string
	}{
		{jun, "7.1", "operator"},                      // the operator's rate wins where it is in force
		{jun.AddDate(0, -1, 0), "7.2", "reference B"}, // before it, the reference applies
		{time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), "7.3", "reference A"},
	} {
		r, ok := both.RateAt(money.USD, money.CNY, tt.at)
		if !ok || r.Rate.String() != tt.rate || r.Source != tt.from {
			t.Errorf("at %s: %+v, want %s from %s", tt.at, r, tt.rate, tt.from)
		}
	}
	rated, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "acme-1", At: jun, Currency: money.CNY, Rates: both}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rated.RateSource != "operator" || rated.Lines[0].RateSource != "operator" || rated.Lines[0].ExchangeRate.String() != "7.1" ||
		money.FormatNanos(rated.Total.Nanos) != "3.55" {
		t.Errorf("rated %+v", rated)
	}
	if _, err := c.Rate(usage.Usage{Input: 1}, price.RateContext{Model: "acme-1", At: jun, Currency: money.CNY}, nil); !errors.Is(err, price.ErrNoRate) {
		t.Errorf("without a table the reference is not used implicitly: %v", err)
	}
}

func TestRetire(t *testing.T) {
	c := loadAlias(t)
	if _, err := c.AddVersion(price.VersionSpec{Model: "acme-1", EffectiveFrom: "2025-08-01T00:00:00Z", Currency: "USD",
		Unit: "per_1m", Source: "operator", Retired: true}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Rate(usage.Usage{Input: 1}, price.RateContext{Model: "acme-1", At: time.Date(2025, 8, 2, 0, 0, 0, 0, time.UTC), Currency: money.USD}, nil)
	if !errors.Is(err, price.ErrRetired) || !errors.Is(err, price.ErrNoPrice) {
		t.Errorf("after retirement: %v", err)
	}
	if _, err := c.Rate(usage.Usage{Input: 1}, price.RateContext{Model: "acme-1", At: time.Date(2025, 7, 2, 0, 0, 0, 0, time.UTC), Currency: money.USD}, nil); err != nil {
		t.Errorf("before retirement: %v", err)
	}
	h, _ := c.History("acme-1")
	if last := h[len(h)-1].Version; !last.Retired || last.Origin != price.OriginOperator || h[0].Version.Origin != price.OriginCatalog {
		t.Errorf("history: %+v", last)
	}
}

func TestAliasLoadErrors(t *testing.T) {
	const head = "vendor: acme\nmodels:\n  - name: acme-1\n    versions:\n      - {effective_from: \"2025-01-01T00:00:00Z\", currency: USD, unit: per_1m, source: s, prices: {input: \"1\"}}\n"
	tests := []struct{ name, data, want string }{
		{"unknown target", head + "aliases: [{name: x, model: nope}]\n", "aliases[0].model: unknown model \"nope\""},
		{"alias is a model", head + "aliases: [{name: acme-1, model: acme-1}]\n", "aliases[0].name: \"acme-1\" is already"},
		{"two targets at once", head + "aliases: [{name: x, model: acme-1}, {name: x, model: acme-1}]\n", "aliases[1].from: alias \"x\" has two targets"},
		{"bad from", head + "aliases: [{name: x, model: acme-1, from: yesterday}]\n", "aliases[0].from: want RFC 3339"},
		{"exclusion reason", head + "exclusions: [{name: y, reason: expensive}]\n", "exclusions[0].reason: unknown reason"},
		{"excluded and priced", head + "exclusions: [{name: acme-1, reason: retired}]\n", "exclusions[0].name: \"acme-1\" is a priced model"},
		{"retired with prices", strings.Replace(head, "source: s,", "source: s, retired: true,", 1), "versions[0].retired: a retired version has no prices"},
		{"unknown modality", head + "    modalities: {input: [smell], output: [text]}\n", "modalities.input[0]: unknown modality"},
		{"output above window", head + "    context_window: 100\n    max_output: 200\n", "max_output: 200 is more than the context window"},
		{"bad rate", head + "exchange_rates: [{from: USD, to: CNY, effective_from: \"2025-01-01T00:00:00Z\", rate: \"-7\"}]\n", "exchange_rates[0]: rate:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(tt.data)})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "f.yaml: ") {
				t.Errorf("err %v, want one naming f.yaml and containing %q", err, tt.want)
			}
		})
	}
}
