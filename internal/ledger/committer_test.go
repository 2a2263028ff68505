package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// badItemStore fails, with a store error (not an item's own refusal), every
// transaction that inserts the hold of request "bad"; it can hold the next
// write transaction at its start until released, so that operations queue
// behind it and make one batch; and it runs onBad when the bad hold fails.
type badItemStore struct {
	storetest.Store
	mu      sync.Mutex
	gate    chan struct{} // closed by the test: the held transaction goes on
	entered chan struct{} // closed when a transaction waits at the gate
	onBad   func()
	txs     int // write transactions begun
}

func (s *badItemStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.gate = nil
	s.txs++
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(badItemTx{tx, s}) })
}

type badItemTx struct {
	ledger.Tx
	s *badItemStore
}

func (tx badItemTx) InsertHold(ctx context.Context, h ledger.Hold) (bool, error) {
	if h.RequestID == "bad" {
		if tx.s.onBad != nil {
			tx.s.onBad()
		}
		return false, errors.New("disk I/O error")
	}
	return tx.Tx.InsertHold(ctx, h)
}

// TestBatchFailureRetriesEachAlone: when a store error in one operation
// aborts the transaction of a batch, each operation is retried alone, so
// its neighbours are placed and only it fails; an operation whose caller
// gave up meanwhile is not retried, and nothing is held for it.
func TestBatchFailureRetriesEachAlone(t *testing.T) {
	ctx := context.Background()
	s := &badItemStore{Store: openStore(t)}
	l := ledger.New(s, ledger.Options{Clock: clock.NewFake(t0)})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	gate, entered := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	s.gate, s.entered = gate, entered
	s.mu.Unlock()
	goneCtx, gone := context.WithCancel(ctx)
	s.onBad = gone // the caller of "gone" gives up while its batch fails
	type result struct {
		h   ledger.Hold
		err error
	}
	results := map[string]*result{}
	var wg sync.WaitGroup
	hold := func(ctx context.Context, id string) {
		r := &result{}
		results[id] = r
		wg.Go(func() {
			r.h, r.err = l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan, money.CNY)})
		})
	}
	hold(ctx, "first") // its transaction waits at the gate
	<-entered
	hold(ctx, "ok")
	hold(ctx, "bad")
	hold(goneCtx, "gone")
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Queued < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the three holds did not queue: %+v", l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for _, id := range []string{"first", "ok"} {
		if r := results[id]; r.err != nil || r.h.RequestID != id || r.h.Amount != yuan || r.h.State != ledger.HoldPending {
			t.Errorf("hold %s = %+v, %v; want placed", id, r.h, r.err)
		}
	}
	if r := results["bad"]; r.err == nil {
		t.Errorf("hold bad = %+v, nil; want the store's error", r.h)
	}
	if r := results["gone"]; !errors.Is(r.err, context.Canceled) {
		t.Errorf("hold gone = %+v, %v; want context.Canceled", r.h, r.err)
	}
	if b := balance(t, l); b.Pending != 2*yuan {
		t.Errorf("pending %s; want 2 (first and ok; nothing for bad or gone)", money.FormatNanos(b.Pending))
	}
	for _, id := range []string{"first", "ok"} {
		if _, err := l.Void(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoneFailureNotRetried: an operation alone in its batch that fails
// with a store error fails at once: it has no neighbours to spare, and a
// failing store is not asked twice per request (the caller decides).
func TestLoneFailureNotRetried(t *testing.T) {
	ctx := context.Background()
	s := &badItemStore{Store: openStore(t)}
	l := ledger.New(s, ledger.Options{Clock: clock.NewFake(t0)})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	before := s.txs
	s.mu.Unlock()
	if h, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "bad", TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err == nil {
		t.Fatalf("hold bad = %+v, nil; want the store's error", h)
	}
	s.mu.Lock()
	txs := s.txs - before
	s.mu.Unlock()
	if txs != 1 {
		t.Errorf("a lone failing hold took %d transactions, want 1", txs)
	}
}

// TestSettleBatchInMemoryCurrency: settlements of holds in memory taken
// together are stored in the account's currency (one that cost nothing and
// names none takes it), and one in another currency is refused alone, its
// hold kept.
func TestSettleBatchInMemoryCurrency(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0), Exclusive: true})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "usd"} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(2*yuan, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	a, b, usd := record("a", 0), record("b", yuan), record("usd", yuan)
	a.Currency, usd.Currency = "", "USD" // a request that cost nothing may name no currency
	rs, err := l.SettleBatch(ctx, []ledger.Settlement{{Record: a}, {Record: b}, {Record: usd}})
	if err != nil || len(rs) != 3 || rs[0].Err != nil || rs[1].Err != nil || !errors.Is(rs[2].Err, ledger.ErrInvalid) {
		t.Fatalf("SettleBatch = %+v, %v; want a and b settled, the USD record refused", rs, err)
	}
	page, err := db.ListRecords(ctx, usage.Filter{TenantID: "acme"})
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("records %+v, %v; want a and b", page.Records, err)
	}
	for _, r := range page.Records {
		if r.Currency != "CNY" {
			t.Errorf("record %s stored in %q, want CNY", r.RequestID, r.Currency)
		}
	}
	if bal := balance(t, l); bal.Posted != 9*yuan || bal.Pending != 2*yuan {
		t.Errorf("balance %+v; want posted 9, the USD request's 2 still held", bal)
	}
	if _, err := l.Void(ctx, "usd"); err != nil {
		t.Fatal(err)
	}
}

