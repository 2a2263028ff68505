package billing

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Audit check names of the usage records (stable for scripts reading the
// audit's JSON): each record rated at the price version in force when it
// started, and each charged what its usage costs at that version.
const (
	CheckRatedInForce = "records_rated_at_version_in_force"
	CheckRatedCost    = "records_charged_their_rated_cost"
)

// AuditWindow and AuditMaxRecords bound the records the audit re-rates:
// those started in the last AuditWindow, newest first, at most
// AuditMaxRecords.
const (
	AuditWindow     = 24 * time.Hour
	AuditMaxRecords = 20_000
)

// Audit is the books' whole audit: the ledger's checks (ledger.Audit) and
// the re-rating of the usage records of the last AuditWindow
// (AuditRecords), when r is not nil. `baimo audit` and GET /admin/audit
// both run it.
func Audit(ctx context.Context, books ledger.Store, records usage.Store, r *Rater, now time.Time, grace time.Duration) (ledger.Report, error) {
	rep, err := ledger.Audit(ctx, books, now, grace)
	if err != nil || r == nil || records == nil {
		return rep, err
	}
	cs, err := r.AuditRecords(ctx, records, now.Add(-AuditWindow), now, AuditMaxRecords)
	if err != nil {
		return rep, err
	}
	for _, c := range cs {
		rep.Checks = append(rep.Checks, c)
		rep.OK = rep.OK && c.OK
	}
	return rep, nil
}

// AuditRecords re-rates the usage records started in [from, to), newest
// first and at most max of them, from their usage at their start, and
// returns two audit checks: CheckRatedInForce lists each record rated at a
// price version that was not in force at its start (a node that applied a
// price version late) or that can no longer be rated; CheckRatedCost each
// record whose cost is not what its usage costs at its version, and every
// record settled Unrated (charged its hold because it could not be rated:
// an operator should refund the difference). A record at a tenant's price
// list is not compared by cost: lists are replaced, not dated, so the
// markup it was rated with may be gone.
func (r *Rater) AuditRecords(ctx context.Context, st usage.Store, from, to time.Time, max int) ([]ledger.Check, error) {
	version := ledger.Check{Name: CheckRatedInForce}
	cost := ledger.Check{Name: CheckRatedCost}
	f := usage.Filter{From: from, To: to, Limit: min(max, usage.MaxListLimit)}
	for seen := 0; seen < max; {
		f.Limit = min(max-seen, usage.MaxListLimit)
		page, err := st.ListRecords(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("audit records: %w", err)
		}
		for i := range page.Records {
			rec := &page.Records[i]
			if rec.PriceVersion == Unrated {
				cost.Problems = append(cost.Problems, fmt.Sprintf("request %s (%s at %s) could not be rated at settlement: charged its hold, %s %s; refund what it did not cost",
					rec.RequestID, rec.Model, rec.Start.UTC().Format(time.RFC3339Nano), money.FormatNanos(rec.CostNanos), rec.Currency))
				continue
			}
			rc, err := r.Catalog.RecheckRecord(rec, r.Rates)
			switch {
			case err != nil:
				version.Problems = append(version.Problems, err.Error())
			case !rc.OK():
				version.Problems = append(version.Problems, rc.String())
			case !rc.Skipped && rc.RecordedCost != rc.WantCost && r.PriceList(rec.TenantID) == nil:
				cost.Problems = append(cost.Problems, fmt.Sprintf("request %s (%s at %s, version %q): charged %s %s, its usage costs %s at that version",
					rec.RequestID, rc.Model, rc.At.UTC().Format(time.RFC3339Nano), rc.Recorded, money.FormatNanos(rc.RecordedCost),
					rec.Currency, money.FormatNanos(rc.WantCost)))
			}
		}
		seen += len(page.Records)
		if page.Next.IsZero() || len(page.Records) == 0 {
			break
		}
		f.After = page.Next
	}
	checks := []ledger.Check{version, cost}
	for i := range checks {
		checks[i].OK = len(checks[i].Problems) == 0
		if n := len(checks[i].Problems); n > auditLimit {
			checks[i].Problems = append(checks[i].Problems[:auditLimit], fmt.Sprintf("... and %d more", n-auditLimit))
		}
	}
	return checks, nil
}

// auditLimit bounds the problems each check lists, as the ledger's do.
const auditLimit = 100
