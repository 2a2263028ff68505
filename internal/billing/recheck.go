package billing

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// CheckRatedInForce names the audit check of records rated at the price
// version in force when they started (stable for scripts reading the
// audit's JSON).
const CheckRatedInForce = "records_rated_at_version_in_force"

// AuditWindow and AuditMaxRecords bound the records the audit re-rates:
// those started in the last AuditWindow, newest first, at most
// AuditMaxRecords.
const (
	AuditWindow     = 24 * time.Hour
	AuditMaxRecords = 20_000
)

// AuditRecords re-rates the usage records started in [from, to), newest
// first and at most max of them, and reports, as an audit check, each one
// rated at a price version that was not in force at its start (a node that
// applied a price version late) or that can no longer be rated.
func (r *Rater) AuditRecords(ctx context.Context, st usage.Store, from, to time.Time, max int) (ledger.Check, error) {
	c := ledger.Check{Name: CheckRatedInForce, OK: true}
	f := usage.Filter{From: from, To: to, Limit: min(max, usage.MaxListLimit)}
	for seen := 0; seen < max; {
		f.Limit = min(max-seen, usage.MaxListLimit)
		page, err := st.ListRecords(ctx, f)
		if err != nil {
			return c, fmt.Errorf("audit records: %w", err)
		}
		for i := range page.Records {
			rec := &page.Records[i]
			rc, err := r.Catalog.RecheckRecord(rec, r.Rates)
			switch {
			case err != nil:
				c.Problems = append(c.Problems, err.Error())
			case !rc.OK():
				c.Problems = append(c.Problems, rc.String())
			}
		}
		seen += len(page.Records)
		if page.Next.IsZero() || len(page.Records) == 0 {
			break
		}
		f.After = page.Next
	}
	c.OK = len(c.Problems) == 0
	return c, nil
}
