package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
)

// newBooks returns a ledger over a fresh SQLite store with the fake clock at t0.
func newBooks(t *testing.T, opts ledger.Options) (*ledger.Ledger, *clock.Fake) {
	t.Helper()
	db := openStore(t)
	clk := clock.NewFake(t0)
	opts.Clock = clk
	l := ledger.New(db, opts)
	t.Cleanup(func() { l.Close() })
	return l, clk
}

// TestInputLimits: every id, amount, note and threshold the ledger takes is
// bounded, and each bound holds exactly: the limit is accepted, one more is
// refused with ErrInvalid before anything is written.
func TestInputLimits(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	id200, id201 := strings.Repeat("i", 200), strings.Repeat("i", 201)
	note500, note501 := strings.Repeat("n", 500), strings.Repeat("n", 501)
	tenant := func(tn ledger.Tenant) error { _, err := l.CreateTenant(ctx, tn); return err }
	tests := []struct {
		name string
		do   func() error
		ok   bool
	}{
		{"tenant id of 200", func() error { return tenant(ledger.Tenant{ID: id200, Kind: ledger.Prepaid, Currency: money.CNY}) }, true},
		{"tenant id of 201", func() error { return tenant(ledger.Tenant{ID: id201, Kind: ledger.Prepaid, Currency: money.CNY}) }, false},
		{"empty tenant id", func() error { return tenant(ledger.Tenant{ID: "", Kind: ledger.Prepaid, Currency: money.CNY}) }, false},
		{"name of 500", func() error {
			return tenant(ledger.Tenant{ID: "n1", Name: note500, Kind: ledger.Prepaid, Currency: money.CNY})
		}, true},
		{"name of 501", func() error {
			return tenant(ledger.Tenant{ID: "n2", Name: note501, Kind: ledger.Prepaid, Currency: money.CNY})
		}, false},
		{"system kind", func() error { return tenant(ledger.Tenant{ID: "k1", Kind: ledger.System, Currency: money.CNY}) }, false},
		{"debt kind", func() error { return tenant(ledger.Tenant{ID: "k2", Kind: ledger.Debt, Currency: money.CNY}) }, false},
		{"lower-case currency", func() error { return tenant(ledger.Tenant{ID: "c1", Kind: ledger.Prepaid, Currency: "cny"}) }, false},
		{"four-letter currency", func() error { return tenant(ledger.Tenant{ID: "c2", Kind: ledger.Prepaid, Currency: "CNYY"}) }, false},
		{"credit limit at the maximum", func() error {
			return tenant(ledger.Tenant{ID: "p1", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: ledger.MaxAmount})
		}, true},
		{"credit limit above the maximum", func() error {
			return tenant(ledger.Tenant{ID: "p2", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: ledger.MaxAmount + 1})
		}, false},
		{"negative credit limit", func() error {
			return tenant(ledger.Tenant{ID: "p3", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: -1})
		}, false},
		{"a prepaid tenant's credit limit is ignored", func() error {
			return tenant(ledger.Tenant{ID: "p4", Kind: ledger.Prepaid, Currency: money.CNY, CreditLimit: ledger.MaxAmount + 1})
		}, true},
	}
	for _, tt := range tests {
		err := tt.do()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if b, err := l.Balance(ctx, "p4"); err != nil || b.CreditLimit != 0 {
		t.Errorf("prepaid p4 = %+v, %v; want no credit limit", b, err)
	}
	if b, err := l.Balance(ctx, "p1"); err != nil || b.CreditLimit != ledger.MaxAmount || b.Kind != ledger.Postpaid {
		t.Errorf("postpaid p1 = %+v, %v", b, err)
	}

	move := func(f func(context.Context, ledger.MoneyRequest) (ledger.MoneyResult, error), r ledger.MoneyRequest) error {
		r.TenantID = "p1"
		_, err := f(ctx, r)
		return err
	}
	for _, tt := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"top-up of the maximum", move(l.TopUp, ledger.MoneyRequest{Amount: ledger.MaxAmount}), true},
		{"top-up above the maximum", move(l.TopUp, ledger.MoneyRequest{Amount: ledger.MaxAmount + 1}), false},
		{"top-up of one nano", move(l.TopUp, ledger.MoneyRequest{Amount: 1}), true},
		{"top-up of nothing", move(l.TopUp, ledger.MoneyRequest{Amount: 0}), false},
		{"note of 500", move(l.TopUp, ledger.MoneyRequest{Amount: 1, Note: note500}), true},
		{"note of 501", move(l.TopUp, ledger.MoneyRequest{Amount: 1, Note: note501}), false},
		{"idempotency key of 200", move(l.TopUp, ledger.MoneyRequest{Amount: 1, IdempotencyKey: id200}), true},
		{"idempotency key of 201", move(l.TopUp, ledger.MoneyRequest{Amount: 1, IdempotencyKey: id201}), false},
		{"adjustment down by the maximum", move(l.Adjust, ledger.MoneyRequest{Amount: -ledger.MaxAmount}), true},
		{"adjustment down past the maximum", move(l.Adjust, ledger.MoneyRequest{Amount: -ledger.MaxAmount - 1}), false},
		{"adjustment of nothing", move(l.Adjust, ledger.MoneyRequest{Amount: 0}), false},
		{"adjustment up", move(l.Adjust, ledger.MoneyRequest{Amount: 5}), true},
		{"refund of one nano", move(l.Refund, ledger.MoneyRequest{Amount: 1}), true},
		{"refund of nothing", move(l.Refund, ledger.MoneyRequest{Amount: 0}), false},
		{"negative refund", move(l.Refund, ledger.MoneyRequest{Amount: -1}), false},
		{"refund naming a request id of 201", move(l.Refund, ledger.MoneyRequest{Amount: 1, RequestID: id201}), false},
	} {
		if (tt.err == nil) != tt.ok || (tt.err != nil && !errors.Is(tt.err, ledger.ErrInvalid)) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, tt.err, tt.ok)
		}
	}
	for _, tt := range []struct {
		name   string
		amount money.Amount
		ok     bool
	}{
		{"a code of the maximum", money.New(ledger.MaxAmount, money.CNY), true},
		{"a code above the maximum", money.New(ledger.MaxAmount+1, money.CNY), false},
		{"a code of nothing", money.New(0, money.CNY), false},
		{"a negative code", money.New(-1, money.CNY), false},
	} {
		_, _, err := l.CreateCode(ctx, tt.amount, time.Time{})
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	// A refund may name a request id of the longest allowed.
	long := record(id200, 1) // refunded below: the balance is as it was
	long.TenantID = "p1"
	if _, err := l.Settle(ctx, ledger.Settlement{Record: long}); err != nil {
		t.Fatal(err)
	}
	if err := move(l.Refund, ledger.MoneyRequest{Amount: 1, RequestID: id200}); err != nil {
		t.Errorf("refund naming a request id of 200: %v", err)
	}
	// A code and a key of 200 bytes are looked up (no such code), not
	// refused as too long.
	if _, err := l.Redeem(ctx, "p1", strings.Repeat("c", 200), ""); err == nil || errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("a code of 200 bytes: err = %v; want it looked up and not found", err)
	}
	if _, err := l.Redeem(ctx, "p1", "rc-x", id200); err == nil || errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("an idempotency key of 200 bytes: err = %v; want the code looked up and not found", err)
	}
	if _, err := l.Redeem(ctx, "p1", strings.Repeat("c", 201), ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("a code of 201 bytes: err = %v", err)
	}
	if _, err := l.Redeem(ctx, "p1", "rc-x", id201); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("an idempotency key of 201 bytes: err = %v", err)
	}
	for _, tt := range []struct {
		name string
		r    ledger.HoldRequest
		ok   bool
	}{
		{"hold of the maximum", ledger.HoldRequest{RequestID: "h1", TenantID: "p1", Amount: money.New(ledger.MaxAmount, money.CNY)}, true},
		{"hold above the maximum", ledger.HoldRequest{RequestID: "h2", TenantID: "p1", Amount: money.New(ledger.MaxAmount+1, money.CNY)}, false},
		{"negative hold", ledger.HoldRequest{RequestID: "h3", TenantID: "p1", Amount: money.New(-1, money.CNY)}, false},
		{"request id of 201", ledger.HoldRequest{RequestID: id201, TenantID: "p1"}, false},
		{"no request id", ledger.HoldRequest{TenantID: "p1"}, false},
	} {
		_, err := l.Hold(ctx, tt.r)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if _, err := l.Void(ctx, ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("Void without a request id: err = %v", err)
	}
	if _, err := l.Void(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetLimits(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	ten := []int{1, 10, 20, 30, 40, 50, 60, 70, 80, 1000}
	for _, tt := range []struct {
		name string
		b    ledger.Budget
		ok   bool
	}{
		{"ten thresholds from 1% to 1000%", ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodDay, Limit: 1, Alerts: ten}, true},
		{"eleven thresholds", ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodDay, Limit: 1, Alerts: append(ten, 90)}, false},
		{"a threshold of 0%", ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodDay, Limit: 1, Alerts: []int{0}}, false},
		{"a threshold of 1001%", ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodDay, Limit: 1, Alerts: []int{1001}}, false},
		{"a limit of the maximum", ledger.Budget{Scope: ledger.ScopeKey, Subject: "k", Period: ledger.PeriodMonth, Limit: ledger.MaxAmount}, true},
		{"a limit above the maximum", ledger.Budget{Scope: ledger.ScopeKey, Subject: "k", Period: ledger.PeriodMonth, Limit: ledger.MaxAmount + 1}, false},
		{"a total budget", ledger.Budget{Scope: ledger.ScopeKey, Subject: "k2", Period: ledger.PeriodTotal, Limit: 5}, true},
		{"an unknown period", ledger.Budget{Scope: ledger.ScopeKey, Subject: "k", Period: "week", Limit: 5}, false},
		{"an unknown scope", ledger.Budget{Scope: "model", Subject: "k", Period: ledger.PeriodDay, Limit: 5}, false},
		{"no subject", ledger.Budget{Scope: ledger.ScopeKey, Period: ledger.PeriodDay, Limit: 5}, false},
	} {
		err := l.SetBudget(ctx, tt.b)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	b, spent, pending, err := l.BudgetUsage(ctx, ledger.ScopeTenant, "acme", t0)
	if err != nil || spent != 0 || pending != 0 || len(b.Alerts) != 10 || b.Alerts[9] != 1000 {
		t.Errorf("BudgetUsage = %+v %d %d, %v", b, spent, pending, err)
	}
	if _, _, _, err := l.BudgetUsage(ctx, ledger.ScopeKey, "nobody", t0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("BudgetUsage of no budget: err = %v", err)
	}
}