// queueBehindGate holds the next write transaction of s at its start and
// returns a function that waits until n operations queue behind it, then
// lets it go.
func queueBehindGate(t *testing.T, s *badItemStore, l *ledger.Ledger) (entered <-chan struct{}, release func(n int)) {
	t.Helper()
	gate, in := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	s.gate, s.entered = gate, in
	s.mu.Unlock()
	return in, func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for l.Stats().Queued < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d operations did not queue: %+v", n, l.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		close(gate)
	}
}

// TestCommitterBatches: the committer takes at most MaxBatch operations in
// one transaction, and the operations of one request in the order they
// were submitted (a hold, then its settlement, in one batch).
func TestCommitterBatches(t *testing.T) {
	ctx := context.Background()
	s := &badItemStore{Store: openStore(t)}
	l := ledger.New(s, ledger.Options{Clock: clock.NewFake(t0), MaxBatch: 2})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	hold := func(id string) error {
		_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan, money.CNY)})
		return err
	}
	entered, release := queueBehindGate(t, s, l)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	wg.Go(func() { errs[0] = hold("h0") })
	<-entered
	before := l.Stats()
	for i := 1; i < 4; i++ {
		wg.Go(func() { errs[i] = hold(fmt.Sprint("h", i)) })
	}
	release(3)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("hold h%d: %v", i, err)
		}
	}
	// h0's batch was counted when it began; the three behind it make two.
	if st := l.Stats(); st.Batches-before.Batches != 2 || st.Ops-before.Ops != 3 {
		t.Errorf("three queued holds took %d batches of %d operations in all, want 2 batches (MaxBatch 2)",
			st.Batches-before.Batches, st.Ops-before.Ops)
	}

	// A hold and its settlement queued in that order run in that order.
	entered, release = queueBehindGate(t, s, l)
	wg.Go(func() { errs[0] = hold("first") })
	<-entered
	wg.Go(func() { errs[1] = hold("x") })
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Queued < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the hold did not queue")
		}
		time.Sleep(time.Millisecond)
	}
	var res ledger.SettleResult
	wg.Go(func() { res, errs[2] = l.Settle(ctx, ledger.Settlement{Record: record("x", yuan/2)}) })
	release(2)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || res.Posted != yuan/2 || res.Released != yuan/2 {
		t.Fatalf("hold then settlement in one batch: %v, %v, %+v %v; want the settlement posted from the hold", errs[0], errs[1], res, errs[2])
	}
}
