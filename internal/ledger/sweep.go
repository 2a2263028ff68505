package ledger

// Voids and sweeps: releasing holds of requests that cost nothing, and
// resolving holds a crash or a lost settlement left open.

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/usage"
)

// VoidResult is the hold a Void resolved (or had already been resolved).
type VoidResult struct {
	Hold      Hold
	Duplicate bool
}

// Void releases a hold without posting anything (the request failed before
// any cost). Voiding a resolved hold is a no-op returning it; an unknown
// request id is ErrNotFound. If the request has a usage record after all,
// the hold is settled from it instead (State HoldPosted).
func (l *Ledger) Void(ctx context.Context, requestID string) (VoidResult, error) {
	if err := checkID("request id", requestID); err != nil {
		return VoidResult{}, err
	}
	res, err := l.submit(ctx, &op{kind: opVoid, req: requestID})
	if err != nil {
		return VoidResult{}, fmt.Errorf("void %s: %w", requestID, err)
	}
	return res.void, nil
}

// voidTx voids a pending hold. When checkRecord is set and the request has
// a usage record after all, the hold is settled from it instead: a record
// never stays without its settlement.
func (l *Ledger) voidTx(ctx context.Context, tx Tx, req string, checkRecord bool, note string, now time.Time, sys sysDeltas) (VoidResult, error) {
	if tt, ok := tx.(*trackTx); ok {
		if v, done, err := l.voidMemHold(ctx, tt, req, checkRecord, now, sys); done {
			return v, err
		}
	}
	if checkRecord {
		c, found, err := tx.RecordCost(ctx, req)
		if err != nil {
			return VoidResult{}, err
		}
		if found {
			h, err := tx.Hold(ctx, req)
			if err != nil {
				return VoidResult{}, fmt.Errorf("hold %s: %w", req, err)
			}
			if h.State != HoldPending {
				return VoidResult{Hold: h, Duplicate: true}, nil
			}
			rec := usage.Record{RequestID: req, TenantID: h.TenantID, CostNanos: c.Cost, Currency: c.Currency, SettledIn: c.SettledIn}
			if _, err := l.settleTx(ctx, tx, rec, false, false, now, sys); err != nil {
				return VoidResult{}, err
			}
			h.State, h.ResolvedAt = HoldPosted, now
			return VoidResult{Hold: h}, nil
		}
	}
	h, ok, err := tx.ResolveHold(ctx, req, HoldVoided, now)
	if err != nil {
		return VoidResult{}, err
	}
	if !ok {
		h, err := tx.Hold(ctx, req)
		if err != nil {
			return VoidResult{}, fmt.Errorf("hold %s: %w", req, err)
		}
		return VoidResult{Hold: h, Duplicate: true}, nil
	}
	if err := mustApply(ctx, tx, h.AccountID, Delta{PendingDebits: -h.Amount}); err != nil {
		return VoidResult{}, err
	}
	if _, err := l.releaseBudgets(ctx, tx, h, 0, now); err != nil {
		return VoidResult{}, err
	}
	rev := RevenueAccount(h.Currency)
	if err := mustInsert(ctx, tx, Transfer{ID: req + "/void", Debit: h.AccountID, Credit: rev, Amount: h.Amount,
		Currency: h.Currency, Kind: KindVoid, Flag: FlagVoid, PendingID: holdID(req), RequestID: req,
		TenantID: h.TenantID, Note: note, CreatedAt: now}); err != nil {
		return VoidResult{}, err
	}
	h.State, h.ResolvedAt = HoldVoided, now
	return VoidResult{Hold: h}, sys.add(rev, Delta{PendingCredits: -h.Amount})
}

// voidMemHold voids a hold kept in memory (or settles it from the
// request's record). done is false when req has no hold in memory.
func (l *Ledger) voidMemHold(ctx context.Context, tt *trackTx, req string, checkRecord bool, now time.Time, sys sysDeltas) (VoidResult, bool, error) {
	if h, ok := tt.resolvedHere(req); ok {
		return VoidResult{Hold: h, Duplicate: true}, true, nil
	}
	h, live, ok := tt.adm.lookup(req)
	switch {
	case !ok:
		return VoidResult{}, false, nil
	case !live:
		return VoidResult{Hold: h, Duplicate: true}, true, nil
	}
	if checkRecord {
		c, found, err := tt.RecordCost(ctx, req)
		if err != nil {
			return VoidResult{}, true, err
		}
		if found {
			rec := usage.Record{RequestID: req, TenantID: h.TenantID, CostNanos: c.Cost, Currency: c.Currency, SettledIn: c.SettledIn}
			if _, err := l.settleTx(ctx, tt, rec, false, false, now, sys); err != nil {
				return VoidResult{}, true, err
			}
			h.State, h.ResolvedAt = HoldPosted, now
			return VoidResult{Hold: h}, true, nil
		}
	}
	if mh := tt.takeHold(req, HoldVoided, now); mh != nil {
		return VoidResult{Hold: mh.Hold}, true, nil
	}
	return VoidResult{}, false, nil
}

