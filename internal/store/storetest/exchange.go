package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// testLedgerExchange checks reservations and their exchange for line
// holds: the available balance does not move, all or nothing, retries,
// budgets, and a reservation left behind is released, not reported lost.
func testLedgerExchange(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	hr := func(id string, amt int64) ledger.HoldRequest {
		return ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: cny(amt), TTL: time.Hour}
	}
	res1 := ledger.ReservationID("batch_1")
	if !ledger.IsReservation(res1) || ledger.IsReservation("batch_1:line") {
		t.Fatalf("IsReservation wrong for %q", res1)
	}
	if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{hr(res1, 11*yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("reservation past the balance err = %v, want ErrInsufficientFunds", err)
	}
	if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{hr(res1, 8*yuan)}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acme", 10*yuan, 8*yuan, 0)
	// The reservation keeps other requests from the money.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "other", TenantID: "acme", Amount: cny(3 * yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("hold past what the reservation leaves err = %v", err)
	}
	// Lines start: the balance does not move.
	res2 := ledger.ReservationID("batch_1")
	hs, err := l.Exchange(ctx, res1, []ledger.HoldRequest{hr("batch_1:a", 3*yuan), hr("batch_1:b", 2*yuan), hr(res2, 3*yuan)})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[0].RequestID != "batch_1:a" || hs[0].Amount != 3*yuan || hs[2].State != ledger.HoldPending {
		t.Fatalf("Exchange = %+v", hs)
	}
	wantBalance(t, l, "acme", 10*yuan, 8*yuan, 0)
	// A retried exchange finds its holds; the released reservation is skipped.
	if _, err := l.Exchange(ctx, res1, []ledger.HoldRequest{hr("batch_1:a", 3*yuan)}); err != nil {
		t.Fatalf("retried exchange: %v", err)
	}
	wantBalance(t, l, "acme", 10*yuan, 8*yuan, 0)
	// Lines dearer than the reservation take the rest from the balance;
	// one that the balance cannot cover changes nothing at all.
	res3 := ledger.ReservationID("batch_1")
	if _, err := l.Exchange(ctx, res2, []ledger.HoldRequest{hr("batch_1:c", 4*yuan), hr("batch_1:d", 9*yuan), hr(res3, 0)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("exchange past the balance err = %v", err)
	}
	wantBalance(t, l, "acme", 10*yuan, 8*yuan, 0)
	if _, err := l.Exchange(ctx, res2, []ledger.HoldRequest{hr("batch_1:c", 4*yuan), hr(res3, 0)}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acme", 10*yuan, 9*yuan, 0)
	// The lines are ordinary requests: settled once, or voided.
	for _, x := range []struct {
		id   string
		cost int64
	}{{"batch_1:a", yuan}, {"batch_1:b", 0}, {"batch_1:a", 5 * yuan}} {
		if _, err := l.Settle(ctx, ledger.Settlement{Record: rec(x.id, "acme", x.cost)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Void(ctx, "batch_1:c"); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acme", 9*yuan, 0, 0)
	// A settled line is not held again.
	if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{hr("batch_1:a", yuan)}); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("exchange holding a settled request err = %v, want ErrInvalid", err)
	}
	// Releasing the last reservation (of nothing) and an unknown one is fine.
	if _, err := l.Exchange(ctx, res3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exchange(ctx, ledger.ReservationID("nobody"), nil); err != nil {
		t.Fatalf("release of an unknown reservation: %v", err)
	}
	// Bad exchanges.
	for name, bad := range map[string][]ledger.HoldRequest{
		"twice":        {hr("x", 1), hr("x", 1)},
		"two tenants":  {hr("x", 1), {RequestID: "y", TenantID: "other", KeyID: "k1", Amount: cny(1)}},
		"two keys":     {hr("x", 1), {RequestID: "y", TenantID: "acme", KeyID: "k2", Amount: cny(1)}},
		"negative":     {hr("x", -1)},
		"no id":        {hr("", 1)},
		"in dollars":   {{RequestID: "x", TenantID: "acme", KeyID: "k1", Amount: money.New(1, money.USD)}},
		"no such one":  {{RequestID: "x", TenantID: "nobody", Amount: cny(1)}},
		"releases one": {hr(res3, 1)},
	} {
		release := ""
		if name == "releases one" {
			release = res3
		}
		_, err := l.Exchange(ctx, release, bad)
		if !errors.Is(err, ledger.ErrInvalid) && !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("exchange %s err = %v, want ErrInvalid or ErrNotFound", name, err)
		}
	}
	wantBalance(t, l, "acme", 9*yuan, 0, 0)

	// Budgets: a reservation reserves the budget; its exchange keeps it.
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodTotal, Limit: 4 * yuan}); err != nil {
		t.Fatal(err)
	}
	res4 := ledger.ReservationID("batch_2")
	if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{hr(res4, 5*yuan)}); !errors.Is(err, ledger.ErrBudgetExceeded) {
		t.Fatalf("reservation past the budget err = %v, want ErrBudgetExceeded", err)
	}
	if _, err := l.Exchange(ctx, "", []ledger.HoldRequest{hr(res4, 4*yuan)}); err != nil {
		t.Fatal(err)
	}
	res5 := ledger.ReservationID("batch_2")
	if _, err := l.Exchange(ctx, res4, []ledger.HoldRequest{hr("batch_2:a", 2*yuan), hr(res5, 2*yuan)}); err != nil {
		t.Fatalf("exchange within the budget: %v", err)
	}
	line := rec("batch_2:a", "acme", 3*yuan)
	line.KeyID = "k1"
	if _, err := l.Settle(ctx, ledger.Settlement{Record: line}); err != nil {
		t.Fatal(err)
	}
	_, spent, pending, err := l.BudgetUsage(ctx, ledger.ScopeKey, "k1", clk.Now())
	if err != nil || spent != 3*yuan || pending != 2*yuan {
		t.Fatalf("budget spent %d pending %d (%v), want 3 and 2 yuan", spent, pending, err)
	}
	wantBalance(t, l, "acme", 6*yuan, 2*yuan, 0)

	// A reservation nobody releases expires and is released, not lost.
	clk.Advance(time.Hour + time.Second)
	r, err := l.Sweep(ctx)
	if err != nil || r.Voided != 1 || r.Lost != 0 {
		t.Fatalf("Sweep = %+v, %v; want the reservation voided, none lost", r, err)
	}
	wantBalance(t, l, "acme", 6*yuan, 0, 0)
}
