package billing

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// answerBooks is a ledger whose holds, balances and tenants answer as its
// function fields say; what they leave nil the fakeBooks answers.
type answerBooks struct {
	*fakeBooks
	hold    func(ctx context.Context, r ledger.HoldRequest) (ledger.Hold, error)
	balance func() ledger.Balance
	tenant  func(id string) (ledger.Tenant, error)
}

func (a *answerBooks) Hold(ctx context.Context, r ledger.HoldRequest) (ledger.Hold, error) {
	if a.hold != nil {
		return a.hold(ctx, r)
	}
	return a.fakeBooks.Hold(ctx, r)
}

func (a *answerBooks) Balance(ctx context.Context, id string) (ledger.Balance, error) {
	if a.balance != nil {
		return a.balance(), nil
	}
	return a.fakeBooks.Balance(ctx, id)
}

func (a *answerBooks) Tenant(ctx context.Context, id string) (ledger.Tenant, error) {
	if a.tenant != nil {
		return a.tenant(id)
	}
	return a.fakeBooks.Tenant(ctx, id)
}

// TestHoldLivesItsTTL: a hold is placed to live HoldTTL, fifteen minutes
// unless the operator sets it, so that the sweeper resolves the hold of a
// request whose node died.
func TestHoldLivesItsTTL(t *testing.T) {
	for _, tt := range []struct {
		ttl, want time.Duration
	}{
		{0, 15 * time.Minute},
		{-time.Second, 15 * time.Minute},
		{time.Nanosecond, time.Nanosecond},
		{time.Hour, time.Hour},
	} {
		books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
		b := New(Options{Rater: testRater(t), Books: books, HoldTTL: tt.ttl, Log: quiet()})
		req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 10, Start: t0, Prompt: prompt(10, true)}
		if _, err := b.Admit(context.Background(), &req); err != nil {
			t.Fatal(err)
		}
		if len(books.holds) != 1 || books.holds[0].TTL != tt.want {
			t.Errorf("HoldTTL %v: holds %+v, want one living %v", tt.ttl, books.holds, tt.want)
		}
		_ = b.Close(context.Background())
	}
}

// TestStoreTimeoutBoundsAdmit: with a StoreTimeout, a ledger that does not
// answer is a quick *UnavailableError (the client may retry), not a request
// that hangs; without one the caller's context is left alone.
func TestStoreTimeoutBoundsAdmit(t *testing.T) {
	for _, tt := range []struct {
		timeout     time.Duration
		wantTimeout bool
	}{
		{0, false},
		{-time.Second, false},
		{20 * time.Millisecond, true},
	} {
		var deadline atomic.Bool
		books := &answerBooks{fakeBooks: &fakeBooks{available: 1 << 60, kind: ledger.Postpaid},
			hold: func(ctx context.Context, r ledger.HoldRequest) (ledger.Hold, error) {
				if _, ok := ctx.Deadline(); !ok {
					return ledger.Hold{RequestID: r.RequestID, State: ledger.HoldPending}, nil
				}
				deadline.Store(true)
				<-ctx.Done() // a database that is away
				return ledger.Hold{}, ctx.Err()
			}}
		b := New(Options{Rater: testRater(t), Books: books, StoreTimeout: tt.timeout, Log: quiet()})
		req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 10, Start: t0, Prompt: prompt(10, true)}
		_, err := b.Admit(context.Background(), &req)
		if tt.wantTimeout {
			if !errors.As(err, new(*UnavailableError)) || !errors.Is(err, context.DeadlineExceeded) || !deadline.Load() {
				t.Errorf("StoreTimeout %v: err %v, want *UnavailableError of the deadline", tt.timeout, err)
			}
		} else if err != nil || deadline.Load() {
			t.Errorf("StoreTimeout %v: err %v, deadline set %v; want the caller's context untouched", tt.timeout, err, deadline.Load())
		}
		_ = b.Close(context.Background())
	}
}

