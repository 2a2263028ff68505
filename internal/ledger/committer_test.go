package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
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
