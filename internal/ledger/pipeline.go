package ledger

import (
	"context"
	"time"
)

// prepared is an operation of a batch sent ahead through a Pipeliner.
type prepared struct {
	tenant Tenant
	place  *PlaceStep
	post   *PostStep
}

// pipeline sends, when the store can, the one-statement form of each hold
// and settlement of a batch in one round trip, before the batch is worked
// through in order. Only the first operation on a request id goes ahead,
// and only if no other operation on that id came before it, so each request
// still sees its operations in order; anything the one-statement forms do
// not cover (budgets, free tenants, invalid input, duplicates, refusals)
// is finished or redone by the ordinary path afterwards. The store may run
// the batch's settlements before its holds (package postgres does, as a few
// multi-row statements): settlements only release pending amounts, so holds
// can only gain by it, and each request still sees its operations in order.
func (l *Ledger) pipeline(ctx context.Context, tx Tx, ops []*op, order []int, now time.Time) (map[int]prepared, error) {
	p, ok := tx.(Pipeliner)
	if !ok || len(order) < 2 {
		return nil, nil
	}
	seen := make(map[string]bool, len(order))
	first := func(req string) bool {
		if seen[req] {
			return false
		}
		seen[req] = true
		return true
	}
	out := map[int]prepared{}
	var steps []Step
	for _, i := range order {
		o := ops[i]
		switch o.kind {
		case opHold:
			r := o.hold
			if !first(r.RequestID) {
				continue
			}
			t, err := l.tenant(ctx, tx, r.TenantID)
			if err != nil {
				if itemError(err) {
					continue
				}
				return nil, err
			}
			if (r.Amount.Currency != "" && r.Amount.Currency != t.Currency) || (t.Kind == Free && r.Amount.Nanos != 0) {
				continue
			}
			bs, err := l.budgetsFor(ctx, tx, r.KeyID, t.ID)
			if err != nil {
				return nil, err
			}
			if len(bs) > 0 {
				continue
			}
			h, g, pending := l.newHold(t, r, now)
			st := &PlaceStep{Hold: h, Guard: g, Pending: pending}
			steps = append(steps, Step{Place: st})
			out[i] = prepared{tenant: t, place: st}
		case opSettle:
			rec := o.settle.Record
			if !first(rec.RequestID) {
				continue
			}
			t, ok, err := l.settleable(ctx, tx, &rec)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			st := &PostStep{Record: rec, SettleID: rec.RequestID + "/settle", PendingID: holdID(rec.RequestID),
				Revenue: RevenueAccount(t.Currency), At: now}
			steps = append(steps, Step{Post: st})
			out[i] = prepared{tenant: t, post: st}
		case opVoid:
			first(o.req)
		case opSweep:
			first(o.sweep.RequestID)
		}
	}
	if len(steps) == 0 {
		return nil, nil
	}
	if err := p.Pipeline(ctx, steps); err != nil {
		return nil, err
	}
	return out, nil
}
