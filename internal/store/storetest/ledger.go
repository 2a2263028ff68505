package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// yuan is one main unit in nanos.
const yuan = money.Scale

// t0 is the fake clock's start in the ledger tests.
var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// holdTTL is the hold lifetime in the ledger tests.
const holdTTL = 5 * time.Minute

// sweepGrace is the sweep interval the audit allows past a hold's expiry.
const sweepGrace = time.Minute

func runLedger(t *testing.T, open func(t *testing.T) Store) {
	t.Run("LedgerSweep", func(t *testing.T) { testLedgerSweep(t, open(t)) })
	runLedgerCommon(t, open)
}

// RunLedger runs the ledger part of the suite alone (package ledger runs it
// over SQLite, so that its own tests exercise its rules).
func RunLedger(t *testing.T, open func(t *testing.T) Store) { runLedger(t, open) }

// RunExclusive runs the ledger suite with holds kept in memory
// (ledger.Options.Exclusive), for a store one process writes alone.
func RunExclusive(t *testing.T, open func(t *testing.T) Store) {
	ex := func(t *testing.T) Store { return exclusive{open(t)} }
	t.Run("LedgerSweepInMemory", func(t *testing.T) { testLedgerSweepInMemory(t, ex(t)) })
	runLedgerCommon(t, ex)
}

// exclusive marks a store whose ledgers keep holds in memory.
type exclusive struct{ Store }

// runLedgerCommon runs the ledger tests that hold wherever the holds live.
func runLedgerCommon(t *testing.T, open func(t *testing.T) Store) {
	t.Run("LedgerRequestLife", func(t *testing.T) { testLedgerRequestLife(t, open(t)) })
	t.Run("LedgerAdmin", func(t *testing.T) { testLedgerAdmin(t, open(t)) })
	t.Run("LedgerRefunds", func(t *testing.T) { testLedgerRefunds(t, open(t)) })
	t.Run("LedgerPrepareDefault", func(t *testing.T) { testLedgerPrepareDefault(t, open(t)) })
	t.Run("LedgerSettleBatch", func(t *testing.T) { testLedgerSettleBatch(t, open(t)) })
	t.Run("LedgerStatement", func(t *testing.T) { testLedgerStatement(t, open(t)) })
	t.Run("LedgerStatementOutcomes", func(t *testing.T) { testLedgerStatementOutcomes(t, open(t)) })
	t.Run("LedgerBudgets", func(t *testing.T) { testLedgerBudgets(t, open(t)) })
	t.Run("LedgerExchange", func(t *testing.T) { testLedgerExchange(t, open(t)) })
	t.Run("LedgerModel", func(t *testing.T) { testLedgerModel(t, open) })
	t.Run("LedgerConcurrentPrepaid", func(t *testing.T) { testLedgerConcurrent(t, open(t)) })
	t.Run("LedgerConcurrentRedeem", func(t *testing.T) { testLedgerRedeem(t, open(t)) })
	t.Run("LedgerConcurrentChaos", func(t *testing.T) { testLedgerConcurrentChaos(t, open(t)) })
}

// newLedger returns a ledger on s with a fake clock, closed and audited at
// the end of the test.
func newLedger(t *testing.T, s Store) (*ledger.Ledger, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	_, ex := s.(exclusive)
	l := ledger.New(s, ledger.Options{Clock: clk, HoldTTL: holdTTL, Node: "test", Exclusive: ex})
	t.Cleanup(func() {
		l.Close()
		if !t.Failed() {
			AuditClean(t, s, clk.Now())
			RollupsAgree(t, s)
		}
	})
	return l, clk
}

// AuditClean fails the test if the audit of s at now finds a problem.
func AuditClean(t testing.TB, s ledger.Store, now time.Time) {
	t.Helper()
	rep, err := ledger.Audit(context.Background(), s, now, sweepGrace)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	for _, c := range rep.Failed() {
		t.Errorf("audit check %s failed: %s", c.Name, strings.Join(c.Problems, "; "))
	}
}

func mustTenant(t *testing.T, l *ledger.Ledger, id string, kind ledger.Kind, limit int64) {
	t.Helper()
	if _, err := l.CreateTenant(context.Background(), ledger.Tenant{ID: id, Name: id, Kind: kind, Currency: money.CNY, CreditLimit: limit}); err != nil {
		t.Fatalf("CreateTenant %s: %v", id, err)
	}
}

func cny(n int64) money.Amount { return money.New(n, money.CNY) }

func rec(req, tenant string, cost int64) usage.Record {
	return usage.Record{RequestID: req, KeyID: "key_1", TenantID: tenant, Endpoint: "chat", Model: "sim-chat",
		Channel: "sim", UpstreamModel: "sim-chat", Status: 200, Complete: true, Start: t0,
		Usage: usage.Usage{Input: 10, Output: 5, Source: usage.SourceVendor}, Currency: "CNY", CostNanos: cost}
}

