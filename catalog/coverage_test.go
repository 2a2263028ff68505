package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"baimo/internal/money"
	"baimo/internal/price"
)

// litellmPaths are where LiteLLM's public price table may be: the
// workspace's shared data beside the repository (shared/data/README.md says
// where it comes from), or beside a worktree's parent; BAIMO_LITELLM_PRICES
// names another copy.
var litellmPaths = []string{
	filepath.Join("..", "..", "shared", "data", "litellm_model_prices.json"),
	filepath.Join("..", "..", "..", "shared", "data", "litellm_model_prices.json"),
}

// findLiteLLM returns the first copy of the table that exists.
func findLiteLLM() (string, []byte, error) {
	paths := litellmPaths
	if p := os.Getenv("BAIMO_LITELLM_PRICES"); p != "" {
		paths = []string{p}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return p, b, err
	}
	return strings.Join(paths, " or "), nil, fs.ErrNotExist
}

// litellmSnapshot is the date of that table's content: both catalogs are
// compared at noon that day.
var litellmSnapshot = time.Date(2026, 7, 24, 12, 0, 0, 0, time.UTC)

// litellmProviders are the table's providers of the ten vendors baimo
// prices, with the prefix their keys may carry.
var litellmProviders = map[string]string{
	"openai": "openai/", "anthropic": "", "gemini": "gemini/", "deepseek": "deepseek/", "dashscope": "dashscope/",
	"volcengine": "volcengine/", "moonshot": "moonshot/", "zai": "zai/", "tencent": "tencent/",
}

type litellmEntry struct {
	Provider string          `json:"litellm_provider"`
	Mode     string          `json:"mode"`
	Input    json.Number     `json:"input_cost_per_token"`
	Output   json.Number     `json:"output_cost_per_token"`
	Cached   json.Number     `json:"cache_read_input_token_cost"`
	Tiered   []litellmTiered `json:"tiered_pricing"`
}

type litellmTiered struct {
	Input  json.Number `json:"input_cost_per_token"`
	Output json.Number `json:"output_cost_per_token"`
	Cached json.Number `json:"cache_read_input_token_cost"`
}

// difference documents where baimo's USD price of a model differs from
// LiteLLM's on the snapshot date, and why (testdata/litellm_differences.yaml).
type difference struct {
	Key     string `yaml:"key"` // the LiteLLM table's key
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"`
	LiteLLM string `yaml:"litellm"` // USD per million tokens
	Baimo   string `yaml:"baimo"`
	Reason  string `yaml:"reason"`
	Source  string `yaml:"source"`
}

// coverage is the result of comparing the catalog with LiteLLM's table.
type coverage struct {
	entries, direct, alias, excluded int
	compared, agree, differ          int
	missing, problems                []string
}

// Figure is the sentence catalog/README.md publishes.
func (c coverage) Figure() string {
	return fmt.Sprintf("%d of %d LiteLLM chat and embedding entries of the ten vendors covered: %d priced directly, %d through the alias table, %d excluded with a reason; "+
		"%d USD prices compared on the snapshot date, %d agree, %d differ with the reason documented",
		c.direct+c.alias+c.excluded, c.entries, c.direct, c.alias, c.excluded, c.compared, c.agree, c.differ)
}

// TestLiteLLMCoverage checks that every chat and embedding entry of the ten
// vendors in LiteLLM's table is priced by the catalog (directly or by alias)
// or excluded with a reason, that where both price a model in USD on the
// table's date they agree or the difference is documented, and that the
// figure published in README.md is current.
func TestLiteLLMCoverage(t *testing.T) {
	path, raw, err := findLiteLLM()
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("LiteLLM's table is not at %s (it lives in the workspace's shared data, beside the repository; or set BAIMO_LITELLM_PRICES): coverage not checked", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	diffs := loadDifferences(t)
	cov := compareLiteLLM(t, c, path, raw, diffs)
	for _, p := range cov.problems {
		t.Error(p)
	}
	if len(cov.missing) > 0 {
		t.Errorf("%d LiteLLM entries neither priced nor excluded (add a price, an alias or an exclusion with its reason):\n  %s",
			len(cov.missing), strings.Join(cov.missing, "\n  "))
	}
	for key, d := range diffs {
		if !d.used {
			t.Errorf("testdata/litellm_differences.yaml: %s %s: no such difference any more (remove the entry)", key.name, key.kind)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.Join(bytes.Fields(readme), []byte(" ")), []byte(cov.Figure())) {
		t.Errorf("README.md does not publish the current coverage; write:\n%s", cov.Figure())
	}
	t.Log(cov.Figure())
}

type diffKey struct{ name, kind string }

type usedDifference struct {
	difference
	used bool
}

func loadDifferences(t *testing.T) map[diffKey]*usedDifference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "litellm_differences.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var list []difference
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("testdata/litellm_differences.yaml: %v", err)
	}
	out := map[diffKey]*usedDifference{}
	for _, d := range list {
		if d.Reason == "" || d.Source == "" {
			t.Errorf("testdata/litellm_differences.yaml: %s %s: a difference needs its reason and source", d.Key, d.Kind)
		}
		out[diffKey{d.Key, d.Kind}] = &usedDifference{difference: d}
	}
	return out
}

