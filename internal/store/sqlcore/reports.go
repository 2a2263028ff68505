package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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

// tenantRefs returns the ids of a tenant's records' tenant names
// (tenantIDs), or none when no record names them.
func (l *Ledger) tenantRefs(ctx context.Context, tenantID string) ([]any, error) {
	a, b := tenantIDs(tenantID)
	var out []any
	for _, s := range []string{a, b} {
		id, ok, err := l.names.lookup(ctx, l.q, s)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// UsageLines implements ledger.Reports.
func (l *Ledger) UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]ledger.UsageLine, error) {
	refs, err := l.tenantRefs(ctx, tenantID)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	refs = append(refs, refs[0])[:2] // one or two ids: $1 and $2
	type line struct {
		ledger.UsageLine
		model int64
	}
	rows, err := queryAll(ctx, l.q, func(r Row) (line, error) {
		var u line
		var cur string
		err := r.Scan(&u.model, &cur, &u.Requests, &u.Refused, &u.Failed, &u.Input, &u.Output, &u.CostNanos)
		u.Currency = money.Currency(cur)
		return u, err
	}, `SELECT model_ref, currency, count(*), CAST(sum(CASE WHEN `+refusedSQL+` THEN 1 ELSE 0 END) AS BIGINT),
		CAST(sum(CASE WHEN `+failedSQL+` THEN 1 ELSE 0 END) AS BIGINT), CAST(sum(input_tokens) AS BIGINT),
		CAST(sum(output_tokens) AS BIGINT), CAST(sum(cost_nanos) AS BIGINT)
		FROM usage_records WHERE tenant_ref IN ($1, $2) AND start_ns >= $3 AND start_ns < $4
		GROUP BY model_ref, currency`,
		refs[0], refs[1], from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	res := l.names.resolver(l.q)
	for _, r := range rows {
		res.want(r.model)
	}
	if err := res.fetch(ctx); err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	out := make([]ledger.UsageLine, len(rows))
	for i, r := range rows {
		out[i] = r.UsageLine
		out[i].Model = res.name(r.model)
	}
	slices.SortFunc(out, func(a, b ledger.UsageLine) int {
		return cmp.Or(strings.Compare(a.Model, b.Model), strings.Compare(string(a.Currency), string(b.Currency)))
	})
	return out, nil
}

// EachRatedLines implements ledger.Reports.
func (l *Ledger) EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error {
	refs, err := l.tenantRefs(ctx, tenantID)
	if err != nil || len(refs) == 0 {
		return err
	}
	refs = append(refs, refs[0])[:2]
	// The model's name by a join, not the resolver: PostgreSQL runs no
	// other query on the connection while these rows stream.
	rows, err := l.q.Query(ctx, `SELECT coalesce(n.name, ''), r.lines FROM usage_records r
		LEFT JOIN usage_names n ON n.id = r.model_ref
		WHERE r.tenant_ref IN ($1, $2) AND r.start_ns >= $3 AND r.start_ns < $4 AND r.lines <> ''`,
		refs[0], refs[1], from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("rated lines of %s: %w", tenantID, err)
	}
	defer rows.Close()
	var model, lines string
	for rows.Next() {
		if err := rows.Scan(&model, &lines); err != nil {
			return fmt.Errorf("rated lines of %s: %w", tenantID, err)
		}
		if lines == "[]" {
			continue
		}
		if err := fn(model, []byte(lines)); err != nil {
			return err
		}
	}
	return rows.Err()
}
