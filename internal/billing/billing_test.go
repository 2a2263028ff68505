package billing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// testCatalog prices three models in CNY per million tokens: "cheap",
// "dear" (with cache writes and reasoning priced apart, dearer than its
// input and output), and "zero" (free).
const testCatalog = `
vendor: test
title: test
models:
  - name: cheap
    kind: chat
    versions:
      - effective_from: "2024-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        prices: {input: "1", output: "2"}
  - name: dear
    kind: chat
    context_window: 32000
    max_output: 8000
    versions:
      - effective_from: "2024-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        prices: {input: "10", output: "20", cache_write_5m: "12.5", cache_write_1h: "20", reasoning: "40"}
  - name: zero
    kind: chat
    versions:
      - effective_from: "2024-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        free: true
`

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func testRater(t *testing.T) *Rater {
	t.Helper()
	cat, err := price.LoadFiles([]string{"test.yaml"}, map[string][]byte{"test.yaml": []byte(testCatalog)})
	if err != nil {
		t.Fatal(err)
	}
	return &Rater{Catalog: cat, Currency: money.CNY}
}

// fakeBooks is a ledger whose holds succeed up to an available balance.
type fakeBooks struct {
	mu          sync.Mutex
	available   int64 // holds above it are refused
	kind        ledger.Kind
	holds       []ledger.HoldRequest
	settled     []usage.Record
	checkpoints []usage.Record
	settleErr   error
}

func (f *fakeBooks) Hold(_ context.Context, r ledger.HoldRequest) (ledger.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Amount.Nanos > f.available {
		return ledger.Hold{}, ledger.ErrInsufficientFunds
	}
	f.available -= r.Amount.Nanos
	f.holds = append(f.holds, r)
	return ledger.Hold{RequestID: r.RequestID, Amount: r.Amount.Nanos, State: ledger.HoldPending}, nil
}

func (f *fakeBooks) Balance(context.Context, string) (ledger.Balance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ledger.Balance{Kind: f.kind, Available: f.available}, nil
}

func (f *fakeBooks) SettleBatch(_ context.Context, ss []ledger.Settlement) ([]ledger.SettleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.settleErr != nil {
		return nil, f.settleErr
	}
	out := make([]ledger.SettleResult, len(ss))
	for i, s := range ss {
		f.settled = append(f.settled, s.Record)
		out[i].RequestID = s.Record.RequestID
	}
	return out, nil
}

func (f *fakeBooks) Sweep(context.Context) (ledger.SweepResult, error) {
	return ledger.SweepResult{}, nil
}

func (f *fakeBooks) Tenant(context.Context, string) (ledger.Tenant, error) {
	return ledger.Tenant{}, ledger.ErrNotFound
}