// TestLedgerRefusalsMapped: each way the ledger refuses a hold is the error
// the gateway maps to a client error, and no refusal serves the request.
func TestLedgerRefusalsMapped(t *testing.T) {
	cny := func(string) (ledger.Tenant, error) { return ledger.Tenant{ID: "acme", Currency: money.CNY}, nil }
	usd := func(string) (ledger.Tenant, error) { return ledger.Tenant{ID: "acme", Currency: money.USD}, nil }
	gone := func(string) (ledger.Tenant, error) { return ledger.Tenant{}, ledger.ErrNotFound }
	refuse := func(err error) func(context.Context, ledger.HoldRequest) (ledger.Hold, error) {
		return func(context.Context, ledger.HoldRequest) (ledger.Hold, error) { return ledger.Hold{}, err }
	}
	held := func(state ledger.HoldState) func(context.Context, ledger.HoldRequest) (ledger.Hold, error) {
		return func(_ context.Context, r ledger.HoldRequest) (ledger.Hold, error) {
			return ledger.Hold{RequestID: r.RequestID, Amount: r.Amount.Nanos, State: state}, nil
		}
	}
	isInsufficient := func(err error) bool {
		var ie *InsufficientError
		return errors.As(err, &ie) && ie.Need > 0 && ie.Currency == money.CNY && errors.Is(err, ledger.ErrInsufficientFunds)
	}
	isUnavailable := func(err error) bool { return errors.As(err, new(*UnavailableError)) }
	for _, tt := range []struct {
		name   string
		hold   func(context.Context, ledger.HoldRequest) (ledger.Hold, error)
		tenant func(string) (ledger.Tenant, error)
		want   func(error) bool
	}{
		{"held", held(ledger.HoldPending), cny, func(err error) bool { return err == nil }},
		{"the request id's hold already posted", held(ledger.HoldPosted), cny,
			func(err error) bool { return err != nil && !isUnavailable(err) }},
		{"the request id's hold already voided", held(ledger.HoldVoided), cny,
			func(err error) bool { return err != nil && !isUnavailable(err) }},
		{"a budget used up", refuse(ledger.ErrBudgetExceeded), cny,
			func(err error) bool {
				return errors.Is(err, ErrBudgetExceeded) && errors.Is(err, ledger.ErrBudgetExceeded)
			}},
		{"not enough money", refuse(ledger.ErrInsufficientFunds), cny, isInsufficient},
		{"no account", refuse(ledger.ErrNotFound), cny,
			func(err error) bool { return errors.Is(err, ErrNoAccount) && errors.Is(err, ledger.ErrNotFound) }},
		{"an account in another currency", refuse(ledger.ErrInvalid), usd, func(err error) bool {
			var ce *CurrencyError
			return errors.As(err, &ce) && ce.TenantID == "acme" && ce.Tenant == money.USD && ce.Billing == money.CNY
		}},
		{"invalid for another reason", refuse(ledger.ErrInvalid), cny, func(err error) bool {
			return errors.Is(err, ledger.ErrInvalid) && !errors.As(err, new(*CurrencyError)) && !isUnavailable(err)
		}},
		{"invalid, and the account gone since", refuse(ledger.ErrInvalid), gone, func(err error) bool {
			return errors.Is(err, ledger.ErrInvalid) && !errors.As(err, new(*CurrencyError))
		}},
		{"the store away", refuse(ledger.ErrClosed), cny,
			func(err error) bool { return isUnavailable(err) && errors.Is(err, ledger.ErrClosed) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			books := &answerBooks{fakeBooks: &fakeBooks{kind: ledger.Postpaid}, hold: tt.hold, tenant: tt.tenant}
			b := New(Options{Rater: testRater(t), Books: books, Log: quiet()})
			defer b.Close(context.Background())
			req := Request{ID: "r", TenantID: "acme", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 10, Start: t0, Prompt: prompt(10, true)}
			tk, err := b.Admit(context.Background(), &req)
			if !tt.want(err) || (err != nil) != (tk == nil) {
				t.Errorf("Admit = %+v, %v", tk, err)
			}
		})
	}
}

