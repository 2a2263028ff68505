package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// TestExchangeBounds: an exchange names at most MaxExchange holds; one of
// exactly that many is checked and goes on (here to find no such tenant),
// one more is refused before anything is read.
func TestExchangeBounds(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	holds := make([]ledger.HoldRequest, ledger.MaxExchange+1)
	for i := range holds {
		holds[i] = ledger.HoldRequest{RequestID: fmt.Sprint("x", i), TenantID: "nobody"}
	}
	if _, err := l.Exchange(ctx, "", holds[:ledger.MaxExchange]); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("exchange of %d holds for no tenant: %v; want ErrNotFound", ledger.MaxExchange, err)
	}
	if _, err := l.Exchange(ctx, "", holds); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("exchange of %d holds: %v; want ErrInvalid", len(holds), err)
	}
}

// TestExchangeChecksItsHolds: the holds of an exchange are checked whether
// or not it releases a reservation: one tenant and key, each request once,
// none the reservation itself.
func TestExchangeChecksItsHolds(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	for _, id := range []string{"acme", "other"} {
		if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: id, Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: id, Amount: 10 * yuan}); err != nil {
			t.Fatal(err)
		}
	}
	h := func(req, tenant, key string) ledger.HoldRequest {
		return ledger.HoldRequest{RequestID: req, TenantID: tenant, KeyID: key, Amount: money.New(yuan, money.CNY)}
	}
	for _, release := range []string{"", "res"} {
		for _, tc := range []struct {
			name  string
			holds []ledger.HoldRequest
		}{
			{"across tenants", []ledger.HoldRequest{h("a", "acme", "k"), h("b", "other", "k")}},
			{"across keys", []ledger.HoldRequest{h("a", "acme", "k"), h("b", "acme", "k2")}},
			{"a request twice", []ledger.HoldRequest{h("a", "acme", "k"), h("a", "acme", "k")}},
			{"the reservation itself", []ledger.HoldRequest{h("res", "acme", "k")}},
			{"no request id", []ledger.HoldRequest{h("", "acme", "k")}},
		} {
			if tc.name == "the reservation itself" && release == "" {
				continue
			}
			if hs, err := l.Exchange(ctx, release, tc.holds); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("release %q, %s: %+v, %v; want ErrInvalid", release, tc.name, hs, err)
			}
		}
	}
	for _, id := range []string{"acme", "other"} {
		if b, err := l.Balance(ctx, id); err != nil || b.Pending != 0 {
			t.Errorf("%s after refused exchanges: %+v, %v; want nothing held", id, b, err)
		}
	}
}

// TestExchangeInMemory: on an exclusive ledger an exchange places its holds
// in memory; the reservation it releases pays for them; a postpaid
// tenant's holds may reach its credit limit exactly, and not a nano past;
// a free tenant's holds are of nothing.
func TestExchangeInMemory(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{Exclusive: true})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "res", TenantID: "acme", Amount: money.New(8*yuan, money.CNY)}); err != nil {
		t.Fatal(err)
	}
	// 2 left: the 8 released pay for two holds of 4.
	hs, err := l.Exchange(ctx, "res", []ledger.HoldRequest{
		{RequestID: "a", TenantID: "acme", Amount: money.New(4*yuan, money.CNY)},
		{RequestID: "b", TenantID: "acme", Amount: money.New(4*yuan, money.CNY)},
	})
	if err != nil || len(hs) != 2 {
		t.Fatalf("exchange of the reservation for two holds of 4: %+v, %v", hs, err)
	}
	if st := l.Stats(); st.HeldInMemory != 2 {
		t.Errorf("held in memory after the exchange: %d, want 2", st.HeldInMemory)
	}
	if b := balance(t, l); b.Pending != 8*yuan {
		t.Errorf("pending %s, want 8", money.FormatNanos(b.Pending))
	}

	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "post", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	over := []ledger.HoldRequest{
		{RequestID: "p1", TenantID: "post", Amount: money.New(6*yuan, money.CNY)},
		{RequestID: "p2", TenantID: "post", Amount: money.New(4*yuan+1, money.CNY)},
	}
	if hs, err := l.Exchange(ctx, "", over); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("exchange a nano past the credit limit: %+v, %v; want ErrInsufficientFunds", hs, err)
	}
	over[1].Amount.Nanos = 4 * yuan
	if hs, err := l.Exchange(ctx, "", over); err != nil || len(hs) != 2 {
		t.Fatalf("exchange up to the credit limit: %+v, %v", hs, err)
	}
	if b, err := l.Balance(ctx, "post"); err != nil || b.Available != -10*yuan {
		t.Errorf("postpaid balance %+v, %v; want available -10", b, err)
	}
	// A free tenant holds nothing: holds of 0 are placed, money is refused.
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "gratis", Kind: ledger.Free, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	free := []ledger.HoldRequest{{RequestID: "f1", TenantID: "gratis", Amount: money.New(0, money.CNY)}}
	if hs, err := l.Exchange(ctx, "", free); err != nil || len(hs) != 1 {
		t.Fatalf("exchange of a free hold of 0: %+v, %v", hs, err)
	}
	free[0].RequestID, free[0].Amount.Nanos = "f2", 1
	if hs, err := l.Exchange(ctx, "", free); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("exchange of a nano on a free tenant: %+v, %v; want ErrInsufficientFunds", hs, err)
	}
	for _, id := range []string{"a", "b", "p1", "p2", "f1"} {
		if _, err := l.Void(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
