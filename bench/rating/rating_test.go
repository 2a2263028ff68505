package rating_test

import (
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

func BenchmarkRate(b *testing.B) {
	c, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	rates, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00+08:00", rate: "7.1234"}`))
	if err != nil {
		b.Fatal(err)
	}
	late, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2030-01-01T00:00:00+08:00", rate: "7"}`))
	if err != nil {
		b.Fatal(err)
	}
	tenant, err := price.NewList("reseller", 1500)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		u    usage.Usage
		rc   price.RateContext
	}{
		{"simple", usage.Usage{Input: 1200, Output: 300},
			price.RateContext{Model: "sim-chat", At: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Currency: money.CNY}},
		{"peak_schedule_holiday_calendar", usage.Usage{Input: 100_000, CachedInput: 80_000, Output: 2000, SearchCalls: 2},
			price.RateContext{Model: "deepseek-flash", At: time.Date(2026, 12, 1, 1, 30, 0, 0, time.UTC), Currency: money.CNY}},
		{"tier_cache_writes", usage.Usage{Input: 250_000, CachedInput: 100_000, CacheWrite5m: 20_000, CacheWrite1h: 10_000, Output: 3000},
			price.RateContext{Model: "claude-sonnet-4-5", At: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Currency: money.USD}},
		{"fx_markup_reasoning", usage.Usage{Input: 5000, Output: 4000, Reasoning: 3000},
			price.RateContext{Model: "qwen-plus", At: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Currency: money.CNY,
				Rates: rates, PriceList: tenant}},
		{"fx_usd_price_cny_account", usage.Usage{Input: 5000, CachedInput: 1000, Output: 800},
			price.RateContext{Model: "claude-haiku-4-5", At: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Currency: money.CNY, Rates: rates}},
		// A dated snapshot name through the alias table, converted at the
		// reference rate under a configured table that has none then.
		{"alias_reference_rate", usage.Usage{Input: 5000, CachedInput: 1000, Output: 800},
			price.RateContext{Model: "claude-haiku-4-5-20251001", At: time.Date(2025, 12, 1, 9, 0, 0, 0, time.UTC).AddDate(1, 0, 0), Currency: money.CNY,
				Rates: late.Over(c.ReferenceRates())}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			dst := make([]price.Line, 0, 16)
			if _, err := c.Rate(tc.u, tc.rc, dst); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := c.Rate(tc.u, tc.rc, dst)
				if err != nil || r.Total.Nanos <= 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRateParallel(b *testing.B) {
	c, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	u := usage.Usage{Input: 100_000, CachedInput: 80_000, Output: 2000}
	rc := price.RateContext{Model: "deepseek-flash", At: time.Date(2026, 12, 1, 1, 30, 0, 0, time.UTC), Currency: money.CNY}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]price.Line, 0, 16)
		for pb.Next() {
			if _, err := c.Rate(u, rc, dst); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