// TestPrepaidOutputLoweredToTheBalance: a prepaid balance that cannot pay
// for a request's whole output (no limit set by the client) holds the most
// output per choice it pays for, for every choice, down to MinOutput and no
// further; an account in debt is not lowered.
func TestPrepaidOutputLoweredToTheBalance(t *testing.T) {
	r := testRater(t)
	const p = 100
	cost := func(out, choices int64) int64 { // "dear" at its worst: the prompt to the 1-hour cache, all output reasoning
		return rate(t, r, "dear", usage.Usage{Input: p, CacheWrite1h: p, Output: out * choices, Reasoning: out * choices})
	}
	for _, tt := range []struct {
		name      string
		choices   int64
		minOutput int64
		available int64
		debt      int64
		want      int64 // output per choice held; 0: refused
	}{
		{"exactly 777", 1, 0, cost(777, 1), 0, 777},
		{"777 and a little", 1, 0, cost(777, 1) + 1, 0, 777},
		{"just short of 777", 1, 0, cost(777, 1) - 1, 0, 776},
		{"two choices", 2, 0, cost(500, 2), 0, 500},
		{"two choices, just short", 2, 0, cost(500, 2) - 1, 0, 499},
		{"exactly the minimum", 1, 0, cost(64, 1), 0, 64},
		{"below the minimum", 1, 0, cost(64, 1) - 1, 0, 0},
		{"the operator's minimum", 1, 100, cost(100, 1), 0, 100},
		{"below the operator's minimum", 1, 100, cost(100, 1) - 1, 0, 0},
		{"in debt", 1, 0, cost(777, 1), 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBooks{available: tt.available, kind: ledger.Prepaid}
			books := &answerBooks{fakeBooks: fb, balance: func() ledger.Balance {
				fb.mu.Lock()
				defer fb.mu.Unlock()
				return ledger.Balance{Kind: ledger.Prepaid, Available: fb.available, Debt: tt.debt}
			}}
			b := New(Options{Rater: r, Books: books, Holds: HoldRules{MinOutput: tt.minOutput}, Log: quiet()})
			defer b.Close(context.Background())
			req := Request{ID: "r", Model: "m", Upstreams: []string{"dear"}, Choices: tt.choices, Start: t0, Prompt: prompt(p, true)}
			tk, err := b.Admit(context.Background(), &req)
			if tt.want == 0 {
				if !errors.As(err, new(*InsufficientError)) || len(fb.holds) != 0 {
					t.Fatalf("ticket %+v, err %v, holds %+v; want refused, nothing held", tk, err, fb.holds)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tk.Lowered || tk.Output != tt.want || tk.Held != cost(tt.want, tt.choices) || len(fb.holds) != 1 ||
				fb.holds[0].Amount.Nanos != tk.Held {
				t.Fatalf("ticket %+v, holds %+v; want output lowered to %d holding %d", tk, fb.holds, tt.want, cost(tt.want, tt.choices))
			}
		})
	}
}

// countingPrompt counts how often the prompt is counted.
type countingPrompt struct{ calls atomic.Int32 }

func (c *countingPrompt) PromptTokens() (int64, bool) {
	c.calls.Add(1)
	return 100, true
}

// TestPromptCountedOnlyWhenNeeded: counting a prompt costs a tokenizer run,
// so Admit counts it once when a hold or the free tier's quota needs it,
// and not at all when nothing is held or reserved.
func TestPromptCountedOnlyWhenNeeded(t *testing.T) {
	clk := clock.NewFake(t0)
	for _, tt := range []struct {
		name  string
		opt   Options
		calls int32
	}{
		{"metering only", Options{Rater: testRater(t)}, 0},
		{"no rater", Options{Books: &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}}, 0},
		{"held", Options{Rater: testRater(t), Books: &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}}, 1},
		{"the free tier's quota alone", Options{Rater: testRater(t), FreeTier: newFreeTier(1000, 0, &fakeTotals{}, clk)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Log = quiet()
			b := New(tt.opt)
			defer b.Close(context.Background())
			p := &countingPrompt{}
			req := Request{ID: "r", TenantID: "c1", Model: "z", Upstreams: []string{"zero"}, MaxOutput: 10, Start: t0, Prompt: p}
			if tt.opt.Books != nil {
				req.Model, req.Upstreams = "m", []string{"cheap"}
			}
			if _, err := b.Admit(context.Background(), &req); err != nil {
				t.Fatal(err)
			}
			if got := p.calls.Load(); got != tt.calls {
				t.Errorf("prompt counted %d times, want %d", got, tt.calls)
			}
		})
	}
}

// TestQuoteHoldsNothingUnheld: a quote is the hold Admit would place: none
// (0) when metering only or for a free model, though the output limit it
// covers is still told.
func TestQuoteHoldsNothingUnheld(t *testing.T) {
	r := testRater(t)
	r.Free = map[string]bool{"gift": true}
	books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	held := New(Options{Rater: r, Books: books, Log: quiet()})
	defer held.Close(context.Background())
	metered := New(Options{Rater: r, Log: quiet()})
	defer metered.Close(context.Background())
	worst := rate(t, r, "dear", usage.Usage{Input: 10, CacheWrite1h: 10, Output: 50, Reasoning: 50})
	for _, tt := range []struct {
		name  string
		b     *Biller
		model string
		want  Quote
	}{
		{"held", held, "dear", Quote{Amount: worst, Output: 50, Held: true}},
		{"metering only", metered, "dear", Quote{Amount: 0, Output: 50}},
		{"a free model", held, "zero", Quote{Amount: 0, Output: 50}},
		{"marked free", held, "gift", Quote{Amount: 0, Output: 50}},
	} {
		req := Request{Model: tt.model, Upstreams: []string{tt.model}, MaxOutput: 50, Start: t0, Prompt: prompt(10, true)}
		if tt.model == "gift" {
			req.Upstreams = []string{"dear"}
		}
		q, err := tt.b.Quote(&req)
		if err != nil || q != tt.want {
			t.Errorf("%s: Quote = %+v, %v; want %+v", tt.name, q, err, tt.want)
		}
	}
	if len(books.holds) != 0 {
		t.Errorf("a quote held %+v", books.holds)
	}
}

