package ledger

// Settlement: posting a finished request's rated cost, with its usage
// record, against its hold (or as a charge when it has none).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// Settlement is one finished request: its usage record, whose CostNanos and
// Currency are the rated cost to post. Record.RequestID names the hold.
type Settlement struct {
	Record usage.Record
}

// SettleResult is what a settlement posted. A retried settlement returns
// the first one's figures with Duplicate set.
type SettleResult struct {
	RequestID string
	Posted    int64         // posted against the hold
	Released  int64         // hold amount given back
	Overage   int64         // cost above the hold (or with no hold) taken from the account
	Debt      int64         // cost the account could not cover, recorded as debt
	Alerts    []BudgetAlert // budget thresholds this settlement crossed
	Duplicate bool
	Err       error // per-item failure (invalid, unknown tenant); nothing was written
}

// Settle posts one settlement with its usage record (group-committed with
// concurrent callers). Per-item failures come back as the error.
func (l *Ledger) Settle(ctx context.Context, s Settlement) (SettleResult, error) {
	res, err := l.submit(ctx, &op{kind: opSettle, tenant: TenantFor(s.Record.TenantID), settle: s})
	if err != nil {
		return SettleResult{RequestID: s.Record.RequestID, Err: err}, fmt.Errorf("settle %s: %w", s.Record.RequestID, err)
	}
	return res.settle, nil
}

// SettleBatch posts many settlements, each with its usage record, in ONE
// transaction (the spine's group commit). An item that fails on its own
// (Err set) writes nothing and does not stop the others; the error return is
// for the transaction as a whole, in which case nothing was written.
func (l *Ledger) SettleBatch(ctx context.Context, ss []Settlement) ([]SettleResult, error) {
	ops := make([]*op, len(ss))
	for i, s := range ss {
		ops[i] = &op{ctx: ctx, kind: opSettle, tenant: TenantFor(s.Record.TenantID), settle: s}
	}
	if err := l.runTx(ctx, ops); err != nil {
		return nil, fmt.Errorf("settle batch of %d: %w", len(ss), err)
	}
	l.batches.Add(1)
	l.ops.Add(int64(len(ops)))
	out := make([]SettleResult, len(ss))
	for i, o := range ops {
		out[i] = o.res.settle
		if o.res.err != nil {
			out[i] = SettleResult{RequestID: s(ss[i]), Err: o.res.err}
		}
	}
	return out, nil
}

func s(st Settlement) string { return st.Record.RequestID }

