package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

const yuan = money.Scale

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// faultStore wraps a store and injects one kind of failure into write
// transactions while fault is set.
type faultStore struct {
	ledger.Store
	fault atomic.Value // of faultKind
	calls atomic.Int64
	gate  chan struct{} // stall: closed to let the transactions through
}

type faultKind string

const (
	noFault      faultKind = ""
	beforeCommit faultKind = "before"  // the transaction runs, then fails and rolls back
	afterCommit  faultKind = "after"   // it commits, but the reply is lost
	hang         faultKind = "timeout" // it never answers before the context ends
	stall        faultKind = "stall"   // it waits for the gate to open, then commits
)

var errInjected = errors.New("injected fault")

func (f *faultStore) set(k faultKind) { f.fault.Store(k) }

func (f *faultStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	f.calls.Add(1)
	k, _ := f.fault.Load().(faultKind)
	switch k {
	case beforeCommit:
		err := f.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errInjected
		})
		return err
	case afterCommit:
		if err := f.Store.LedgerUpdate(ctx, fn); err != nil {
			return err
		}
		return errInjected
	case hang:
		<-ctx.Done()
		return ctx.Err()
	case stall:
		<-f.gate
	}
	return f.Store.LedgerUpdate(ctx, fn)
}

func setup(t *testing.T, opts ledger.Options) (*ledger.Ledger, *faultStore, *sqlite.DB, *clock.Fake) {
	t.Helper()
	db := openStore(t)
	fs := &faultStore{Store: db}
	clk := clock.NewFake(t0)
	opts.Clock = clk
	l := ledger.New(fs, opts)
	t.Cleanup(func() {
		l.Close()
		if !t.Failed() {
			storetest.AuditClean(t, db, clk.Now())
		}
	})
	ctx := context.Background()
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	return l, fs, db, clk
}

func record(req string, cost int64) usage.Record {
	return usage.Record{RequestID: req, TenantID: "acme", Model: "m", Status: 200, Currency: "CNY", CostNanos: cost, Start: t0}
}

func balance(t *testing.T, l *ledger.Ledger) ledger.Balance {
	t.Helper()
	b, err := l.Balance(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	for _, k := range []faultKind{beforeCommit, afterCommit, hang} {
		t.Run(string(k), func(t *testing.T) {
			// The hang fault waits for TxTimeout; the retries after a fault
			// must fit in it too, under the race detector on a loaded machine.
			l, fs, _, _ := setup(t, ledger.Options{TxTimeout: 500 * time.Millisecond})
			committed := k == afterCommit

			// Hold: the caller sees an error; a retry with the same id holds once.
			fs.set(k)
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(2*yuan, money.CNY)}); err == nil {
				t.Fatal("Hold succeeded through an injected fault")
			}
			fs.set(noFault)
			if got := balance(t, l).Pending; (got == 2*yuan) != committed {
				t.Fatalf("pending after a failed hold = %d (committed %v)", got, committed)
			}
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(2*yuan, money.CNY)}); err != nil {
				t.Fatalf("retried Hold: %v", err)
			}
			if got := balance(t, l).Pending; got != 2*yuan {
				t.Fatalf("pending after retry = %d, want one hold", got)
			}

			// Settle: same.
			fs.set(k)
			if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan)}); err == nil {
				t.Fatal("Settle succeeded through an injected fault")
			}
			fs.set(noFault)
			r, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan)})
			if err != nil || r.Duplicate != committed {
				t.Fatalf("retried Settle = %+v, %v", r, err)
			}
			if b := balance(t, l); b.Posted != 9*yuan || b.Pending != 0 {
				t.Fatalf("balance after settle = %+v, want 9 posted, nothing pending", b)
			}

			// SettleBatch: all or nothing, and a retry is exact.
			for _, id := range []string{"b1", "b2"} {
				if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err != nil {
					t.Fatal(err)
				}
			}
			batch := []ledger.Settlement{{Record: record("b1", yuan/2)}, {Record: record("b2", yuan/2)}}
			fs.set(k)
			fctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := l.SettleBatch(fctx, batch); err == nil {
				t.Fatal("SettleBatch succeeded through an injected fault")
			}
			fs.set(noFault)
			if _, err := l.SettleBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if b := balance(t, l); b.Posted != 8*yuan || b.Pending != 0 {
				t.Fatalf("balance after batch = %+v, want 8 posted", b)
			}

			// Admin money with an idempotency key: the retry returns the first result.
			fs.set(k)
			if _, err := l.TopUp(fctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan, IdempotencyKey: "top-1"}); err == nil {
				t.Fatal("TopUp succeeded through an injected fault")
			}
			fs.set(noFault)
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan, IdempotencyKey: "top-1"}); err != nil {
				t.Fatal(err)
			}
			if b := balance(t, l); b.Posted != 9*yuan {
				t.Fatalf("balance after top-up retry = %+v, want 9 posted (one top-up)", b)
			}
		})
	}
}