func (f *fakeBooks) Checkpoint(rec usage.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoints = append(f.checkpoints, rec)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rate is what u costs at model.
func rate(t *testing.T, r *Rater, model string, u usage.Usage) int64 {
	t.Helper()
	got, err := r.Catalog.Rate(u, price.RateContext{Model: model, At: t0, Currency: money.CNY}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got.Total.Nanos
}

// prompt is a PromptCounter of n tokens.
type fixedPrompt struct {
	n     int64
	exact bool
}

func (p fixedPrompt) PromptTokens() (int64, bool) { return p.n, p.exact }

func prompt(n int64, exact bool) PromptCounter { return fixedPrompt{n, exact} }

func TestHoldIsTheWorstCase(t *testing.T) {
	r := testRater(t)
	const p = 1000
	worstDear := func(out int64) int64 { // the prompt written to the 1-hour cache, all output reasoning
		return rate(t, r, "dear", usage.Usage{Input: p, CacheWrite1h: p, Output: out, Reasoning: out})
	}
	for _, tt := range []struct {
		name string
		req  Request
		want int64
	}{
		{"the dearest of the candidates, whatever their order",
			Request{Upstreams: []string{"dear", "cheap"}, MaxOutput: 500}, worstDear(500)},
		{"last candidate dearest", Request{Upstreams: []string{"cheap", "dear"}, MaxOutput: 500}, worstDear(500)},
		{"output times choices", Request{Upstreams: []string{"cheap", "dear"}, MaxOutput: 500, Choices: 3}, worstDear(1500)},
		{"no limit: the default output", Request{Upstreams: []string{"cheap"}},
			rate(t, r, "cheap", usage.Usage{Input: p, Output: 4096})},
		{"no limit: the model's maximum output", Request{Upstreams: []string{"dear"}, Choices: 2}, worstDear(2 * 8000)},
		{"embeddings produce nothing", Request{Upstreams: []string{"cheap"}, NoOutput: true, Choices: 4},
			rate(t, r, "cheap", usage.Usage{Input: p})},
		{"an unpriced candidate is skipped", Request{Upstreams: []string{"nope", "cheap"}, MaxOutput: 10},
			rate(t, r, "cheap", usage.Usage{Input: p, Output: 10})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
			b := New(Options{Rater: r, Books: books, Log: quiet()})
			defer b.Close(context.Background())
			req := tt.req
			req.ID, req.Model, req.Start, req.Prompt = "r1", "m", t0, prompt(p, true)
			tk, err := b.Admit(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			if len(books.holds) != 1 || books.holds[0].Amount.Nanos != tt.want || tk.Held != tt.want {
				t.Fatalf("held %+v (ticket %d), want %d", books.holds, tk.Held, tt.want)
			}
		})
	}
}

func TestEstimatedPromptHeldWithMargin(t *testing.T) {
	r := testRater(t)
	books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 1, Start: t0, Prompt: prompt(1000, false)}
	if _, err := b.Admit(context.Background(), &req); err != nil {
		t.Fatal(err)
	}
	want := rate(t, r, "cheap", usage.Usage{Input: 1000 + 1000/4 + 16, Output: 1})
	if got := books.holds[0].Amount.Nanos; got != want {
		t.Fatalf("held %d, want %d (an estimate held with its margin)", got, want)
	}
}

func TestAdmitLimits(t *testing.T) {
	r := testRater(t)
	b := New(Options{Rater: r, Books: &fakeBooks{available: 1 << 60}, Log: quiet(),
		Holds: HoldRules{MaxChoices: 4, MaxOutput: 1000}})
	defer b.Close(context.Background())
	for _, tt := range []struct {
		req  Request
		what string
	}{
		{Request{Choices: 5, MaxOutput: 10}, "choices"},
		{Request{Choices: 4, MaxOutput: 1001}, "output"},
	} {
		req := tt.req
		req.ID, req.Model, req.Upstreams, req.Start, req.Prompt = "r", "m", []string{"cheap"}, t0, prompt(1, true)
		_, err := b.Admit(context.Background(), &req)
		var le *LimitError
		if !errors.As(err, &le) || le.What != tt.what {
			t.Errorf("%+v: err %v, want a LimitError on %s", tt.req, err, tt.what)
		}
	}
	req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, Choices: 4, MaxOutput: 1000, Start: t0, Prompt: prompt(1, true)}
	if _, err := b.Admit(context.Background(), &req); err != nil {
		t.Errorf("at the limits: %v", err)
	}
	// The catalog's maximum for the model bounds the client's limit: 8000
	// for "dear", whatever the gateway-wide bound.
	for _, tt := range []struct {
		max  int64
		fail bool
	}{{8000, false}, {8001, true}} {
		req := Request{ID: "r", Model: "m", Upstreams: []string{"dear"}, MaxOutput: tt.max, Start: t0, Prompt: prompt(1, true)}
		b := New(Options{Rater: r, Books: &fakeBooks{available: 1 << 60}, Log: quiet()})
		_, err := b.Admit(context.Background(), &req)
		var le *LimitError
		if errors.As(err, &le) != tt.fail || (tt.fail && le.Max != 8000) {
			t.Errorf("max_tokens %d on dear: err %v", tt.max, err)
		}
		_ = b.Close(context.Background())
	}
}

