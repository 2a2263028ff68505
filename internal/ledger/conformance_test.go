package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// TestConformance runs the stores' ledger conformance suite (the rules of
// package ledger, exercised end to end) over SQLite from this package too,
// so that this package's own tests are what protects its rules: holds in
// the store, holds in memory (Options.Exclusive, as `baimo serve` runs on
// SQLite), and the one-statement abilities a network database offers
// (HoldWriter, SettleWriter, Pipeliner), here written out over the plain Tx
// primitives with the semantics their interfaces document.
func TestConformance(t *testing.T) {
	open := func(t *testing.T) storetest.Store { return openStore(t) }
	t.Run("HoldsInStore", func(t *testing.T) {
		t.Parallel()
		storetest.RunLedger(t, open)
	})
	t.Run("HoldsInMemory", func(t *testing.T) {
		t.Parallel()
		storetest.RunExclusive(t, open)
	})
	t.Run("OneStatementWriters", func(t *testing.T) {
		t.Parallel()
		storetest.RunLedger(t, func(t *testing.T) storetest.Store { return oneStatementStore{openStore(t)} })
	})
}

// oneStatementStore offers the optional write abilities of package ledger
// on a store that has none of its own.
type oneStatementStore struct{ storetest.Store }

func (s oneStatementStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error { return fn(oneStatementTx{tx}) })
}

type oneStatementTx struct{ ledger.Tx }

var _ ledger.Pipeliner = oneStatementTx{}

// PlaceHold: the hold row, then the guarded pending debit, then the pending
// transfer, each only if the step before took effect.
func (tx oneStatementTx) PlaceHold(ctx context.Context, h ledger.Hold, g ledger.Guard, p ledger.Transfer) (ledger.HoldOutcome, error) {
	ok, err := tx.InsertHold(ctx, h)
	if err != nil || !ok {
		return ledger.HoldDuplicate, err
	}
	ok, err = tx.ApplyDelta(ctx, h.AccountID, ledger.Delta{PendingDebits: h.Amount}, g)
	if err != nil || !ok {
		return ledger.HoldRefused, err
	}
	ok, err = tx.InsertTransfer(ctx, p)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("place hold %s: transfer %s exists", h.RequestID, p.ID)
	}
	return ledger.HoldPlaced, nil
}

// PostHold: the record only while its hold is pending, then the hold posted
// for min(cost, hold), as one step.
func (tx oneStatementTx) PostHold(ctx context.Context, rec usage.Record, settleID, pendingID, revenue string, at time.Time) (ledger.Hold, bool, error) {
	h, err := tx.Hold(ctx, rec.RequestID)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && h.State != ledger.HoldPending) {
		return ledger.Hold{}, false, nil
	}
	if err != nil {
		return ledger.Hold{}, false, err
	}
	if ok, err := tx.InsertRecord(ctx, rec); err != nil || !ok {
		return ledger.Hold{}, false, err
	}
	h, ok, err := tx.ResolveHold(ctx, rec.RequestID, ledger.HoldPosted, at)
	if err != nil || !ok {
		return ledger.Hold{}, false, fmt.Errorf("post hold %s: not pending after all (%v)", rec.RequestID, err)
	}
	post := min(rec.CostNanos, h.Amount)
	if ok, err := tx.ApplyDelta(ctx, h.AccountID, ledger.Delta{PostedDebits: post, PendingDebits: -h.Amount}, ledger.Guard{}); err != nil || !ok {
		return ledger.Hold{}, false, fmt.Errorf("post hold %s: account %s: %v", rec.RequestID, h.AccountID, err)
	}
	if ok, err := tx.InsertTransfer(ctx, ledger.Transfer{ID: settleID, Debit: h.AccountID, Credit: revenue, Amount: post,
		Currency: h.Currency, Kind: ledger.KindSettle, Flag: ledger.FlagPost, PendingID: pendingID, RequestID: rec.RequestID,
		TenantID: h.TenantID, CreatedAt: at}); err != nil || !ok {
		return ledger.Hold{}, false, fmt.Errorf("post hold %s: transfer %s: %v", rec.RequestID, settleID, err)
	}
	return h, true, nil
}

// Pipeline runs the steps in order, as each would run alone.
func (tx oneStatementTx) Pipeline(ctx context.Context, steps []ledger.Step) error {
	for _, s := range steps {
		var err error
		switch {
		case s.Place != nil:
			s.Place.Outcome, err = tx.PlaceHold(ctx, s.Place.Hold, s.Place.Guard, s.Place.Pending)
		case s.Post != nil:
			p := s.Post
			p.Hold, p.Posted, err = tx.PostHold(ctx, p.Record, p.SettleID, p.PendingID, p.Revenue, p.At)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
