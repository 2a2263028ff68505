package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Check is one audit check and what it found.
type Check struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Report is the audit's result. OK is true when every check passed.
type Report struct {
	At       time.Time `json:"at"`
	OK       bool      `json:"ok"`
	Accounts int       `json:"accounts"`
	Checks   []Check   `json:"checks"`
	// Unbilled lists (newest first, at most 100) the requests whose hold
	// was resolved by someone else than their own request with nothing
	// known of what they delivered: their node died before any usage
	// record or checkpoint. They were never charged, and the vendor may
	// have billed them. The books balance either way: this is a report,
	// not a failed check.
	Unbilled []string `json:"unbilled,omitempty"`
}

// Failed returns the checks that did not pass.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Audit check names, stable for scripts reading `baimo audit --json`.
const (
	CheckBalanced     = "debits_equal_credits"
	CheckFloors       = "no_account_past_its_floor"
	CheckCached       = "cached_balances_equal_transfers"
	CheckHoldsOnce    = "holds_resolved_at_most_once"
	CheckHoldsOverdue = "no_hold_open_past_expiry"
	CheckCosts        = "posted_equals_rated_usage"
)

// auditLimit bounds how many problems each check lists.
const auditLimit = 100

// Audit checks the books in one snapshot: debits equal credits; no prepaid
// (or free) account below zero and no postpaid past its credit limit; cached
// balances equal the sums of transfers; every hold resolved at most once and
// none still open past its expiry plus grace (the sweep interval); each
// request's posted amount equals its usage record's cost.
func Audit(ctx context.Context, s Store, now time.Time, grace time.Duration) (Report, error) {
	var f AuditFacts
	err := s.LedgerView(ctx, func(v Snapshot) error {
		var err error
		f, err = v.AuditFacts(ctx, AuditQuery{Deadline: now.Add(-grace), Limit: auditLimit})
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("audit: %w", err)
	}
	return Judge(f, now), nil
}

// Judge turns audit facts into a report (exported for tests that build facts).
func Judge(f AuditFacts, now time.Time) Report {
	r := Report{At: now, Accounts: len(f.Accounts)}
	add := func(name string, problems []string) {
		if len(problems) > auditLimit {
			problems = append(problems[:auditLimit], fmt.Sprintf("... and %d more", len(problems)-auditLimit))
		}
		r.Checks = append(r.Checks, Check{Name: name, OK: len(problems) == 0, Problems: problems})
	}

	// Debits equal credits, per currency, posted and pending.
	type sums struct{ pd, pc, qd, qc int64 }
	byCur := map[string]*sums{}
	var floors, cached []string
	for _, a := range f.Accounts {
		s := byCur[string(a.Currency)]
		if s == nil {
			s = &sums{}
			byCur[string(a.Currency)] = s
		}
		s.pd += a.PostedDebits
		s.pc += a.PostedCredits
		s.qd += a.PendingDebits
		s.qc += a.PendingCredits
		switch a.Kind {
		case Prepaid, Free:
			if a.Available() < 0 {
				floors = append(floors, fmt.Sprintf("%s (%s): available %d < 0", a.ID, a.Kind, a.Available()))
			}
		case Postpaid:
			if a.Available() < -a.CreditLimit {
				floors = append(floors, fmt.Sprintf("%s (postpaid): available %d past credit limit %d", a.ID, a.Available(), a.CreditLimit))
			}
		}
		if a.PendingDebits < 0 || a.PendingCredits < 0 {
			floors = append(floors, fmt.Sprintf("%s: negative pending %d/%d", a.ID, a.PendingDebits, a.PendingCredits))
		}
		want := f.Sums[a.ID]
		got := Delta{a.PostedDebits, a.PostedCredits, a.PendingDebits, a.PendingCredits}
		if got != want {
			cached = append(cached, fmt.Sprintf("%s: cached %+v, transfers give %+v", a.ID, got, want))
		}
	}
	for id := range f.Sums {
		if !slices.ContainsFunc(f.Accounts, func(a Account) bool { return a.ID == id }) {
			cached = append(cached, fmt.Sprintf("transfers name account %s, which does not exist", id))
		}
	}
	var balanced []string
	curs := make([]string, 0, len(byCur))
	for c := range byCur {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	for _, c := range curs {
		s := byCur[c]
		if s.pd != s.pc || s.qd != s.qc {
			balanced = append(balanced, fmt.Sprintf("%s: posted debits %d credits %d, pending debits %d credits %d", c, s.pd, s.pc, s.qd, s.qc))
		}
	}
	slices.Sort(cached)
	add(CheckBalanced, balanced)
	add(CheckFloors, floors)
	add(CheckCached, cached)
	add(CheckHoldsOnce, f.HoldMismatches)
	var overdue []string
	for _, h := range f.OverdueHolds {
		overdue = append(overdue, fmt.Sprintf("hold %s of %s expired %s, still pending", h.RequestID, h.TenantID, h.ExpiresAt.Format(time.RFC3339)))
	}
	add(CheckHoldsOverdue, overdue)
	add(CheckCosts, f.CostMismatches)
	r.Unbilled = f.Unbilled
	r.OK = true
	for _, c := range r.Checks {
		r.OK = r.OK && c.OK
	}
	return r
}
