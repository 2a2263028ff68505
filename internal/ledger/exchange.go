package ledger

// Reservations: money set aside for work that has not started yet (a
// batch's lines), and its exchange for the holds of the work as it starts.
//
// A reservation is an ordinary hold whose id ReservationID made: it keeps
// the tenant's other requests from spending what the batch may cost, and is
// never settled. As a batch starts its lines, Exchange releases the
// reservation and places, in the same transaction, the holds of the lines
// it starts and a new reservation for what remains: the available balance
// does not move, so a batch the tenant could cover when it was created keeps
// being covered, and each line is an ordinary request (held, settled once
// by its request id, voided if it fails). A reservation resolved by anyone
// else (the sweeper at its expiry, a restart, the nodes that outlive its
// node) is released, not reported lost: nothing ran on it.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"baimo/internal/money"
)

// reservationMark sets reservation ids apart from request ids.
const reservationMark = "/reserve."

// ReservationID returns a new, unique id for a reservation of owner (a
// batch id).
func ReservationID(owner string) string { return owner + reservationMark + randomID()[:16] }

// IsReservation reports whether id names a reservation (ReservationID).
func IsReservation(id string) bool { return strings.Contains(id, reservationMark) }

// MaxExchange bounds the holds one Exchange places.
const MaxExchange = 100_000