func TestPrepaidOutputLowered(t *testing.T) {
	r := testRater(t)
	const p = 100
	cost := func(out int64) int64 {
		return rate(t, r, "dear", usage.Usage{Input: p, CacheWrite1h: p, Output: out, Reasoning: out})
	}
	avail := cost(777) + 1 // pays for 777 output tokens, not 778
	books := &fakeBooks{available: avail, kind: ledger.Prepaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	req := Request{ID: "r", Model: "m", Upstreams: []string{"dear"}, Start: t0, Prompt: prompt(p, true)}
	tk, err := b.Admit(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	if !tk.Lowered || tk.Output != 777 || tk.Held != cost(777) {
		t.Fatalf("ticket %+v, want output lowered to 777 holding %d", tk, cost(777))
	}

	// A client that set its own limit is refused rather than lowered.
	books.available = avail
	req = Request{ID: "r2", Model: "m", Upstreams: []string{"dear"}, MaxOutput: 4000, Start: t0, Prompt: prompt(p, true)}
	var ie *InsufficientError
	if _, err := b.Admit(context.Background(), &req); !errors.As(err, &ie) {
		t.Fatalf("explicit limit: err %v, want InsufficientError", err)
	}

	// Not even MinOutput fits: refused.
	books.available = cost(63)
	req = Request{ID: "r3", Model: "m", Upstreams: []string{"dear"}, Start: t0, Prompt: prompt(p, true)}
	if _, err := b.Admit(context.Background(), &req); !errors.As(err, &ie) {
		t.Fatalf("below the minimum: err %v, want InsufficientError", err)
	}

	// Postpaid accounts are never lowered: their credit limit is the limit.
	books.available, books.kind = avail, ledger.Postpaid
	req = Request{ID: "r4", Model: "m", Upstreams: []string{"dear"}, Start: t0, Prompt: prompt(p, true)}
	if _, err := b.Admit(context.Background(), &req); !errors.As(err, &ie) {
		t.Fatalf("postpaid: err %v, want InsufficientError", err)
	}
}

func TestFreeModelsHoldNothing(t *testing.T) {
	r := testRater(t)
	r.Free = map[string]bool{"marked": true}
	books := &fakeBooks{available: 0, kind: ledger.Prepaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	for _, m := range []struct{ model, upstream string }{{"marked", "cheap"}, {"z", "zero"}} {
		req := Request{ID: "r-" + m.model, Model: m.model, Upstreams: []string{m.upstream}, Start: t0, Prompt: prompt(10, true)}
		tk, err := b.Admit(context.Background(), &req)
		if err != nil || tk.Held != 0 || len(books.holds) != 0 {
			t.Errorf("%s: ticket %+v, err %v, holds %v", m.model, tk, err, books.holds)
		}
	}
}

func TestUnratedRecordChargesItsHold(t *testing.T) {
	r := testRater(t)
	books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 100, Start: t0, Prompt: prompt(10, true)}
	tk, err := b.Admit(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	// The model's price is gone by settlement: rating fails (here: no such
	// upstream model in the catalog).
	rec := usage.Record{RequestID: "r", Model: "m", Channel: "c", UpstreamModel: "vanished", Start: t0,
		Usage: usage.Usage{Input: 10, Output: 5, Source: usage.SourceVendor}}
	done, err := b.Finish(tk, rec)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(books.settled) != 1 {
		t.Fatalf("settled %d records", len(books.settled))
	}
	got := books.settled[0]
	if got.CostNanos != tk.Held || tk.Held == 0 || got.PriceVersion != Unrated || got.Currency != "CNY" {
		t.Fatalf("unrated record settled as %+v, want the hold %d marked %q", got, tk.Held, Unrated)
	}
}

// TestCheckpointRatedWithinHold: a checkpoint is the request's record so far,
// rated, and never charged above its hold.
func TestCheckpointRatedWithinHold(t *testing.T) {
	r := testRater(t)
	books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 100, Start: t0, Prompt: prompt(10, true)}
	tk, err := b.Admit(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	rec := usage.Record{RequestID: "r", Model: "m", Channel: "c", UpstreamModel: "cheap", Start: t0,
		Usage: usage.Usage{Input: 10, Output: 40, Source: usage.SourceCounted}}
	b.Checkpoint(tk, rec)
	rec.Usage.Output = 100000 // more than the hold covers
	b.Checkpoint(tk, rec)
	b.Checkpoint(&Ticket{}, rec) // nothing held: nothing to checkpoint
	if len(books.checkpoints) != 2 {
		t.Fatalf("%d checkpoints", len(books.checkpoints))
	}
	if c := books.checkpoints[0]; c.CostNanos != rate(t, r, "cheap", usage.Usage{Input: 10, Output: 40}) || c.PriceVersion == "" {
		t.Errorf("first checkpoint %+v", c)
	}
	if c := books.checkpoints[1]; c.CostNanos != tk.Held {
		t.Errorf("second checkpoint costs %d, want the hold %d", c.CostNanos, tk.Held)
	}
}