func wantBalance(t *testing.T, l *ledger.Ledger, tenant string, posted, pending, debt int64) {
	t.Helper()
	b, err := l.Balance(context.Background(), tenant)
	if err != nil {
		t.Fatalf("Balance(%s): %v", tenant, err)
	}
	if b.Posted != posted || b.Pending != pending || b.Debt != debt {
		t.Fatalf("Balance(%s) = posted %d pending %d debt %d, want %d %d %d", tenant, b.Posted, b.Pending, b.Debt, posted, pending, debt)
	}
}

func testLedgerRequestLife(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)

	// The zero-config default tenant exists, postpaid with a demo limit.
	b, err := l.Balance(ctx, "")
	if err != nil {
		t.Fatalf("default tenant: %v", err)
	}
	if b.TenantID != ledger.DefaultTenantID || b.Kind != ledger.Postpaid || b.CreditLimit != ledger.DefaultCreditLimit {
		t.Fatalf("default tenant balance = %+v", b)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "d1", Amount: cny(2 * yuan)}); err != nil {
		t.Fatalf("hold on default tenant: %v", err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("d1", "", yuan)}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "", -yuan, 0, 0)

	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("second CreateTenant err = %v, want ErrExists", err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r0", TenantID: "acme", Amount: cny(1)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("hold on empty prepaid err = %v, want ErrInsufficientFunds", err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	h, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", KeyID: "key_1", Amount: cny(4 * yuan)})
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	if h.State != ledger.HoldPending || h.Amount != 4*yuan || !h.ExpiresAt.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("Hold = %+v", h)
	}
	// A retried hold is the first hold, not a second one.
	if h2, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: cny(4 * yuan)}); err != nil || h2.Amount != 4*yuan {
		t.Fatalf("retried Hold = %+v, %v", h2, err)
	}
	wantBalance(t, l, "acme", 10*yuan, 4*yuan, 0)
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r2", TenantID: "acme", Amount: cny(7 * yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("over-hold err = %v, want ErrInsufficientFunds", err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r2", TenantID: "acme", Amount: money.New(yuan, money.USD)}); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("hold in USD err = %v, want ErrInvalid", err)
	}
	res, err := l.Settle(ctx, ledger.Settlement{Record: rec("r1", "acme", 3*yuan)})
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if res.Posted != 3*yuan || res.Released != yuan || res.Overage != 0 || res.Debt != 0 || res.Duplicate {
		t.Errorf("Settle = %+v", res)
	}
	again, err := l.Settle(ctx, ledger.Settlement{Record: rec("r1", "acme", 9*yuan)})
	if err != nil || !again.Duplicate || again.Posted != 3*yuan {
		t.Errorf("retried Settle = %+v, %v; want the first result", again, err)
	}
	wantBalance(t, l, "acme", 7*yuan, 0, 0)

	// Overage within the balance comes from the balance.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r3", TenantID: "acme", Amount: cny(yuan)}); err != nil {
		t.Fatal(err)
	}
	res, err = l.Settle(ctx, ledger.Settlement{Record: rec("r3", "acme", 3*yuan)})
	if err != nil || res.Posted != yuan || res.Overage != 2*yuan || res.Debt != 0 {
		t.Fatalf("Settle with overage = %+v, %v", res, err)
	}
	wantBalance(t, l, "acme", 4*yuan, 0, 0)
	// Overage past the balance becomes debt, which blocks new holds.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r4", TenantID: "acme", Amount: cny(yuan)}); err != nil {
		t.Fatal(err)
	}
	res, err = l.Settle(ctx, ledger.Settlement{Record: rec("r4", "acme", 9*yuan)})
	if err != nil || res.Posted != yuan || res.Debt != 8*yuan {
		t.Fatalf("Settle into debt = %+v, %v", res, err)
	}
	wantBalance(t, l, "acme", 3*yuan, 0, 8*yuan)
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r5", TenantID: "acme", Amount: cny(0)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("hold while owing err = %v, want ErrInsufficientFunds", err)
	}
	// A top-up pays the debt first.
	tu, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan})
	if err != nil || tu.Repaid != 8*yuan || tu.Balance.Posted != 5*yuan || tu.Balance.Debt != 0 {
		t.Fatalf("TopUp with debt = %+v, %v", tu, err)
	}
	// Void releases everything; a second void is a no-op.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r6", TenantID: "acme", Amount: cny(5 * yuan)}); err != nil {
		t.Fatal(err)
	}
	if v, err := l.Void(ctx, "r6"); err != nil || v.Duplicate || v.Hold.State != ledger.HoldVoided {
		t.Fatalf("Void = %+v, %v", v, err)
	}
	if v, err := l.Void(ctx, "r6"); err != nil || !v.Duplicate {
		t.Fatalf("second Void = %+v, %v", v, err)
	}
	if _, err := l.Void(ctx, "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Void(unknown) err = %v, want ErrNotFound", err)
	}
	// A settlement after the hold was voided (the sweeper was first) is still charged.
	res, err = l.Settle(ctx, ledger.Settlement{Record: rec("r6", "acme", 2*yuan)})
	if err != nil || res.Overage != 2*yuan {
		t.Fatalf("Settle after void = %+v, %v", res, err)
	}
	wantBalance(t, l, "acme", 3*yuan, 0, 0)
	// Bad settlements write nothing.
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("r7", "nobody", yuan)}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Settle(unknown tenant) err = %v, want ErrNotFound", err)
	}
	bad := rec("r8", "acme", yuan)
	bad.Currency = "USD"
	if _, err := l.Settle(ctx, ledger.Settlement{Record: bad}); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("Settle(USD on CNY) err = %v, want ErrInvalid", err)
	}
	if p, _ := s.ListRecords(ctx, usage.Filter{TenantID: "acme"}); len(p.Records) != 4 {
		t.Errorf("usage records of acme = %d, want 4", len(p.Records))
	}

	// Postpaid: overage within the credit limit comes from the account.
	mustTenant(t, l, "corp", ledger.Postpaid, 5*yuan)
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "p1", TenantID: "corp", Amount: cny(6 * yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("postpaid over limit err = %v", err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "p1", TenantID: "corp", Amount: cny(2 * yuan)}); err != nil {
		t.Fatal(err)
	}
	res, err = l.Settle(ctx, ledger.Settlement{Record: rec("p1", "corp", 4*yuan)})
	if err != nil || res.Posted != 2*yuan || res.Overage != 2*yuan || res.Debt != 0 {
		t.Fatalf("postpaid overage = %+v, %v", res, err)
	}
	wantBalance(t, l, "corp", -4*yuan, 0, 0)

	// Free: zero holds only.
	mustTenant(t, l, "free1", ledger.Free, 0)
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "f1", TenantID: "free1", Amount: cny(1)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("free hold of 1 nano err = %v", err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "f2", TenantID: "free1"}); err != nil {
		t.Fatalf("free zero hold: %v", err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("f2", "free1", 0)}); err != nil {
		t.Fatal(err)
	}
}