// TestBudgetPeriods: a daily budget starts over at midnight UTC, a monthly one
// on the first of the month UTC, a total one never.
func TestBudgetPeriods(t *testing.T) {
	ctx := context.Background()
	l, clk := newBooks(t, ledger.Options{})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Postpaid, Currency: money.CNY, CreditLimit: 100 * yuan}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []ledger.Budget{
		{Scope: ledger.ScopeKey, Subject: "day", Period: ledger.PeriodDay, Limit: 10 * yuan},
		{Scope: ledger.ScopeKey, Subject: "month", Period: ledger.PeriodMonth, Limit: 10 * yuan},
		{Scope: ledger.ScopeKey, Subject: "total", Period: ledger.PeriodTotal, Limit: 10 * yuan},
	} {
		if err := l.SetBudget(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	spend := func(key string) {
		t.Helper()
		n++
		r := record("b"+string(rune('a'+n)), yuan)
		r.TenantID, r.KeyID, r.Start = "acme", key, clk.Now()
		if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	spent := func(key string, at time.Time) int64 {
		t.Helper()
		_, s, _, err := l.BudgetUsage(ctx, ledger.ScopeKey, key, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// t0 is 2026-11-28 12:00 UTC.
	for _, k := range []string{"day", "month", "total"} {
		spend(k)
	}
	clk.Set(time.Date(2026, 11, 28, 23, 59, 59, 0, time.UTC))
	for _, k := range []string{"day", "month", "total"} {
		spend(k)
	}
	clk.Set(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	for _, k := range []string{"day", "month", "total"} {
		spend(k)
	}
	clk.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	for _, k := range []string{"day", "month", "total"} {
		spend(k)
	}
	for _, tt := range []struct {
		key  string
		at   time.Time
		want int64
	}{
		{"day", time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), 2 * yuan},
		{"day", time.Date(2026, 11, 28, 23, 59, 59, 0, time.UTC), 2 * yuan},
		{"day", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), yuan},
		{"day", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), yuan},
		{"month", time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), 3 * yuan},
		{"month", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), yuan},
		{"total", time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), 4 * yuan},
	} {
		if got := spent(tt.key, tt.at); got != tt.want {
			t.Errorf("%s budget spent in the period of %s = %d, want %d", tt.key, tt.at.Format(time.RFC3339), got, tt.want)
		}
	}
}

