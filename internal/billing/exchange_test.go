package billing

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// exchangeBooks is a ledger that exchanges holds as exchange says.
type exchangeBooks struct {
	*fakeBooks
	calls    int
	release  string
	holds    []ledger.HoldRequest
	exchange func() error
}

func (e *exchangeBooks) Exchange(_ context.Context, release string, holds []ledger.HoldRequest) ([]ledger.Hold, error) {
	e.calls++
	e.release, e.holds = release, holds
	if err := e.exchange(); err != nil {
		return nil, err
	}
	return make([]ledger.Hold, len(holds)), nil
}

// TestExchangeMapsTheLedger: a batch's exchange places every hold in the
// billing currency or none, and what the ledger says becomes the error
// Admit would give; books that cannot exchange, and a sum of holds past
// what nanos hold, are refused before the ledger is asked.
func TestExchangeMapsTheLedger(t *testing.T) {
	ctx := context.Background()
	x := Exchange{TenantID: "acme", KeyID: "k", Release: "res-1",
		Holds: []Hold{{ID: "line-1", Amount: 300, TTL: time.Hour}, {ID: "res-2", Amount: 700, TTL: time.Minute}}}
	for _, tt := range []struct {
		name string
		err  error
		want func(error) bool
	}{
		{"placed", nil, func(err error) bool { return err == nil }},
		{"a budget used up", ledger.ErrBudgetExceeded, func(err error) bool {
			return errors.Is(err, ErrBudgetExceeded) && errors.Is(err, ledger.ErrBudgetExceeded)
		}},
		{"not enough money", ledger.ErrInsufficientFunds, func(err error) bool {
			var ie *InsufficientError
			return errors.As(err, &ie) && ie.Need == 1000 && ie.Currency == money.CNY
		}},
		{"no account", ledger.ErrNotFound, func(err error) bool { return errors.Is(err, ErrNoAccount) }},
		{"invalid", ledger.ErrInvalid, func(err error) bool {
			return errors.Is(err, ledger.ErrInvalid) && !errors.As(err, new(*UnavailableError))
		}},
		{"the store away", ledger.ErrClosed, func(err error) bool {
			return errors.As(err, new(*UnavailableError)) && errors.Is(err, ledger.ErrClosed)
		}},
	} {
		books := &exchangeBooks{fakeBooks: &fakeBooks{}, exchange: func() error { return tt.err }}
		b := New(Options{Rater: testRater(t), Books: books, Log: quiet()})
		if err := b.Exchange(ctx, x); !tt.want(err) {
			t.Errorf("%s: err %v", tt.name, err)
		}
		want := []ledger.HoldRequest{
			{RequestID: "line-1", TenantID: "acme", KeyID: "k", Amount: money.Amount{Nanos: 300, Currency: money.CNY}, TTL: time.Hour},
			{RequestID: "res-2", TenantID: "acme", KeyID: "k", Amount: money.Amount{Nanos: 700, Currency: money.CNY}, TTL: time.Minute},
		}
		if books.calls != 1 || books.release != "res-1" || len(books.holds) != 2 || books.holds[0] != want[0] || books.holds[1] != want[1] {
			t.Errorf("%s: exchanged %d times, releasing %q, holds %+v", tt.name, books.calls, books.release, books.holds)
		}
		_ = b.Close(ctx)
	}

	// Metering only: nothing to exchange, nothing asked.
	metered := New(Options{Rater: testRater(t), Log: quiet()})
	defer metered.Close(ctx)
	if err := metered.Exchange(ctx, x); err != nil {
		t.Errorf("metering only: %v", err)
	}
	// Books without exchanges.
	plain := New(Options{Rater: testRater(t), Books: &fakeBooks{}, Log: quiet()})
	defer plain.Close(ctx)
	if err := plain.Exchange(ctx, x); !errors.Is(err, ErrNoBatchBooks) {
		t.Errorf("books that cannot exchange: err %v, want ErrNoBatchBooks", err)
	}
	// Holds whose sum overflows are refused, not wrapped.
	books := &exchangeBooks{fakeBooks: &fakeBooks{}, exchange: func() error { return nil }}
	b := New(Options{Rater: testRater(t), Books: books, Log: quiet()})
	defer b.Close(ctx)
	huge := Exchange{TenantID: "acme", Holds: []Hold{{ID: "a", Amount: math.MaxInt64}, {ID: "b", Amount: 1}}}
	if err := b.Exchange(ctx, huge); err == nil || books.calls != 0 {
		t.Errorf("holds summing past int64: err %v after %d exchanges", err, books.calls)
	}
	// Without a rater the holds are in no currency: the account's.
	books = &exchangeBooks{fakeBooks: &fakeBooks{}, exchange: func() error { return nil }}
	unrated := New(Options{Books: books, Log: quiet()})
	defer unrated.Close(ctx)
	if err := unrated.Exchange(ctx, x); err != nil || len(books.holds) != 2 || books.holds[0].Amount.Currency != "" ||
		books.holds[1].Amount != (money.Amount{Nanos: 700}) {
		t.Errorf("unrated: err %v, holds %+v", err, books.holds)
	}
}
