package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// TestPipelineMatchesOneByOne runs seeded random batches of holds and
// settlements through Pipeline on one store and, on another, through
// PostHold for each settlement and then PlaceHold for each hold (the order
// Pipeline promises to match), and wants the same outcomes and the same
// rows. The batches reach accounts' floors (holds placed again one by one),
// repeat request ids (duplicates, settled holds), meet records stored by
// another path and tenants in debt.
func TestPipelineMatchesOneByOne(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	ctx := context.Background()
	multi, single := openTest(t), openTest(t)
	stores := []*DB{multi, single}
	now := time.Unix(1_800_000_000, 0).UTC()
	const yuan = money.Scale
	tenants := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	for _, db := range stores {
		l := ledger.New(db, ledger.Options{Node: "test"})
		for i, id := range tenants {
			tn := ledger.Tenant{ID: id, Kind: ledger.Prepaid, Currency: money.CNY}
			if i == len(tenants)-1 {
				tn.Kind, tn.CreditLimit = ledger.Postpaid, 5*yuan
			}
			if _, err := l.CreateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: id, Amount: int64(20+5*i) * yuan}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}

	var pending, posted []string // request ids by the state of their hold
	outcomes := map[ledger.HoldOutcome]int{}
	settled := map[bool]int{}
	owing := map[string]bool{}
	next := 0
	newID := func() string { next++; return fmt.Sprintf("r%04d", next) }
	pick := func(ids []string) string { return ids[rng.IntN(len(ids))] }
	for batch := 0; batch < 40; batch++ {
		now = now.Add(time.Second)
		// Now and then a record reaches the store by another path, or a
		// tenant owes a debt (or pays it back).
		if rng.IntN(4) == 0 {
			id := newID()
			if rng.IntN(2) == 0 && len(pending) > 0 {
				id = pick(pending)
			}
			rec := usage.Record{RequestID: id, TenantID: pick(tenants), Currency: "CNY", CostNanos: yuan / 10, Model: "m", Status: 200}
			for _, db := range stores {
				if err := db.WriteRecords(ctx, []usage.Record{rec}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if rng.IntN(8) == 0 {
			tenant := pick(tenants)
			debt := ledger.DebtAccount(tenant)
			d := ledger.Delta{PostedDebits: yuan}
			if owing[tenant] {
				d = ledger.Delta{PostedCredits: yuan}
			}
			owing[tenant] = !owing[tenant]
			for _, db := range stores {
				if err := db.LedgerUpdate(ctx, func(tx ledger.Tx) error {
					_, err := tx.ApplyDelta(ctx, debt, d, ledger.Guard{})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		}

		// One plan of steps, built twice (steps carry their results).
		type plan struct {
			place         bool
			req, tenant   string
			amount, cost  int64
			unknownTenant bool
		}
		var plans []plan
		used := map[string]bool{}
		for n := 1 + rng.IntN(40); len(plans) < n; {
			p := plan{tenant: pick(tenants), amount: rng.Int64N(2 * yuan), cost: rng.Int64N(3 * yuan)}
			switch k := rng.IntN(10); {
			case k < 5:
				p.place, p.req = true, newID()
			case k == 5 && len(pending)+len(posted) > 0:
				p.place, p.req = true, pick(append(slices.Clone(pending), posted...)) // a duplicate
			case k < 9 && len(pending) > 0:
				p.req = pick(pending)
			case k == 9 && len(posted) > 0:
				p.req = pick(posted) // settled already
			default:
				p.req = newID() // no hold at all
			}
			if used[p.req] {
				continue
			}
			used[p.req] = true
			plans = append(plans, p)
		}
		build := func() []ledger.Step {
			steps := make([]ledger.Step, len(plans))
			for i, p := range plans {
				acct := ledger.MainAccount(p.tenant)
				if p.place {
					h := ledger.Hold{RequestID: p.req, TenantID: p.tenant, KeyID: "k", AccountID: acct, Amount: p.amount,
						Currency: money.CNY, State: ledger.HoldPending, Node: "test", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
					steps[i].Place = &ledger.PlaceStep{Hold: h,
						Guard: ledger.Guard{Floor: true, NotOwing: ledger.DebtAccount(p.tenant), NoRecord: p.req},
						Pending: ledger.Transfer{ID: p.req + "/hold", Debit: acct, Credit: ledger.RevenueAccount(money.CNY),
							Amount: p.amount, Currency: money.CNY, Kind: ledger.KindHold, Flag: ledger.FlagPending,
							RequestID: p.req, TenantID: p.tenant, CreatedAt: now}}
					continue
				}
				rec := usage.Record{RequestID: p.req, TenantID: p.tenant, KeyID: "k", Model: "m", Status: 200,
					Currency: "CNY", CostNanos: p.cost, Start: now, Usage: usage.Usage{Input: 10, Output: 5}}
				steps[i].Post = &ledger.PostStep{Record: rec, SettleID: p.req + "/settle", PendingID: p.req + "/hold",
					Revenue: ledger.RevenueAccount(money.CNY), At: now}
			}
			return steps
		}
		got, want := build(), build()
		if err := multi.LedgerUpdate(ctx, func(tx ledger.Tx) error {
			return tx.(ledger.Pipeliner).Pipeline(ctx, got)
		}); err != nil {
			t.Fatalf("batch %d: Pipeline: %v", batch, err)
		}
		if err := single.LedgerUpdate(ctx, func(tx ledger.Tx) error {
			p := tx.(ledger.Pipeliner)
			for _, s := range want {
				if s.Post != nil {
					var err error
					s.Post.Hold, s.Post.Posted, err = p.PostHold(ctx, s.Post.Record, s.Post.SettleID, s.Post.PendingID, s.Post.Revenue, s.Post.At)
					if err != nil {
						return err
					}
				}
			}
			for _, s := range want {
				if s.Place != nil {
					var err error
					if s.Place.Outcome, err = p.PlaceHold(ctx, s.Place.Hold, s.Place.Guard, s.Place.Pending); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("batch %d: one by one: %v", batch, err)
		}
		for i := range got {
			g, w := got[i], want[i]
			switch {
			case g.Place != nil && g.Place.Outcome != w.Place.Outcome:
				t.Fatalf("batch %d step %d: hold %s outcome %d, one by one %d", batch, i, g.Place.Hold.RequestID, g.Place.Outcome, w.Place.Outcome)
			case g.Post != nil && (g.Post.Posted != w.Post.Posted || g.Post.Hold != w.Post.Hold):
				t.Fatalf("batch %d step %d: settlement %s posted %v %+v, one by one %v %+v", batch, i,
					g.Post.Record.RequestID, g.Post.Posted, g.Post.Hold, w.Post.Posted, w.Post.Hold)
			}
		}
		for _, s := range got {
			if s.Place != nil {
				outcomes[s.Place.Outcome]++
			} else {
				settled[s.Post.Posted]++
			}
			switch {
			case s.Place != nil && s.Place.Outcome == ledger.HoldPlaced:
				pending = append(pending, s.Place.Hold.RequestID)
			case s.Post != nil && s.Post.Posted:
				pending = slices.DeleteFunc(pending, func(id string) bool { return id == s.Post.Record.RequestID })
				posted = append(posted, s.Post.Record.RequestID)
			}
		}
		sameRows(t, ctx, batch, multi, single)
	}
	t.Logf("holds placed %d, duplicate %d, refused %d; settlements posted %d, not %d", outcomes[ledger.HoldPlaced],
		outcomes[ledger.HoldDuplicate], outcomes[ledger.HoldRefused], settled[true], settled[false])
	if outcomes[ledger.HoldPlaced] == 0 || outcomes[ledger.HoldDuplicate] == 0 || outcomes[ledger.HoldRefused] == 0 ||
		settled[true] == 0 || settled[false] == 0 {
		t.Fatal("the batches should place, repeat and refuse holds, and post and not post settlements")
	}
}

// sameRows compares what the ledger's tables hold in two stores.
func sameRows(t *testing.T, ctx context.Context, batch int, a, b *DB) {
	t.Helper()
	for _, q := range []string{
		`SELECT id, posted_debits, posted_credits, pending_debits, pending_credits FROM ledger_accounts ORDER BY id`,
		`SELECT ` + holdCols + ` FROM ledger_holds ORDER BY request_id`,
		`SELECT ` + transferCols + ` FROM ledger_transfers WHERE kind <> 'topup' ORDER BY id`,
		`SELECT r.request_id, coalesce(n.name, ''), r.cost_nanos, r.currency, r.input_tokens, r.start_ns FROM usage_records r
			LEFT JOIN usage_names n ON n.id = r.tenant_ref ORDER BY r.request_id`,
	} {
		ra, rb := dump(t, ctx, a, q), dump(t, ctx, b, q)
		if !slices.Equal(ra, rb) {
			t.Fatalf("batch %d: %s\nPipeline:\n%s\none by one:\n%s", batch, q, strings.Join(ra, "\n"), strings.Join(rb, "\n"))
		}
	}
}

func dump(t *testing.T, ctx context.Context, db *DB, q string) []string {
	t.Helper()
	rows, err := db.pool.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%v", v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPipelineRepeatedRequest: steps that share a request id run one by
// one, in order (the hold is placed, then settled).
func TestPipelineRepeatedRequest(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	l := ledger.New(db, ledger.Options{Node: "test"})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "t", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "t", Amount: money.Scale}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	now := time.Unix(1_800_000_000, 0).UTC()
	acct := ledger.MainAccount("t")
	place := &ledger.PlaceStep{
		Hold: ledger.Hold{RequestID: "r", TenantID: "t", AccountID: acct, Amount: money.Scale / 2, Currency: money.CNY,
			State: ledger.HoldPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)},
		Guard: ledger.Guard{Floor: true, NotOwing: ledger.DebtAccount("t"), NoRecord: "r"},
		Pending: ledger.Transfer{ID: "r/hold", Debit: acct, Credit: ledger.RevenueAccount(money.CNY), Amount: money.Scale / 2,
			Currency: money.CNY, Kind: ledger.KindHold, Flag: ledger.FlagPending, RequestID: "r", TenantID: "t", CreatedAt: now}}
	post := &ledger.PostStep{Record: usage.Record{RequestID: "r", TenantID: "t", Currency: "CNY", CostNanos: money.Scale / 4},
		SettleID: "r/settle", PendingID: "r/hold", Revenue: ledger.RevenueAccount(money.CNY), At: now}
	if err := db.LedgerUpdate(ctx, func(tx ledger.Tx) error {
		return tx.(ledger.Pipeliner).Pipeline(ctx, []ledger.Step{{Place: place}, {Post: post}})
	}); err != nil {
		t.Fatal(err)
	}
	if place.Outcome != ledger.HoldPlaced || !post.Posted || post.Hold.Amount != money.Scale/2 {
		t.Fatalf("hold %d, settlement posted %v of hold %+v; want placed, then posted", place.Outcome, post.Posted, post.Hold)
	}
}
