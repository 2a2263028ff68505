package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// Batches: a batch's money is a reservation placed when it is created, the
// sum of its lines' worst cases (Quote) at the batch price; as it starts
// lines, Exchange moves money from the reservation to the lines' holds
// (their requests then Admit with HeldAhead and settle as any request, once
// each, by request id); when it ends, what is left is released.

// Quote is what admission decided a request may cost, without holding it.
type Quote struct {
	// Amount is the worst case in nanos of the billing currency, at the
	// dearest channel that may serve the request.
	Amount int64
	// Output is the output per choice it covers (0: none, or no limit known).
	Output int64
	// Held says the request needs a hold: it is priced, not free, and the
	// gateway charges (billing.ledger is on).
	Held bool
}

// Quote sizes a request's worst case as Admit would, without asking the
// store: the checks of the output limit and the choices apply, and an
// unpriced model is a *NotPricedError. Batches size their reservation with
// it, line by line.
func (b *Biller) Quote(r *Request) (Quote, error) {
	w, err := b.worst(r)
	if err != nil {
		return Quote{}, err
	}
	if !w.priced && !w.free && b.opt.Rater != nil {
		var up string
		if len(r.Upstreams) > 0 {
			up = r.Upstreams[0]
		}
		if err := b.opt.Rater.Check(r.Model, up, r.Start); err != nil {
			return Quote{}, err
		}
	}
	q := Quote{Amount: w.amount, Output: w.output, Held: b.opt.Books != nil && w.priced && !w.free}
	if !q.Held {
		q.Amount = 0
	}
	return q, nil
}

// BatchBooks is what the Books of a Biller that serves batches also do
// (*ledger.Ledger).
type BatchBooks interface {
	Exchange(ctx context.Context, release string, holds []ledger.HoldRequest) ([]ledger.Hold, error)
}

var _ BatchBooks = (*ledger.Ledger)(nil)

// Hold is one hold of an Exchange: a line's (its request id) or a
// reservation's (ledger.ReservationID).
type Hold struct {
	ID     string
	Amount int64 // nanos of the billing currency
	TTL    time.Duration
}

// Exchange is a move of a batch's money between its reservation and the
// holds of its lines, done at once or not at all.
type Exchange struct {
	TenantID, KeyID string
	// Release is the reservation to release ("" for none).
	Release string
	// Holds are placed: the lines started, and the new reservation for what
	// remains (none when nothing remains).
	Holds []Hold
}

// ErrNoBatchBooks says the ledger cannot exchange holds.
var ErrNoBatchBooks = errors.New("billing: the books cannot hold for batches")

// Exchange releases x.Release and places x.Holds at once: every hold or
// none. Not enough money is an *InsufficientError (Need: the holds' sum),
// then ErrBudgetExceeded, ErrNoAccount or *UnavailableError, as for Admit.
// With no books (metering only) it does nothing.
func (b *Biller) Exchange(ctx context.Context, x Exchange) error {
	if b.opt.Books == nil {
		return nil
	}
	bb, ok := b.opt.Books.(BatchBooks)
	if !ok {
		return ErrNoBatchBooks
	}
	var need int64
	rs := make([]ledger.HoldRequest, len(x.Holds))
	for i, h := range x.Holds {
		rs[i] = ledger.HoldRequest{RequestID: h.ID, TenantID: x.TenantID, KeyID: x.KeyID,
			Amount: money.Amount{Nanos: h.Amount, Currency: b.Currency()}, TTL: h.TTL}
		var err error
		if need, err = money.AddNanos(need, h.Amount); err != nil {
			return fmt.Errorf("billing: exchange: %w", err)
		}
	}
	if b.Currency() == "" {
		for i := range rs {
			rs[i].Amount.Currency = ""
		}
	}
	_, err := bb.Exchange(ctx, x.Release, rs)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrBudgetExceeded):
		return fmt.Errorf("%w: %w", ErrBudgetExceeded, err)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return &InsufficientError{Need: need, Currency: b.Currency(), Err: err}
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNoAccount, err)
	case errors.Is(err, ledger.ErrInvalid):
		return fmt.Errorf("billing: exchange: %w", err)
	default:
		return &UnavailableError{What: "reserve the batch's cost", Err: err}
	}
}
