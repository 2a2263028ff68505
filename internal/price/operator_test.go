package price_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

func TestCheckServed(t *testing.T) {
	c := loadCatalog(t)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	served := []price.Served{
		{Model: "deepseek-chat", Upstream: "deepseek-chat", Channel: "deepseek"},
		{Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", Channel: "openai"},
		{Model: "claude-haiku-4-5", Upstream: "claude-haiku-4-5", Channel: "anthropic"},
		{Model: "my-llama", Upstream: "llama3.1:8b", Channel: "ollama"},
		{Model: "my-llama", Upstream: "llama3.1-8b", Channel: "llamacpp"},
		{Model: "house-model", Upstream: "house-model", Channel: "vllm"},
		{Model: "doubao", Upstream: "doubao-seed-1-6-250615", Channel: "ark"},
	}
	free := map[string]bool{"house-model": true}

	// No rate at all: USD-only models are refused for want of a rate.
	sc := c.CheckServed(served, money.CNY, nil, free, at)
	if len(sc.Unpriced) != 1 || sc.Unpriced[0].Model != "my-llama" || strings.Join(sc.Unpriced[0].Channels, ",") != "llamacpp,ollama" {
		t.Errorf("unpriced = %+v", sc.Unpriced)
	}
	if len(sc.NoRate) != 2 || sc.NoRate[0].Model != "claude-haiku-4-5" || sc.NoRate[1].Model != "gpt-4o-mini" {
		t.Errorf("no rate = %+v", sc.NoRate)
	}
	msg := sc.Problem()
	for _, want := range []string{"1 served models have no CNY price", "my-llama on llamacpp, ollama", "baimo prices set MODEL",
		"billing.free_models", "2 served models are priced only in another currency", "billing.exchange_rates"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}

	// With the reference table, only the unpriced model remains, and the
	// rate used is reported with its date and source.
	sc = c.CheckServed(served, money.CNY, c.ReferenceRates(), free, at)
	if len(sc.NoRate) != 0 || len(sc.Unpriced) != 1 {
		t.Fatalf("with reference rates: %+v", sc)
	}
	if len(sc.Converted) != 1 || !sc.Converted[0].Reference || strings.Join(sc.Converted[0].Models, ",") != "claude-haiku-4-5,gpt-4o-mini" {
		t.Fatalf("converted = %+v", sc.Converted)
	}
	notes := sc.Notes()
	if len(notes) != 1 || !strings.Contains(notes[0], "at 6.9858, the catalog's reference rate of 2026-01-27") || !strings.Contains(notes[0], "Set billing.exchange_rates") {
		t.Errorf("notes = %q", notes)
	}

	// A configured rate is reported as such.
	cfg, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2026-11-01T00:00:00+08:00", rate: "7.1", source: treasury}`))
	if err != nil {
		t.Fatal(err)
	}
	sc = c.CheckServed(served, money.CNY, cfg.Over(c.ReferenceRates()), free, at)
	if len(sc.Converted) != 1 || sc.Converted[0].Reference || sc.Converted[0].Rate.Source != "treasury" {
		t.Errorf("configured: %+v", sc.Converted)
	}
	if sc = c.CheckServed(served[:3], money.CNY, c.ReferenceRates(), free, at); sc.Refused() || sc.Problem() != "" {
		t.Errorf("all priced: %+v", sc)
	}
}

func TestAddVersionsAllOrNothing(t *testing.T) {
	c := loadAlias(t)
	good := price.VersionSpec{Model: "acme-1", EffectiveFrom: "2025-07-01T00:00:00Z", Currency: "USD", Unit: "per_1m", Source: "op",
		Prices: map[string]price.PriceSpec{"input": {Price: "9"}}}
	bad := good
	bad.EffectiveFrom = "2025-05-01T00:00:00Z" // before the last version: history
	if _, err := c.AddVersions([]price.VersionSpec{good, bad}); !errors.Is(err, price.ErrHistory) || !strings.Contains(err.Error(), "versions[1]") {
		t.Fatalf("err = %v", err)
	}
	if h, _ := c.History("acme-1"); len(h) != 2 {
		t.Fatalf("a failed batch added %d versions", len(h)-2)
	}
	if err := c.CheckVersions([]price.VersionSpec{good}); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.History("acme-1"); len(h) != 2 {
		t.Fatal("CheckVersions changed the catalog")
	}
	// Stored batches replay; a replay of one already applied is history.
	b, _ := json.Marshal(price.StoredBatch{Op: "set", Versions: []price.VersionSpec{good}})
	if err := c.ApplyStored(price.StoredVersion{ID: "pv_1", Spec: b}); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyStored(price.StoredVersion{ID: "pv_1", Spec: b}); !errors.Is(err, price.ErrHistory) {
		t.Errorf("replay: %v", err)
	}
	// The stored form of earlier versions (a bare VersionSpec) still replays.
	legacy, _ := json.Marshal(price.VersionSpec{Model: "acme-9", Vendor: "acme", EffectiveFrom: "2025-01-01T00:00:00Z", Currency: "CNY",
		Unit: "per_1m", Source: "op", Prices: map[string]price.PriceSpec{"input": {Price: "1"}}})
	if err := c.ApplyStored(price.StoredVersion{ID: "pv_0", Spec: legacy}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Rate(usage.Usage{Input: 1_000_000}, price.RateContext{Model: "acme-9", At: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), Currency: money.CNY}, nil)
	if err != nil || r.Origin != price.OriginOperator || money.FormatNanos(r.Total.Nanos) != "1" {
		t.Errorf("rated %+v, %v", r, err)
	}
}

func TestParseImport(t *testing.T) {
	const file = `vendor: local
models:
  - name: house-7b
    kind: chat
    context_window: 32768
    max_output: 4096
    modalities: {input: [text], output: [text]}
    versions:
      - {currency: CNY, unit: per_1m, source: "our cost sheet", prices: {input: "0.5", output: "1"}}
      - {effective_from: "2030-01-01T00:00:00+08:00", currency: CNY, unit: per_1m, source: "our cost sheet", prices: {input: "0.4", output: "0.8"}}
`
	specs, err := price.ParseImport([]byte(file), "2026-12-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Model != "house-7b" || specs[0].Vendor != "local" || specs[0].EffectiveFrom != "2026-12-01T00:00:00Z" ||
		specs[0].ContextWindow != 32768 || specs[1].ContextWindow != 0 || specs[1].EffectiveFrom != "2030-01-01T00:00:00+08:00" {
		t.Fatalf("specs = %+v", specs)
	}
	c := loadAlias(t)
	if _, err := c.AddVersions(specs); err != nil {
		t.Fatal(err)
	}
	if info, ok := c.Info("house-7b", time.Now()); !ok || info.MaxOutput != 4096 {
		t.Errorf("info = %+v", info)
	}
	for _, bad := range []string{
		"vendor: x\naliases: [{name: a, model: b}]\nmodels: [{name: m, versions: [{currency: CNY}]}]\n",
		"vendor: x\nmodels: []\n",
		"models: [{name: m, versions: [{currency: CNY}]}]\n",
		"vendor: x\nmodels: [{name: m, tokenizer: qwen3, versions: [{currency: CNY}]}]\n",
		"vendor: x\nmodels: [{name: m, bogus: 1}]\n",
	} {
		if _, err := price.ParseImport([]byte(bad), "2026-12-01T00:00:00Z"); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestRetireSpecs(t *testing.T) {
	c := loadCatalog(t)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	specs, err := c.RetireSpecs("deepseek-flash", at, "operator")
	if err != nil || len(specs) != 2 || specs[0].Currency != "CNY" || specs[1].Currency != "USD" || !specs[0].Retired {
		t.Fatalf("specs = %+v, %v", specs, err)
	}
	if _, err := c.AddVersions(specs); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Quote(1, 1, price.RateContext{Model: "deepseek-flash", At: at, Currency: money.CNY}); !errors.Is(err, price.ErrRetired) {
		t.Errorf("after retirement: %v", err)
	}
	if _, err := c.RetireSpecs("deepseek-flash", at.Add(time.Hour), "operator"); err == nil {
		t.Error("retiring twice is no error")
	}
	if _, err := c.RetireSpecs("no-such-model", at, "operator"); !errors.Is(err, price.ErrNoPrice) {
		t.Errorf("unknown model: %v", err)
	}
}

// TestAddVersionsBatch checks the bounds of one import: a batch of up to
// 5,000 versions (the limit itself) is taken whole, one more is refused
// whole; and an error names the version of a batch it comes from, while the
// error of a lone version is that version's own.
func TestAddVersionsBatch(t *testing.T) {
	const limit = 5000
	// One new model a version (an import of a whole house catalog).
	specs := func(n int) []price.VersionSpec {
		out := make([]price.VersionSpec, n)
		for i := range out {
			out[i] = price.VersionSpec{Model: fmt.Sprintf("house-%d", i), Vendor: "local", Currency: "CNY", Unit: "per_1m",
				Source: "import", EffectiveFrom: "2030-01-01T00:00:00Z", Prices: map[string]price.PriceSpec{"input": {Price: "1"}}}
		}
		return out
	}
	tests := []struct {
		name    string
		specs   []price.VersionSpec
		wantErr string // "" when the batch is taken
	}{
		{"one", specs(1), ""},
		{"at the limit", specs(limit), ""},
		{"one over the limit", specs(limit + 1), "add versions: 5001 versions, at most 5000 at once"},
		{"none", nil, "add versions: none given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := loadAlias(t)
			before := len(c.Models())
			vs, err := c.AddVersions(tc.specs)
			added := len(c.Models()) - before
			if tc.wantErr == "" {
				if err != nil || len(vs) != len(tc.specs) || added != len(tc.specs) {
					t.Fatalf("AddVersions of %d = %d versions (%d models added), %v", len(tc.specs), len(vs), added, err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if added != 0 {
				t.Errorf("a refused batch added %d models", added)
			}
		})
	}

	bad := specs(2)
	bad[1].Unit = "per_day"
	const why = `add version of house-1: unit: unknown unit "per_day" (want per_1k or per_1m)`
	c := loadAlias(t)
	if _, err := c.AddVersions(bad); err == nil || err.Error() != "versions[1]: "+why {
		t.Errorf("batch: err = %v, want versions[1]: %s", err, why)
	}
	if _, err := c.AddVersions(bad[1:]); err == nil || err.Error() != why {
		t.Errorf("lone version: err = %v, want %s", err, why)
	}
	if _, err := c.AddVersion(bad[1]); err == nil || err.Error() != why {
		t.Errorf("AddVersion: err = %v, want %s", err, why)
	}
}

// TestServeCheckReports checks what a gateway says at start about models it
// serves under another name and priced in several currencies: a refused
// model is named with the catalog name it is rated by, and the rates used
// are listed one per currency, in the order of the currency codes.
func TestServeCheckReports(t *testing.T) {
	c := loadCatalog(t)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if _, err := c.AddVersion(price.VersionSpec{Model: "euro-chat", Vendor: "euro", EffectiveFrom: "2026-01-01T00:00:00Z", Currency: "EUR",
		Unit: "per_1m", Source: "op", Prices: map[string]price.PriceSpec{"input": {Price: "1"}}}); err != nil {
		t.Fatal(err)
	}
	served := []price.Served{
		{Model: "haiku", Upstream: "claude-haiku-4-5", Channel: "anthropic"},
		{Model: "euro", Upstream: "euro-chat", Channel: "eu"},
		{Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", Channel: "openai"},
	}

	sc := c.CheckServed(served, money.CNY, nil, nil, at)
	if msg := sc.Problem(); !strings.Contains(msg, "euro (as euro-chat) on eu; gpt-4o-mini on openai; haiku (as claude-haiku-4-5) on anthropic.") {
		t.Errorf("problem does not name the upstream model:\n%s", msg)
	}

	rates, err := price.ParseExchangeRates([]byte(`
- {from: USD, to: CNY, effective_from: "2026-11-01T00:00:00Z", rate: "7.1", source: treasury}
- {from: EUR, to: CNY, effective_from: "2026-11-15T00:00:00Z", rate: "7.8", source: ecb}
`))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // the conversions are gathered in a map: its order must not show
		sc = c.CheckServed(served, money.CNY, rates, nil, at)
		if sc.Refused() || len(sc.Converted) != 2 || sc.Converted[0].Rate.From != "EUR" || sc.Converted[1].Rate.From != "USD" ||
			strings.Join(sc.Converted[1].Models, ",") != "gpt-4o-mini,haiku" {
			t.Fatalf("converted = %+v", sc.Converted)
		}
	}
	notes := sc.Notes()
	want := []string{
		"1 models priced in EUR are billed in CNY at 7.8, configured of 2026-11-15 (16 days old; source: ecb): euro",
		"2 models priced in USD are billed in CNY at 7.1, configured of 2026-11-01 (30 days old; source: treasury): gpt-4o-mini, haiku",
	}
	if !slices.Equal(notes, want) {
		t.Errorf("notes =\n%q\nwant\n%q", notes, want)
	}
}

// TestRequestHash checks the hash that tells a replayed admin call from a
// new one: the same call with its body spaced differently is the same
// call; another operation or body is not.
func TestRequestHash(t *testing.T) {
	h := price.RequestHash("set", []byte(`{"model":"m"}`))
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not hex SHA-256", h)
	}
	tests := []struct {
		op, body string
		same     bool
	}{
		{"set", "  {\"model\":\"m\"}\n", true},
		{"import", `{"model":"m"}`, false},
		{"set", `{"model":"n"}`, false},
		{"se", "t\x00{\"model\":\"m\"}", false},
	}
	for _, tc := range tests {
		if got := price.RequestHash(tc.op, []byte(tc.body)); (got == h) != tc.same {
			t.Errorf("RequestHash(%q, %q) == RequestHash(set, {\"model\":\"m\"}): %v, want %v", tc.op, tc.body, got == h, tc.same)
		}
	}
}
