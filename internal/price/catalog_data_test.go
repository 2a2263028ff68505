package price_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
)

// The catalog's model data beside prices: limits and modalities (with their
// ranges), the alias table and exclusions as listed, reference exchange
// rates' text limits, and what a run-time version keeps of a known model.

const dataFile = `vendor: d
models:
  - name: d-1
    context_window: 1000
    max_output: 1000
    modalities: {input: [text, image, audio, video, file], output: [text]}
    versions:
      - {effective_from: "2026-01-01T00:00:00Z", currency: CNY, unit: per_1m, source: s, prices: {input: "1"}}
  - name: d-2
    versions:
      - {effective_from: "2026-01-01T00:00:00Z", currency: CNY, unit: per_1m, source: s, prices: {input: "2"}}
aliases:
  - {name: zz-latest, model: d-2}
  - {name: d-latest, model: d-1, from: "2026-01-01T00:00:00Z"}
  - {name: mm-later, model: d-1, from: "2026-06-01T00:00:00Z"}
exclusions:
  - {name: z-old, reason: retired}
  - {name: a-tuned, reason: fine-tune, note: per tuned model}
  - {name: m-eu, vendor: other, reason: region-only}
`

func dataCatalog(t *testing.T) *price.Catalog { return catalogOf(t, "d.yaml", dataFile) }

