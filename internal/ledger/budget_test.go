package ledger_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
)

// budgetReads counts the budget lookups a ledger makes in its store.
type budgetReads struct {
	storetest.Store
	n atomic.Int64
}

func (s *budgetReads) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(budgetReadsTx{tx, s}) })
}

func (s *budgetReads) LedgerView(ctx context.Context, fn func(ledger.Snapshot) error) error {
	return s.Store.LedgerView(ctx, func(v ledger.Snapshot) error { return fn(budgetReadsView{v, s}) })
}

func (s *budgetReads) reads() int64 { return s.n.Swap(0) }

type budgetReadsTx struct {
	ledger.Tx
	s *budgetReads
}

func (tx budgetReadsTx) Budget(ctx context.Context, scope ledger.Scope, subject string) (ledger.Budget, bool, error) {
	tx.s.n.Add(1)
	return tx.Tx.Budget(ctx, scope, subject)
}

type budgetReadsView struct {
	ledger.Snapshot
	s *budgetReads
}

func (v budgetReadsView) Budget(ctx context.Context, scope ledger.Scope, subject string) (ledger.Budget, bool, error) {
	v.s.n.Add(1)
	return v.Snapshot.Budget(ctx, scope, subject)
}

// TestBudgetCache: a ledger looks up the budgets of a key and of its tenant
// once, then answers from its cache until the store's budgets change; a
// budget another node sets is in force at this node's next operation.
func TestBudgetCache(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		name := "shared"
		if exclusive {
			name = "exclusive"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := openStore(t)
			s := &budgetReads{Store: db}
			clk := clock.NewFake(t0)
			l := ledger.New(s, ledger.Options{Clock: clk, Exclusive: exclusive})
			t.Cleanup(func() { l.Close() })
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
				t.Fatal(err)
			}
			n := 0
			hold := func(key string, amount int64) error {
				n++
				_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r" + string(rune('a'+n)), TenantID: "acme", KeyID: key,
					Amount: money.New(amount, money.CNY)})
				return err
			}
			s.reads()
			if err := hold("k1", yuan); err != nil {
				t.Fatal(err)
			}
			if got := s.reads(); got != 2 {
				t.Errorf("first hold of k1 read %d budgets, want 2 (the key's, the tenant's)", got)
			}
			for range 3 {
				if err := hold("k1", yuan); err != nil {
					t.Fatal(err)
				}
			}
			if err := hold("k2", yuan); err != nil {
				t.Fatal(err)
			}
			if got := s.reads(); got != 1 {
				t.Errorf("three more holds of k1 and one of k2 read %d budgets, want 1 (k2's)", got)
			}
			for range 2 {
				n++
				if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{{RequestID: "x" + string(rune('a'+n)), TenantID: "acme",
					KeyID: "k1", Amount: money.New(yuan, money.CNY)}}); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.reads(); got != 0 {
				t.Errorf("two exchanges under k1 read %d budgets, want 0 (cached)", got)
			}
			if exclusive {
				// The only writer: its own SetBudget updates its cache.
				if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: 2 * yuan}); err != nil {
					t.Fatal(err)
				}
			} else {
				// Another node sets a budget on k1.
				other := ledger.New(db, ledger.Options{Clock: clk, Node: "other"})
				if err := other.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: 2 * yuan}); err != nil {
					t.Fatal(err)
				}
				other.Close()
			}
			if err := hold("k1", 3*yuan); !errors.Is(err, ledger.ErrBudgetExceeded) {
				t.Fatalf("hold of 3 on k1 after a budget of 2 was set: %v; want ErrBudgetExceeded", err)
			}
			if err := hold("k1", yuan); err != nil {
				t.Fatal(err)
			}
		})
	}
}
