package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// holdModes are the three places a hold can live while its request runs:
// in the store (written by the plain Tx primitives), in memory (one node
// owning the store, as `baimo serve` runs on SQLite), and in the store
// written by the one-statement abilities a network database offers.
var holdModes = []struct {
	name      string
	exclusive bool
	wrap      func(storetest.Store) ledger.Store
	// transfers gives a request's transfers in this mode from those it has
	// when its hold is in the store; nil when they cannot be listed by
	// request (settlements in memory posted together as one transfer).
	transfers func(inStore []string) []string
}{
	{"InStore", false, func(s storetest.Store) ledger.Store { return s }, slices.Clone[[]string]},
	{"InMemory", true, func(s storetest.Store) ledger.Store { return s }, nil},
	{"InMemoryOneByOne", true, func(s storetest.Store) ledger.Store { return plainStore{s} }, inMemory},
	{"OneStatement", false, func(s storetest.Store) ledger.Store { return oneStatementStore{s} }, slices.Clone[[]string]},
}

// plainStore offers none of the optional write abilities (BatchWriter
// among them), so a ledger settles each request held in memory on its own.
type plainStore struct{ storetest.Store }

func (s plainStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(plainTx{tx}) })
}

type plainTx struct{ ledger.Tx }

// inMemory turns a request's transfers with its hold in the store into
// those with its hold in memory: no pending transfer, and the cost up to
// the hold charged rather than posted.
func inMemory(inStore []string) []string {
	var out []string
	for _, s := range inStore {
		if strings.Contains(s, " pending ") {
			continue
		}
		out = append(out, strings.Replace(s, " settle post ", " settle - ", 1))
	}
	return out
}

// modeBooks opens a ledger in one hold mode with tenant acme (prepaid, CNY)
// holding balance; the books are audited at the end of the test.
func modeBooks(t *testing.T, exclusive bool, wrap func(storetest.Store) ledger.Store, balance int64) (*ledger.Ledger, storetest.Store, *clock.Fake) {
	t.Helper()
	db := openStore(t)
	clk := clock.NewFake(t0)
	l := ledger.New(wrap(db), ledger.Options{Clock: clk, Exclusive: exclusive, Node: "test"})
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
	if balance > 0 {
		if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: balance}); err != nil {
			t.Fatal(err)
		}
	}
	return l, db, clk
}

// TestSettleRetryGivesTheFirstResult: a settlement retried (a lost reply,
// a second node) moves no money and reports what the first one posted,
// released, took as overage and recorded as debt, whatever the retry's
// record says, for a request with or without a hold, paid or owed.
func TestSettleRetryGivesTheFirstResult(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		balance int64 // acme's balance before the request
		hold    int64 // -1: no hold
		cost    int64
		want    ledger.SettleResult
		after   ledger.Balance // posted, pending, debt after the settlement
		// the request's transfers (id kind flag yuan) when its hold is in
		// the store: nothing more, no transfer of nothing
		transfers []string
	}{
		{"no hold, paid", 5 * yuan, -1, 2 * yuan,
			ledger.SettleResult{Overage: 2 * yuan}, ledger.Balance{Posted: 3 * yuan},
			[]string{"r1/charge charge - 2"}},
		{"no hold, owed", 0, -1, 2 * yuan,
			ledger.SettleResult{Debt: 2 * yuan}, ledger.Balance{Debt: 2 * yuan},
			[]string{"r1/charge debt - 2"}},
		{"within the hold", 5 * yuan, 3 * yuan, 2 * yuan,
			ledger.SettleResult{Posted: 2 * yuan, Released: yuan}, ledger.Balance{Posted: 3 * yuan},
			[]string{"r1/hold hold pending 3", "r1/settle settle post 2"}},
		{"exactly the hold", 5 * yuan, 3 * yuan, 3 * yuan,
			ledger.SettleResult{Posted: 3 * yuan}, ledger.Balance{Posted: 2 * yuan},
			[]string{"r1/hold hold pending 3", "r1/settle settle post 3"}},
		{"nothing of the hold", 5 * yuan, 3 * yuan, 0,
			ledger.SettleResult{Released: 3 * yuan}, ledger.Balance{Posted: 5 * yuan},
			[]string{"r1/hold hold pending 3", "r1/settle settle post 0"}},
		{"overage paid", 5 * yuan, yuan, 3 * yuan,
			ledger.SettleResult{Posted: yuan, Overage: 2 * yuan}, ledger.Balance{Posted: 2 * yuan},
			[]string{"r1/hold hold pending 1", "r1/overage overage - 2", "r1/settle settle post 1"}},
		{"overage owed", 2 * yuan, yuan, 5 * yuan,
			ledger.SettleResult{Posted: yuan, Debt: 4 * yuan}, ledger.Balance{Posted: yuan, Debt: 4 * yuan},
			[]string{"r1/hold hold pending 1", "r1/overage debt - 4", "r1/settle settle post 1"}},
	}
	for _, m := range holdModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				l, db, _ := modeBooks(t, m.exclusive, m.wrap, c.balance)
				if c.hold >= 0 {
					if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(c.hold, money.CNY)}); err != nil {
						t.Fatalf("Hold: %v", err)
					}
				}
				want := c.want
				want.RequestID = "r1"
				got, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", c.cost)})
				if err != nil || !sameFigures(got, want) {
					t.Fatalf("Settle = %+v, %v; want %+v", got, err, want)
				}
				b := balance(t, l)
				if b.Posted != c.after.Posted || b.Pending != 0 || b.Debt != c.after.Debt {
					t.Fatalf("balance after = posted %d pending %d debt %d, want %d 0 %d", b.Posted, b.Pending, b.Debt, c.after.Posted, c.after.Debt)
				}
				if m.transfers != nil {
					if got, want := transfersOf(t, db, "r1"), m.transfers(c.transfers); !slices.Equal(got, want) {
						t.Errorf("transfers of r1 = %q, want %q", got, want)
					}
				}
				again, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", c.cost+7*yuan)})
				want.Duplicate = true
				if m.exclusive && c.hold >= 0 {
					// A hold kept in memory leaves no pending transfer
					// in the store to tell what it released.
					want.Released = 0
				}
				if err != nil || !sameFigures(again, want) {
					t.Errorf("retried Settle = %+v, %v; want %+v", again, err, want)
				}
				if b2 := balance(t, l); b2.Posted != b.Posted || b2.Pending != b.Pending || b2.Debt != b.Debt {
					t.Errorf("a retry moved money: balance %+v, then %+v", b, b2)
				}
			})
		}
	}
}