// TestCheckpointOfAnUnratableRecord: a checkpoint whose record can no
// longer be rated is charged its hold, marked Unrated, as its settlement
// would be.
func TestCheckpointOfAnUnratableRecord(t *testing.T) {
	r := testRater(t)
	books := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	tk := &Ticket{Held: 5000}
	b.Checkpoint(tk, usage.Record{RequestID: "r", Model: "m", Channel: "c", UpstreamModel: "vanished", Start: t0,
		Usage: usage.Usage{Input: 10, Output: 5, Source: usage.SourceCounted}})
	if len(books.checkpoints) != 1 {
		t.Fatalf("%d checkpoints", len(books.checkpoints))
	}
	if c := books.checkpoints[0]; c.CostNanos != 5000 || c.PriceVersion != Unrated || c.Currency != "CNY" || c.Lines != nil {
		t.Errorf("checkpoint %+v, want the hold 5000 marked %q", c, Unrated)
	}
	metered := New(Options{Rater: r, Log: quiet()})
	defer metered.Close(context.Background())
	metered.Checkpoint(tk, usage.Record{RequestID: "r2", Model: "m", Channel: "c", UpstreamModel: "cheap", Start: t0})
	metered.Checkpoint(nil, usage.Record{RequestID: "r3"})
	if len(books.checkpoints) != 1 {
		t.Errorf("a biller without books checkpointed")
	}
}

// TestHugePromptStillHeld: a prompt so long that the dearest way to bill it
// (all written to the 1-hour cache) overflows an amount is held at the
// dearest way that fits; the model is not taken for an unpriced one, which
// would be served with no hold at all.
func TestHugePromptStillHeld(t *testing.T) {
	r := testRater(t)
	const p = 600_000_000_000_000 // × 20,000 nanos a token for the 1-hour cache: past int64
	books := &fakeBooks{available: math.MaxInt64, kind: ledger.Postpaid}
	b := New(Options{Rater: r, Books: books, Log: quiet()})
	defer b.Close(context.Background())
	req := Request{ID: "r", Model: "m", Upstreams: []string{"dear"}, MaxOutput: 10, Start: t0, Prompt: prompt(p, true)}
	tk, err := b.Admit(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	want := rate(t, r, "dear", usage.Usage{Input: p, CacheWrite5m: p, Output: 10, Reasoning: 10})
	if tk.Held != want || len(books.holds) != 1 {
		t.Fatalf("held %d (%d holds), want %d: the prompt written to the 5-minute cache", tk.Held, len(books.holds), want)
	}
}

// TestRefusedAtTheMinimumOutput: a request whose output is already at the
// operator's minimum cannot be lowered, so a refused hold is final: no
// balance read, no second hold, even when a top-up lands meanwhile.
func TestRefusedAtTheMinimumOutput(t *testing.T) {
	r := testRater(t)
	fb := &fakeBooks{kind: ledger.Prepaid}
	var holds, reads int
	books := &answerBooks{fakeBooks: fb,
		hold: func(ctx context.Context, h ledger.HoldRequest) (ledger.Hold, error) {
			if holds++; holds == 1 {
				return ledger.Hold{}, ledger.ErrInsufficientFunds
			}
			return ledger.Hold{RequestID: h.RequestID, Amount: h.Amount.Nanos, State: ledger.HoldPending}, nil
		},
		balance: func() ledger.Balance {
			reads++ // a top-up has landed: the balance now pays for anything
			return ledger.Balance{Kind: ledger.Prepaid, Available: ledger.MaxAmount}
		}}
	// "dear" writes at most 8000 tokens: the operator's minimum.
	b := New(Options{Rater: r, Books: books, Holds: HoldRules{MinOutput: 8000}, Log: quiet()})
	defer b.Close(context.Background())
	req := Request{ID: "r", Model: "m", Upstreams: []string{"dear"}, Start: t0, Prompt: prompt(100, true)}
	tk, err := b.Admit(context.Background(), &req)
	if !errors.As(err, new(*InsufficientError)) || holds != 1 || reads != 0 {
		t.Fatalf("Admit = %+v, %v after %d holds and %d balance reads; want refused after one hold, no read",
			tk, err, holds, reads)
	}
}
