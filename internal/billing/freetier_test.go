package billing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// fakeTenants tells account kinds by tenant id; an unknown id is not found.
type fakeTenants struct {
	kinds map[string]ledger.Kind
	err   error
}

func (f fakeTenants) Tenant(_ context.Context, id string) (ledger.Tenant, error) {
	if f.err != nil {
		return ledger.Tenant{}, f.err
	}
	k, ok := f.kinds[id]
	if !ok {
		return ledger.Tenant{}, ledger.ErrNotFound
	}
	return ledger.Tenant{ID: id, Kind: k}, nil
}

// fakeTotals is the usage store's day totals: what other nodes served.
type fakeTotals struct {
	usage.Store // only TotalRecords is called
	mu          sync.Mutex
	tokens      int64 // input
	output      int64
	requests    int64
	err         error
	reads       int
	filters     []usage.Filter
}

func (f *fakeTotals) TotalRecords(_ context.Context, flt usage.Filter) (usage.Totals, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	f.filters = append(f.filters, flt)
	if f.err != nil {
		return usage.Totals{}, f.err
	}
	return usage.Totals{Requests: f.requests, Input: f.tokens, Output: f.output}, nil
}

var shanghai = time.FixedZone("UTC+8", 8*3600)

func newFreeTier(tokens, requests int64, totals *fakeTotals, clk *clock.Fake) *FreeTier {
	return &FreeTier{DailyTokens: tokens, DailyRequests: requests, Zone: shanghai,
		Tenants: fakeTenants{kinds: map[string]ledger.Kind{"c1": ledger.Free, "biz": ledger.Prepaid}},
		Totals:  totals, Clock: clk}
}

// TestFreeTierRules: a free account may use only models that cost nothing;
// other accounts, and tenants the ledger does not know, are not the free
// tier's business.
func TestFreeTierRules(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC))
	f := newFreeTier(1000, 10, &fakeTotals{}, clk)
	ctx := context.Background()
	if rel, err := f.admit(ctx, "biz", 1<<40, false); rel != nil || err != nil {
		t.Errorf("a prepaid tenant: release %v, err %v; want neither", rel != nil, err)
	}
	if rel, err := f.admit(ctx, "ghost", 1, true); rel != nil || err != nil {
		t.Errorf("an unknown tenant: release %v, err %v; want neither (the ledger refuses it)", rel != nil, err)
	}
	if _, err := f.admit(ctx, "c1", 1, false); !errors.Is(err, ErrNotFree) {
		t.Errorf("a free tenant on a priced model: err %v, want ErrNotFree", err)
	}
	rel, err := f.admit(ctx, "c1", 1, true)
	if err != nil || rel == nil {
		t.Fatalf("a free tenant on a free model: release %v, err %v", rel != nil, err)
	}
	rel(1)
	down := &FreeTier{DailyTokens: 1, Zone: shanghai, Tenants: fakeTenants{err: errors.New("store down")}, Totals: &fakeTotals{}, Clock: clk}
	var ue *UnavailableError
	if _, err := down.admit(ctx, "c1", 1, true); !errors.As(err, &ue) {
		t.Errorf("tenants unreadable: err %v, want UnavailableError", err)
	}
	broken := newFreeTier(1000, 10, &fakeTotals{err: errors.New("store down")}, clk)
	if _, err := broken.admit(ctx, "c1", 1, true); !errors.As(err, &ue) {
		t.Errorf("totals unreadable: err %v, want UnavailableError", err)
	}
}

// TestFreeTierQuotas: each quota admits exactly up to its limit (in flight
// requests count at once, with their reserved tokens), is trued up with the
// tokens used, and starts over at the zone's midnight.
func TestFreeTierQuotas(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 15, 59, 50, 0, time.UTC) // 23:59:50 in the zone
	t.Run("requests", func(t *testing.T) {
		clk := clock.NewFake(start)
		totals := &fakeTotals{requests: 1} // another node served one today
		f := newFreeTier(0, 3, totals, clk)
		r1, err := f.admit(ctx, "c1", 100, true)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := f.admit(ctx, "c1", 100, true)
		if err != nil {
			t.Fatalf("the third of three: %v", err)
		}
		var qe *QuotaError
		if _, err := f.admit(ctx, "c1", 100, true); !errors.As(err, &qe) || qe.What != "requests" || qe.Limit != 3 ||
			!qe.Reset.Equal(time.Date(2026, 6, 2, 0, 0, 0, 0, shanghai)) {
			t.Fatalf("the fourth: err %v, want the request quota, reset at the zone's midnight", err)
		}
		r1(0) // failed: used nothing, so it does not count
		r3, err := f.admit(ctx, "c1", 100, true)
		if err != nil {
			t.Fatalf("after a request that used nothing: %v", err)
		}
		r2(50)
		r3(50)
		if _, err := f.admit(ctx, "c1", 1, true); !errors.As(err, &qe) {
			t.Fatalf("three served: err %v, want the quota", err)
		}
		clk.Advance(10 * time.Second) // midnight in the zone
		totals.mu.Lock()
		totals.requests = 0 // the new day has no records yet
		totals.mu.Unlock()
		if _, err := f.admit(ctx, "c1", 1, true); err != nil {
			t.Fatalf("a new day: %v", err)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		clk := clock.NewFake(start)
		totals := &fakeTotals{tokens: 200}
		f := newFreeTier(1000, 0, totals, clk)
		r1, err := f.admit(ctx, "c1", 500, true)
		if err != nil {
			t.Fatal(err)
		}
		var qe *QuotaError
		if _, err := f.admit(ctx, "c1", 301, true); !errors.As(err, &qe) || qe.What != "tokens" || qe.Limit != 1000 {
			t.Fatalf("one token over: err %v, want the token quota", err)
		}
		r2, err := f.admit(ctx, "c1", 300, true)
		if err != nil {
			t.Fatalf("exactly the quota: %v", err)
		}
		r1(100) // used less than it reserved
		r2(300)
		// 200 + 100 + 300 used: 400 left.
		if _, err := f.admit(ctx, "c1", 401, true); !errors.As(err, &qe) {
			t.Fatalf("401 of 400 left: err %v", err)
		}
		r3, err := f.admit(ctx, "c1", 400, true)
		if err != nil {
			t.Fatalf("400 of 400 left: %v", err)
		}
		r3(0)
	})
}