func testLedgerAdmin(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	r1, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 5 * yuan, IdempotencyKey: "k1", Note: "wire"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 5 * yuan, IdempotencyKey: "k1", Note: "wire"})
	if err != nil || r2 != r1 {
		t.Fatalf("replayed TopUp = %+v, %v; want %+v", r2, err, r1)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 6 * yuan, IdempotencyKey: "k1", Note: "wire"}); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("TopUp with reused key err = %v, want ErrIdempotencyConflict", err)
	}
	if _, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 5 * yuan, IdempotencyKey: "k1", Note: "wire"}); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("Adjust with a top-up's key err = %v, want ErrIdempotencyConflict", err)
	}
	wantBalance(t, l, "acme", 5*yuan, 0, 0)
	if _, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: -6 * yuan}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("Adjust below zero err = %v", err)
	}
	if _, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: -yuan}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ledger.MoneyRequest{
		{TenantID: "acme", Amount: 0}, {TenantID: "acme", Amount: -1}, {TenantID: "acme", Amount: ledger.MaxAmount + 1},
		{TenantID: strings.Repeat("x", 300), Amount: 1},
	} {
		if _, err := l.TopUp(ctx, bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("TopUp(%+v) err = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "ghost", Amount: 1}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("TopUp(unknown tenant) err = %v, want ErrNotFound", err)
	}
	// Refunds of a request are bounded by what it was charged.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "q1", TenantID: "acme", Amount: cny(2 * yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("q1", "acme", 2*yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", RequestID: "q1", Amount: yuan}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", RequestID: "q1", Amount: yuan + 1}); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("over-refund err = %v, want ErrInvalid", err)
	}
	wantBalance(t, l, "acme", 3*yuan, 0, 0)
	// Redemption codes: once, in the right currency, not after expiry.
	code, c, err := l.CreateCode(ctx, cny(2*yuan), time.Time{})
	if err != nil || !strings.HasPrefix(code, ledger.CodePrefix) || c.Hash == code {
		t.Fatalf("CreateCode = %q %+v %v", code, c, err)
	}
	if r, err := l.Redeem(ctx, "acme", code, ""); err != nil || r.Amount != 2*yuan {
		t.Fatalf("Redeem = %+v, %v", r, err)
	}
	if _, err := l.Redeem(ctx, "acme", code, ""); !errors.Is(err, ledger.ErrCodeUsed) {
		t.Fatalf("second Redeem err = %v, want ErrCodeUsed", err)
	}
	if _, err := l.Redeem(ctx, "acme", "rc-nope", ""); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Redeem(unknown) err = %v, want ErrNotFound", err)
	}
	usd, _, err := l.CreateCode(ctx, money.New(yuan, money.USD), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Redeem(ctx, "acme", usd, ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("Redeem(USD code) err = %v, want ErrInvalid", err)
	}
	old, _, err := l.CreateCode(ctx, cny(yuan), t0.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Redeem(ctx, "acme", old, ""); !errors.Is(err, ledger.ErrCodeUsed) {
		t.Fatalf("Redeem(expired) err = %v, want ErrCodeUsed", err)
	}
	wantBalance(t, l, "acme", 5*yuan, 0, 0)
}

// holdThree gives the prepaid tenant acme 10 yuan and holds 2 of them for
// each of the requests s1, s2 and s3.
// testLedgerRefunds: the refunds of a request may add up to everything it
// was charged, whichever way the charge was taken (posted from its hold, an
// overage above the hold, a charge with no hold, a debt the account could
// not cover), and not a nano more.
func testLedgerRefunds(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	mustTenant(t, l, "other", ledger.Prepaid, 0)
	for _, id := range []string{"acme", "other"} {
		if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: id, Amount: 10 * yuan}); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(req string, hold, cost int64) {
		t.Helper()
		if hold > 0 {
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: "acme", Amount: cny(hold)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Settle(ctx, ledger.Settlement{Record: rec(req, "acme", cost)}); err != nil {
			t.Fatal(err)
		}
	}
	settle("within", 3*yuan, 2*yuan)   // 2 posted, 1 released
	settle("overage", yuan, 3*yuan)    // 1 posted + 2 overage
	settle("no-hold", 0, yuan/2)       // 0.5 charged
	settle("into-debt", yuan, 12*yuan) // 1 posted; the 11 above the hold is more than the 3.5 left: all debt
	wantBalance(t, l, "acme", 7*yuan/2, 0, 11*yuan)
	refund := func(req string, amount int64, key string) error {
		_, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", RequestID: req, Amount: amount, IdempotencyKey: key})
		return err
	}
	tests := []struct {
		req    string
		amount int64
		ok     bool
	}{
		{"within", 2*yuan + 1, false},
		{"within", 2 * yuan, true},
		{"within", 1, false},
		{"overage", 3*yuan + 1, false},
		{"overage", 2 * yuan, true},
		{"overage", yuan, true}, // refunds add up to the post and the overage
		{"overage", 1, false},
		{"no-hold", yuan/2 + 1, false},
		{"no-hold", yuan / 2, true},
		{"into-debt", 12*yuan + 1, false},
		{"into-debt", 12 * yuan, true},
		{"never-charged", 1, false},
	}
	for _, tt := range tests {
		if err := refund(tt.req, tt.amount, ""); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
			t.Errorf("Refund(%s, %d) err = %v, want ok %v", tt.req, tt.amount, err, tt.ok)
		}
	}
	// 17.5 refunded: the 11 of debt is paid from it first.
	wantBalance(t, l, "acme", 10*yuan, 0, 0)
	// A request of another tenant is not this tenant's to refund.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "theirs", TenantID: "other", Amount: cny(yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("theirs", "other", yuan)}); err != nil {
		t.Fatal(err)
	}
	if err := refund("theirs", 1, ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("refund of another tenant's request err = %v, want ErrInvalid", err)
	}
	// A replayed refund is the first one, not a second.
	settle("replayed", yuan, yuan)
	if err := refund("replayed", yuan, "rf-1"); err != nil {
		t.Fatal(err)
	}
	if err := refund("replayed", yuan, "rf-1"); err != nil {
		t.Fatalf("replayed refund: %v", err)
	}
	wantBalance(t, l, "acme", 10*yuan, 0, 0)
	// A refund without a request is bounded only by the amount limits.
	if err := refund("", yuan, ""); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acme", 11*yuan, 0, 0)
}