func TestTenantsAndStats(t *testing.T) {
	ctx := context.Background()
	l, _ := newBooks(t, ledger.Options{Exclusive: true})
	for _, id := range []string{"b", "a"} {
		if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: id, Name: "tenant " + id, Kind: ledger.Postpaid, Currency: money.USD, CreditLimit: yuan}); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := l.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tn := range ts {
		ids[tn.ID] = true
	}
	if !ids["a"] || !ids["b"] || !ids[ledger.DefaultTenantID] || len(ts) != 3 {
		t.Errorf("Tenants() = %+v", ts)
	}
	tn, err := l.Tenant(ctx, "a")
	if err != nil || tn.Name != "tenant a" || tn.Currency != money.USD || tn.Kind != ledger.Postpaid {
		t.Errorf("Tenant(a) = %+v, %v", tn, err)
	}
	if tn, err := l.Tenant(ctx, ""); err != nil || tn.ID != ledger.DefaultTenantID {
		t.Errorf("Tenant(\"\") = %+v, %v; want the default tenant", tn, err)
	}
	if _, err := l.Tenant(ctx, "ghost"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Tenant(ghost) err = %v", err)
	}
	if st := l.Stats(); st.HeldInMemory != 0 {
		t.Errorf("Stats before any hold = %+v", st)
	}
	for _, req := range []string{"r1", "r2"} {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: "a", Amount: money.New(1, money.USD)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.HeldInMemory != 2 {
		t.Errorf("Stats with two holds in memory = %+v", st)
	}
	settle := func(req string) ledger.Settlement {
		r := record(req, 1)
		r.TenantID, r.Currency = "a", "USD"
		return ledger.Settlement{Record: r}
	}
	res, err := l.SettleBatch(ctx, []ledger.Settlement{settle("r1"), settle("r2")})
	if err != nil || len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("SettleBatch = %+v, %v", res, err)
	}
	if st := l.Stats(); st.HeldInMemory != 0 || st.Batches < 1 || st.Ops < 2 || st.Queued != 0 {
		t.Errorf("Stats after the batch = %+v", st)
	}
}