// TestSettleRefusesAnotherTenantsHold: a record naming one tenant cannot
// settle a request another tenant holds; the hold stays for its own
// tenant's settlement.
func TestSettleRefusesAnotherTenantsHold(t *testing.T) {
	ctx := context.Background()
	for _, m := range holdModes {
		t.Run(m.name, func(t *testing.T) {
			l, _, _ := modeBooks(t, m.exclusive, m.wrap, 5*yuan)
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "beta", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "beta", Amount: 5 * yuan}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(2*yuan, money.CNY)}); err != nil {
				t.Fatal(err)
			}
			other := record("r1", yuan)
			other.TenantID = "beta"
			if res, err := l.Settle(ctx, ledger.Settlement{Record: other}); err == nil {
				t.Fatalf("Settle of acme's hold with beta's record = %+v, want an error", res)
			}
			if b, err := l.Balance(ctx, "beta"); err != nil || b.Posted != 5*yuan || b.Pending != 0 {
				t.Fatalf("beta's balance = %+v, %v; want 5 yuan untouched", b, err)
			}
			if b := balance(t, l); b.Posted != 5*yuan || b.Pending != 2*yuan {
				t.Fatalf("acme's balance = %+v, want 5 yuan with 2 held", b)
			}
			res, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan)})
			if err != nil || res.Posted != yuan || res.Released != yuan {
				t.Fatalf("acme's own Settle = %+v, %v", res, err)
			}
		})
	}
}

// TestSettleStoresTheRecordInTheAccountsCurrency: a free record that names
// no currency is stored in its tenant's; a free request with no hold moves no
// money and writes no transfer.
func TestSettleStoresTheRecordInTheAccountsCurrency(t *testing.T) {
	ctx := context.Background()
	for _, m := range holdModes {
		t.Run(m.name, func(t *testing.T) {
			l, db, _ := modeBooks(t, m.exclusive, m.wrap, 5*yuan)
			free := record("free", 0)
			free.Currency = "" // a request that cost nothing may name no currency
			for _, r := range []usage.Record{record("paid", yuan), free} {
				if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
					t.Fatalf("Settle %s: %v", r.RequestID, err)
				}
			}
			p, err := db.ListRecords(ctx, usage.Filter{TenantID: "acme"})
			if err != nil || len(p.Records) != 2 {
				t.Fatalf("records = %+v, %v", p.Records, err)
			}
			for _, r := range p.Records {
				if r.Currency != "CNY" {
					t.Errorf("record %s stored in %q, want CNY", r.RequestID, r.Currency)
				}
			}
			if ts := transfersOf(t, db, "free"); len(ts) != 0 {
				t.Errorf("transfers of a free request without a hold = %q, want none", ts)
			}
			if b := balance(t, l); b.Posted != 4*yuan {
				t.Errorf("balance = %+v, want 4 yuan", b)
			}
		})
	}
}

// sameFigures compares what two settlements report, alerts and error aside.
func sameFigures(a, b ledger.SettleResult) bool {
	return a.RequestID == b.RequestID && a.Posted == b.Posted && a.Released == b.Released &&
		a.Overage == b.Overage && a.Debt == b.Debt && a.Duplicate == b.Duplicate
}