func holdThree(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", Amount: cny(2 * yuan)}); err != nil {
			t.Fatal(err)
		}
	}
}

func testLedgerSweep(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	holdThree(t, l)
	// s1's record reached the store by another path (the process died before settling).
	if err := s.WriteRecords(ctx, []usage.Record{rec("s1", "acme", yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("s3", "acme", yuan)}); err != nil {
		t.Fatal(err)
	}
	if r, err := l.Sweep(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Fatalf("Sweep before expiry = %+v, %v", r, err)
	}
	clk.Advance(5*time.Minute + time.Second)
	rep, err := ledger.Audit(ctx, s, clk.Now().Add(2*sweepGrace), sweepGrace)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("audit passed with holds open past expiry + grace")
	}
	r, err := l.Sweep(ctx)
	if err != nil || r.Settled != 1 || r.Voided != 1 {
		t.Fatalf("Sweep = %+v, %v; want 1 settled 1 voided", r, err)
	}
	wantBalance(t, l, "acme", 8*yuan, 0, 0)
	// A late settlement of the voided hold is still charged, once.
	for i := 0; i < 2; i++ {
		if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("s2", "acme", yuan/2)}); err != nil {
			t.Fatal(err)
		}
	}
	wantBalance(t, l, "acme", 7*yuan+yuan/2, 0, 0)

	// Reconcile resolves this node's holds from before the restart only.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "c1", TenantID: "acme", Amount: cny(yuan)}); err != nil {
		t.Fatal(err)
	}
	other := ledger.New(s, ledger.Options{Clock: clk, HoldTTL: 5 * time.Minute, Node: "other"})
	if _, err := other.Hold(ctx, ledger.HoldRequest{RequestID: "c2", TenantID: "acme", Amount: cny(yuan)}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	clk.Advance(time.Second)
	r, err = l.Reconcile(ctx, clk.Now())
	if err != nil || r.Voided != 1 {
		t.Fatalf("Reconcile = %+v, %v; want 1 voided", r, err)
	}
	wantBalance(t, l, "acme", 7*yuan+yuan/2, yuan, 0)
	if _, err := l.Void(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
}

func testLedgerSettleBatch(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "a", ledger.Prepaid, 0)
	mustTenant(t, l, "b", ledger.Postpaid, 100*yuan)
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "a", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
	var batch []ledger.Settlement
	for i := 0; i < 20; i++ {
		tenant := []string{"a", "b"}[i%2]
		id := fmt.Sprintf("b%02d", i)
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: tenant, Amount: cny(yuan / 2)}); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, ledger.Settlement{Record: rec(id, tenant, yuan/4)})
	}
	bad := rec("b99", "a", yuan)
	bad.Currency = "USD"
	batch = append(batch, ledger.Settlement{Record: bad})
	res, err := l.SettleBatch(ctx, batch)
	if err != nil {
		t.Fatalf("SettleBatch: %v", err)
	}
	for i, r := range res[:20] {
		if r.Err != nil || r.Posted != yuan/4 || r.Released != yuan/4 {
			t.Errorf("item %d = %+v", i, r)
		}
	}
	if !errors.Is(res[20].Err, ledger.ErrInvalid) {
		t.Errorf("bad item err = %v, want ErrInvalid", res[20].Err)
	}
	wantBalance(t, l, "a", 10*yuan-10*yuan/4, 0, 0)
	wantBalance(t, l, "b", -10*yuan/4, 0, 0)
	again, err := l.SettleBatch(ctx, batch[:20])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !r.Duplicate {
			t.Errorf("retried item %d not a duplicate: %+v", i, r)
		}
	}
	n, err := s.TotalRecords(ctx, usage.Filter{})
	if err != nil || n.Requests != 20 || n.CostNanos["CNY"] != 20*yuan/4 {
		t.Errorf("records after batch = %+v, %v", n, err)
	}
}

