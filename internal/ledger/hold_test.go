package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// TestHoldExpiry: a hold lasts the TTL its request asks for, or the
// ledger's default when it asks for none, wherever the hold lives.
func TestHoldExpiry(t *testing.T) {
	ctx := context.Background()
	for _, m := range holdModes {
		for _, c := range []struct {
			ttl, want time.Duration
		}{
			{0, 10 * time.Minute}, // the ledger's default
			{30 * time.Second, 30 * time.Second},
			{time.Nanosecond, time.Nanosecond},
		} {
			t.Run(m.name+"/"+c.ttl.String(), func(t *testing.T) {
				l, _, _ := modeBooks(t, m.exclusive, m.wrap, 5*yuan)
				h, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(yuan, money.CNY), TTL: c.ttl})
				if err != nil {
					t.Fatal(err)
				}
				if !h.CreatedAt.Equal(t0) || !h.ExpiresAt.Equal(t0.Add(c.want)) {
					t.Errorf("hold of TTL %v = created %v expires %v, want expiry %v", c.ttl, h.CreatedAt, h.ExpiresAt, t0.Add(c.want))
				}
			})
		}
	}
}

// TestHoldRefusals: a hold the account, its kind, its budget or an earlier
// settlement refuses fails with the error callers decide on and leaves the
// balance as it was; the request id stays free for a hold that can be
// placed.
func TestHoldRefusals(t *testing.T) {
	ctx := context.Background()
	cny := func(n int64) money.Amount { return money.New(n, money.CNY) }
	cases := []struct {
		name    string
		kind    ledger.Kind
		balance int64
		prepare func(t *testing.T, l *ledger.Ledger)
		amount  int64
		want    error
	}{
		{"more than the balance", ledger.Prepaid, 5 * yuan, nil, 5*yuan + 1, ledger.ErrInsufficientFunds},
		{"a free account's money", ledger.Free, 5 * yuan, nil, 1, ledger.ErrInsufficientFunds},
		{"over the key's budget", ledger.Prepaid, 5 * yuan, func(t *testing.T, l *ledger.Ledger) {
			if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal, Limit: 2 * yuan}); err != nil {
				t.Fatal(err)
			}
		}, 2*yuan + 1, ledger.ErrBudgetExceeded},
		{"a request settled without a hold", ledger.Prepaid, 5 * yuan, func(t *testing.T, l *ledger.Ledger) {
			r := record("r1", yuan)
			r.TenantID = "t1"
			if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
				t.Fatal(err)
			}
		}, yuan, ledger.ErrInvalid},
	}
	for _, m := range holdModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				l, _, _ := modeBooks(t, m.exclusive, m.wrap, 0)
				if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "t1", Kind: c.kind, Currency: money.CNY}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "t1", Amount: c.balance}); err != nil {
					t.Fatal(err)
				}
				if c.prepare != nil {
					c.prepare(t, l)
				}
				before, err := l.Balance(ctx, "t1")
				if err != nil {
					t.Fatal(err)
				}
				h, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "t1", KeyID: "k1", Amount: cny(c.amount)})
				if !errors.Is(err, c.want) {
					t.Fatalf("Hold = %+v, %v; want %v", h, err, c.want)
				}
				if after, err := l.Balance(ctx, "t1"); err != nil || after != before {
					t.Errorf("balance after a refused hold = %+v, %v; want %+v", after, err, before)
				}
				if c.want == ledger.ErrInvalid {
					return // the request is finished
				}
				h, err = l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "t1", KeyID: "k1", Amount: cny(0)})
				if err != nil || h.State != ledger.HoldPending || h.Amount != 0 {
					t.Fatalf("a hold of nothing under the same id = %+v, %v", h, err)
				}
			})
		}
	}
}
