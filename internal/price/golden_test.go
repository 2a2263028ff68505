package price_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"baimo/catalog"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/rating")

// ratingCase is one golden input: testdata/rating/NAME.yaml. The catalog is
// the embedded one; the expected output is NAME.golden beside it.
type ratingCase struct {
	Note        string `yaml:"note"`
	Model       string `yaml:"model"`
	At          string `yaml:"at"`
	Currency    string `yaml:"currency"`
	Batch       bool   `yaml:"batch"`
	ServiceTier string `yaml:"service_tier"`
	Rates       string `yaml:"rates"` // exchange-rate table (YAML), "" for none
	// Reference lays Rates (if any) over the catalog's reference exchange
	// rates, as a gateway does.
	Reference bool               `yaml:"reference_rates"`
	MarkupBP  int64              `yaml:"markup_bp"` // tenant price list markup, 0 for none
	Override  *price.VersionSpec `yaml:"override"`
	Usage     struct {
		Input        int64 `yaml:"input"`
		CachedInput  int64 `yaml:"cached_input"`
		CacheWrite5m int64 `yaml:"cache_write_5m"`
		CacheWrite1h int64 `yaml:"cache_write_1h"`
		Output       int64 `yaml:"output"`
		Reasoning    int64 `yaml:"reasoning"`
		Images       int64 `yaml:"images"`
		AudioSeconds int64 `yaml:"audio_seconds"`
		Characters   int64 `yaml:"characters"`
		SearchCalls  int64 `yaml:"search_calls"`
	} `yaml:"usage"`
}

func loadCatalog(t testing.TB) *price.Catalog {
	t.Helper()
	c, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRatingGolden(t *testing.T) {
	c := loadCatalog(t)
	dir := filepath.Join("..", "..", "testdata", "rating")
	inputs, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs in %s: %v", dir, err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var tc ratingCase
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			dec.KnownFields(true)
			if err := dec.Decode(&tc); err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			got := renderCase(t, c, tc)
			if _, r, err := rateCase(t, c, tc); err == nil {
				checkStoredForms(t, r)
			}
			goldenPath := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test ./internal/price -run TestRatingGolden -update to accept)\n--- got\n%s--- want\n%s", goldenPath, got, want)
			}
		})
	}
}

// rateCase rates a golden case's usage as it says.
func rateCase(t *testing.T, c *price.Catalog, tc ratingCase) (time.Time, price.Rated, error) {
	t.Helper()
	at, err := time.Parse(time.RFC3339, tc.At)
	if err != nil {
		t.Fatalf("at: %v", err)
	}
	rc := price.RateContext{Model: tc.Model, At: at, Batch: tc.Batch, ServiceTier: tc.ServiceTier,
		Currency: money.Currency(tc.Currency)}
	if tc.Rates != "" {
		if rc.Rates, err = price.ParseExchangeRates([]byte(tc.Rates)); err != nil {
			t.Fatalf("rates: %v", err)
		}
	}
	if tc.Reference {
		rc.Rates = rc.Rates.Over(c.ReferenceRates())
	}
	if tc.MarkupBP != 0 || tc.Override != nil {
		if rc.PriceList, err = price.NewList("tenant-a", tc.MarkupBP); err != nil {
			t.Fatal(err)
		}
		if tc.Override != nil {
			if err := rc.PriceList.Override(*tc.Override); err != nil {
				t.Fatal(err)
			}
		}
	}
	u := usage.Usage{Input: tc.Usage.Input, CachedInput: tc.Usage.CachedInput, CacheWrite5m: tc.Usage.CacheWrite5m,
		CacheWrite1h: tc.Usage.CacheWrite1h, Output: tc.Usage.Output, Reasoning: tc.Usage.Reasoning,
		Images: tc.Usage.Images, AudioSeconds: tc.Usage.AudioSeconds, Characters: tc.Usage.Characters,
		SearchCalls: tc.Usage.SearchCalls}
	r, err := c.Rate(u, rc, nil)
	return at, r, err
}

func renderCase(t *testing.T, c *price.Catalog, tc ratingCase) string {
	t.Helper()
	at, r, err := rateCase(t, c, tc)
	var b strings.Builder
	fmt.Fprintf(&b, "model %s at %s (%s) currency %s\n", tc.Model, at.Format(time.RFC3339),
		at.UTC().Format(time.RFC3339), tc.Currency)
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
		return b.String()
	}
	if r.Alias != "" {
		fmt.Fprintf(&b, "alias %s of %s\n", r.Alias, r.Model)
	}
	fmt.Fprintf(&b, "version %s\n", r.Version)
	if r.RateSource != "" {
		fmt.Fprintf(&b, "rate source %s\n", r.RateSource)
	}
	fmt.Fprintf(&b, "tier %d period %q free %v price currency %s exchange rate %s price list %q override %v\n",
		r.Tier, r.Period, r.Free, r.PriceCurrency, r.ExchangeRate, r.PriceList, r.Override)
	var sum int64
	for _, l := range r.Lines {
		fmt.Fprintf(&b, "%-15s %10d x %s %s per %d x %s = %s %s\n", l.Kind, l.Quantity,
			money.FormatNanos(l.Price.Nanos), l.Price.Currency, l.Per, l.Multiplier, money.FormatNanos(l.Amount.Nanos), l.Amount.Currency)
		sum += l.Amount.Nanos
	}
	fmt.Fprintf(&b, "total %s %s\n", money.FormatNanos(r.Total.Nanos), r.Total.Currency)
	if sum != r.Total.Nanos {
		t.Errorf("lines sum to %d, total %d", sum, r.Total.Nanos)
	}
	return b.String()
}