// TestStatementCredits: a statement lists the period's money movements other
// than usage by kind, signed from the tenant's side, and refuses an empty
// period.
func TestStatementCredits(t *testing.T) {
	ctx := context.Background()
	l, clk := newBooks(t, ledger.Options{})
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	code, _, err := l.CreateCode(ctx, money.New(3*yuan, money.CNY), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{
		func() error {
			_, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan})
			return err
		},
		func() error {
			_, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: -2 * yuan})
			return err
		},
		func() error {
			_, err := l.Adjust(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan / 2})
			return err
		},
		func() error { _, err := l.Refund(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: yuan}); return err },
		func() error { _, err := l.Redeem(ctx, "acme", code, ""); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	from, to := t0.Add(-time.Hour), t0.Add(time.Hour)
	st, err := l.Statement(ctx, "acme", from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := map[ledger.TransferKind]int64{ledger.KindTopUp: 10 * yuan, ledger.KindAdjust: -3 * yuan / 2, ledger.KindRefund: yuan,
		ledger.KindRedeem: 3 * yuan}
	if len(st.Credits) != len(want) {
		t.Errorf("credits = %v, want %v", st.Credits, want)
	}
	for k, v := range want {
		if st.Credits[k] != v {
			t.Errorf("credits[%s] = %d, want %d", k, st.Credits[k], v)
		}
	}
	if st.TenantID != "acme" || st.Currency != money.CNY || !st.From.Equal(from) || !st.To.Equal(to) || st.Total != "0.00" {
		t.Errorf("statement = %+v", st)
	}
	// After the period the same movements are not in it.
	clk.Advance(2 * time.Hour)
	if st, err := l.Statement(ctx, "acme", to, to.Add(time.Hour)); err != nil || len(st.Credits) != 0 {
		t.Errorf("the next hour's statement = %+v, %v", st, err)
	}
	for _, p := range [][2]time.Time{{from, from}, {to, from}} {
		if _, err := l.Statement(ctx, "acme", p[0], p[1]); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("statement of [%s, %s): err = %v", p[0], p[1], err)
		}
	}
	if _, err := l.Statement(ctx, "ghost", from, to); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("statement of an unknown tenant: err = %v", err)
	}
}