// TestFreeTierReseed: the day's totals are read from the records at a
// tenant's first request and again every five seconds, served requests of
// the tenant's day only.
func TestFreeTierReseed(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC))
	totals := &fakeTotals{}
	f := newFreeTier(0, 100, totals, clk)
	admit := func() {
		t.Helper()
		rel, err := f.admit(ctx, "c1", 1, true)
		if err != nil {
			t.Fatal(err)
		}
		rel(1)
	}
	admit()
	if totals.reads != 1 {
		t.Fatalf("reads after the first request = %d", totals.reads)
	}
	want := usage.Filter{TenantID: "c1", From: time.Date(2026, 6, 1, 0, 0, 0, 0, shanghai), Status: 200}
	if got := totals.filters[0]; got.TenantID != want.TenantID || !got.From.Equal(want.From) || got.Status != 200 {
		t.Errorf("totals filter = %+v, want %+v", got, want)
	}
	clk.Advance(5*time.Second - time.Nanosecond)
	admit()
	if totals.reads != 1 {
		t.Fatalf("reads within five seconds = %d, want 1", totals.reads)
	}
	// Other nodes served 99 meanwhile: the next read sees them.
	totals.mu.Lock()
	totals.requests = 99
	totals.mu.Unlock()
	clk.Advance(time.Nanosecond)
	admit()
	if totals.reads != 2 {
		t.Fatalf("reads at five seconds = %d, want 2", totals.reads)
	}
	var qe *QuotaError
	if _, err := f.admit(ctx, "c1", 1, true); !errors.As(err, &qe) {
		t.Fatalf("99 served elsewhere + 1 here of 100: err %v, want the quota", err)
	}
}

// TestAdmitWithFreeTier: admission reserves the request's prompt plus its
// output for every choice against the free tier, and a refusal holds nothing.
func TestAdmitWithFreeTier(t *testing.T) {
	r := testRater(t)
	clk := clock.NewFake(t0)
	totals := &fakeTotals{}
	ft := newFreeTier(1000, 0, totals, clk)
	books := &fakeBooks{available: 1 << 60, kind: ledger.Free}
	b := New(Options{Rater: r, Books: books, FreeTier: ft, Log: quiet(), Clock: clk})
	defer b.Close(context.Background())
	ctx := context.Background()
	req := Request{ID: "f1", TenantID: "c1", Model: "z", Upstreams: []string{"zero"}, MaxOutput: 300, Choices: 3,
		Start: t0, Prompt: prompt(100, true)}
	tk, err := b.Admit(ctx, &req)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Held != 0 || len(books.holds) != 0 {
		t.Errorf("a free model held %d", tk.Held)
	}
	// 100 + 300×3 = 1000 reserved: nothing more fits until it is trued up.
	req2 := req
	req2.ID, req2.MaxOutput, req2.Choices = "f2", 1, 1
	var qe *QuotaError
	if _, err := b.Admit(ctx, &req2); !errors.As(err, &qe) {
		t.Fatalf("with the quota reserved: err %v, want the quota", err)
	}
	tk.Finish(150)
	tk.Finish(150) // a second Finish does not release twice
	if _, err := b.Admit(ctx, &req2); err != nil {
		t.Fatalf("after the first used 150 of 1000: %v", err)
	}
	// A free tenant may not use a priced model, and nothing is held for it.
	req3 := Request{ID: "f3", TenantID: "c1", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 1, Start: t0, Prompt: prompt(1, true)}
	if _, err := b.Admit(ctx, &req3); !errors.Is(err, ErrNotFree) || len(books.holds) != 0 {
		t.Errorf("priced model on the free tier: err %v, holds %v", err, books.holds)
	}
}

// TestFreeTierCountsInputAndOutput: the day's tokens read from the records
// are their input and their output.
func TestFreeTierCountsInputAndOutput(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		reserve int64
		ok      bool
	}{{100, true}, {101, false}} {
		clk := clock.NewFake(time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC))
		f := newFreeTier(1000, 0, &fakeTotals{tokens: 600, output: 300}, clk)
		_, err := f.admit(ctx, "c1", tt.reserve, true)
		if (err == nil) != tt.ok {
			t.Errorf("600 input and 300 output served of 1000, %d more: err %v, want admitted %v", tt.reserve, err, tt.ok)
		}
	}
}