func TestLimitsAndModalities(t *testing.T) {
	head := "vendor: v\nmodels:\n  - name: m\n"
	ver := "    versions: [{effective_from: \"2026-01-01T00:00:00Z\", currency: CNY, unit: per_1m, source: s, prices: {input: \"1\"}}]\n"
	tests := []struct {
		name, fields, want string
	}{
		{"none", "", ""},
		{"a window and an output of the same size", "    context_window: 1000\n    max_output: 1000\n", ""},
		{"output above the window", "    context_window: 1000\n    max_output: 1001\n", "max_output: 1001 is more than the context window 1000"},
		{"an output without a window", "    max_output: 100000000\n", ""},
		{"window at the limit", "    context_window: 100000000\n", ""},
		{"window past the limit", "    context_window: 100000001\n", "context_window: 100000001 out of range"},
		{"negative window", "    context_window: -1\n", "context_window: -1 out of range"},
		{"output past the limit", "    max_output: 100000001\n", "max_output: 100000001 out of range"},
		{"negative output", "    max_output: -1\n", "max_output: -1 out of range"},
		{"every input modality", "    modalities: {input: [text, image, audio, video, file], output: [text]}\n", ""},
		{"every output modality", "    modalities: {input: [text], output: [text, image, audio, video, embedding, score]}\n", ""},
		{"no input modality", "    modalities: {input: [], output: [text]}\n", "modalities.input: want 1 to 5 modalities"},
		{"too many input modalities", "    modalities: {input: [text, image, audio, video, file, text], output: [text]}\n", "modalities.input: want 1 to 5"},
		{"too many output modalities", "    modalities: {input: [text], output: [text, image, audio, video, embedding, score, text]}\n",
			"modalities.output: want 1 to 6"},
		{"unknown output modality", "    modalities: {input: [text], output: [text, smell]}\n", "modalities.output[1]: unknown modality \"smell\""},
		{"limits source too long", "    limits_source: \"" + strings.Repeat("s", 2049) + "\"\n", "limits_source: longer than 2048"},
	}
	for _, tt := range tests {
		err := loadYAML(head + tt.fields + ver)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	c := dataCatalog(t)
	info, ok := c.Info("d-latest", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if !ok || info.Name != "d-1" || info.ContextWindow != 1000 || info.MaxOutput != 1000 || len(info.InputModalities) != 5 ||
		!slices.Equal(info.OutputModalities, []string{"text"}) {
		t.Errorf("Info(d-latest) = %+v, %v", info, ok)
	}
	v := c.View(price.ViewOptions{At: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)})
	if m := v.Models[0]; m.Modalities == nil || len(m.Modalities.Input) != 5 || m.ContextWindow != 1000 || m.MaxOutput != 1000 {
		t.Errorf("view of d-1 = %+v", m)
	}
	if m := v.Models[1]; m.Modalities != nil || m.ContextWindow != 0 || m.MaxOutput != 0 {
		t.Errorf("a model without limits shows some: %+v", m)
	}
	// The alias table's names show with the model they name.
	if got := v.Models[0].Aliases; !slices.Equal(got, []string{"d-latest", "mm-later"}) {
		t.Errorf("aliases of d-1 = %v", got)
	}
}

// TestRunTimeVersionKeepsModelData: a version added at run time without
// limits keeps the model's; one with limits or a kind changes them.
func TestRunTimeVersionKeepsModelData(t *testing.T) {
	c := dataCatalog(t)
	spec := price.VersionSpec{Model: "d-1", EffectiveFrom: "2026-03-01T00:00:00Z", Currency: "CNY", Unit: "per_1m", Source: "admin",
		Prices: map[string]price.PriceSpec{"input": {Price: "3"}}}
	if _, err := c.AddVersion(spec); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Model("d-1"); m.ContextWindow != 1000 || m.MaxOutput != 1000 || len(m.InputModalities) != 5 || m.Kind != "chat" {
		t.Errorf("after a version without model data: %+v", m)
	}
	spec.EffectiveFrom, spec.ContextWindow, spec.MaxOutput, spec.Kind = "2026-04-01T00:00:00Z", 2000, 500, "embedding"
	spec.Modalities = &price.ModalitiesSpec{Input: []string{"text"}, Output: []string{"embedding"}}
	if _, err := c.AddVersion(spec); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Model("d-1"); m.ContextWindow != 2000 || m.MaxOutput != 500 || m.Kind != "embedding" ||
		!slices.Equal(m.OutputModalities, []string{"embedding"}) {
		t.Errorf("after a version with model data: %+v", m)
	}
	bad := spec
	bad.EffectiveFrom, bad.Kind = "2026-05-01T00:00:00Z", "video"
	if _, err := c.AddVersion(bad); err == nil || !strings.Contains(err.Error(), "unknown model kind") {
		t.Errorf("unknown kind: err = %v", err)
	}
	bad.Kind, bad.MaxOutput = "", 3000
	if _, err := c.AddVersion(bad); err == nil || !strings.Contains(err.Error(), "more than the context window") {
		t.Errorf("bad limits: err = %v", err)
	}
	// A new model under an alias table name, without a vendor, takes the
	// vendor of the model the alias names.
	nm := price.VersionSpec{Model: "zz-latest", EffectiveFrom: "2026-03-01T00:00:00Z", Currency: "CNY", Unit: "per_1m", Source: "admin",
		Prices: map[string]price.PriceSpec{"input": {Price: "9"}}}
	v, err := c.AddVersion(nm)
	if err != nil || v.Vendor != "d" || v.Model != "zz-latest" {
		t.Fatalf("a model under an alias's name = %+v, %v", v, err)
	}
	if m, ok := c.Model("zz-latest"); !ok || m.Name != "zz-latest" || m.Vendor != "d" {
		t.Errorf("the new model = %+v, %v; it wins over the alias", m, ok)
	}
	if _, err := c.AddVersion(price.VersionSpec{Model: "brand-new", EffectiveFrom: "2026-03-01T00:00:00Z", Currency: "CNY",
		Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "9"}}}); err == nil {
		t.Error("a new model with no vendor and no alias was added")
	}
}