// TestHoldWaitBounded: a Hold waits for a stalled store at most HoldWait and
// fails; when the store answers after all, the hold it placed for the
// caller that gave up is voided, so no money stays reserved for a refused
// request.
func TestHoldWaitBounded(t *testing.T) {
	ctx := context.Background()
	l, fs, db, _ := setup(t, ledger.Options{HoldWait: 50 * time.Millisecond})
	fs.gate = make(chan struct{})
	fs.set(stall)
	_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "gave-up", TenantID: "acme", Amount: money.New(2*yuan, money.CNY)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hold on a stalled store: %v, want a deadline error", err)
	}
	fs.set(noFault)
	close(fs.gate) // the stalled batch commits the hold now
	deadline := time.Now().Add(10 * time.Second)
	for {
		var h ledger.Hold
		err := db.LedgerView(ctx, func(v ledger.Snapshot) error {
			var err error
			h, err = v.Hold(ctx, "gave-up")
			return err
		})
		if err == nil && h.State == ledger.HoldVoided {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold of the request that gave up: %+v, %v; want it placed by the stalled batch, then voided", h, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b := balance(t, l); b.Pending != 0 || b.Posted != 10*yuan {
		t.Fatalf("balance after the abandoned hold = %+v, want 10 posted and nothing pending", b)
	}
	// Once the store answers, holds go through again (retried: on a loaded
	// machine one may still miss its 50 ms HoldWait; the id makes it exact).
	for try := 0; ; try++ {
		_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "next", TenantID: "acme", Amount: money.New(yuan, money.CNY)})
		if err == nil {
			break
		}
		if try == 50 {
			t.Fatalf("Hold once the store answers: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBatchIsolation: a transaction failure of one batch falls back to
// committing the items one by one, so a neighbour's fault does not fail a hold.
func TestBatchIsolation(t *testing.T) {
	ctx := context.Background()
	l, _, _, _ := setup(t, ledger.Options{})
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := "h" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			_, errs[i] = l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: "acme", Amount: money.New(yuan/10, money.CNY)})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("hold %d: %v", i, err)
		}
	}
	if b := balance(t, l); b.Pending != 5*yuan {
		t.Fatalf("pending = %d, want 5 yuan", b.Pending)
	}
	if r, err := l.Reconcile(ctx, t0.Add(time.Second)); err != nil || r.Voided != 50 {
		t.Fatalf("Reconcile = %+v, %v", r, err)
	}
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	ctx := context.Background()
	l, _, _, _ := setup(t, ledger.Options{})
	var wg sync.WaitGroup
	var ok, closed atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "c" + string(rune('A'+i%26)) + string(rune('a'+i/26)),
				TenantID: "acme", Amount: money.New(1, money.CNY)})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ledger.ErrClosed):
				closed.Add(1)
			default:
				t.Errorf("hold: %v", err)
			}
		}(i)
	}
	l.Close()
	wg.Wait()
	if ok.Load()+closed.Load() != 100 {
		t.Fatalf("ok %d + closed %d != 100", ok.Load(), closed.Load())
	}
	if got := balance(t, l).Pending; got != ok.Load() {
		t.Fatalf("pending %d, but %d holds were granted", got, ok.Load())
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "late", TenantID: "acme"}); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("Hold after Close err = %v, want ErrClosed", err)
	}
	// Holds placed before Close stay pending (not yet expired: the audit in
	// cleanup allows them) until settled, voided, swept or reconciled.
}

