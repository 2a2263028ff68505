package sqlcore

import (
	"context"
	"fmt"

	"baimo/internal/ledger"
)

// AuditFacts implements ledger.Reports: what the audit judges, read in the
// caller's snapshot.
func (l *Ledger) AuditFacts(ctx context.Context, q ledger.AuditQuery) (ledger.AuditFacts, error) {
	var f ledger.AuditFacts
	var err error
	if f.Accounts, err = queryAll(ctx, l.q, scanAccount, `SELECT `+accountCols+` FROM ledger_accounts ORDER BY id`); err != nil {
		return f, fmt.Errorf("audit accounts: %w", err)
	}
	if f.Sums, err = l.transferSums(ctx); err != nil {
		return f, err
	}
	if f.OverdueHolds, err = l.PendingHolds(ctx, ledger.HoldQuery{ExpiresBefore: q.Deadline, Limit: q.Limit}); err != nil {
		return f, err
	}
	if f.HoldMismatches, err = l.problems(ctx, q.Limit, holdChecks); err != nil {
		return f, fmt.Errorf("audit holds: %w", err)
	}
	if f.CostMismatches, err = l.problems(ctx, q.Limit, costChecks); err != nil {
		return f, fmt.Errorf("audit costs: %w", err)
	}
	if f.Unbilled, err = queryAll(ctx, l.q, func(r Row) (string, error) {
		var s string
		return s, r.Scan(&s)
	}, `SELECT request_id FROM ledger_transfers WHERE kind = 'void' AND note = $1 ORDER BY created_at DESC, request_id LIMIT $2`,
		ledger.NoteLost, q.Limit); err != nil {
		return f, fmt.Errorf("audit unbilled: %w", err)
	}
	return f, nil
}

// transferSums recomputes every account's four cached columns from its
// transfers.
func (l *Ledger) transferSums(ctx context.Context) (map[string]ledger.Delta, error) {
	type colSum struct {
		id string
		n  int64
	}
	scanSum := func(r Row) (colSum, error) {
		var c colSum
		return c, r.Scan(&c.id, &c.n)
	}
	const open = `flag = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id AND r.pending_id <> '')`
	out := map[string]ledger.Delta{}
	for i, query := range []string{
		`SELECT debit_account, CAST(sum(amount) AS BIGINT) FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY debit_account`,
		`SELECT credit_account, CAST(sum(amount) AS BIGINT) FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY credit_account`,
		`SELECT debit_account, CAST(sum(amount) AS BIGINT) FROM ledger_transfers t WHERE ` + open + ` GROUP BY debit_account`,
		`SELECT credit_account, CAST(sum(amount) AS BIGINT) FROM ledger_transfers t WHERE ` + open + ` GROUP BY credit_account`,
	} {
		sums, err := queryAll(ctx, l.q, scanSum, query)
		if err != nil {
			return nil, fmt.Errorf("audit sums: %w", err)
		}
		for _, s := range sums {
			d := out[s.id]
			switch i {
			case 0:
				d.PostedDebits = s.n
			case 1:
				d.PostedCredits = s.n
			case 2:
				d.PendingDebits = s.n
			case 3:
				d.PendingCredits = s.n
			}
			out[s.id] = d
		}
	}
	return out, nil
}

// problems runs each query (one text column, its limit as $1) and returns
// the rows of all.
func (l *Ledger) problems(ctx context.Context, limit int, queries []string) ([]string, error) {
	var out []string
	for _, query := range queries {
		rows, err := queryAll(ctx, l.q, func(r Row) (string, error) {
			var s string
			return s, r.Scan(&s)
		}, query, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// holdChecks find holds whose state disagrees with their resolving
// transfers, and holds resolved more than once.
var holdChecks = []string{
	`SELECT 'hold ' || h.request_id || ' pending but resolved by ' || r.id FROM ledger_holds h
		JOIN ledger_transfers r ON r.pending_id = h.request_id || '/hold' AND r.pending_id <> '' WHERE h.state = 'pending' LIMIT $1`,
	`SELECT 'hold ' || h.request_id || ' is ' || h.state || ' but its resolution is ' || coalesce(r.flag, 'missing')
		FROM ledger_holds h LEFT JOIN ledger_transfers r ON r.pending_id = h.request_id || '/hold' AND r.pending_id <> ''
		WHERE h.state <> 'pending' AND (r.flag IS NULL OR (h.state = 'posted' AND r.flag <> 'post')
			OR (h.state = 'voided' AND r.flag <> 'void')) LIMIT $1`,
	`SELECT 'hold ' || h.request_id || ' has no matching pending transfer' FROM ledger_holds h
		LEFT JOIN ledger_transfers t ON t.id = h.request_id || '/hold'
		WHERE t.id IS NULL OR t.amount <> h.amount OR t.flag <> 'pending' LIMIT $1`,
	`SELECT 'pending transfer ' || pending_id || ' resolved ' || count(*) || ' times' FROM ledger_transfers
		WHERE pending_id <> '' GROUP BY pending_id HAVING count(*) > 1 LIMIT $1`,
	`SELECT 'post ' || r.id || ' of ' || r.amount || ' exceeds its hold' FROM ledger_transfers r
		JOIN ledger_transfers h ON h.id = r.pending_id WHERE r.flag = 'post' AND r.amount > h.amount LIMIT $1`,
}

// costChecks find requests whose posted amount differs from their usage
// record's cost, costs posted with no record, and batch transfers (kind
// settle_batch) that do not post exactly the costs of the records that name
// them, or of another tenant. A request settled in a batch has its cost
// posted by that transfer and no transfer of its own.
var costChecks = []string{
	`SELECT 'request ' || u.request_id || ': record costs ' || u.cost_nanos || ', posted ' || coalesce(p.posted, 0)
		|| CASE WHEN u.settled_in <> 0 THEN ' and in batch ' || u.settled_in ELSE '' END
		FROM usage_records u LEFT JOIN (SELECT request_id, CAST(sum(amount) AS BIGINT) AS posted FROM ledger_transfers
			WHERE ` + settledKinds + ` GROUP BY request_id) p ON p.request_id = u.request_id
		WHERE u.cost_nanos <> coalesce(p.posted, 0) + CASE WHEN u.settled_in <> 0 THEN u.cost_nanos ELSE 0 END LIMIT $1`,
	`SELECT DISTINCT 'request ' || t.request_id || ': posted with no usage record' FROM ledger_transfers t
		WHERE ` + settledKinds + ` AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = t.request_id) LIMIT $1`,
	`SELECT 'batch ' || t.seq || ' (' || t.id || ') posts ' || t.amount || ', its records cost ' || coalesce(b.cost, 0)
		FROM ledger_transfers t LEFT JOIN (SELECT settled_in, CAST(sum(cost_nanos) AS BIGINT) AS cost FROM usage_records
			WHERE settled_in <> 0 GROUP BY settled_in) b ON b.settled_in = t.seq
		WHERE t.kind = 'settle_batch' AND t.amount <> coalesce(b.cost, 0) LIMIT $1`,
	`SELECT 'request ' || u.request_id || ': settled in ' || u.settled_in || ', which is no batch of its tenant'
		FROM usage_records u LEFT JOIN usage_names n ON n.id = u.tenant_ref
		LEFT JOIN ledger_transfers t ON t.seq = u.settled_in AND t.kind = 'settle_batch'
		WHERE u.settled_in <> 0 AND (t.seq IS NULL
			OR t.tenant_id <> CASE WHEN coalesce(n.name, '') = '' THEN '` + ledger.DefaultTenantID + `' ELSE n.name END) LIMIT $1`,
}