func testLedgerStatement(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Postpaid, 100*yuan)
	costs := []struct {
		model string
		cost  int64
	}{{"m-a", 1_234_567}, {"m-a", 3_000_000}, {"m-b", 5_005_000}, {"m-c", 2_000_001}}
	for i, c := range costs {
		r := rec(fmt.Sprintf("st%d", i), "acme", c.cost)
		r.Model = c.model
		if c.model == "m-c" { // a USD price billed in CNY: the lines name the rate
			r.Lines = []byte(`[{"kind":"input","quantity":1000,"price":"1","price_currency":"USD","per":1000000,"multiplier":"6.9858",` +
				`"amount":"0.002000001","currency":"CNY","version":"m-c/USD/2026-07-24T00:00:00Z","exchange_rate":"6.9858","rate_source":"PBOC central parity"}]`)
		}
		if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.Statement(ctx, "acme", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Exact: 4,234,567 + 5,005,000 + 2,000,001 = 11,239,568 nanos = 0.011239568 CNY -> 0.01.
	if st.ExactNanos != 11_239_568 || st.Total != "0.01" || len(st.Lines) != 3 {
		t.Fatalf("Statement = %+v", st)
	}
	var got []string
	for _, ln := range st.Lines {
		got = append(got, ln.Model+"="+ln.Rounded)
	}
	// Each line cuts to 0.00; the one missing fen goes to the largest remainder (m-b).
	if fmt.Sprint(got) != "[m-a=0.00 m-b=0.01 m-c=0.00]" {
		t.Errorf("lines = %v", got)
	}
	if r := st.Lines[2].ExchangeRates; len(r) != 1 || r[0] != (ledger.RateUsed{From: "USD", Rate: "6.9858", Source: "PBOC central parity"}) ||
		st.Lines[0].ExchangeRates != nil {
		t.Errorf("exchange rates of the lines = %+v, %+v", st.Lines[2].ExchangeRates, st.Lines[0].ExchangeRates)
	}
	var b strings.Builder
	if err := st.WriteCSV(&b); err != nil || !strings.Contains(b.String(), "total,,,,,,0.011239568,0.01,CNY") || !strings.HasPrefix(b.String(), "model,kind,quantity,") {
		t.Errorf("CSV = %q, %v", b.String(), err)
	}
}

// testLedgerStatementOutcomes checks that a statement counts refused and
// failed requests apart from served ones, and names the model of requests
// refused before their model was read.
func testLedgerStatementOutcomes(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Postpaid, 100*yuan)
	served := rec("o1", "acme", 1_000_000)
	served2 := rec("o2", "acme", 2_000_000)
	failed := rec("o3", "acme", 0)
	failed.Status, failed.Usage = 502, usage.Usage{}
	refused := rec("o4", "acme", 0)
	refused.Status, refused.Model, refused.Channel, refused.UpstreamModel, refused.Usage = 401, "", "", "", usage.Usage{}
	limited := rec("o5", "acme", 0)
	limited.Status, limited.Channel, limited.UpstreamModel, limited.Usage = 429, "", "", usage.Usage{}
	for _, r := range []usage.Record{served, served2, failed, refused, limited} {
		if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.Statement(ctx, "acme", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ln := range st.Lines {
		got = append(got, fmt.Sprintf("%s:%d=%d+%d+%d", ln.Model, ln.Requests, ln.Served, ln.Refused, ln.Failed))
	}
	if want := "[(unknown):1=0+1+0 sim-chat:4=2+1+1]"; fmt.Sprint(got) != want {
		t.Errorf("statement lines (model:requests=served+refused+failed) = %v, want %s", got, want)
	}
	if st.ExactNanos != 3_000_000 {
		t.Errorf("statement total = %d, want 3000000", st.ExactNanos)
	}
	var b strings.Builder
	if err := st.WriteCSV(&b); err != nil || !strings.Contains(b.String(), "\n(unknown),all,,1,0,0,0,0.00,CNY,0,1,0\n") {
		t.Errorf("CSV = %q, %v", b.String(), err)
	}
}

// testLedgerConcurrent runs hundreds of goroutines against one prepaid
// account whose balance covers only some of them.
func testLedgerConcurrent(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	mustTenant(t, l, "hot", ledger.Prepaid, 0)
	const start = 50 * yuan
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "hot", Amount: start}); err != nil {
		t.Fatal(err)
	}
	const workers = 200
	var spent, debt, refused, negative atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // watch the balance while they run: it must never go below zero
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := l.Balance(ctx, "hot"); err == nil && b.Available < 0 {
				negative.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := fmt.Sprintf("w%03d", w)
			_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "hot", Amount: cny(yuan / 2)})
			if errors.Is(err, ledger.ErrInsufficientFunds) {
				refused.Add(1)
				return
			}
			if err != nil {
				t.Errorf("Hold %s: %v", id, err)
				return
			}
			cost := int64(w%3) * yuan / 4 // 0, 0.25, 0.5
			if w%50 == 7 {
				cost = yuan // an overage
			}
			if w%10 == 3 {
				if _, err := l.Void(ctx, id); err != nil {
					t.Errorf("Void %s: %v", id, err)
				}
				return
			}
			r, err := l.Settle(ctx, ledger.Settlement{Record: rec(id, "hot", cost)})
			if err != nil {
				t.Errorf("Settle %s: %v", id, err)
				return
			}
			spent.Add(r.Posted + r.Overage)
			debt.Add(r.Debt)
			// and a retry, racing nobody but itself
			if r2, err := l.Settle(ctx, ledger.Settlement{Record: rec(id, "hot", cost)}); err != nil || !r2.Duplicate {
				t.Errorf("retry Settle %s = %+v, %v", id, r2, err)
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	if negative.Load() > 0 {
		t.Errorf("available balance seen below zero %d times", negative.Load())
	}
	if refused.Load() == 0 {
		t.Errorf("no hold was refused; the test's balance is too generous")
	}
	wantBalance(t, l, "hot", start-spent.Load(), 0, debt.Load())
}