// Exchange releases the pending hold release ("" for none; one that is not
// pending is skipped) and places holds, all of one tenant and key, in one
// transaction: every hold is placed, and release released, or nothing
// changes. A hold whose request id already has a pending hold is that hold
// (a retried exchange). It returns the holds in the order asked, or
// ErrInsufficientFunds (ErrBudgetExceeded for a budget), ErrNotFound (no
// such tenant) or ErrInvalid, with nothing changed.
func (l *Ledger) Exchange(ctx context.Context, release string, holds []HoldRequest) ([]Hold, error) {
	if err := checkExchange(release, holds); err != nil {
		return nil, err
	}
	if len(holds) == 0 {
		if release == "" {
			return nil, nil
		}
		_, err := l.Void(ctx, release)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return nil, err
	}
	if l.isClosed() {
		return nil, fmt.Errorf("exchange: %w", ErrClosed)
	}
	if l.adm != nil {
		hs, done, err := l.exchangeInMemory(ctx, release, holds)
		if done {
			if err != nil {
				return nil, fmt.Errorf("exchange: %w", err)
			}
			return hs, nil
		}
	}
	var out []Hold
	err := l.update(ctx, func(tx Tx) error {
		var err error
		out, err = l.exchangeTx(ctx, tx, release, holds)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	l.batches.Add(1)
	l.ops.Add(int64(len(holds)))
	return out, nil
}

// checkExchange checks what an exchange asks before anything is read.
func checkExchange(release string, holds []HoldRequest) error {
	if len(holds) > MaxExchange {
		return fmt.Errorf("exchange of %d holds, at most %d: %w", len(holds), MaxExchange, ErrInvalid)
	}
	if release != "" {
		if err := checkID("reservation id", release); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(holds))
	for i := range holds {
		r := &holds[i]
		r.TenantID = TenantFor(r.TenantID)
		if err := checkID("request id", r.RequestID); err != nil {
			return err
		}
		if err := checkAmount(r.Amount.Nanos); err != nil {
			return fmt.Errorf("hold %s: %w", r.RequestID, err)
		}
		if r.TenantID != holds[0].TenantID || r.KeyID != holds[0].KeyID {
			return fmt.Errorf("exchange across tenants or keys (%s/%s and %s/%s): %w", holds[0].TenantID, holds[0].KeyID,
				r.TenantID, r.KeyID, ErrInvalid)
		}
		if seen[r.RequestID] || r.RequestID == release {
			return fmt.Errorf("exchange names %s twice: %w", r.RequestID, ErrInvalid)
		}
		seen[r.RequestID] = true
	}
	return nil
}

// exchangeTx is an exchange in one write transaction; any failure aborts
// it.
func (l *Ledger) exchangeTx(ctx context.Context, tx Tx, release string, holds []HoldRequest) ([]Hold, error) {
	if l.adm == nil { // budgets may have changed on another node
		var err error
		if ctx, err = l.syncBudgets(ctx, tx); err != nil {
			return nil, err
		}
	}
	now := l.clock.Now()
	sys := sysDeltas{}
	if release != "" {
		if _, err := l.voidTx(ctx, tx, release, false, "", now, sys); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	out := make([]Hold, 0, len(holds))
	for start := 0; start < len(holds); start += sweepChunk {
		chunk := holds[start:min(start+sweepChunk, len(holds))]
		ops := make([]*op, len(chunk))
		order := make([]int, len(chunk))
		for i := range chunk {
			ops[i] = &op{ctx: ctx, kind: opHold, tenant: chunk[i].TenantID, hold: chunk[i]}
			order[i] = i
		}
		pre, err := l.pipeline(ctx, tx, ops, order, now)
		if err != nil {
			return nil, err
		}
		for i, o := range ops {
			var h Hold
			if p := pre[i]; p.place != nil {
				h, err = l.finishPlace(ctx, tx, p.place, sys)
			} else {
				h, err = l.holdTx(ctx, tx, o.hold, now, sys)
			}
			if err != nil {
				return nil, fmt.Errorf("hold %s: %w", o.hold.RequestID, err)
			}
			if h.State != HoldPending {
				return nil, fmt.Errorf("hold %s is already %s: %w", h.RequestID, h.State, ErrInvalid)
			}
			out = append(out, h)
		}
	}
	return out, sys.apply(ctx, tx)
}

// exchangeInMemory is an exchange on the holds in memory. done is false
// when it must run in the store instead: the key or tenant has a budget, or
// the reservation to release is not in memory.
func (l *Ledger) exchangeInMemory(ctx context.Context, release string, rs []HoldRequest) ([]Hold, bool, error) {
	first := rs[0]
	t, ok := l.cachedTenant(first.TenantID)
	bs, hit := l.cachedBudgets(first.KeyID, first.TenantID)
	if !ok || !hit {
		err := l.store.LedgerView(ctx, func(v Snapshot) error {
			var err error
			if t, err = l.tenant(ctx, v, first.TenantID); err != nil {
				return err
			}
			bs, err = l.budgetsFor(ctx, v, first.KeyID, t.ID)
			return err
		})
		if err != nil {
			return nil, true, err
		}
	}
	if len(bs) > 0 {
		return nil, false, nil
	}
	for _, r := range rs {
		if r.Amount.Currency != "" && r.Amount.Currency != t.Currency {
			return nil, true, fmt.Errorf("hold in %s for a %s account: %w", r.Amount.Currency, t.Currency, ErrInvalid)
		}
	}
	a := l.adm
	for {
		a.mu.Lock()
		m := a.tenants[t.ID]
		if m != nil && m.loaded {
			hs, done, err := a.exchange(m, t, release, rs, l, l.clock.Now())
			a.mu.Unlock()
			return hs, done, err
		}
		a.mu.Unlock()
		if err := l.loadMirror(ctx, t.ID); err != nil {
			return nil, true, err
		}
	}
}

// exchange decides an exchange on a loaded mirror; a.mu is held.
func (a *admission) exchange(m *mirror, t Tenant, release string, rs []HoldRequest, l *Ledger, now time.Time) ([]Hold, bool, error) {
	var freed *memHold
	if release != "" {
		if freed = a.holds[release]; freed == nil {
			if _, resolved := a.recent.byReq[release]; !resolved {
				return nil, false, nil // perhaps a row in the store
			}
		} else if freed.TenantID != t.ID {
			return nil, true, fmt.Errorf("reservation %s is of tenant %s: %w", release, freed.TenantID, ErrInvalid)
		}
	}
	out := make([]Hold, len(rs))
	var need int64
	for i, r := range rs {
		if h, ok := a.holds[r.RequestID]; ok {
			out[i] = h.Hold
			continue
		}
		if _, ok := a.recent.byReq[r.RequestID]; ok {
			return nil, true, fmt.Errorf("request %s is already resolved: %w", r.RequestID, ErrInvalid)
		}
		var err error
		if need, err = money.AddNanos(need, r.Amount.Nanos); err != nil {
			return nil, true, fmt.Errorf("exchange: %w", ErrInvalid)
		}
	}
	if m.owing() || (t.Kind == Free && need != 0) {
		return nil, true, ErrInsufficientFunds
	}
	avail, ok := m.available()
	if ok && freed != nil {
		var err error
		avail, err = money.AddNanos(avail, freed.Amount)
		ok = err == nil
	}
	if !ok {
		return nil, true, ErrInsufficientFunds
	}
	if after, err := money.SubNanos(avail, need); err != nil || after < -m.main.CreditLimit {
		return nil, true, ErrInsufficientFunds
	}
	if freed != nil {
		delete(a.holds, release)
		m.holds -= freed.Amount
		h := freed.Hold
		h.State, h.ResolvedAt = HoldVoided, now
		a.recent.add(release, h)
	}
	for i, r := range rs {
		if out[i].RequestID != "" {
			continue
		}
		h, _, _ := l.newHold(t, r, now)
		m.holds += h.Amount
		a.holds[h.RequestID] = &memHold{Hold: h}
		out[i] = h
	}
	return out, true, nil
}
