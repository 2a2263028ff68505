package sqlcore

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

var _ ledger.Snapshot = (*Ledger)(nil)

// Tenants implements ledger.Reports.
func (l *Ledger) Tenants(ctx context.Context) ([]ledger.Tenant, error) {
	return queryAll(ctx, l.q, scanTenant, `SELECT `+tenantCols+` FROM ledger_tenants ORDER BY id`)
}

// TenantTransfers implements ledger.Reports.
func (l *Ledger) TenantTransfers(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, l.q, scanTransfer, `SELECT `+TransferColumns+` FROM ledger_transfers
		WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY seq LIMIT $4`,
		tenantID, from.UnixNano(), to.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", tenantID, err)
	}
	return ts, nil
}

// tenantIDs are the tenant ids a tenant's records carry: its own, and ""
// for the default tenant (records of keys without a tenant).
func tenantIDs(tenantID string) (string, string) {
	if tenantID == ledger.DefaultTenantID {
		return tenantID, ""
	}
	return tenantID, tenantID
}

// UsageLines implements ledger.Reports.
func (l *Ledger) UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]ledger.UsageLine, error) {
	id, alt := tenantIDs(tenantID)
	lines, err := queryAll(ctx, l.q, func(r Row) (ledger.UsageLine, error) {
		var u ledger.UsageLine
		var cur string
		err := r.Scan(&u.Model, &cur, &u.Requests, &u.Refused, &u.Failed, &u.Input, &u.Output, &u.CostNanos)
		u.Currency = money.Currency(cur)
		return u, err
	}, `SELECT model, currency, count(*), CAST(sum(CASE WHEN `+refusedSQL+` THEN 1 ELSE 0 END) AS BIGINT),
		CAST(sum(CASE WHEN `+failedSQL+` THEN 1 ELSE 0 END) AS BIGINT), CAST(sum(input_tokens) AS BIGINT), CAST(sum(output_tokens) AS BIGINT),
		CAST(sum(cost_nanos) AS BIGINT)
		FROM usage_records WHERE tenant_id IN ($1, $2) AND start_ns >= $3 AND start_ns < $4
		GROUP BY model, currency ORDER BY model, currency`,
		id, alt, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	return lines, nil
}

// EachRatedLines implements ledger.Reports.
func (l *Ledger) EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error {
	id, alt := tenantIDs(tenantID)
	rows, err := l.q.Query(ctx, `SELECT model, lines FROM usage_records
		WHERE tenant_id IN ($1, $2) AND start_ns >= $3 AND start_ns < $4 AND lines <> '[]'`, id, alt, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("rated lines of %s: %w", tenantID, err)
	}
	defer rows.Close()
	var model, lines string
	for rows.Next() {
		if err := rows.Scan(&model, &lines); err != nil {
			return fmt.Errorf("rated lines of %s: %w", tenantID, err)
		}
		if err := fn(model, []byte(lines)); err != nil {
			return err
		}
	}
	return rows.Err()
}
