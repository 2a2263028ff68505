package postgres

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

// TestLostNodeResolvedByOthers: a node dies with three requests in flight:
// one that checkpointed what it had delivered, one that had not yet, one
// whose record was written. Once it has gone unseen for the node timeout,
// another node settles the first at its checkpoint (its record is the
// checkpoint, incomplete, node_lost), voids the second and reports it as
// unbilled, settles the third from its record; a third node racing it
// resolves nothing twice, and a live node's holds are left alone. The
// books balance and the audit is clean. (The counts of one resolution are
// TestResolveCounts'.)
func TestLostNodeResolvedByOthers(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	const timeout = 30 * time.Second
	ls, db := nodes(t, 3, ledger.Options{Clock: clk, NodeTimeout: timeout})
	dead, survivor, racer := ls[0], ls[1], ls[2]
	ctx := context.Background()
	const unit = money.Scale / 100
	newTenant(t, survivor, "acme", 100*unit)
	for _, l := range ls {
		if err := l.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(l *ledger.Ledger, id string) {
		t.Helper()
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: money.New(10*unit, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"streaming", "silent", "recorded"} {
		hold(dead, id)
	}
	hold(survivor, "alive")
	// "streaming" checkpoints twice; the later one counts.
	partial := usage.Record{RequestID: "streaming", Model: "m", Channel: "c", Status: 200, Stream: true, Start: clk.Now(),
		Usage: usage.Usage{Input: 100, Output: 40}, Currency: "CNY", CostNanos: 2 * unit, PriceVersion: "m/CNY/v1", Lines: []byte(`[{"kind":"input"}]`)}
	dead.Checkpoint(partial)
	partial.Usage.Output, partial.CostNanos = 90, 3*unit
	dead.Checkpoint(partial)
	if err := dead.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	// "recorded" was written (by a path that stores records apart) just
	// before the node died, unsettled.
	if err := db.WriteRecords(ctx, []usage.Record{{RequestID: "recorded", TenantID: "acme", KeyID: "k1", Model: "m", Status: 200,
		Start: clk.Now(), Currency: "CNY", CostNanos: 4 * unit, Complete: true}}); err != nil {
		t.Fatal(err)
	}
	// The node dies. Before the timeout nothing happens.
	dead.Close()
	clk.Advance(timeout - time.Second)
	for _, l := range ls[1:] {
		if err := l.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := survivor.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Fatalf("before the node timeout: %+v, %v; want nothing resolved", r, err)
	}
	clk.Advance(2 * time.Second)
	for _, l := range ls[1:] {
		if err := l.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Both survivors resolve the lost node's holds at once (their keepers,
	// ticking on the clock just stepped, may be at it too): each hold is
	// resolved once, which the audit below checks.
	var wg sync.WaitGroup
	for _, l := range []*ledger.Ledger{survivor, racer} {
		wg.Go(func() {
			if _, err := l.ResolveLostNodes(ctx); err != nil {
				t.Errorf("resolve lost nodes: %v", err)
			}
		})
	}
	wg.Wait()
	page, err := db.ListRecords(ctx, usage.Filter{RequestID: "streaming"})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("record of the checkpointed stream: %+v, %v", page.Records, err)
	}
	if r := page.Records[0]; r.Complete || r.ErrorClass != usage.ErrNodeLost || r.CostNanos != 3*unit || r.Usage.Output != 90 ||
		r.TenantID != "acme" || r.KeyID != "k1" || r.PriceVersion != "m/CNY/v1" || !r.Stream {
		t.Errorf("record from the checkpoint: %+v; want the last checkpoint (90 output tokens, 0.03), incomplete, node_lost", r)
	}
	for id, want := range map[string]ledger.HoldState{"streaming": ledger.HoldPosted, "silent": ledger.HoldVoided,
		"recorded": ledger.HoldPosted, "alive": ledger.HoldPending} {
		if h, err := holdOf(ctx, db, id); err != nil || h.State != want {
			t.Errorf("hold %s: %+v, %v; want %s", id, h, err, want)
		}
	}
	// The live node finishes its request; a late checkpoint is moot.
	if _, err := survivor.SettleBatch(ctx, []ledger.Settlement{{Record: usage.Record{RequestID: "alive", TenantID: "acme",
		KeyID: "k1", Model: "m", Status: 200, Start: clk.Now(), Currency: "CNY", CostNanos: unit, Complete: true}}}); err != nil {
		t.Fatal(err)
	}
	survivor.Checkpoint(usage.Record{RequestID: "alive", Currency: "CNY", CostNanos: 9 * unit})
	if err := survivor.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := survivor.Balance(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(100*unit - 3*unit - 4*unit - unit); b.Posted != want || b.Pending != 0 {
		t.Errorf("balance %+v; want posted %s (the checkpoint, the record, the live request), nothing pending", b, money.FormatNanos(want))
	}
	// The dead node comes back under its name: nothing left to reconcile.
	back := ledger.New(db, ledger.Options{Clock: clk, Node: "node0", NodeTimeout: timeout})
	defer back.Close()
	if r, err := back.Reconcile(ctx, clk.Now()); err != nil || r != (ledger.SweepResult{}) {
		t.Errorf("the restarted node reconciled %+v, %v; want nothing", r, err)
	}
	rep, err := ledger.Audit(ctx, db, clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Unbilled) != 1 || rep.Unbilled[0] != "silent" {
		t.Errorf("audit ok %v, unbilled %v; want ok and [silent] reported: %+v", rep.OK, rep.Unbilled, rep.Failed())
	}
}

// TestResolveCounts: one resolution of a lost node's holds reports what it
// did (settled from a record, from a checkpoint, voided as lost), and a
// second finds nothing left.
func TestResolveCounts(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	db := openDSN(t, dsn)
	// The lost node placed its holds and was last seen an hour ago; the
	// survivor's keeper ticks every 15 s, too late to race this test.
	dead := ledger.New(openDSN(t, dsn), ledger.Options{Node: "lost"})
	survivor := ledger.New(openDSN(t, dsn), ledger.Options{Node: "survivor", NodeTimeout: time.Minute})
	t.Cleanup(func() { survivor.Close() })
	const unit = money.Scale / 100
	newTenant(t, survivor, "acme", 100*unit)
	for _, id := range []string{"streaming", "silent", "recorded"} {
		if _, err := dead.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: money.New(10*unit, money.CNY)}); err != nil {
			t.Fatal(err)
		}
	}
	dead.Checkpoint(usage.Record{RequestID: "streaming", Model: "m", Start: time.Now(), Currency: "CNY", CostNanos: 2 * unit})
	if err := dead.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	if err := db.WriteRecords(ctx, []usage.Record{{RequestID: "recorded", TenantID: "acme", Model: "m", Status: 200,
		Start: time.Now(), Currency: "CNY", CostNanos: 4 * unit, Complete: true}}); err != nil {
		t.Fatal(err)
	}
	if err := db.LedgerUpdate(ctx, func(tx ledger.Tx) error { return tx.TouchNode(ctx, "lost", time.Now().Add(-time.Hour)) }); err != nil {
		t.Fatal(err)
	}
	r, err := survivor.ResolveLostNodes(ctx)
	if err != nil || r != (ledger.SweepResult{Settled: 2, Voided: 1, Checkpointed: 1, Lost: 1}) {
		t.Errorf("resolution: %+v, %v; want 2 settled (1 from its checkpoint), 1 voided as lost", r, err)
	}
	if r, err := survivor.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Errorf("second resolution: %+v, %v; want nothing", r, err)
	}
	storetest.AuditClean(t, db, time.Now())
}
