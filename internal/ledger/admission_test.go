package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
)

// TestMemoryHoldsCountInTheStore: on an exclusive ledger the holds kept in
// memory count wherever the store's rows are read or guarded: a balance
// returned by a top-up shows them pending, a hold that must go to the
// store (its key has a budget) or a debit by the operator finds only what
// they leave, and settling several of them in one batch releases each.
func TestMemoryHoldsCountInTheStore(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{Exclusive: true})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 9 * yuan}); err != nil {
		t.Fatal(err)
	}
	hold := func(id, key string, amount int64) error {
		_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: key, Amount: money.New(amount, money.CNY)})
		return err
	}
	for _, id := range []string{"a", "b"} {
		if err := hold(id, "k0", 4*yuan); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.HeldInMemory != 2 {
		t.Fatalf("held in memory %d, want 2", st.HeldInMemory)
	}
	res, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan})
	if err != nil || res.Balance.Posted != 10*yuan || res.Balance.Pending != 8*yuan || res.Balance.Available != 2*yuan {
		t.Fatalf("top-up with 8 held in memory = %+v, %v; want posted 10, pending 8, available 2", res.Balance, err)
	}
	// k1 has a budget: its holds are placed in the store, against what the
	// holds in memory leave.
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	if err := hold("c", "k1", 2*yuan+1); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("a store hold a nano past what memory leaves: %v; want ErrInsufficientFunds", err)
	}
	if _, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: -(2*yuan + 1)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("a debit a nano past what memory leaves: %v; want ErrInsufficientFunds", err)
	}
	if err := hold("c", "k1", 2*yuan); err != nil {
		t.Fatalf("a store hold of what memory leaves: %v", err)
	}
	// Both memory holds settled in one batch: each is released.
	rs, err := l.SettleBatch(ctx, []ledger.Settlement{{Record: record("a", 3*yuan)}, {Record: record("b", yuan)}})
	if err != nil || len(rs) != 2 || rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("SettleBatch = %+v, %v", rs, err)
	}
	if st := l.Stats(); st.HeldInMemory != 0 {
		t.Errorf("held in memory after settling both: %d, want 0", st.HeldInMemory)
	}
	if b := balance(t, l); b.Posted != 6*yuan || b.Pending != 2*yuan {
		t.Errorf("balance %+v; want posted 6, pending 2 (c)", b)
	}
	if _, err := l.Void(ctx, "c"); err != nil {
		t.Fatal(err)
	}
}

// pauseStore holds every write transaction, once its work is done and
// before it commits, while pause is set, saying so on paused.
type pauseStore struct {
	storetest.Store
	pause  atomic.Bool
	paused chan struct{}
	resume chan struct{}
}

func (s *pauseStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error {
		err := fn(tx)
		if err == nil && s.pause.CompareAndSwap(true, false) {
			s.paused <- struct{}{}
			<-s.resume
		}
		return err
	})
}

