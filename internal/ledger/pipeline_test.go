package ledger_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
)

// tripStore counts the round trips a ledger sends through a store's
// Pipeliner, and the steps in each.
type tripStore struct {
	storetest.Store
	mu    sync.Mutex
	trips []int
}

func (s *tripStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(tripTx{oneStatementTx{tx}, s}) })
}

type tripTx struct {
	oneStatementTx
	s *tripStore
}

func (tx tripTx) Pipeline(ctx context.Context, steps []ledger.Step) error {
	tx.s.mu.Lock()
	tx.s.trips = append(tx.s.trips, len(steps))
	tx.s.mu.Unlock()
	return tx.oneStatementTx.Pipeline(ctx, steps)
}

// TestPipelineRoundTrips: a batch of settlements, or an exchange's holds, goes to a store
// that can pipeline them in one round trip, from two operations up; a lone
// operation takes its own one-statement path, with no pipeline.
func TestPipelineRoundTrips(t *testing.T) {
	ctx := context.Background()
	s := &tripStore{Store: openStore(t)}
	clk := clock.NewFake(t0)
	l := ledger.New(s, ledger.Options{Clock: clk})
	t.Cleanup(func() {
		l.Close()
		if !t.Failed() {
			storetest.AuditClean(t, s.Store, clk.Now())
		}
	})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	trips := func() []int {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := s.trips
		s.trips = nil
		return out
	}
	trips()
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := trips(); len(got) != 0 {
		t.Errorf("lone holds went through the pipeline: %v", got)
	}
	res, err := l.SettleBatch(ctx, []ledger.Settlement{{Record: record("r1", yuan)}, {Record: record("r2", yuan/2)}})
	if err != nil || len(res) != 2 || res[0].Posted != yuan || res[1].Released != yuan/2 {
		t.Fatalf("SettleBatch = %+v, %v", res, err)
	}
	if got := trips(); !slices.Equal(got, []int{2}) {
		t.Errorf("a batch of two settlements took round trips of %v steps, want one of 2", got)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r3", yuan)}); err != nil {
		t.Fatal(err)
	}
	if got := trips(); len(got) != 0 {
		t.Errorf("a lone settlement went through the pipeline: %v", got)
	}
	hs, err := l.Exchange(ctx, "", []ledger.HoldRequest{
		{RequestID: "x1", TenantID: "acme", Amount: money.New(yuan, money.CNY)},
		{RequestID: "x2", TenantID: "acme", Amount: money.New(yuan, money.CNY)},
	})
	if err != nil || len(hs) != 2 {
		t.Fatalf("Exchange = %+v, %v", hs, err)
	}
	if got := trips(); !slices.Equal(got, []int{2}) {
		t.Errorf("an exchange placing two holds took round trips of %v steps, want one of 2", got)
	}
	// A hold in another currency than the account's is refused, pipeline
	// or not, and the exchange with it.
	if hs, err := l.Exchange(ctx, "", []ledger.HoldRequest{
		{RequestID: "u1", TenantID: "acme", Amount: money.New(yuan, money.USD)},
		{RequestID: "u2", TenantID: "acme", Amount: money.New(yuan, money.USD)},
	}); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("Exchange of USD holds on a CNY account = %+v, %v; want ErrInvalid", hs, err)
	}
	trips()
	// A free tenant holds nothing: its holds of 0 go ahead in the pipeline
	// like any other; a hold of money on it is refused, pipeline or not.
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "gratis", Kind: ledger.Free, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	trips()
	if hs, err := l.Exchange(ctx, "", []ledger.HoldRequest{
		{RequestID: "f1", TenantID: "gratis", Amount: money.New(0, money.CNY)},
		{RequestID: "f2", TenantID: "gratis", Amount: money.New(0, money.CNY)},
	}); err != nil || len(hs) != 2 {
		t.Fatalf("Exchange of free holds = %+v, %v", hs, err)
	}
	if got := trips(); !slices.Equal(got, []int{2}) {
		t.Errorf("an exchange placing two free holds took round trips of %v steps, want one of 2", got)
	}
	if hs, err := l.Exchange(ctx, "", []ledger.HoldRequest{
		{RequestID: "f3", TenantID: "gratis", Amount: money.New(yuan, money.CNY)},
		{RequestID: "f4", TenantID: "gratis", Amount: money.New(yuan, money.CNY)},
	}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("Exchange of money holds on a free account = %+v, %v; want ErrInsufficientFunds", hs, err)
	}
	trips()
	for _, id := range []string{"x1", "x2", "f1", "f2"} {
		if _, err := l.Void(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if b := balance(t, l); b.Posted != 10*yuan-5*yuan/2 || b.Pending != 0 {
		t.Errorf("balance = %+v", b)
	}
}