func compareLiteLLM(t *testing.T, c *price.Catalog, path string, raw []byte, diffs map[diffKey]*usedDifference) coverage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // exact decimals: no float64 on a price
	var table map[string]json.RawMessage
	if err := dec.Decode(&table); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cov coverage
	for _, key := range keys {
		var e litellmEntry
		d := json.NewDecoder(bytes.NewReader(table[key]))
		d.UseNumber()
		if d.Decode(&e) != nil {
			continue // sample_spec and other non-model keys
		}
		prefix, ok := litellmProviders[e.Provider]
		if !ok || (e.Mode != "chat" && e.Mode != "embedding") {
			continue
		}
		cov.entries++
		name := key
		if prefix != "" {
			name = strings.TrimPrefix(key, prefix)
		}
		m, known := c.Model(name)
		switch _, isAlias := c.Alias(name); {
		case known && isAlias:
			cov.alias++
		case known:
			cov.direct++
		default:
			if _, ok := c.Excluded(name); ok {
				cov.excluded++
			} else {
				cov.missing = append(cov.missing, fmt.Sprintf("%s (%s, %s)", key, e.Provider, e.Mode))
			}
			continue
		}
		if rm, ok := c.Resolve(name, litellmSnapshot); ok {
			m = rm
		}
		v, ok := m.At(money.USD, litellmSnapshot)
		if !ok || v.Retired {
			continue // not priced in USD that day: nothing to compare
		}
		in, out, cached := e.Input, e.Output, e.Cached
		if len(e.Tiered) > 0 {
			in, out, cached = e.Tiered[0].Input, e.Tiered[0].Output, e.Tiered[0].Cached
		}
		kinds := []struct {
			kind string
			n    json.Number
		}{{"input", in}, {"output", out}, {"cached_input", cached}}
		if e.Mode == "embedding" {
			kinds = kinds[:1]
		}
		for _, k := range kinds {
			if k.n == "" {
				continue
			}
			theirs, ok := new(big.Rat).SetString(string(k.n))
			if !ok {
				cov.problems = append(cov.problems, fmt.Sprintf("%s: %s price %q is not a number", key, k.kind, k.n))
				continue
			}
			ours := new(big.Rat) // free: 0
			if !v.Free {
				kind, _ := price.ParseKind(k.kind)
				p := v.Prices[kind]
				if !p.Set() && kind == price.KindCachedInput {
					p = v.Prices[price.KindInput] // cache hits billed as input
				}
				if !p.Set() {
					continue
				}
				ours.SetFrac64(p.Nanos, p.Per*money.Scale)
			}
			cov.compared++
			dk := diffKey{key, k.kind}
			d, documented := diffs[dk]
			if ours.Cmp(theirs) == 0 {
				cov.agree++
				if documented {
					cov.problems = append(cov.problems, fmt.Sprintf("testdata/litellm_differences.yaml: %s %s: the prices agree now", key, k.kind))
					d.used = true
				}
				continue
			}
			perM := func(r *big.Rat) string {
				return strings.TrimRight(strings.TrimRight(new(big.Rat).Mul(r, big.NewRat(1_000_000, 1)).FloatString(9), "0"), ".")
			}
			if !documented {
				cov.problems = append(cov.problems, fmt.Sprintf("%s %s: baimo %s, LiteLLM %s USD per 1M on %s: document the difference in testdata/litellm_differences.yaml",
					key, k.kind, perM(ours), perM(theirs), litellmSnapshot.Format(time.DateOnly)))
				continue
			}
			d.used = true
			cov.differ++
			if d.LiteLLM != perM(theirs) || d.Baimo != perM(ours) {
				cov.problems = append(cov.problems, fmt.Sprintf("testdata/litellm_differences.yaml: %s %s: says baimo %s, LiteLLM %s; now baimo %s, LiteLLM %s",
					key, k.kind, d.Baimo, d.LiteLLM, perM(ours), perM(theirs)))
			}
		}
	}
	return cov
}