// settleTx posts rec's cost. writeRecord is false when the record is
// already stored (the sweeper settling from it); tryFast is false when a
// pipeline already tried the store's one-statement settlement.
func (l *Ledger) settleTx(ctx context.Context, tx Tx, rec usage.Record, writeRecord, tryFast bool, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := rec.RequestID
	res := SettleResult{RequestID: req}
	if err := checkID("request id", req); err != nil {
		return res, err
	}
	if err := checkAmount(rec.CostNanos); err != nil {
		return res, fmt.Errorf("settle %s: %w", req, err)
	}
	t, err := l.tenant(ctx, tx, TenantFor(rec.TenantID))
	if err != nil {
		return res, err
	}
	badCurrency := func() bool { return rec.CostNanos != 0 && money.Currency(rec.Currency) != t.Currency }
	if badCurrency() {
		return res, fmt.Errorf("settle %s: cost in %q for a %s account: %w", req, rec.Currency, t.Currency, ErrInvalid)
	}
	if writeRecord {
		rec.TenantID = t.ID
		if rec.Currency == "" {
			rec.Currency = string(t.Currency)
		}
	}
	if sw, fast := tx.(SettleWriter); fast && writeRecord && tryFast {
		st := &PostStep{Record: rec, SettleID: req + "/settle", PendingID: holdID(req), Revenue: RevenueAccount(t.Currency), At: now}
		if st.Hold, st.Posted, err = sw.PostHold(ctx, rec, st.SettleID, st.PendingID, st.Revenue, now); err != nil {
			return res, err
		}
		if st.Posted {
			return l.finishPost(ctx, tx, t, st, sys)
		}
	}
	fresh := false // the record is stored by this settlement, so nothing settled it before
	if writeRecord {
		// The first stored record is the truth: a retry (or a record the
		// spine stored by another path) settles what that record says.
		inserted, err := tx.InsertRecord(ctx, rec)
		if err != nil {
			return res, err
		}
		fresh = inserted
		if !inserted {
			c, _, err := tx.RecordCost(ctx, req)
			if err != nil {
				return res, err
			}
			rec.CostNanos, rec.Currency, rec.SettledIn = c.Cost, c.Currency, c.SettledIn
			if badCurrency() {
				return res, fmt.Errorf("settle %s: stored record costs %q on a %s account: %w", req, c.Currency, t.Currency, ErrInvalid)
			}
		}
	}
	cost := rec.CostNanos
	if !fresh && rec.SettledIn != 0 {
		// Posted already, with the other settlements of its batch (which
		// needs a hold in memory: nothing is left to resolve in the store).
		if tt, ok := tx.(*trackTx); ok {
			tt.takeHold(req, HoldPosted, now)
		}
		return SettleResult{RequestID: req, Posted: cost, Duplicate: true}, nil
	}
	if tt, ok := tx.(*trackTx); ok {
		if mh := tt.takeHold(req, HoldPosted, now); mh != nil {
			if !fresh {
				prev, err := tx.TransfersByRequest(ctx, req)
				if err != nil {
					return res, err
				}
				if settled(prev) {
					return resultFrom(req, prev), nil // the hold is released at the commit
				}
			}
			return l.settleMemHold(ctx, tx, t, mh.Hold, cost, now, sys)
		}
		tt.settled = append(tt.settled, req)
	}
	h, resolved, err := tx.ResolveHold(ctx, req, HoldPosted, now)
	if err != nil {
		return res, err
	}
	if resolved {
		if h.TenantID != t.ID {
			return res, fmt.Errorf("settle %s: record of tenant %q for a hold of %q", req, t.ID, h.TenantID)
		}
		post := min(cost, h.Amount)
		if err := mustApply(ctx, tx, h.AccountID, Delta{PostedDebits: post, PendingDebits: -h.Amount}); err != nil {
			return res, err
		}
		if err := mustInsert(ctx, tx, Transfer{ID: req + "/settle", Debit: h.AccountID, Credit: RevenueAccount(h.Currency),
			Amount: post, Currency: h.Currency, Kind: KindSettle, Flag: FlagPost, PendingID: holdID(req), RequestID: req,
			TenantID: t.ID, CreatedAt: now}); err != nil {
			return res, err
		}
		return l.afterPost(ctx, tx, t, h, cost, now, sys)
	} else {
		prev, err := tx.TransfersByRequest(ctx, req)
		if err != nil {
			return res, err
		}
		if settled(prev) {
			return resultFrom(req, prev), nil
		}
		// No hold, or one the sweeper voided before this settlement came:
		// the cost is still owed.
		if cost > 0 {
			if err := l.charge(ctx, tx, t, cost, req+"/charge", KindCharge, req, now, sys, &res); err != nil {
				return res, err
			}
			if res.Alerts, err = l.chargeBudgets(ctx, tx, rec.KeyID, t.ID, cost, now); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// settleMemHold settles a request held in memory: the cost up to the hold
// is charged from the account (the hold kept room for it), the rest as an
// overage, which may become debt.
func (l *Ledger) settleMemHold(ctx context.Context, tx Tx, t Tenant, h Hold, cost int64, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := h.RequestID
	if h.TenantID != t.ID || h.Currency != t.Currency {
		return SettleResult{}, fmt.Errorf("settle %s: record of tenant %q for a hold of %q in %s", req, t.ID, h.TenantID, h.Currency)
	}
	post := min(cost, h.Amount)
	res := SettleResult{RequestID: req, Released: h.Amount - post}
	// The charge is written even when it is zero: a retried settlement
	// finds it and knows the request is settled.
	var covered SettleResult
	if err := l.charge(ctx, tx, t, post, req+"/settle", KindSettle, req, now, sys, &covered); err != nil {
		return res, err
	}
	res.Posted, res.Debt = covered.Overage, covered.Debt
	if cost > post {
		if err := l.charge(ctx, tx, t, cost-post, req+"/overage", KindOverage, req, now, sys, &res); err != nil {
			return res, err
		}
	}
	var err error
	if cost > 0 {
		res.Alerts, err = l.chargeBudgets(ctx, tx, h.KeyID, t.ID, cost, now)
	}
	return res, err
}

// finishPost completes a settlement a store posted in one statement.
func (l *Ledger) finishPost(ctx context.Context, tx Tx, t Tenant, st *PostStep, sys sysDeltas) (SettleResult, error) {
	h := st.Hold
	if h.TenantID != t.ID || h.Currency != t.Currency {
		return SettleResult{}, fmt.Errorf("settle %s: record of tenant %q for a hold of %q in %s", h.RequestID, t.ID, h.TenantID, h.Currency)
	}
	return l.afterPost(ctx, tx, t, h, st.Record.CostNanos, st.At, sys)
}

// afterPost finishes the settlement of a hold whose post transfer is
// written: revenue, the overage, the budgets.
func (l *Ledger) afterPost(ctx context.Context, tx Tx, t Tenant, h Hold, cost int64, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := h.RequestID
	post := min(cost, h.Amount)
	res := SettleResult{RequestID: req, Posted: post, Released: h.Amount - post}
	if err := sys.add(RevenueAccount(h.Currency), Delta{PostedCredits: post, PendingCredits: -h.Amount}); err != nil {
		return res, err
	}
	if cost > post {
		if err := l.charge(ctx, tx, t, cost-post, req+"/overage", KindOverage, req, now, sys, &res); err != nil {
			return res, err
		}
	}
	var err error
	if res.Alerts, err = l.releaseBudgets(ctx, tx, h, cost, now); err != nil {
		return res, err
	}
	return res, nil
}

// settled reports whether transfers of a request include a settlement.
func settled(ts []Transfer) bool {
	for _, t := range ts {
		if t.Flag == FlagPost || t.Kind == KindSettle || t.Kind == KindCharge ||
			(t.Kind == KindDebt && (strings.HasSuffix(t.ID, "/charge") || strings.HasSuffix(t.ID, "/settle"))) {
			return true
		}
	}
	return false
}

func resultFrom(req string, ts []Transfer) SettleResult {
	r := SettleResult{RequestID: req, Duplicate: true}
	var held int64
	for _, t := range ts {
		switch {
		case t.Flag == FlagPending:
			held = t.Amount
		case t.Flag == FlagPost || t.Kind == KindSettle: // a hold's post, in the store or in memory
			r.Posted = t.Amount
		case t.Kind == KindOverage || t.Kind == KindCharge:
			r.Overage += t.Amount
		case t.Kind == KindDebt:
			r.Debt += t.Amount
		}
	}
	if held > r.Posted {
		r.Released = held - r.Posted
	}
	return r
}

// charge takes amount from the tenant's account within its floor (balance
// for prepaid, credit limit for postpaid) or, when it cannot, records it as
// debt, which blocks new holds until paid.
func (l *Ledger) charge(ctx context.Context, tx Tx, t Tenant, amount int64, id string, kind TransferKind, req string, now time.Time, sys sysDeltas, res *SettleResult) error {
	main, rev := MainAccount(t.ID), RevenueAccount(t.Currency)
	ok, err := tx.ApplyDelta(ctx, main, Delta{PostedDebits: amount}, Guard{Floor: true})
	if err != nil {
		return err
	}
	from := main
	if ok {
		res.Overage += amount
	} else {
		from, kind = DebtAccount(t.ID), KindDebt
		if err := mustApply(ctx, tx, from, Delta{PostedDebits: amount}); err != nil {
			return err
		}
		res.Debt += amount
	}
	if err := mustInsert(ctx, tx, Transfer{ID: id, Debit: from, Credit: rev, Amount: amount, Currency: t.Currency,
		Kind: kind, RequestID: req, TenantID: t.ID, CreatedAt: now}); err != nil {
		return err
	}
	return sys.add(rev, Delta{PostedCredits: amount})
}