// testLedgerRedeem redeems one code from many goroutines at once.
func testLedgerRedeem(t *testing.T, s Store) {
	ctx := context.Background()
	l, _ := newLedger(t, s)
	for i := 0; i < 4; i++ {
		mustTenant(t, l, fmt.Sprintf("t%d", i), ledger.Prepaid, 0)
	}
	code, _, err := l.CreateCode(ctx, cny(3*yuan), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var ok, used atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			_, err := l.Redeem(ctx, fmt.Sprintf("t%d", g%4), code, "")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ledger.ErrCodeUsed):
				used.Add(1)
			default:
				// PostgreSQL may report a serialization failure the caller retries;
				// it must never be a second success.
				t.Logf("Redeem: %v", err)
			}
		}(g)
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("code redeemed %d times, want exactly 1 (%d refused)", ok.Load(), used.Load())
	}
	var total int64
	for i := 0; i < 4; i++ {
		b, err := l.Balance(ctx, fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		total += b.Posted
	}
	if total != 3*yuan {
		t.Fatalf("tenants hold %d in total, want %d", total, 3*yuan)
	}
}

func testLedgerBudgets(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	mustTenant(t, l, "acme", ledger.Prepaid, 0)
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ledger.Budget{
		{Scope: "org", Subject: "acme", Period: ledger.PeriodDay, Limit: yuan},
		{Scope: ledger.ScopeKey, Subject: "k1", Period: "week", Limit: yuan},
		{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: -1},
		{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: yuan, Alerts: []int{0}},
	} {
		if err := l.SetBudget(ctx, bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("SetBudget(%+v) err = %v, want ErrInvalid", bad, err)
		}
	}
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay, Limit: 3 * yuan, Alerts: []int{100, 50}}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodMonth, Limit: 5 * yuan, Alerts: []int{80}}); err != nil {
		t.Fatal(err)
	}
	hold := func(req, key string, amt int64) error {
		_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: "acme", KeyID: key, Amount: cny(amt)})
		return err
	}
	settle := func(req, key string, cost int64) ledger.SettleResult {
		r := rec(req, "acme", cost)
		r.KeyID = key
		res, err := l.Settle(ctx, ledger.Settlement{Record: r})
		if err != nil {
			t.Fatalf("Settle %s: %v", req, err)
		}
		return res
	}
	alerts := func(r ledger.SettleResult) string {
		var out []string
		for _, a := range r.Alerts {
			out = append(out, fmt.Sprintf("%s:%s:%d", a.Budget.Scope, a.Budget.Subject, a.Percent))
		}
		return strings.Join(out, ",")
	}
	if err := hold("b1", "k1", 2*yuan); err != nil {
		t.Fatal(err)
	}
	err := hold("b2", "k1", 2*yuan)
	if !errors.Is(err, ledger.ErrBudgetExceeded) || !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("hold past the key's budget err = %v, want ErrBudgetExceeded", err)
	}
	wantBalance(t, l, "acme", 100*yuan, 2*yuan, 0)
	if got := alerts(settle("b1", "k1", 3*yuan/2)); got != "key:k1:50" {
		t.Errorf("alerts after spending half the key's budget = %q", got)
	}
	if err := hold("b3", "k1", 3*yuan/2); err != nil {
		t.Fatalf("hold up to the budget exactly: %v", err)
	}
	if _, err := l.Void(ctx, "b3"); err != nil {
		t.Fatal(err)
	}
	if _, spent, pending, err := l.BudgetUsage(ctx, ledger.ScopeKey, "k1", clk.Now()); err != nil || spent != 3*yuan/2 || pending != 0 {
		t.Fatalf("key budget usage = %d spent %d pending, %v", spent, pending, err)
	}
	// A new day: the key's daily budget starts over; the tenant's monthly one does not.
	clk.Advance(24 * time.Hour)
	if err := hold("b4", "k1", 3*yuan); err != nil {
		t.Fatalf("hold on a new day: %v", err)
	}
	if got := alerts(settle("b4", "k1", 3*yuan)); got != "key:k1:100,tenant:acme:80" {
		t.Errorf("alerts = %q, want the key at 100%% and the tenant at 80%%", got)
	}
	if err := hold("b5", "k2", yuan); !errors.Is(err, ledger.ErrBudgetExceeded) {
		t.Fatalf("hold past the tenant's budget err = %v", err)
	}
	// A settlement with no hold still counts, and an alert fires once per period.
	if got := alerts(settle("b6", "k2", yuan/10)); got != "" {
		t.Errorf("repeated alert %q", got)
	}
	if _, spent, _, err := l.BudgetUsage(ctx, ledger.ScopeTenant, "acme", clk.Now()); err != nil || spent != 4*yuan+6*yuan/10 {
		t.Fatalf("tenant budget spent %d, %v", spent, err)
	}
	if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodMonth}); err != nil {
		t.Fatal(err)
	}
	if err := hold("b5", "k2", yuan); err != nil {
		t.Fatalf("hold after removing the tenant budget: %v", err)
	}
	settle("b5", "k2", yuan)
	wantBalance(t, l, "acme", 100*yuan-3*yuan/2-3*yuan-yuan/10-yuan, 0, 0)
}

