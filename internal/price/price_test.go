package price_test

import (
	"encoding/json"
	"errors"
	"flag"
	"go/parser"
	"go/token"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

var seedFlag = flag.Int64("seed", 0, "seed for the randomised property tests (0: from the clock)")

const validFile = `vendor: acme
models:
  - name: acme-1
    versions:
      - effective_from: "2025-01-01T00:00:00+08:00"
        currency: CNY
        unit: per_1m
        source: https://example.invalid/prices
        prices: {input: "1", output: "2"}
`

func TestLoadErrors(t *testing.T) {
	const head = "vendor: acme\nmodels:\n  - name: acme-1\n    versions:\n"
	ver := func(body string) string {
		return head + "      - effective_from: \"2025-01-01T00:00:00+08:00\"\n        currency: CNY\n        source: s\n" + body
	}
	tests := []struct {
		name string
		data string
		want string // substring of the error, after "f.yaml: "
	}{
		{"malformed yaml", "vendor: [", "f.yaml: yaml:"},
		{"unknown top field", "vendor: acme\nprice: 1\n", "field price not found"},
		{"unknown unit", ver("        unit: per_2k\n        prices: {input: \"1\"}\n"), "f.yaml: models[0] (acme-1).versions[0].unit: unknown unit \"per_2k\""},
		{"missing unit", ver("        prices: {input: \"1\"}\n"), "versions[0].unit: required"},
		{"negative price", ver("        unit: per_1m\n        prices: {input: \"-1\"}\n"), "versions[0].prices.input: negative price"},
		{"float price", ver("        unit: per_1m\n        prices: {input: \"1e-3\"}\n"), "versions[0].prices.input: money: parse"},
		{"unknown kind", ver("        unit: per_1m\n        prices: {inputs: \"1\"}\n"), "versions[0].prices.inputs: unknown price kind"},
		{"no prices", ver("        unit: per_1m\n"), "versions[0].prices: no price given"},
		{"no zone", head + "      - effective_from: \"2025-01-01T00:00:00\"\n        currency: CNY\n        unit: per_1m\n        source: s\n        prices: {input: \"1\"}\n", "versions[0].effective_from: want RFC 3339"},
		{"bad currency", head + "      - effective_from: \"2025-01-01T00:00:00Z\"\n        currency: yuan\n        unit: per_1m\n        source: s\n        prices: {input: \"1\"}\n", "versions[0].currency"},
		{"overlap", head +
			"      - {effective_from: \"2025-01-01T00:00:00+08:00\", currency: CNY, unit: per_1m, source: s, prices: {input: \"1\"}}\n" +
			"      - {effective_from: \"2024-12-31T16:00:00Z\", currency: CNY, unit: per_1m, source: s, prices: {input: \"2\"}}\n",
			"models[0] (acme-1).versions: two CNY versions start at"},
		{"tiers descend", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        tiers:\n          - {above: 100, prices: {input: \"2\"}}\n          - {above: 50, prices: {input: \"3\"}}\n"), "versions[0].tiers[1].above"},
		{"negative tier", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        tiers:\n          - {above: -5, prices: {input: \"2\"}}\n"), "versions[0].tiers[0].above"},
		{"bad zone", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        schedule: {zone: Mars/Base, windows: [{name: p, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"), "versions[0].schedule.zone: unknown time zone"},
		{"bad window", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        schedule: {zone: Asia/Shanghai, windows: [{name: p, from: \"10:00\", to: \"09:00\", multiplier: \"2\"}]}\n"), "schedule.windows[0].to"},
		{"unknown calendar", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        schedule: {zone: Asia/Shanghai, calendar: xx, windows: [{name: p, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"), "schedule.calendar: unknown calendar"},
		{"zero multiplier", ver("        unit: per_1m\n        prices: {input: \"1\"}\n        batch: \"0\"\n"), "versions[0].batch"},
		{"free with prices", ver("        unit: per_1m\n        free: true\n        prices: {input: \"1\"}\n"), "versions[0].free"},
		{"no vendor", "models:\n  - name: x\n", "f.yaml: vendor: required"},
		{"no versions", "vendor: a\nmodels:\n  - name: x\n", "models[0] (x).versions: at least one"},
		{"two documents", validFile + "---\nvendor: b\n", "more than one YAML document"},
		{"bad holiday", "calendars:\n  - name: cn\n    holidays: [{name: x, from: \"2026-02-30\"}]\n", "calendars[0]: holidays[0].from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(tt.data)})
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var le *price.LoadError
			if !errors.As(err, &le) || le.File != "f.yaml" {
				t.Fatalf("error %v is not a LoadError naming the file", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(validFile)}); err != nil {
		t.Fatalf("valid file: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(validFile))
	f.Add([]byte("vendor: [\n"))
	f.Add([]byte(strings.Replace(validFile, "per_1m", "per_1z", 1)))
	f.Add([]byte(strings.Replace(validFile, `"1"`, `"-1"`, 1)))
	f.Add([]byte(validFile + "        tiers: [{above: 10, prices: {output: \"3\"}}]\n        schedule: {zone: UTC, windows: [{name: p, days: [mon], from: \"00:00\", to: \"24:00\", multiplier: \"2\"}]}\n"))
	f.Add([]byte("calendars: [{name: c, holidays: [{name: h, from: \"2026-01-01\", to: \"2026-01-03\"}]}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := price.LoadFiles([]string{"fuzz.yaml"}, map[string][]byte{"fuzz.yaml": data})
		if err != nil {
			var le *price.LoadError
			if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever loads must rate without panicking.
		at := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
		for _, m := range c.Models() {
			_, _ = c.Rate(usage.Usage{Input: 100, CachedInput: 10, Output: 50, Reasoning: 5, SearchCalls: 1},
				price.RateContext{Model: m.Name, At: at, Currency: money.CNY}, nil)
		}
	})
}

func TestAddVersion(t *testing.T) {
	c, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(validFile)})
	if err != nil {
		t.Fatal(err)
	}
	spec := price.VersionSpec{Model: "acme-1", EffectiveFrom: "2025-06-01T00:00:00+08:00", Currency: "CNY",
		Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "0.5"}, "output": {Price: "1"}}}
	if _, err := c.AddVersion(spec); err != nil {
		t.Fatal(err)
	}
	// Never edit history: the same or an earlier start is refused.
	for _, from := range []string{"2025-06-01T00:00:00+08:00", "2025-03-01T00:00:00+08:00"} {
		s := spec
		s.EffectiveFrom = from
		if _, err := c.AddVersion(s); !errors.Is(err, price.ErrHistory) {
			t.Errorf("AddVersion from %s: err = %v, want ErrHistory", from, err)
		}
	}
	bad := spec
	bad.EffectiveFrom, bad.Unit = "2025-07-01T00:00:00+08:00", "per_2k"
	if _, err := c.AddVersion(bad); err == nil || !strings.Contains(err.Error(), "unit") {
		t.Errorf("bad unit: err = %v", err)
	}
	// A new model needs a vendor.
	nm := spec
	nm.Model = "custom-1"
	if _, err := c.AddVersion(nm); err == nil {
		t.Error("new model without vendor accepted")
	}
	nm.Vendor = "custom"
	if _, err := c.AddVersion(nm); err != nil {
		t.Fatal(err)
	}
	rate := func(model string, at time.Time) int64 {
		t.Helper()
		r, err := c.Rate(usage.Usage{Input: 1_000_000, Output: 1_000_000}, price.RateContext{Model: model, At: at, Currency: money.CNY}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Total.Nanos
	}
	if got := rate("acme-1", time.Date(2025, 5, 31, 15, 59, 59, 0, time.UTC)); got != 3*money.Scale {
		t.Errorf("before the new version: %d", got)
	}
	if got := rate("acme-1", time.Date(2025, 5, 31, 16, 0, 0, 0, time.UTC)); got != money.Scale*3/2 {
		t.Errorf("from the new version: %d", got)
	}
	if got := rate("custom-1", time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)); got != money.Scale*3/2 {
		t.Errorf("new model: %d", got)
	}
}

// TestConcurrentAddAndRate runs readers while versions are added (run with -race).
func TestConcurrentAddAndRate(t *testing.T) {
	c, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(validFile)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]price.Line, 0, 10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Rate(usage.Usage{Input: 10, Output: 10}, price.RateContext{Model: "acme-1", At: time.Now(), Currency: money.CNY}, dst); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	base := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 50; i++ {
		spec := price.VersionSpec{Model: "acme-1", EffectiveFrom: base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339),
			Currency: "CNY", Unit: "per_1m", Source: "admin", Prices: map[string]price.PriceSpec{"input": {Price: "1"}, "output": {Price: "2"}}}
		if _, err := c.AddVersion(spec); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	m, _ := c.Model("acme-1")
	if n := len(m.Lists[money.CNY]); n != 51 {
		t.Errorf("versions = %d, want 51", n)
	}
}

func TestHistoryQwenLong(t *testing.T) {
	c := loadCatalog(t)
	h, err := c.History("qwen-long")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range h {
		if !e.Version.EffectiveFrom.Equal(time.Date(2024, 5, 20, 16, 0, 0, 0, time.UTC)) {
			continue
		}
		found = true
		got := map[string]string{}
		for _, ch := range e.Changes {
			got[ch.Kind.String()] = ch.Percent
		}
		if got["input"] != "-97.5%" || got["output"] != "-90%" {
			t.Errorf("qwen-long 2024-05-21 changes = %v, want input -97.5%% and output -90%%", got)
		}
	}
	if !found {
		t.Fatal("no qwen-long version on 2024-05-21")
	}
	// A restatement per 1M instead of per 1K is not a change.
	last := h[len(h)-1]
	for _, ch := range last.Changes {
		if ch.Percent != "" && ch.Percent != "+0%" {
			t.Errorf("per-1M restatement shows change %+v", ch)
		}
	}
	if _, err := c.History("nope"); !errors.Is(err, price.ErrNoPrice) {
		t.Errorf("unknown model: err = %v", err)
	}
}

func TestCompare(t *testing.T) {
	c := loadCatalog(t)
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ranked, skipped, err := c.Compare(price.CompareOptions{Workload: price.Workload{Input: 1_000_000, Cached: 300_000, Output: 200_000},
		At: at, Currency: money.CNY})
	if err != nil {
		t.Fatal(err)
	}
	if len(ranked) < 10 {
		t.Fatalf("only %d models ranked", len(ranked))
	}
	for i := 1; i < len(ranked); i++ {
		if ranked[i].Rated.Total.Nanos < ranked[i-1].Rated.Total.Nanos {
			t.Fatalf("not sorted at %d", i)
		}
	}
	// USD-only models are skipped without a rate, with the reason.
	sawUSD := false
	for _, s := range skipped {
		if s.Model == "claude-haiku-4-5" && errors.Is(s.Err, price.ErrNoRate) {
			sawUSD = true
		}
	}
	if !sawUSD {
		t.Error("claude-haiku-4-5 not skipped for want of a rate")
	}
	// sim-chat: 1M in at 2 + 200K out at 8 = 3.6 CNY, per 1.2M tokens = 3 CNY per 1M.
	for _, r := range ranked {
		if r.Model.Name == "sim-chat" && (r.Rated.Total.Nanos != 3_600_000_000 || r.PerMillion.Nanos != 3_000_000_000) {
			t.Errorf("sim-chat total %v per million %v", r.Rated.Total, r.PerMillion)
		}
	}
}

func TestBuys(t *testing.T) {
	c := loadCatalog(t)
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) // a Saturday: off-peak
	b, err := c.Buys("deepseek-flash", money.New(money.Scale, money.CNY), at, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1 CNY at 1 CNY per 1M input = 1M tokens; at 4 per 1M output = 250K tokens.
	if b.InputTokens != 1_000_000 || b.OutputTokens != 250_000 {
		t.Errorf("buys = %d in, %d out", b.InputTokens, b.OutputTokens)
	}
	// 1M tokens at 0.63 tokens per character = 1,587,302 characters.
	if b.InputZhChars != 1_587_302 {
		t.Errorf("zh chars = %d", b.InputZhChars)
	}
	if _, err := c.Buys("ernie-speed-8k", money.New(money.Scale, money.CNY), at, nil); err == nil {
		t.Error("buys on a free model gave no error")
	}
}

func TestRateAllocatesNothing(t *testing.T) {
	c := loadCatalog(t)
	dst := make([]price.Line, 0, 16)
	rc := price.RateContext{Model: "deepseek-flash", At: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), Currency: money.CNY}
	u := usage.Usage{Input: 100_000, CachedInput: 80_000, Output: 2000, SearchCalls: 2}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Rate(u, rc, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Rate allocates %v times per call", allocs)
	}
}

func TestBadUsage(t *testing.T) {
	c := loadCatalog(t)
	rc := price.RateContext{Model: "sim-chat", At: time.Now(), Currency: money.CNY}
	for _, u := range []usage.Usage{{Input: -1}, {Input: 10, CachedInput: 11}, {Output: 1, Reasoning: 2}} {
		if _, err := c.Rate(u, rc, nil); !errors.Is(err, price.ErrBadUsage) {
			t.Errorf("Rate(%+v): err = %v", u, err)
		}
	}
}

// TestRatingProperties checks, on random usage, models and times, that the
// lines add up to the total and that adding tokens never lowers the cost.
func TestRatingProperties(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	c := loadCatalog(t)
	rates, err := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2020-01-01T00:00:00Z", rate: "7.1234"}`))
	if err != nil {
		t.Fatal(err)
	}
	models := c.Models()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	end := time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
	dst := make([]price.Line, 0, 16)
	cost := func(u usage.Usage, rc price.RateContext) (int64, bool) {
		r, err := c.Rate(u, rc, dst)
		if err != nil {
			return 0, false
		}
		var sum int64
		for _, l := range r.Lines {
			sum += l.Amount.Nanos
		}
		if sum != r.Total.Nanos {
			t.Fatalf("seed %d: %s %+v: lines sum to %d, total %d", seed, rc.Model, u, sum, r.Total.Nanos)
		}
		return r.Total.Nanos, true
	}
	rated := 0
	for i := 0; i < 3000; i++ {
		m := models[rng.Intn(len(models))]
		cur := money.CNY
		if rng.Intn(2) == 0 {
			cur = money.USD
		}
		rc := price.RateContext{Model: m.Name, At: time.Unix(start+rng.Int63n(end-start), 0), Currency: cur,
			Rates: rates, Batch: rng.Intn(4) == 0}
		in := rng.Int63n(400_000)
		cached := rng.Int63n(in + 1)
		out := rng.Int63n(50_000)
		u := usage.Usage{Input: in, CachedInput: cached, Output: out, Reasoning: rng.Int63n(out + 1)}
		if m.Kind != "chat" {
			u = usage.Usage{Input: in, Images: rng.Int63n(5), AudioSeconds: rng.Int63n(500), Characters: rng.Int63n(5000)}
		}
		base, ok := cost(u, rc)
		if !ok {
			continue
		}
		rated++
		d := 1 + rng.Int63n(10_000)
		more := []usage.Usage{u, u, u}
		more[0].Input += d                                              // uncached input
		more[1].Output += d                                             // output
		more[2].Input, more[2].CachedInput = u.Input+d, u.CachedInput+d // cached input
		for j, mu := range more {
			if got, ok := cost(mu, rc); ok && got < base {
				t.Fatalf("seed %d: %s at %s: adding %d tokens (case %d) lowered the cost %d -> %d", seed, m.Name,
					rc.At.Format(time.RFC3339), d, j, base, got)
			}
		}
	}
	if rated < 500 {
		t.Errorf("seed %d: only %d of 3000 random requests rated", seed, rated)
	}
}

func TestLineJSONRoundTrip(t *testing.T) {
	c := loadCatalog(t)
	rates, _ := price.ParseExchangeRates([]byte(`- {from: USD, to: CNY, effective_from: "2020-01-01T00:00:00Z", rate: "7.1234"}`))
	r, err := c.Rate(usage.Usage{Input: 1000, CachedInput: 100, Output: 10}, price.RateContext{Model: "ernie-4.5-turbo",
		At: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), Currency: money.USD, Rates: rates}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r.Lines)
	if err != nil {
		t.Fatal(err)
	}
	var back []price.Line
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(r.Lines) {
		t.Fatalf("round trip: %d lines, want %d", len(back), len(r.Lines))
	}
	for i := range back {
		if back[i] != r.Lines[i] {
			t.Errorf("line %d: %+v, want %+v (json %s)", i, back[i], r.Lines[i], b)
		}
	}
}

// TestVersionSpecJSON checks the admin API's form of a version: prices as
// strings or number literals (kept exact), objects for other units.
func TestVersionSpecJSON(t *testing.T) {
	c, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(validFile)})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"acme-1","effective_from":"2026-01-01T00:00:00Z","currency":"CNY","unit":"per_1k","source":"admin",
		"prices":{"input":"0.0005","output":0.002,"search_call":{"price":"5","per":1000}}}`
	var spec price.VersionSpec
	if err := json.Unmarshal([]byte(body), &spec); err != nil {
		t.Fatal(err)
	}
	v, err := c.AddVersion(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := price.Prices{}
	want[price.KindInput] = price.Price{Nanos: 500_000, Per: 1000}
	want[price.KindOutput] = price.Price{Nanos: 2_000_000, Per: 1000}
	want[price.KindSearchCall] = price.Price{Nanos: 5 * money.Scale, Per: 1000}
	if v.Prices != want {
		t.Errorf("prices = %+v, want %+v", v.Prices, want)
	}
}

// TestPriceSpecJSON checks each JSON form of one price in the admin API: a
// string, a number literal kept exactly as written, an object; input with
// no value (as a caller of UnmarshalJSON may pass) is an error, not a panic.
func TestPriceSpecJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    price.PriceSpec
		wantErr bool
	}{
		{`"0.0005"`, price.PriceSpec{Price: "0.0005"}, false},
		{` 0.10 `, price.PriceSpec{Price: "0.10"}, false},
		{`1e-3`, price.PriceSpec{Price: "1e-3"}, false},
		{`{"price":"5","per":1000}`, price.PriceSpec{Price: "5", Per: 1000}, false},
		{``, price.PriceSpec{}, true},
		{`   `, price.PriceSpec{}, true},
		{`{"price":5`, price.PriceSpec{}, true},
	}
	for _, tc := range tests {
		var got price.PriceSpec
		err := got.UnmarshalJSON([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("UnmarshalJSON(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestDomainImports keeps the domain packages free of transport and storage.
func TestDomainImports(t *testing.T) {
	for _, dir := range []string{".", "../money"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				switch p := strings.Trim(imp.Path.Value, `"`); {
				case p == "net/http", p == "database/sql", strings.HasPrefix(p, "baimo/internal/store"), strings.HasPrefix(p, "baimo/internal/httpapi"):
					t.Errorf("%s imports %s", f, p)
				}
			}
		}
	}
}