// TestAuditDetectsTampering changes a cached balance behind the ledger's
// back: the audit must fail and name the account.
func TestAuditDetectsTampering(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0)})
	defer l.Close()
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "x", TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Audit(ctx, db, t0, time.Minute)
	if err != nil || !rep.OK {
		t.Fatalf("clean audit = %+v, %v", rep, err)
	}
	for _, tc := range []struct {
		name, sql string
		failed    []string
	}{
		{"cached balance", `UPDATE ledger_accounts SET posted_credits = posted_credits + 5 WHERE id = 'tenant:acme'`,
			[]string{ledger.CheckBalanced, ledger.CheckCached}},
		{"below zero", `UPDATE ledger_accounts SET posted_debits = posted_debits + 2000000000 WHERE id = 'tenant:acme'`,
			[]string{ledger.CheckBalanced, ledger.CheckFloors, ledger.CheckCached}},
		{"hold state", `UPDATE ledger_holds SET state = 'posted' WHERE request_id = 'x'`,
			[]string{ledger.CheckHoldsOnce}},
		{"record cost", "", []string{ledger.CheckCosts}}, // a record stored without its settlement
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openStore(t)
			l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0)})
			defer l.Close()
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "x", TenantID: "acme", Amount: money.New(yuan/2, money.CNY)}); err != nil {
				t.Fatal(err)
			}
			tamper := func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, tc.sql); return err }
			if tc.sql == "" {
				tamper = func(tx *sql.Tx) error { return db.WriteRecordsTx(ctx, tx, []usage.Record{record("y", 7)}) }
			}
			if err := db.Tx(ctx, tamper); err != nil {
				t.Fatal(err)
			}
			rep, err := ledger.Audit(ctx, db, t0, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, c := range rep.Failed() {
				failed = append(failed, c.Name)
			}
			slices.Sort(failed)
			want := slices.Clone(tc.failed)
			slices.Sort(want)
			if rep.OK || !slices.Equal(failed, want) {
				t.Errorf("failed checks = %v, want %v", failed, want)
			}
		})
	}
	// A hold left open past expiry plus the sweep interval fails the audit.
	rep, err = ledger.Audit(ctx, db, t0.Add(time.Hour), time.Minute)
	if err != nil || rep.OK || rep.Failed()[0].Name != ledger.CheckHoldsOverdue {
		t.Fatalf("audit with an overdue hold = %+v, %v", rep.Failed(), err)
	}
	if _, err := l.Void(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestSettleInBatch checks the settlements of holds in memory posted
// together: one transfer for the batch, each record naming it; retries,
// refunds and the audit see through it.
func TestSettleInBatch(t *testing.T) {
	ctx := context.Background()
	l, _, db, _ := setup(t, ledger.Options{Exclusive: true})
	var ss []ledger.Settlement
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("x%d", i)
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(yuan/10, money.CNY)}); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, ledger.Settlement{Record: record(id, yuan/20)})
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "over", TenantID: "acme", Amount: money.New(yuan/10, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	ss = append(ss, ledger.Settlement{Record: record("over", yuan/5)}, ledger.Settlement{Record: record("nohold", yuan/5)})
	res, err := l.SettleBatch(ctx, ss)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("settle %s: %+v", r.RequestID, r)
		}
	}
	if b := balance(t, l); b.Posted != 10*yuan-10*yuan/20-2*yuan/5 || b.Pending != 0 {
		t.Fatalf("balance after the batch = %+v", b)
	}
	page, err := db.ListRecords(ctx, usage.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	batches := map[int64]int{}
	err = db.LedgerView(ctx, func(v ledger.Snapshot) error {
		for _, r := range page.Records {
			own, err := v.TransfersByRequest(ctx, r.RequestID)
			if err != nil {
				return err
			}
			switch batched := r.SettledIn != 0; {
			case strings.HasPrefix(r.RequestID, "x") && (!batched || len(own) != 0):
				t.Errorf("%s: settled in %d, %d transfers of its own; want a batch and none", r.RequestID, r.SettledIn, len(own))
			case !strings.HasPrefix(r.RequestID, "x") && (batched || len(own) == 0):
				t.Errorf("%s: settled in %d, %d transfers of its own; want no batch", r.RequestID, r.SettledIn, len(own))
			}
			batches[r.SettledIn]++
		}
		return nil
	})
	if err != nil || len(batches) != 2 || batches[0] != 2 {
		t.Fatalf("records by batch = %v, %v; want 10 in one batch, 2 in none", batches, err)
	}
	again, err := l.SettleBatch(ctx, ss[:10])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if !r.Duplicate || r.Posted != yuan/20 {
			t.Errorf("retried %s = %+v, want a duplicate that posted %d", r.RequestID, r, yuan/20)
		}
	}
	if _, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan/20 + 1, RequestID: "x3"}); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("refund above a batch-settled request's cost: %v, want ErrInvalid", err)
	}
	if _, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan / 20, RequestID: "x3"}); err != nil {
		t.Errorf("refund of a batch-settled request: %v", err)
	}
	storetest.AuditClean(t, db, t0)
	for _, tc := range []struct{ name, tamper, undo string }{
		{"record cost", `UPDATE usage_records SET cost_nanos = cost_nanos + 1 WHERE request_id = 'x1'`,
			`UPDATE usage_records SET cost_nanos = cost_nanos - 1 WHERE request_id = 'x1'`},
		{"batch amount", `UPDATE ledger_transfers SET amount = amount - 1 WHERE kind = 'settle_batch'`,
			`UPDATE ledger_transfers SET amount = amount + 1 WHERE kind = 'settle_batch'`},
		{"lost batch", `UPDATE usage_records SET settled_in = settled_in + 1000 WHERE request_id = 'x2'`,
			`UPDATE usage_records SET settled_in = settled_in - 1000 WHERE request_id = 'x2'`},
	} {
		exec := func(q string) {
			t.Helper()
			if err := db.Tx(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, q); return err }); err != nil {
				t.Fatal(err)
			}
		}
		exec(tc.tamper)
		rep, err := ledger.Audit(ctx, db, t0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || !slices.ContainsFunc(rep.Failed(), func(c ledger.Check) bool { return c.Name == ledger.CheckCosts }) {
			t.Errorf("%s: audit = %+v, want %s to fail", tc.name, rep.Failed(), ledger.CheckCosts)
		}
		exec(tc.undo)
	}
}