// transfersOf lists a request's transfers as "id kind flag yuan" (flag -
// for none), sorted.
func transfersOf(t *testing.T, db storetest.Store, req string) []string {
	t.Helper()
	var out []string
	err := db.LedgerView(context.Background(), func(v ledger.Snapshot) error {
		ts, err := v.TransfersByRequest(context.Background(), req)
		for _, x := range ts {
			flag := string(x.Flag)
			if flag == "" {
				flag = "-"
			}
			out = append(out, fmt.Sprintf("%s %s %s %s", x.ID, x.Kind, flag, money.FormatNanos(x.Amount)))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// failBudgetStore fails every MoveBudget of a write transaction while fail
// is set: a budget row the database cannot write.
type failBudgetStore struct {
	storetest.Store
	fail atomic.Bool
}

func (s *failBudgetStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(failBudgetTx{tx, s}) })
}

type failBudgetTx struct {
	ledger.Tx
	s *failBudgetStore
}

func (tx failBudgetTx) MoveBudget(ctx context.Context, k ledger.BudgetKey, pending, spent int64) (int64, error) {
	if tx.s.fail.Load() {
		return 0, errors.New("budget row: disk I/O error")
	}
	return tx.Tx.MoveBudget(ctx, k, pending, spent)
}

// TestSettleFailsWithItsBudget: a settlement whose budget cannot be
// counted fails as a whole (nothing charged, the caller retries), never
// charges the account while the budget misses the spending; once the
// store recovers, the retry counts both. So with a hold (its reservation
// replaced by the cost) and without one (the cost charged outright).
func TestSettleFailsWithItsBudget(t *testing.T) {
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			ctx := context.Background()
			s := &failBudgetStore{Store: openStore(t)}
			clk := clock.NewFake(t0)
			l := ledger.New(s, ledger.Options{Clock: clk})
			t.Cleanup(func() { l.Close() })
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
				t.Fatal(err)
			}
			if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal, Limit: 100 * yuan}); err != nil {
				t.Fatal(err)
			}
			pending := int64(0)
			if held {
				if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", KeyID: "k1", Amount: money.New(3*yuan, money.CNY)}); err != nil {
					t.Fatal(err)
				}
				pending = 3 * yuan
			}
			rec := record("r1", 2*yuan)
			rec.KeyID = "k1"
			s.fail.Store(true)
			if res, err := l.Settle(ctx, ledger.Settlement{Record: rec}); err == nil {
				t.Fatalf("Settle with the budget row failing = %+v, nil; want an error", res)
			}
			if b := balance(t, l); b.Posted != 10*yuan || b.Pending != pending {
				t.Fatalf("balance after the failed settlement = %+v; want 10 posted, %s pending: untouched", b, money.FormatNanos(pending))
			}
			s.fail.Store(false)
			if res, err := l.Settle(ctx, ledger.Settlement{Record: rec}); err != nil || res.Duplicate {
				t.Fatalf("retried Settle = %+v, %v", res, err)
			}
			_, spent, reserved, err := l.BudgetUsage(ctx, ledger.ScopeKey, "k1", clk.Now())
			if b := balance(t, l); err != nil || b.Posted != 8*yuan || b.Pending != 0 || spent != 2*yuan || reserved != 0 {
				t.Fatalf("after the retry: balance %+v, budget spent %d, reserved %d (%v); want 8 left, 2 spent", b, spent, reserved, err)
			}
		})
	}
}

// TestBudgetSetWhileHeld: a hold placed when its key had no budget
// (kept in memory on an exclusive ledger, in the store on a shared one)
// settled after a budget was set on the key counts its whole cost against
// that budget, the overage beyond the hold included.
func TestBudgetSetWhileHeld(t *testing.T) {
	for _, exclusive := range []bool{true, false} {
		t.Run(fmt.Sprint("exclusive=", exclusive), func(t *testing.T) { testBudgetSetWhileHeld(t, exclusive) })
	}
}

func testBudgetSetWhileHeld(t *testing.T, exclusive bool) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	l := ledger.New(openStore(t), ledger.Options{Clock: clk, Exclusive: exclusive})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"within", "over"} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: money.New(yuan, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); exclusive && st.HeldInMemory != 2 {
		t.Fatalf("held in memory: %d, want 2", st.HeldInMemory)
	}
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal, Limit: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id         string
		cost       int64
		spentAfter int64
	}{{"within", yuan / 2, yuan / 2}, {"over", 3 * yuan, yuan/2 + 3*yuan}} {
		rec := record(c.id, c.cost)
		rec.KeyID = "k1"
		if _, err := l.Settle(ctx, ledger.Settlement{Record: rec}); err != nil {
			t.Fatal(err)
		}
		_, spent, _, err := l.BudgetUsage(ctx, ledger.ScopeKey, "k1", clk.Now())
		if err != nil || spent != c.spentAfter {
			t.Fatalf("after %s (cost %s): budget spent %s, %v; want %s", c.id, money.FormatNanos(c.cost),
				money.FormatNanos(spent), err, money.FormatNanos(c.spentAfter))
		}
	}
	if b := balance(t, l); b.Posted != 10*yuan-yuan/2-3*yuan || b.Pending != 0 {
		t.Errorf("balance %+v; want 6.5 posted, nothing pending", b)
	}
}
