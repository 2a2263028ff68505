package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// TestPostpaidDebtRepaidUpToTheCreditLine: a postpaid tenant's debt is paid
// down by new money as far as what it can spend reaches, its credit line
// included; a prepaid one's only from its balance.
func TestPostpaidDebtRepaidUpToTheCreditLine(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	for _, tn := range []ledger.Tenant{
		{ID: "acme", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: 10 * yuan},
		{ID: "pre", Kind: ledger.Prepaid, Currency: money.CNY},
	} {
		if _, err := l.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		// A request settled without a hold, dearer than anything the
		// tenant could spend: all of it is owed.
		rec := record("r-"+tn.ID, 15*yuan)
		rec.TenantID = tn.ID
		if res, err := l.Settle(ctx, ledger.Settlement{Record: rec}); err != nil || res.Debt != 15*yuan {
			t.Fatalf("settle on %s: %+v, %v; want 15 owed", tn.ID, res, err)
		}
	}
	for _, tc := range []struct {
		tenant        string
		topUp, repaid int64
		posted, debt  int64
		after         string
	}{
		// 3 new + 10 of credit pay 13 of the 15 owed.
		{"acme", 3 * yuan, 13 * yuan, -10 * yuan, 2 * yuan, "the credit line drawn in full"},
		// The credit line is spent: only new money repays.
		{"acme", yuan, yuan, -10 * yuan, yuan, "new money only"},
		{"acme", 4 * yuan, yuan, -7 * yuan, 0, "the rest of the debt, the remainder kept"},
		{"pre", 4 * yuan, 4 * yuan, 0, 11 * yuan, "a prepaid balance, no credit"},
	} {
		res, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: tc.tenant, Amount: tc.topUp})
		if err != nil || res.Repaid != tc.repaid || res.Balance.Posted != tc.posted || res.Balance.Debt != tc.debt {
			t.Fatalf("%s: top-up of %s on %s: %+v, %v; want %s repaid, posted %s, owing %s", tc.after,
				money.FormatNanos(tc.topUp), tc.tenant, res, err, money.FormatNanos(tc.repaid), money.FormatNanos(tc.posted),
				money.FormatNanos(tc.debt))
		}
	}
}

// TestOtherCurrency lists the tenants a gateway billing in one currency
// cannot charge: those whose accounts are in another (the default tenant,
// which every ledger has, is in CNY).
func TestOtherCurrency(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	for _, tn := range []ledger.Tenant{
		{ID: "cn1", Kind: ledger.Prepaid, Currency: money.CNY},
		{ID: "us1", Kind: ledger.Prepaid, Currency: money.USD},
		{ID: "cn2", Kind: ledger.Postpaid, Currency: money.CNY},
		{ID: "us2", Kind: ledger.Free, Currency: money.USD},
	} {
		if _, err := l.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	for c, want := range map[money.Currency]string{money.CNY: "[us1 us2]", money.USD: "[cn1 cn2 default]", "EUR": "[cn1 cn2 default us1 us2]"} {
		ts, err := l.OtherCurrency(ctx, c)
		var ids []string
		for _, tn := range ts {
			ids = append(ids, tn.ID)
		}
		if err != nil || fmt.Sprint(ids) != want {
			t.Errorf("OtherCurrency(%s) = %v, %v; want %s", c, ids, err, want)
		}
	}
}

// TestPrepareDefaultFollowsTheGateway: the default tenant takes the
// currency of the gateway that prepares it for as long as its accounts have
// never moved (a fresh install restarted with another currency), with that
// currency's system accounts; once money moved, it keeps its currency.
func TestPrepareDefaultFollowsTheGateway(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	for _, c := range []money.Currency{money.CNY, money.CNY, "EUR"} {
		tn, err := l.PrepareDefault(ctx, c)
		if err != nil || tn.Currency != c || tn.CreatedAt.IsZero() {
			t.Fatalf("PrepareDefault(%s) = %+v, %v; want the default tenant in %s", c, tn, err, c)
		}
	}
	// The EUR system accounts exist (no tenant had EUR before): money can
	// move, and a refund reach the revenue account.
	res, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: ledger.DefaultTenantID, Amount: 5 * yuan})
	if err != nil || res.Currency != "EUR" || res.Balance.Posted != 5*yuan {
		t.Fatalf("top-up of the default tenant in EUR = %+v, %v", res, err)
	}
	tn, err := l.PrepareDefault(ctx, money.USD)
	if err != nil || tn.Currency != "EUR" {
		t.Fatalf("PrepareDefault(USD) after a top-up = %+v, %v; want it kept in EUR", tn, err)
	}
}