// TestBalanceExplainsBelowZero: what a balance view says of an available
// balance below zero, and what is left to spend.
func TestBalanceExplainsBelowZero(t *testing.T) {
	const y = 1_000_000_000
	for _, c := range []struct {
		name      string
		b         ledger.Balance
		spendable int64
		note      string
	}{
		{"prepaid", ledger.Balance{Kind: ledger.Prepaid, Currency: "CNY", Available: 5 * y}, 5 * y, ""},
		{"postpaid unused", ledger.Balance{Kind: ledger.Postpaid, Currency: "CNY", CreditLimit: 100 * y}, 100 * y, ""},
		{"postpaid on credit", ledger.Balance{Kind: ledger.Postpaid, Currency: "CNY", CreditLimit: 100 * y, Available: -12 * y},
			88 * y, "Below zero because a postpaid tenant spends on credit: 12 of its 100 CNY credit limit is spent or held; 88 is left to spend."},
		{"postpaid in debt", ledger.Balance{Kind: ledger.Postpaid, Currency: "CNY", CreditLimit: 100 * y, Available: -100 * y, Debt: y},
			0, "Below zero because a postpaid tenant spends on credit: 100 of its 100 CNY credit limit is spent or held; 0 is left to spend."},
		{"prepaid below zero", ledger.Balance{Kind: ledger.Prepaid, Currency: "CNY", Available: -y}, 0, "Below zero: 1 more is spent or held than was paid in"},
	} {
		if got := c.b.Spendable(); got != c.spendable {
			t.Errorf("%s: spendable %d, want %d", c.name, got, c.spendable)
		}
		if got := c.b.AvailableNote(); (c.note == "") != (got == "") || !strings.HasPrefix(got, c.note) {
			t.Errorf("%s: note %q, want %q", c.name, got, c.note)
		}
	}
}

// TestBudgetRefusalGivesBackTheOthers: a hold under two budgets (its key's
// and its tenant's) refused by one of them reserves nothing in the other,
// whichever refuses; a later hold within both reserves in both.
func TestBudgetRefusalGivesBackTheOthers(t *testing.T) {
	for _, tight := range []ledger.Scope{ledger.ScopeKey, ledger.ScopeTenant} {
		t.Run(string(tight), func(t *testing.T) {
			ctx := context.Background()
			l, clk := newBooks(t, ledger.Options{})
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * yuan}); err != nil {
				t.Fatal(err)
			}
			subject := map[ledger.Scope]string{ledger.ScopeKey: "k1", ledger.ScopeTenant: "acme"}
			for scope, sub := range subject {
				limit := int64(50 * yuan)
				if scope == tight {
					limit = 2 * yuan
				}
				if err := l.SetBudget(ctx, ledger.Budget{Scope: scope, Subject: sub, Period: ledger.PeriodDay, Limit: limit}); err != nil {
					t.Fatal(err)
				}
			}
			pending := func() map[ledger.Scope]int64 {
				out := map[ledger.Scope]int64{}
				for scope, sub := range subject {
					_, _, p, err := l.BudgetUsage(ctx, scope, sub, clk.Now())
					if err != nil {
						t.Fatal(err)
					}
					out[scope] = p
				}
				return out
			}
			hold := func(id string, amount int64) error {
				_, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: money.New(amount, money.CNY)})
				return err
			}
			if err := hold("big", 3*yuan); !errors.Is(err, ledger.ErrBudgetExceeded) {
				t.Fatalf("hold of 3 under a %s budget of 2: %v; want ErrBudgetExceeded", tight, err)
			}
			if p := pending(); p[ledger.ScopeKey] != 0 || p[ledger.ScopeTenant] != 0 {
				t.Fatalf("reserved after the refusal: %v; want nothing in either budget", p)
			}
			if err := hold("small", yuan); err != nil {
				t.Fatal(err)
			}
			if p := pending(); p[ledger.ScopeKey] != yuan || p[ledger.ScopeTenant] != yuan {
				t.Fatalf("reserved after a hold of 1: %v; want 1 in each budget", p)
			}
			if _, err := l.Void(ctx, "small"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
