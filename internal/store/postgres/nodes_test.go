package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// Several gateway nodes on one PostgreSQL: each is a ledger.Ledger with its
// own connection pool, as a process would have.

// nodes returns n ledgers on one fresh schema, and a store of their own for
// the test to read with.
func nodes(t *testing.T, n int, opts ledger.Options) ([]*ledger.Ledger, *DB) {
	t.Helper()
	dsn := testDSN(t)
	out := make([]*ledger.Ledger, n)
	for i := range out {
		o := opts
		o.Node = fmt.Sprintf("node%d", i)
		out[i] = ledger.New(openDSN(t, dsn), o)
		t.Cleanup(func() { out[i].Close() })
	}
	return out, openDSN(t, dsn)
}

// newTenant creates a prepaid CNY tenant with balance on node l.
func newTenant(t *testing.T, l *ledger.Ledger, id string, balance int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: id, Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: id, Amount: balance}); err != nil {
		t.Fatal(err)
	}
}

// request holds amount for a request of key on node l and settles it at
// cost; it returns the hold's error (nothing is settled then).
func request(t *testing.T, l *ledger.Ledger, id, tenant, key string, amount, cost int64) error {
	t.Helper()
	ctx := context.Background()
	_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: tenant, KeyID: key, Amount: money.New(amount, money.CNY)})
	if err != nil {
		return err
	}
	rec := usage.Record{RequestID: id, TenantID: tenant, KeyID: key, Model: "m", Status: 200, Currency: "CNY",
		CostNanos: cost, Start: time.Now()}
	res, err := l.SettleBatch(ctx, []ledger.Settlement{{Record: rec}})
	if err != nil {
		t.Fatalf("settle %s: %v", id, err)
	}
	if res[0].Err != nil {
		t.Fatalf("settle %s: %v", id, res[0].Err)
	}
	return nil
}

// TestBudgetAcrossNodes: a budget set on one node is enforced at once by the
// others, even those that had just looked for one and found none, and the
// spending of every node is counted against it, including that of requests
// already running when it was set.
func TestBudgetAcrossNodes(t *testing.T) {
	ls, db := nodes(t, 3, ledger.Options{})
	ctx := context.Background()
	const unit = money.Scale / 100
	newTenant(t, ls[0], "acme", 1000*unit)
	// Every node serves the key before it has a budget (and so knows it has
	// none), and one request is in flight on node 2 when the budget comes.
	for i, l := range ls {
		if err := request(t, l, fmt.Sprintf("warm-%d", i), "acme", "k1", 2*unit, unit); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ls[2].Hold(ctx, ledger.HoldRequest{RequestID: "running", TenantID: "acme", KeyID: "k1", Amount: money.New(2*unit, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	const limit = 10 * unit
	if err := ls[0].SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal, Limit: limit}); err != nil {
		t.Fatal(err)
	}
	// The running request finishes on node 2: its cost counts.
	rec := usage.Record{RequestID: "running", TenantID: "acme", KeyID: "k1", Model: "m", Status: 200, Currency: "CNY", CostNanos: unit, Start: time.Now()}
	if _, err := ls[2].SettleBatch(ctx, []ledger.Settlement{{Record: rec}}); err != nil {
		t.Fatal(err)
	}
	// Requests hold 2 and cost 1, round robin over the nodes: from spent 1
	// (the running request), 8 fit (each needs spent + 2 <= 10), then every
	// node refuses.
	admitted, refusedBy := 0, map[int]bool{}
	for i := range 30 {
		node := i % len(ls)
		err := request(t, ls[node], fmt.Sprintf("r%02d", i), "acme", "k1", 2*unit, unit)
		switch {
		case err == nil:
			admitted++
		case errors.Is(err, ledger.ErrBudgetExceeded):
			refusedBy[node] = true
		default:
			t.Fatalf("request %d on node %d: %v", i, node, err)
		}
	}
	if admitted != 8 || len(refusedBy) != len(ls) {
		t.Errorf("admitted %d requests after the budget (want 8), refused by nodes %v (want all %d)", admitted, refusedBy, len(ls))
	}
	for i, l := range ls {
		_, spent, pending, err := l.BudgetUsage(ctx, ledger.ScopeKey, "k1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if spent != 9*unit || pending != 0 {
			t.Errorf("node %d: budget spent %s, pending %s; want 0.09 spent (the running request and 8 more), nothing pending",
				i, money.FormatNanos(spent), money.FormatNanos(pending))
		}
	}
	// Removed on one node, gone on all: the next request passes anywhere.
	if err := ls[1].SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal}); err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		if err := request(t, l, fmt.Sprintf("after-%d", i), "acme", "k1", 2*unit, unit); err != nil {
			t.Errorf("node %d after the budget was removed: %v", i, err)
		}
	}
	storetest.AuditClean(t, db, time.Now())
}

// TestBudgetConcurrentNodes: three nodes place holds of one tenant with a
// daily budget at once, then settle them in batches through other nodes
// (the pipelined settlements of PostgreSQL): together they never reserve
// past the budget, and its spent is exactly what was charged.
func TestBudgetConcurrentNodes(t *testing.T) {
	ls, db := nodes(t, 3, ledger.Options{MaxBatch: 16})
	ctx := context.Background()
	const unit = money.Scale / 100
	newTenant(t, ls[0], "acme", 1000*unit)
	const limit = 50 * unit
	if err := ls[1].SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodDay, Limit: limit}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	held := make([]bool, 60)
	for i := range held {
		wg.Go(func() {
			_, err := ls[i%3].Hold(ctx, ledger.HoldRequest{RequestID: fmt.Sprintf("c%03d", i), TenantID: "acme",
				KeyID: fmt.Sprintf("key%d", i%5), Amount: money.New(3*unit, money.CNY)})
			switch {
			case err == nil:
				held[i] = true
			case !errors.Is(err, ledger.ErrBudgetExceeded):
				t.Errorf("hold %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	admitted := 0
	for _, h := range held {
		if h {
			admitted++
		}
	}
	// 16 holds of 3 fit in 50; no more.
	if admitted != 16 {
		t.Errorf("%d holds of 0.03 admitted under a budget of 0.50 across three nodes, want 16", admitted)
	}
	var charged int64
	var batch []ledger.Settlement
	node := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		res, err := ls[node%3].SettleBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Errorf("settle %s: %v", r.RequestID, r.Err)
			}
		}
		batch, node = nil, node+1
	}
	for i, ok := range held {
		if !ok {
			continue
		}
		cost := int64(1+i%3) * unit
		charged += cost
		batch = append(batch, ledger.Settlement{Record: usage.Record{RequestID: fmt.Sprintf("c%03d", i), TenantID: "acme",
			KeyID: fmt.Sprintf("key%d", i%5), Model: "m", Status: 200, Currency: "CNY", CostNanos: cost, Start: time.Now()}})
		if len(batch) == 5 {
			flush()
		}
	}
	flush()
	for i, l := range ls {
		_, spent, pending, err := l.BudgetUsage(ctx, ledger.ScopeTenant, "acme", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if spent != charged || pending != 0 {
			t.Errorf("node %d: budget spent %s, pending %s; want %s charged by %d requests, nothing pending",
				i, money.FormatNanos(spent), money.FormatNanos(pending), money.FormatNanos(charged), admitted)
		}
	}
	storetest.AuditClean(t, db, time.Now())
}