func TestAliasAndExclusionLists(t *testing.T) {
	c := dataCatalog(t)
	var names []string
	for _, a := range c.Aliases() {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"d-latest", "mm-later", "zz-latest"}) {
		t.Errorf("Aliases() = %v, want sorted by name", names)
	}
	var ex []string
	for _, e := range c.Exclusions() {
		ex = append(ex, e.Name+"/"+e.Vendor+"/"+e.Reason)
	}
	if !slices.Equal(ex, []string{"a-tuned/d/fine-tune", "m-eu/other/region-only", "z-old/d/retired"}) {
		t.Errorf("Exclusions() = %v, want sorted by name, the file's vendor unless named", ex)
	}
	if _, err := price.LoadFiles([]string{"d.yaml"}, map[string][]byte{"d.yaml": []byte(dataFile +
		"  - {name: z-old, reason: unpriced}\n")}); err == nil || !strings.Contains(err.Error(), "d.yaml: exclusions[3].name: \"z-old\" excluded twice") {
		t.Errorf("an exclusion listed twice: err = %v", err)
	}
	if _, err := price.LoadFiles([]string{"d.yaml"}, map[string][]byte{"d.yaml": []byte(dataFile +
		"  - {name: d-latest, reason: unpriced}\n")}); err == nil || !strings.Contains(err.Error(), "is in the alias table") {
		t.Errorf("an exclusion that is an alias: err = %v", err)
	}
	noVendor := "exclusions: [{name: x, reason: retired}]\n"
	if err := loadYAML(noVendor); err == nil || !strings.Contains(err.Error(), "exclusions[0].vendor: required") {
		t.Errorf("an exclusion without a vendor: err = %v", err)
	}
	// Rating or buying through an alias that names no model yet says so.
	before := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	_, err := c.Buys("d-latest", money.New(money.Scale, money.CNY), before, nil)
	var np *price.NoPriceError
	if !errors.As(err, &np) || !strings.Contains(np.Detail, "an alias that names no model at that time") {
		t.Errorf("Buys through an alias before its first target: err = %v", err)
	}
	_, err = c.Buys("nothing", money.New(money.Scale, money.CNY), before, nil)
	if !errors.As(err, &np) || np.Detail != "model not in the catalog" {
		t.Errorf("Buys of an unknown model: err = %v", err)
	}
	_, err = c.Buys("z-old", money.New(money.Scale, money.CNY), before, nil)
	if !errors.As(err, &np) || np.Detail != "not priced by baimo: retired" {
		t.Errorf("Buys of an excluded model: err = %v", err)
	}
	_, err = c.Buys("a-tuned", money.New(money.Scale, money.CNY), before, nil)
	if !errors.As(err, &np) || np.Detail != "not priced by baimo: fine-tune, per tuned model" {
		t.Errorf("Buys of an excluded model with a note: err = %v", err)
	}
}

// TestReferenceRateTexts: a rate's source and note are at most 2048 bytes.
func TestReferenceRateTexts(t *testing.T) {
	rate := func(field string, n int) string {
		return "- {from: USD, to: CNY, effective_from: \"2026-01-01T00:00:00Z\", rate: \"7\", " + field + ": \"" + strings.Repeat("x", n) + "\"}"
	}
	for _, field := range []string{"source", "note"} {
		if _, err := price.ParseExchangeRates([]byte(rate(field, 2048))); err != nil {
			t.Errorf("%s of 2048 bytes: %v", field, err)
		}
		if _, err := price.ParseExchangeRates([]byte(rate(field, 2049))); err == nil || !strings.Contains(err.Error(), "longer than 2048") {
			t.Errorf("%s of 2049 bytes: err = %v", field, err)
		}
	}
	x, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2026-01-01T00:00:00Z", rate: "7", note: n, unverified: true}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := x.Rates()[0]; r.Note != "n" || !r.Unverified {
		t.Errorf("rate = %+v", r)
	}
	var none *price.ExchangeRates
	if none.Base() != nil || x.Base() != nil || none.Over(x) != x || x.Over(nil) != x || x.Over(x).Base() != x {
		t.Error("Over and Base disagree")
	}
}
