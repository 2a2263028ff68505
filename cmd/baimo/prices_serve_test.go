package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// fakeOpenAI answers every chat completion with 1,000,000 prompt tokens and
// 1,000 completion tokens, so that a rated cost is easy to check.
func fakeOpenAI(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000000,"completion_tokens":1000,"total_tokens":1001000}}`, req.Model)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// servePriced starts `baimo serve` with one OpenAI-format channel on a fake
// upstream for models, no exchange rates configured (the default CNY
// gateway), and returns its URL, a user key and a stop function that returns
// the usage records written.
func servePriced(t *testing.T, models ...string) (base, key string, stop func() []usage.Record) {
	t.Helper()
	up, _ := fakeOpenAI(t)
	dir := t.TempDir()
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	t.Setenv("FAKE_KEY", "sk-fake")
	cfg := filepath.Join(dir, "c.yaml")
	conf := fmt.Sprintf("sim: {enabled: false}\nchannels:\n  - {name: fake, kind: openai, base_url: %q, api_key: \"${FAKE_KEY}\", models: [%s]}\n",
		up.URL+"/v1", strings.Join(models, ", "))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	base, done := startServe(t, ctx, "--data", dir, "--config", cfg)
	req, _ := http.NewRequest("POST", base+"/admin/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	var recs []usage.Record
	stopped := false
	stop = func() []usage.Record {
		if !stopped {
			stopped = true
			cancel()
			recs = stoppedRecords(t, done, dir)
		}
		return recs
	}
	t.Cleanup(func() { stop() })
	return base, k.Key, stop
}

func chat(t *testing.T, base, key, model string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"max_tokens":1000}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Status + ": " + string(body)
}

// TestZeroConfigServesUSDModels: a CNY gateway with no exchange-rate
// configuration answers OpenAI, Anthropic and Gemini models (USD-only
// prices) at the catalog's reference rate, which each record names.
func TestZeroConfigServesUSDModels(t *testing.T) {
	models := []string{"gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"}
	base, key, stop := servePriced(t, models...)
	for _, m := range models {
		if st, status := chat(t, base, key, m); st != 200 {
			t.Fatalf("%s: %s", m, status)
		}
	}
	recs := stop()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	// 1M input + 1K output at the USD list, times the reference rate 6.9858.
	want := map[string]string{"gpt-4o-mini": "1.05206148", "claude-haiku-4-5": "7.020729", "gemini-2.5-flash": "2.1132045"}
	for _, r := range recs {
		lines, err := price.ParseLines(r.Lines, money.Currency(r.Currency), r.PriceVersion)
		if err != nil || len(lines) == 0 {
			t.Fatalf("%s lines: %v %s", r.Model, err, r.Lines)
		}
		got := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%d.%09d", r.CostNanos/1e9, r.CostNanos%1e9), "0"), ".")
		if r.Currency != "CNY" || got != strings.TrimRight(want[r.Model], "0") {
			t.Errorf("%s: cost %s %s, want %s CNY", r.Model, got, r.Currency, want[r.Model])
		}
		if lines[0].ExchangeRate.String() != "6.9858" || !strings.Contains(lines[0].RateSource, "menafn.com") {
			t.Errorf("%s: line names rate %s from %q", r.Model, lines[0].ExchangeRate, lines[0].RateSource)
		}
	}
}

// TestPricesSetThenRequest: `baimo prices set` through the admin API, then
// a request is rated at the new price, and `prices history` shows the
// operator's version next to the catalog's.
func TestPricesSetThenRequest(t *testing.T) {
	base, key, stop := servePriced(t, "gpt-4o-mini", "house-7b")
	if st, status := chat(t, base, key, "house-7b"); st != 400 {
		t.Fatalf("unpriced model answered %s", status)
	}
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"prices", "set", "gpt-4o-mini", "--input", "1", "--output", "2", "--currency", "CNY",
		"--from", "now", "--url", base, "--idempotency-key", "change-1"}, &out, &errb); code != 0 {
		t.Fatalf("prices set: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "Added 1 operator price versions") {
		t.Errorf("set output: %s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"prices", "set", "house-7b", "--vendor", "local", "--input", "0.5", "--output", "1",
		"--currency", "CNY", "--context-window", "32768", "--max-output", "4096", "--url", base}, &out, &errb); code != 0 {
		t.Fatalf("prices set new model: exit %d: %s", code, errb.String())
	}
	for _, m := range []string{"gpt-4o-mini", "house-7b"} {
		if st, status := chat(t, base, key, m); st != 200 {
			t.Fatalf("%s after set: %s", m, status)
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"prices", "history", "gpt-4o-mini", "--url", base}, &out, &errb); code != 0 {
		t.Fatalf("history: %s", errb.String())
	}
	for _, want := range []string{"CNY list", "[operator]", "input           1 CNY per 1M", "USD list", "0.15 USD per 1M"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("history lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"prices", "history", "house-7b", "--url", base}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "house-7b (local)") {
		t.Errorf("history of an operator-added model: exit %d %s %s", code, out.String(), errb.String())
	}
	recs := stop()
	costs := map[string]int64{}
	for _, r := range recs {
		if r.Status == 200 {
			costs[r.Model] = r.CostNanos
		}
	}
	// 1M in at 1 + 1K out at 2 = 1.002 CNY; house-7b: 0.5 + 0.001 = 0.501 CNY.
	if costs["gpt-4o-mini"] != 1_002_000_000 || costs["house-7b"] != 501_000_000 {
		t.Errorf("costs = %v, want gpt-4o-mini 1.002 and house-7b 0.501 CNY", costs)
	}
}

// TestReadmeAddModel runs the README's "Add a model and its price" commands
// as written, against a gateway that serves house-7b.
func TestReadmeAddModel(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "### Add a model and its price")
	if !ok {
		t.Fatal("README.md has no \"Add a model and its price\" section")
	}
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	base, key, _ := servePriced(t, "house-7b")
	t.Setenv("BAIMO_URL", base)
	var history string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		args, ok := strings.CutPrefix(line, "go run ./cmd/baimo ")
		if !ok {
			t.Fatalf("README line %q is not a baimo command", line)
		}
		var out, errb strings.Builder
		if code := run(context.Background(), strings.Fields(args), &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", line, code, out.String(), errb.String())
		}
		if strings.Contains(line, "prices history") {
			history = out.String()
		}
	}
	if !strings.Contains(history, "house-7b (local): 1 versions") || !strings.Contains(history, "[operator]") {
		t.Errorf("history after the first set:\n%s", history)
	}
	if st, status := chat(t, base, key, "house-7b"); st != 200 {
		t.Errorf("house-7b after the README's commands: %s", status)
	}
}
