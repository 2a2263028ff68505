package sqlcore

// The SQL shape of the ledger's rows: the column lists of tenants, accounts,
// holds, transfers and codes, the scan of each row into its ledger type, and
// the stored form of budget alerts. Text columns are read as strings and
// converted, which both drivers support; times are Unix nanoseconds, 0 for
// none.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// tenantCols lists the columns scanTenant reads, in order.
const tenantCols = `id, name, kind, currency, credit_limit, created_at`

// scanTenant reads a tenant row.
func scanTenant(r Row) (ledger.Tenant, error) {
	var t ledger.Tenant
	var kind, cur string
	var created int64
	err := r.Scan(&t.ID, &t.Name, &kind, &cur, &t.CreditLimit, &created)
	t.Kind, t.Currency, t.CreatedAt = ledger.Kind(kind), money.Currency(cur), FromUnixNanos(created)
	return t, err
}

// accountCols lists the columns scanAccount reads, in order.
const accountCols = `id, tenant_id, kind, currency, credit_limit, posted_debits, posted_credits, pending_debits, pending_credits, created_at`

// scanAccount reads an account row.
func scanAccount(r Row) (ledger.Account, error) {
	var a ledger.Account
	var kind, cur string
	var created int64
	err := r.Scan(&a.ID, &a.TenantID, &kind, &cur, &a.CreditLimit, &a.PostedDebits, &a.PostedCredits,
		&a.PendingDebits, &a.PendingCredits, &created)
	a.Kind, a.Currency, a.CreatedAt = ledger.Kind(kind), money.Currency(cur), FromUnixNanos(created)
	return a, err
}

// HoldColumns lists the columns scanHold reads, in order.
const HoldColumns = `request_id, tenant_id, key_id, account_id, amount, currency, state, node, budgets, created_at, expires_at, resolved_at`

// scanHold reads a hold row.
func scanHold(r Row) (ledger.Hold, error) {
	var h ledger.Hold
	var cur, state string
	var created, expires, resolved int64
	err := r.Scan(&h.RequestID, &h.TenantID, &h.KeyID, &h.AccountID, &h.Amount, &cur, &state, &h.Node,
		&h.Budgets, &created, &expires, &resolved)
	h.Currency, h.State = money.Currency(cur), ledger.HoldState(state)
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = FromUnixNanos(created), FromUnixNanos(expires), FromUnixNanos(resolved)
	return h, err
}

// TransferColumns lists the columns scanTransfer reads, in order.
const TransferColumns = `id, debit_account, credit_account, amount, currency, kind, flag, pending_id, request_id, tenant_id, note, created_at`

// scanTransfer reads a transfer row.
func scanTransfer(r Row) (ledger.Transfer, error) {
	var t ledger.Transfer
	var cur, kind, flag string
	var created int64
	err := r.Scan(&t.ID, &t.Debit, &t.Credit, &t.Amount, &cur, &kind, &flag, &t.PendingID, &t.RequestID,
		&t.TenantID, &t.Note, &created)
	t.Currency, t.Kind, t.Flag = money.Currency(cur), ledger.TransferKind(kind), ledger.Flag(flag)
	t.CreatedAt = FromUnixNanos(created)
	return t, err
}

// codeCols lists the columns scanCode reads, in order.
const codeCols = `hash, prefix, amount, currency, state, tenant_id, created_at, expires_at, redeemed_at`

// scanCode reads a redemption code row.
func scanCode(r Row) (ledger.Code, error) {
	var c ledger.Code
	var cur string
	var created, expires, redeemed int64
	err := r.Scan(&c.Hash, &c.Prefix, &c.Amount, &cur, &c.State, &c.TenantID, &created, &expires, &redeemed)
	c.Currency = money.Currency(cur)
	c.CreatedAt, c.ExpiresAt, c.RedeemedAt = FromUnixNanos(created), FromUnixNanos(expires), FromUnixNanos(redeemed)
	return c, err
}

// settledKinds is the SQL condition on ledger_transfers that selects the
// transfers posting a request's cost: a hold's post, a settlement of a hold
// kept in memory, an overage, a charge, a debt. The audit compares their sum
// with the request's usage record.
const settledKinds = `(flag = 'post' OR kind IN ('settle', 'overage', 'charge', 'debt'))`

// parseAlerts reads a budget's alert thresholds as stored ("50,80,100").
func parseAlerts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("budget alerts %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// formatAlerts is a budget's alert thresholds as stored.
func formatAlerts(as []int) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = strconv.Itoa(a)
	}
	return strings.Join(parts, ",")
}

// UnixNanos is t as stored: Unix nanoseconds, 0 for the zero time.
func UnixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromUnixNanos is the time a stored value stands for (UTC; 0 is the zero time).
func FromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
