package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
)

// TestJudge: the audit fails exactly the check each kind of imbalance
// breaks, and passes books at their limits (a prepaid account at zero, a
// postpaid one at its credit limit).
func TestJudge(t *testing.T) {
	// books returns balanced facts: acme topped up 10, spent 4, holds 3.
	books := func() ledger.AuditFacts {
		return ledger.AuditFacts{Accounts: []ledger.Account{
			{ID: "tenant:acme", TenantID: "acme", Kind: ledger.Prepaid, Currency: money.CNY, PostedCredits: 10, PostedDebits: 4, PendingDebits: 3},
			{ID: "sys:funding:CNY", Kind: ledger.System, Currency: money.CNY, PostedDebits: 10},
			{ID: "sys:revenue:CNY", Kind: ledger.System, Currency: money.CNY, PostedCredits: 4, PendingCredits: 3},
		}}
	}
	acme, funding, revenue := 0, 1, 2
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("r%03d: posted 1, record costs 2", i)
		}
		return out
	}
	cases := []struct {
		name   string
		change func(f *ledger.AuditFacts)
		sums   func(f *ledger.AuditFacts) // after the transfer sums are taken from the accounts
		failed []string
		// the failed check's problems, when it matters
		problems []string
	}{
		{name: "balanced"},
		{name: "prepaid at exactly zero", change: func(f *ledger.AuditFacts) {
			f.Accounts[acme].PostedDebits, f.Accounts[revenue].PostedCredits = 7, 7
		}},
		{name: "prepaid one below zero", change: func(f *ledger.AuditFacts) {
			f.Accounts[acme].PostedDebits, f.Accounts[revenue].PostedCredits = 8, 8
		}, failed: []string{ledger.CheckFloors}},
		{name: "free account below zero", change: func(f *ledger.AuditFacts) {
			f.Accounts[acme].Kind = ledger.Free
			f.Accounts[acme].PostedDebits, f.Accounts[revenue].PostedCredits = 8, 8
		}, failed: []string{ledger.CheckFloors}},
		{name: "postpaid at exactly its credit limit", change: func(f *ledger.AuditFacts) {
			f.Accounts[acme].Kind, f.Accounts[acme].CreditLimit = ledger.Postpaid, 5
			f.Accounts[acme].PostedDebits, f.Accounts[revenue].PostedCredits = 12, 12
		}},
		{name: "postpaid one past its credit limit", change: func(f *ledger.AuditFacts) {
			f.Accounts[acme].Kind, f.Accounts[acme].CreditLimit = ledger.Postpaid, 5
			f.Accounts[acme].PostedDebits, f.Accounts[revenue].PostedCredits = 13, 13
		}, failed: []string{ledger.CheckFloors}},
		{name: "negative pending debits", change: func(f *ledger.AuditFacts) {
			f.Accounts[funding].PendingDebits, f.Accounts[revenue].PendingCredits = -1, 2
		}, failed: []string{ledger.CheckFloors}},
		{name: "negative pending credits", change: func(f *ledger.AuditFacts) {
			f.Accounts[funding].PendingCredits, f.Accounts[revenue].PendingCredits = -1, 4
		}, failed: []string{ledger.CheckFloors}},
		{name: "posted debits past credits", change: func(f *ledger.AuditFacts) {
			f.Accounts[funding].PostedDebits = 11
		}, failed: []string{ledger.CheckBalanced}},
		{name: "pending debits short of credits", change: func(f *ledger.AuditFacts) {
			f.Accounts[revenue].PendingCredits = 4
		}, failed: []string{ledger.CheckBalanced}},
		{name: "a cached balance off its transfers", sums: func(f *ledger.AuditFacts) {
			d := f.Sums["tenant:acme"]
			d.PendingDebits++
			f.Sums["tenant:acme"] = d
		}, failed: []string{ledger.CheckCached}},
		{name: "transfers of an account that does not exist", sums: func(f *ledger.AuditFacts) {
			f.Sums["tenant:ghost"] = ledger.Delta{}
		}, failed: []string{ledger.CheckCached},
			problems: []string{"transfers name account tenant:ghost, which does not exist"}},
		{name: "a hold resolved twice", change: func(f *ledger.AuditFacts) {
			f.HoldMismatches = []string{"hold r1 resolved twice"}
		}, failed: []string{ledger.CheckHoldsOnce}, problems: []string{"hold r1 resolved twice"}},
		{name: "a hold open past its expiry", change: func(f *ledger.AuditFacts) {
			f.OverdueHolds = []ledger.Hold{{RequestID: "r1", TenantID: "acme", ExpiresAt: t0}}
		}, failed: []string{ledger.CheckHoldsOverdue},
			problems: []string{"hold r1 of acme expired 2026-11-28T12:00:00Z, still pending"}},
		{name: "as many cost mismatches as are listed", change: func(f *ledger.AuditFacts) {
			f.CostMismatches = many(100)
		}, failed: []string{ledger.CheckCosts}, problems: many(100)},
		{name: "one cost mismatch more than are listed", change: func(f *ledger.AuditFacts) {
			f.CostMismatches = many(101)
		}, failed: []string{ledger.CheckCosts}, problems: append(many(100), "... and 1 more")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := books()
			if c.change != nil {
				c.change(&f)
			}
			f.Sums = map[string]ledger.Delta{}
			for _, a := range f.Accounts {
				f.Sums[a.ID] = ledger.Delta{PostedDebits: a.PostedDebits, PostedCredits: a.PostedCredits,
					PendingDebits: a.PendingDebits, PendingCredits: a.PendingCredits}
			}
			if c.sums != nil {
				c.sums(&f)
			}
			f.Unbilled = []string{"lost1"}
			r := ledger.Judge(f, t0)
			var failed []string
			for _, ch := range r.Failed() {
				failed = append(failed, ch.Name)
				if len(ch.Problems) == 0 {
					t.Errorf("check %s failed with no problem named", ch.Name)
				}
				if c.problems != nil && !slices.Equal(ch.Problems, c.problems) {
					t.Errorf("check %s problems = %q, want %q", ch.Name, ch.Problems, c.problems)
				}
			}
			if !slices.Equal(failed, c.failed) {
				t.Errorf("failed checks = %v, want %v (report %+v)", failed, c.failed, r)
			}
			if r.OK != (len(c.failed) == 0) || len(r.Checks) != 6 || r.Accounts != 3 || !r.At.Equal(t0) {
				t.Errorf("report = OK %v, %d checks, %d accounts at %v", r.OK, len(r.Checks), r.Accounts, r.At)
			}
			for _, ch := range r.Checks {
				if ch.OK && len(ch.Problems) != 0 {
					t.Errorf("check %s passed with problems %q", ch.Name, ch.Problems)
				}
			}
			if !slices.Equal(r.Unbilled, []string{"lost1"}) {
				t.Errorf("unbilled = %q", r.Unbilled)
			}
		})
	}
}

// TestAuditGraceForOverdueHolds: a hold still pending after its expiry is
// overdue once the grace (the sweep interval) has passed as well, not before.
func TestAuditGraceForOverdueHolds(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0)})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 5 * yuan}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(yuan, money.CNY), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	grace := 5 * time.Minute
	for _, c := range []struct {
		now     time.Time
		overdue bool
	}{
		{t0.Add(time.Minute), false},
		{t0.Add(time.Minute + grace - time.Nanosecond), false},
		{t0.Add(time.Minute + grace), true},
	} {
		r, err := ledger.Audit(ctx, db, c.now, grace)
		if err != nil {
			t.Fatal(err)
		}
		var overdue []string
		for _, ch := range r.Failed() {
			if ch.Name != ledger.CheckHoldsOverdue {
				t.Errorf("at %v check %s failed: %q", c.now, ch.Name, ch.Problems)
			}
			overdue = ch.Problems
		}
		if got := len(overdue) == 1 && strings.Contains(overdue[0], "hold r1 of acme"); got != c.overdue {
			t.Errorf("at %v overdue = %q, want r1 overdue %v", c.now, overdue, c.overdue)
		}
	}
}
