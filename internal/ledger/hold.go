package ledger

// Holds: reserving a request's worst-case cost before its upstream call.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"baimo/internal/money"
)

// HoldRequest asks to reserve a request's worst-case cost.
type HoldRequest struct {
	RequestID string
	TenantID  string // "" is the default tenant
	KeyID     string
	Amount    money.Amount // Currency "" means the tenant's currency
	TTL       time.Duration
}

// Hold reserves r's amount against the tenant's available balance as a
// pending transfer. A repeated request id returns the first hold. Not enough
// funds (or an open debt) is ErrInsufficientFunds.
func (l *Ledger) Hold(ctx context.Context, r HoldRequest) (Hold, error) {
	r.TenantID = TenantFor(r.TenantID)
	if err := checkID("request id", r.RequestID); err != nil {
		return Hold{}, err
	}
	if err := checkAmount(r.Amount.Nanos); err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
	}
	if l.adm != nil {
		if l.isClosed() {
			return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, ErrClosed)
		}
		h, done, err := l.holdInMemory(ctx, r)
		if err != nil {
			return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
		}
		if done {
			return h, nil
		}
	}
	res, err := l.submit(ctx, &op{kind: opHold, tenant: r.TenantID, hold: r})
	if err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
	}
	return res.hold, nil
}

func (l *Ledger) holdTx(ctx context.Context, tx Tx, r HoldRequest, now time.Time, sys sysDeltas) (Hold, error) {
	t, err := l.tenant(ctx, tx, r.TenantID)
	if err != nil {
		return Hold{}, err
	}
	if r.Amount.Currency != "" && r.Amount.Currency != t.Currency {
		return Hold{}, fmt.Errorf("hold in %s for a %s account: %w", r.Amount.Currency, t.Currency, ErrInvalid)
	}
	h, guard, pending := l.newHold(t, r, now)
	rev := pending.Credit
	if hw, fast := tx.(HoldWriter); fast && (t.Kind != Free || h.Amount == 0) {
		bs, err := l.budgetsFor(ctx, tx, r.KeyID, t.ID)
		if err != nil {
			return Hold{}, err
		}
		if len(bs) == 0 {
			st := &PlaceStep{Hold: h, Guard: guard, Pending: pending}
			if st.Outcome, err = hw.PlaceHold(ctx, h, guard, pending); err != nil {
				return Hold{}, err
			}
			return l.finishPlace(ctx, tx, st, sys)
		}
	}
	ok, err := tx.InsertHold(ctx, h)
	if err != nil {
		return Hold{}, err
	}
	if !ok {
		return tx.Hold(ctx, r.RequestID)
	}
	ok = false
	if t.Kind != Free || h.Amount == 0 {
		// NoRecord: a request already settled without a hold is finished; a
		// hold now would be settled a second time from the same record.
		ok, err = tx.ApplyDelta(ctx, h.AccountID, Delta{PendingDebits: h.Amount}, guard)
		if err != nil {
			return Hold{}, err
		}
	}
	if !ok {
		if err := tx.DeleteHold(ctx, h.RequestID); err != nil {
			return Hold{}, err
		}
		if _, found, err := tx.RecordCost(ctx, r.RequestID); err != nil || found {
			if err == nil {
				err = fmt.Errorf("request %s is already settled: %w", r.RequestID, ErrInvalid)
			}
			return Hold{}, err
		}
		return Hold{}, ErrInsufficientFunds
	}
	keys, err := l.reserveBudgets(ctx, tx, r.KeyID, t.ID, h.Amount, now)
	if err != nil {
		if !errors.Is(err, ErrBudgetExceeded) {
			return Hold{}, err
		}
		if uerr := mustApply(ctx, tx, h.AccountID, Delta{PendingDebits: -h.Amount}); uerr != nil {
			return Hold{}, uerr
		}
		if derr := tx.DeleteHold(ctx, h.RequestID); derr != nil {
			return Hold{}, derr
		}
		return Hold{}, err
	}
	if len(keys) > 0 {
		h.Budgets = encodeBudgetKeys(keys)
		if err := tx.SetHoldBudgets(ctx, h.RequestID, h.Budgets); err != nil {
			return Hold{}, err
		}
	}
	if err := mustInsert(ctx, tx, pending); err != nil {
		return Hold{}, err
	}
	return h, sys.add(rev, Delta{PendingCredits: h.Amount})
}

// newHold builds the hold of r on t, its guard and its pending transfer.
func (l *Ledger) newHold(t Tenant, r HoldRequest, now time.Time) (Hold, Guard, Transfer) {
	ttl := r.TTL
	if ttl <= 0 {
		ttl = l.opts.HoldTTL
	}
	h := Hold{RequestID: r.RequestID, TenantID: t.ID, KeyID: r.KeyID, AccountID: MainAccount(t.ID),
		Amount: r.Amount.Nanos, Currency: t.Currency, State: HoldPending, Node: l.opts.Node,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	// NoRecord: a request already settled without a hold is finished; a hold
	// now would be settled a second time from the same record.
	g := Guard{Floor: true, NotOwing: DebtAccount(t.ID), NoRecord: h.RequestID}
	p := Transfer{ID: holdID(h.RequestID), Debit: h.AccountID, Credit: RevenueAccount(t.Currency), Amount: h.Amount,
		Currency: t.Currency, Kind: KindHold, Flag: FlagPending, RequestID: h.RequestID, TenantID: t.ID, CreatedAt: now}
	return h, g, p
}

// finishPlace completes a hold a store placed in one statement.
func (l *Ledger) finishPlace(ctx context.Context, tx Tx, st *PlaceStep, sys sysDeltas) (Hold, error) {
	h := st.Hold
	switch st.Outcome {
	case HoldPlaced:
		return h, sys.add(st.Pending.Credit, Delta{PendingCredits: h.Amount})
	case HoldDuplicate:
		return tx.Hold(ctx, h.RequestID)
	}
	if err := tx.DeleteHold(ctx, h.RequestID); err != nil {
		return Hold{}, err
	}
	if _, found, err := tx.RecordCost(ctx, h.RequestID); err != nil || found {
		if err == nil {
			err = fmt.Errorf("request %s is already settled: %w", h.RequestID, ErrInvalid)
		}
		return Hold{}, err
	}
	return Hold{}, ErrInsufficientFunds
}

func holdID(req string) string { return req + "/hold" }