// testLedgerConcurrentChaos races holds, settlements, voids and retries on
// shared request ids from many goroutines (so that batches hold duplicates
// and conflicting operations), then sweeps and checks that every usage
// record was charged exactly once and the books balance.
func testLedgerConcurrentChaos(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	mustTenant(t, l, "pre", ledger.Prepaid, 0)
	mustTenant(t, l, "post", ledger.Postpaid, 20*yuan)
	const topUp = 40 * yuan
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "pre", Amount: topUp}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 200; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for step := 0; step < 4; step++ {
				n := rng.IntN(120)
				req := fmt.Sprintf("x%03d", n)
				tenant := []string{"pre", "post"}[n%2]
				var err error
				switch rng.IntN(4) {
				case 0, 1:
					_, err = l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: tenant, Amount: cny(int64(rng.IntN(5)) * yuan / 2)})
				case 2:
					_, err = l.Settle(ctx, ledger.Settlement{Record: rec(req, tenant, int64(rng.IntN(7))*yuan/4)})
				case 3:
					_, err = l.Void(ctx, req)
				}
				if err != nil && !errors.Is(err, ledger.ErrInsufficientFunds) && !errors.Is(err, ledger.ErrNotFound) && !errors.Is(err, ledger.ErrInvalid) {
					t.Errorf("%s: %v", req, err)
				}
			}
		}(g)
	}
	wg.Wait()
	clk.Advance(time.Hour)
	if _, err := l.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"pre", "post"} {
		b, err := l.Balance(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		tot, err := s.TotalRecords(ctx, usage.Filter{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		in := int64(0)
		if tenant == "pre" {
			in = topUp
		}
		if charged := in - b.Posted + b.Debt; charged != tot.CostNanos["CNY"] || b.Pending != 0 {
			t.Errorf("%s: charged %d (balance %+v), records cost %d", tenant, charged, b, tot.CostNanos["CNY"])
		}
	}
}

// testLedgerSweepInMemory: holds kept in memory expire like stored ones (the
// sweeper settles those with a record and voids the rest), and a restart
// (a new ledger on the same store) starts with none and clean books.
func testLedgerSweepInMemory(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	holdThree(t, l)
	// The holds count at once, though no row was written for them.
	wantBalance(t, l, "acme", 10*yuan, 6*yuan, 0)
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "big", TenantID: "acme", Amount: cny(5 * yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("Hold beyond balance minus holds in memory: %v, want ErrInsufficientFunds", err)
	}
	if err := s.WriteRecords(ctx, []usage.Record{rec("s1", "acme", yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("s3", "acme", yuan)}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acme", 9*yuan, 4*yuan, 0)
	if r, err := l.Sweep(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Fatalf("Sweep before expiry = %+v, %v", r, err)
	}
	clk.Advance(holdTTL + time.Second)
	r, err := l.Sweep(ctx)
	if err != nil || r.Settled != 1 || r.Voided != 1 {
		t.Fatalf("Sweep = %+v, %v; want 1 settled 1 voided", r, err)
	}
	wantBalance(t, l, "acme", 8*yuan, 0, 0)
	// A late settlement of the voided hold is still charged, once.
	for i := 0; i < 2; i++ {
		if _, err := l.Settle(ctx, ledger.Settlement{Record: rec("s2", "acme", yuan/2)}); err != nil {
			t.Fatal(err)
		}
	}
	wantBalance(t, l, "acme", 7*yuan+yuan/2, 0, 0)

	// A crash loses the holds in memory and nothing else: the next process
	// starts from the store, and the holds it places count from there.
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "c1", TenantID: "acme", Amount: cny(7 * yuan)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	AuditClean(t, s, clk.Now())
	next := ledger.New(s, ledger.Options{Clock: clk, HoldTTL: holdTTL, Node: "test", Exclusive: true})
	defer next.Close()
	if r, err := next.Reconcile(ctx, clk.Now()); err != nil || r != (ledger.SweepResult{}) {
		t.Fatalf("Reconcile after a restart = %+v, %v; want nothing to do", r, err)
	}
	wantBalance(t, next, "acme", 7*yuan+yuan/2, 0, 0)
	if _, err := next.Hold(ctx, ledger.HoldRequest{RequestID: "c2", TenantID: "acme", Amount: cny(7 * yuan)}); err != nil {
		t.Fatal(err)
	}
	if _, err := next.Hold(ctx, ledger.HoldRequest{RequestID: "c3", TenantID: "acme", Amount: cny(yuan)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("second hold beyond the balance after a restart: %v, want ErrInsufficientFunds", err)
	}
	if _, err := next.Settle(ctx, ledger.Settlement{Record: rec("c2", "acme", 7*yuan)}); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, next, "acme", yuan/2, 0, 0)
}

// testLedgerPrepareDefault: on a fresh store the default tenant takes the
// gateway's currency and a creation time (a USD gateway can hold and
// settle on it at once, and the books balance); once it has moved money it
// keeps its currency.
func testLedgerPrepareDefault(t *testing.T, s Store) {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	d, err := l.PrepareDefault(ctx, money.USD)
	if err != nil || d.Currency != money.USD || !d.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("fresh default tenant = %+v, %v; want USD, created now", d, err)
	}
	if b, err := l.Balance(ctx, ""); err != nil || b.Currency != money.USD || b.CreditLimit != ledger.DefaultCreditLimit {
		t.Fatalf("balance = %+v, %v", b, err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "u1", Amount: money.New(2*yuan, money.USD)}); err != nil {
		t.Fatalf("USD hold on the default tenant: %v", err)
	}
	r := rec("u1", "", yuan)
	r.Currency = "USD"
	if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
		t.Fatal(err)
	}
	// It has moved money now: another currency does not take.
	if d, err := l.PrepareDefault(ctx, money.CNY); err != nil || d.Currency != money.USD {
		t.Errorf("default tenant with activity = %+v, %v; want it kept in USD", d, err)
	}
	AuditClean(t, s, clk.Now())
}