// TestMemoryHoldDuringASettlement: while the settlement of a hold in
// memory commits, a new hold in memory finds what the account will have:
// the settled hold's room is spent by its own charge, not twice; while a
// top-up commits, what it adds is not there yet and nothing is taken.
func TestMemoryHoldDuringASettlement(t *testing.T) {
	ctx := context.Background()
	s := &pauseStore{Store: openStore(t), paused: make(chan struct{}), resume: make(chan struct{})}
	l := ledger.New(s, ledger.Options{Clock: clock.NewFake(t0), Exclusive: true})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "a", TenantID: "acme", Amount: money.New(6*yuan, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	s.pause.Store(true)
	settled := make(chan error, 1)
	go func() {
		_, err := l.Settle(ctx, ledger.Settlement{Record: record("a", 6*yuan)})
		settled <- err
	}()
	<-s.paused // a's settlement is written, not yet committed
	_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "b", TenantID: "acme", Amount: money.New(4*yuan, money.CNY)})
	s.resume <- struct{}{}
	if err != nil {
		t.Errorf("hold of the 4 left while a's settlement of 6 commits: %v", err)
	}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if b := balance(t, l); b.Posted != 4*yuan || (err == nil && b.Pending != 4*yuan) {
		t.Errorf("balance %+v; want posted 4, b's 4 pending", b)
	}
	if err == nil {
		if _, err := l.Void(ctx, "b"); err != nil {
			t.Fatal(err)
		}
	}
	// A top-up that has not committed yet adds nothing, and takes nothing.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "c", TenantID: "acme", Amount: money.New(3*yuan, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	s.pause.Store(true)
	go func() {
		_, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 5 * yuan})
		settled <- err
	}()
	<-s.paused
	_, errD := l.Hold(ctx, ledger.HoldRequest{RequestID: "d", TenantID: "acme", Amount: money.New(yuan, money.CNY)})
	_, errE := l.Hold(ctx, ledger.HoldRequest{RequestID: "e", TenantID: "acme", Amount: money.New(yuan, money.CNY)})
	s.resume <- struct{}{}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if errD != nil || !errors.Is(errE, ledger.ErrInsufficientFunds) {
		t.Errorf("holds of 1 and 1 more with 1 left while a top-up of 5 commits: %v, %v; want the first placed, the second refused", errD, errE)
	}
	for _, id := range []string{"c", "d"} {
		if _, err := l.Void(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// A debit that has not committed yet is already out of reach: 9 posted,
	// 5 taken by the operator, so a hold of 5 fits and one more nano not.
	s.pause.Store(true)
	go func() {
		_, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: -5 * yuan})
		settled <- err
	}()
	<-s.paused
	_, errF := l.Hold(ctx, ledger.HoldRequest{RequestID: "f", TenantID: "acme", Amount: money.New(4*yuan+1, money.CNY)})
	_, errG := l.Hold(ctx, ledger.HoldRequest{RequestID: "g", TenantID: "acme", Amount: money.New(4*yuan, money.CNY)})
	s.resume <- struct{}{}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errF, ledger.ErrInsufficientFunds) || errG != nil {
		t.Errorf("holds of 4 and a nano, then 4, while a debit of 5 of 9 commits: %v, %v; want the first refused, the second placed", errF, errG)
	}
	if b := balance(t, l); b.Posted != 4*yuan || b.Pending != 4*yuan || b.Available != 0 {
		t.Errorf("balance %+v; want posted 4, pending 4, nothing available", b)
	}
	if _, err := l.Void(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	// A settlement in one transaction with another whose overage the
	// account cannot pay (it becomes debt): what the first takes is out of
	// reach while they commit. 10 posted, h 4 and i 2 held; h costs 9 (4
	// from its hold, 5 owed), j costs 3 with no hold: 3 stay, i's 2 held.
	if _, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 6 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct {
		id     string
		amount int64
	}{{"h", 4 * yuan}, {"i", 2 * yuan}} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: h.id, TenantID: "acme", Amount: money.New(h.amount, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	s.pause.Store(true)
	go func() {
		rs, err := l.SettleBatch(ctx, []ledger.Settlement{{Record: record("h", 9*yuan)}, {Record: record("j", 3*yuan)}})
		if err == nil && (rs[0].Err != nil || rs[1].Err != nil) {
			err = errors.Join(rs[0].Err, rs[1].Err)
		}
		settled <- err
	}()
	<-s.paused
	_, errK := l.Hold(ctx, ledger.HoldRequest{RequestID: "k", TenantID: "acme", Amount: money.New(2*yuan, money.CNY)})
	s.resume <- struct{}{}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if errK == nil {
		t.Errorf("a hold of 2 while settlements leaving 1 commit was placed; want it refused")
		if _, err := l.Void(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if b := balance(t, l); b.Posted != 3*yuan || b.Pending != 2*yuan || b.Debt != 5*yuan {
		t.Errorf("balance %+v; want posted 3, pending 2, owing 5", b)
	}
}

// viewCount counts the read-only views a ledger opens on its store.
type viewCount struct {
	storetest.Store
	n atomic.Int64
}

func (s *viewCount) LedgerView(ctx context.Context, fn func(ledger.Snapshot) error) error {
	s.n.Add(1)
	return s.Store.LedgerView(ctx, fn)
}

// TestMirrorFollowsCommits: once an exclusive ledger has read a tenant's
// accounts, its holds in memory read nothing from the store, before or
// after the commits of its settlements, top-ups and voids.
func TestMirrorFollowsCommits(t *testing.T) {
	ctx := context.Background()
	s := &viewCount{Store: openStore(t)}
	l := ledger.New(s, ledger.Options{Clock: clock.NewFake(t0), Exclusive: true})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	hold := func(id string) {
		t.Helper()
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	hold("r0") // reads the accounts once
	before := s.n.Load()
	for i, step := range []func() error{
		func() error { _, err := l.Settle(ctx, ledger.Settlement{Record: record("r0", yuan/2)}); return err },
		func() error { _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan}); return err },
		func() error { _, err := l.Void(ctx, "r1"); return err },
	} {
		hold(fmt.Sprint("r", i+1))
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	hold("r9")
	if n := s.n.Load() - before; n != 0 {
		t.Errorf("holds in memory opened %d views of the store after the first; want 0", n)
	}
	if b := balance(t, l); b.Posted != 11*yuan-yuan/2 || b.Pending != 3*yuan {
		t.Errorf("balance %+v; want posted 10.5, pending 3 (r2, r3, r9)", b)
	}
}
