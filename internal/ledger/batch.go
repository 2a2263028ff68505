package ledger

// Settlements posted together: with holds in memory (Options.Exclusive),
// the settlements of one group commit whose holds cover their cost are
// posted, per tenant, as one transfer and one update of the account, and
// their usage records are stored in a few multi-row statements, each record
// naming that transfer (usage.Record.SettledIn). A request's cost is then
// traced from its record; the audit checks that each such transfer posts
// exactly the costs of the records that name it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// errUnbatch makes runTx run its operations again one by one: a batch met
// what only the general path handles (a record already stored, an account
// that cannot cover the batch).
var errUnbatch = errors.New("ledger: batch settlement needs the general path")

// batchItem is one settlement posted in a batch.
type batchItem struct {
	op   int
	rec  usage.Record
	hold Hold
}

// settleInBatch posts together the settlements among ops that it can (see
// above) and returns their results by index in ops; the rest are left to
// the general path. It needs the store's BatchWriter.
func (l *Ledger) settleInBatch(ctx context.Context, tt *trackTx, ops []*op, order []int, now time.Time, sys sysDeltas) (map[int]SettleResult, error) {
	bw, ok := tt.Tx.(BatchWriter)
	if !ok {
		return nil, nil
	}
	byTenant := map[string][]batchItem{}
	tenants := map[string]Tenant{}
	seen := make(map[string]bool, len(ops))
	for _, i := range order {
		o := ops[i]
		req := o.req
		switch o.kind {
		case opHold:
			req = o.hold.RequestID
		case opSettle:
			req = o.settle.Record.RequestID
		case opSweep:
			req = o.sweep.RequestID
		}
		first := !seen[req]
		seen[req] = true
		if o.kind != opSettle || !first {
			continue
		}
		rec := o.settle.Record
		t, ok, err := l.settleable(ctx, tt, &rec)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		h, live, ok := tt.adm.lookup(req)
		if !ok || !live || h.TenantID != t.ID || h.Currency != t.Currency || rec.CostNanos > h.Amount {
			continue
		}
		tenants[t.ID] = t
		items := byTenant[t.ID]
		if items == nil { // most batches are one tenant's: room for all at once
			items = make([]batchItem, 0, len(order))
		}
		byTenant[t.ID] = append(items, batchItem{op: i, rec: rec, hold: h})
	}
	if len(byTenant) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(byTenant))
	for id := range byTenant {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the ledger's lock order
	sums := make(map[string]int64, len(ids))
	recs := make([]usage.Record, 0, len(order))
	for _, id := range ids {
		t, items := tenants[id], byTenant[id]
		var sum int64
		for _, it := range items {
			var err error
			if sum, err = money.AddNanos(sum, it.rec.CostNanos); err != nil {
				return nil, errUnbatch
			}
		}
		sums[id] = sum
		seq, err := bw.PostBatch(ctx, Transfer{ID: "batch/" + items[0].rec.RequestID, Debit: MainAccount(t.ID),
			Credit: RevenueAccount(t.Currency), Amount: sum, Currency: t.Currency, Kind: KindSettleBatch, TenantID: t.ID,
			Note: fmt.Sprintf("%d settlements", len(items)), CreatedAt: now})
		if err != nil {
			return nil, err
		}
		for i := range items {
			items[i].rec.SettledIn = seq
			recs = append(recs, items[i].rec)
		}
	}
	stored, err := bw.InsertRecords(ctx, recs)
	if err != nil {
		return nil, err
	}
	if slices.Contains(stored, false) {
		return nil, errUnbatch // a retried settlement: its record says what was settled
	}
	out := make(map[int]SettleResult, len(recs))
	for _, id := range ids {
		t, items := tenants[id], byTenant[id]
		for _, it := range items {
			if tt.takeHold(it.rec.RequestID, HoldPosted, now) == nil {
				return nil, errUnbatch
			}
		}
		ok, err := tt.ApplyDelta(ctx, MainAccount(t.ID), Delta{PostedDebits: sums[id]}, Guard{Floor: true})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errUnbatch
		}
		if err := sys.add(RevenueAccount(t.Currency), Delta{PostedCredits: sums[id]}); err != nil {
			return nil, err
		}
		for _, it := range items {
			cost := it.rec.CostNanos
			res := SettleResult{RequestID: it.rec.RequestID, Posted: cost, Released: it.hold.Amount - cost}
			if cost > 0 {
				if res.Alerts, err = l.chargeBudgets(ctx, tt, it.rec.KeyID, t.ID, cost, now); err != nil {
					return nil, err
				}
			}
			out[it.op] = res
		}
	}
	return out, nil
}

// settleable returns the tenant of a settlement that a one-statement or
// batch form may take, with rec's tenant and currency filled in as settleTx
// would; false leaves it to settleTx, which says what is wrong with it.
func (l *Ledger) settleable(ctx context.Context, v View, rec *usage.Record) (Tenant, bool, error) {
	if checkID("request id", rec.RequestID) != nil || checkAmount(rec.CostNanos) != nil {
		return Tenant{}, false, nil
	}
	t, err := l.tenant(ctx, v, TenantFor(rec.TenantID))
	if err != nil {
		if itemError(err) {
			return Tenant{}, false, nil
		}
		return Tenant{}, false, err
	}
	if rec.CostNanos != 0 && money.Currency(rec.Currency) != t.Currency {
		return Tenant{}, false, nil
	}
	rec.TenantID = t.ID
	if rec.Currency == "" {
		rec.Currency = string(t.Currency)
	}
	return t, true, nil
}