// sweepTx resolves one pending hold that no request of its node will
// settle, by the rule in nodes.go: from its usage record, else from its
// last checkpoint, else voided and noted as lost.
func (l *Ledger) sweepTx(ctx context.Context, tx Tx, h Hold, now time.Time, sys sysDeltas) (sweptAs, error) {
	c, found, err := tx.RecordCost(ctx, h.RequestID)
	if err != nil {
		return 0, err
	}
	if found {
		rec := usage.Record{RequestID: h.RequestID, TenantID: h.TenantID, CostNanos: c.Cost, Currency: c.Currency, SettledIn: c.SettledIn}
		res, err := l.settleTx(ctx, tx, rec, false, false, now, sys)
		return pick(res.Duplicate, sweptSettled), err
	}
	if IsReservation(h.RequestID) { // nothing ran on it: released, not lost
		res, err := l.voidTx(ctx, tx, h.RequestID, false, "", now, sys)
		return pick(res.Duplicate, sweptReleased), err
	}
	rec, ok, err := checkpointOf(ctx, tx, h)
	if err != nil {
		l.log.Error("checkpoint unreadable; the hold is voided", "request_id", h.RequestID, "err", err)
	}
	if ok {
		res, err := l.settleTx(ctx, tx, rec, true, false, now, sys)
		return pick(res.Duplicate, sweptCheckpoint), err
	}
	res, err := l.voidTx(ctx, tx, h.RequestID, false, NoteLost, now, sys)
	return pick(res.Duplicate, sweptLost), err
}

// pick is how a sweep resolved a hold: as, or sweptBefore when another
// transaction (another node's sweep) had resolved it first.
func pick(duplicate bool, as sweptAs) sweptAs {
	if duplicate {
		return sweptBefore
	}
	return as
}

// sweptAs is how sweepTx resolved a hold.
type sweptAs uint8

const (
	sweptBefore     sweptAs = iota // resolved already, by someone else
	sweptSettled                   // from its usage record
	sweptCheckpoint                // from its last checkpoint
	sweptLost                      // voided: nothing known of what it delivered
	sweptReleased                  // a reservation voided: nothing ran on it
)

// SweepResult counts the holds a sweep or reconciliation resolved.
type SweepResult struct {
	Settled int // from a usage record or a checkpoint
	Voided  int
	Failed  int
	// Checkpointed counts the holds Settled from a checkpoint, Lost those
	// Voided with nothing known of what their request delivered (logged
	// with their request ids, and listed by the audit).
	Checkpointed, Lost int
}

func (r *SweepResult) add(o SweepResult) {
	r.Settled, r.Voided, r.Failed = r.Settled+o.Settled, r.Voided+o.Voided, r.Failed+o.Failed
	r.Checkpointed, r.Lost = r.Checkpointed+o.Checkpointed, r.Lost+o.Lost
}

const sweepChunk = 256

// Sweep resolves every pending hold whose expiry has passed: settled from
// its usage record when one exists (the process died after recording but
// before settling, or the record came by another path), voided otherwise.
// The gateway runs it every sweep interval.
func (l *Ledger) Sweep(ctx context.Context) (SweepResult, error) {
	now := l.clock.Now()
	out, err := l.resolve(ctx, HoldQuery{ExpiresBefore: now})
	if err != nil {
		return out, err
	}
	mem := l.expiredMemHolds(now)
	for len(mem) > 0 {
		n := min(len(mem), sweepChunk)
		r, err := l.resolveHolds(ctx, mem[:n])
		out.add(r)
		if err != nil {
			return out, err
		}
		mem = mem[n:]
	}
	return out, nil
}

// Reconcile resolves, at start-up, the pending holds this node (Options.Node)
// placed before startedAt: a crash left them, and no request of this process
// will settle them. Other nodes' holds are left to expire.
func (l *Ledger) Reconcile(ctx context.Context, startedAt time.Time) (SweepResult, error) {
	node := l.opts.Node
	return l.resolve(ctx, HoldQuery{CreatedBefore: startedAt, Node: &node})
}

func (l *Ledger) resolve(ctx context.Context, q HoldQuery) (SweepResult, error) {
	var out SweepResult
	q.Limit = sweepChunk
	seen := map[string]bool{}
	for {
		var holds []Hold
		err := l.store.LedgerView(ctx, func(v Snapshot) error {
			var err error
			holds, err = v.PendingHolds(ctx, q)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("sweep: %w", err)
		}
		fresh := holds[:0:0]
		for _, h := range holds {
			if !seen[h.RequestID] { // one that failed before is not retried: do not spin on it
				seen[h.RequestID] = true
				fresh = append(fresh, h)
			}
		}
		if len(fresh) == 0 {
			return out, nil
		}
		r, err := l.resolveHolds(ctx, fresh)
		out.add(r)
		if err != nil {
			return out, err
		}
		if len(holds) < sweepChunk {
			return out, nil
		}
	}
}

// resolveHolds settles or voids holds in one transaction.
func (l *Ledger) resolveHolds(ctx context.Context, holds []Hold) (SweepResult, error) {
	var out SweepResult
	var lost []string
	ops := make([]*op, len(holds))
	for i, h := range holds {
		ops[i] = &op{ctx: ctx, kind: opSweep, tenant: h.TenantID, sweep: h}
	}
	if err := l.runTx(ctx, ops); err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	for _, o := range ops {
		switch {
		case o.res.err != nil:
			out.Failed++
			l.log.Error("sweep hold", "request_id", o.sweep.RequestID, "err", o.res.err)
		case o.res.swept == sweptSettled:
			out.Settled++
		case o.res.swept == sweptCheckpoint:
			out.Settled++
			out.Checkpointed++
		case o.res.swept == sweptReleased:
			out.Voided++
		case o.res.swept == sweptLost:
			out.Voided++
			out.Lost++
			lost = append(lost, o.sweep.RequestID)
		}
	}
	if out.Lost > 0 {
		l.log.Warn("holds voided with nothing known of what their requests delivered: the vendor may have billed them",
			"count", out.Lost, "request_ids", lost)
	}
	return out, nil
}
