package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/ledgerrows"
	"baimo/internal/usage"
)

var _ ledger.Store = (*DB)(nil)

// maxTxAttempts bounds the retries of a ledger transaction that PostgreSQL
// aborted for a deadlock, a serialization failure or a concurrent insert of
// the same key (the retry then sees the other's row).
const maxTxAttempts = 4

// LedgerUpdate runs fn in one READ COMMITTED transaction. Balances move only
// through conditional updates (UPDATE ... WHERE id = $1 AND <floor holds>),
// which PostgreSQL re-checks against the newest row after waiting for its
// lock, so several processes sharing the database never overspend; the
// ledger takes account rows in one global order, so they do not deadlock.
func (db *DB) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			return fn(&ledgerTx{ledgerView{q: tx}, tx})
		})
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505": // serialization_failure, deadlock_detected, unique_violation
		return true
	}
	return false
}

// LedgerView runs fn in one read-only REPEATABLE READ transaction: a
// snapshot, so the audit's queries agree with each other.
func (db *DB) LedgerView(ctx context.Context, fn func(ledger.View) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	return fn(&ledgerView{q: tx})
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type ledgerView struct{ q querier }

type ledgerTx struct {
	ledgerView
	tx pgx.Tx
}

type scanner = ledgerrows.Scanner

// The ledger's rows, shared with the other store.
const (
	tenantCols   = ledgerrows.TenantColumns
	accountCols  = ledgerrows.AccountColumns
	holdCols     = ledgerrows.HoldColumns
	transferCols = ledgerrows.TransferColumns
	codeCols     = ledgerrows.CodeColumns
)

var (
	scanTenant   = ledgerrows.ScanTenant
	scanAccount  = ledgerrows.ScanAccount
	scanHold     = ledgerrows.ScanHold
	scanTransfer = ledgerrows.ScanTransfer
	scanCode     = ledgerrows.ScanCode
)

func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ledger.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

func moneyCurrency(s string) money.Currency { return money.Currency(s) }

func (v *ledgerView) Tenant(ctx context.Context, id string) (ledger.Tenant, error) {
	t, err := scanTenant(v.q.QueryRow(ctx, `SELECT `+tenantCols+` FROM ledger_tenants WHERE id = $1`, id))
	if err != nil {
		return ledger.Tenant{}, notFound(err, "tenant "+id)
	}
	return t, nil
}

func (v *ledgerView) Tenants(ctx context.Context) ([]ledger.Tenant, error) {
	return queryAll(ctx, v.q, scanTenant, `SELECT `+tenantCols+` FROM ledger_tenants ORDER BY id`)
}

func (v *ledgerView) Account(ctx context.Context, id string) (ledger.Account, error) {
	a, err := scanAccount(v.q.QueryRow(ctx, `SELECT `+accountCols+` FROM ledger_accounts WHERE id = $1`, id))
	if err != nil {
		return ledger.Account{}, notFound(err, "account "+id)
	}
	return a, nil
}

func (v *ledgerView) Hold(ctx context.Context, requestID string) (ledger.Hold, error) {
	h, err := scanHold(v.q.QueryRow(ctx, `SELECT `+holdCols+` FROM ledger_holds WHERE request_id = $1`, requestID))
	if err != nil {
		return ledger.Hold{}, notFound(err, "hold "+requestID)
	}
	return h, nil
}

func (v *ledgerView) PendingHolds(ctx context.Context, q ledger.HoldQuery) ([]ledger.Hold, error) {
	node, byNode := "", false
	if q.Node != nil {
		node, byNode = *q.Node, true
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	hs, err := queryAll(ctx, v.q, scanHold, `SELECT `+holdCols+` FROM ledger_holds WHERE state = 'pending'
		AND ($1::bigint = 0 OR expires_at <= $1) AND ($2::bigint = 0 OR created_at < $2) AND (NOT $3::boolean OR node = $4)
		ORDER BY expires_at, request_id LIMIT $5`,
		unixNanos(q.ExpiresBefore), unixNanos(q.CreatedBefore), byNode, node, limit)
	if err != nil {
		return nil, fmt.Errorf("pending holds: %w", err)
	}
	return hs, nil
}

func (v *ledgerView) TransfersByRequest(ctx context.Context, requestID string) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, v.q, scanTransfer, `SELECT `+transferCols+` FROM ledger_transfers WHERE request_id = $1 ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", requestID, err)
	}
	return ts, nil
}

func (v *ledgerView) TenantTransfers(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, v.q, scanTransfer, `SELECT `+transferCols+` FROM ledger_transfers
		WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY seq LIMIT $4`,
		tenantID, from.UnixNano(), to.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", tenantID, err)
	}
	return ts, nil
}

func (v *ledgerView) RecordCost(ctx context.Context, requestID string) (int64, string, bool, error) {
	var cost int64
	var cur string
	err := v.q.QueryRow(ctx, `SELECT cost_nanos, currency FROM usage_records WHERE request_id = $1`, requestID).Scan(&cost, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("record of %s: %w", requestID, err)
	}
	return cost, cur, true, nil
}

func (v *ledgerView) EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error {
	alt := tenantID
	if tenantID == ledger.DefaultTenantID {
		alt = ""
	}
	rows, err := v.q.Query(ctx, `SELECT model, lines FROM usage_records
		WHERE tenant_id IN ($1, $2) AND start_ns >= $3 AND start_ns < $4 AND lines <> '[]'`, tenantID, alt, from.UnixNano(), to.UnixNano())
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

func (v *ledgerView) UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]ledger.UsageLine, error) {
	alt := tenantID
	if tenantID == ledger.DefaultTenantID {
		alt = "" // records of keys without a tenant
	}
	lines, err := queryAll(ctx, v.q, func(r scanner) (ledger.UsageLine, error) {
		var l ledger.UsageLine
		var cur string
		err := r.Scan(&l.Model, &cur, &l.Requests, &l.Input, &l.Output, &l.CostNanos)
		l.Currency = moneyCurrency(cur)
		return l, err
	}, `SELECT model, currency, count(*), sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost_nanos)::bigint
		FROM usage_records WHERE tenant_id IN ($1, $2) AND start_ns >= $3 AND start_ns < $4
		GROUP BY model, currency ORDER BY model, currency`,
		tenantID, alt, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	return lines, nil
}

func (v *ledgerView) Idempotency(ctx context.Context, key string) (ledger.IdempotencyEntry, bool, error) {
	var e ledger.IdempotencyEntry
	var result string
	var created int64
	err := v.q.QueryRow(ctx, `SELECT key, op, body_hash, result, created_at FROM ledger_idempotency WHERE key = $1`, key).
		Scan(&e.Key, &e.Op, &e.BodyHash, &result, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("idempotency key: %w", err)
	}
	e.Result, e.CreatedAt = []byte(result), fromUnixNanos(created)
	return e, true, nil
}

func (v *ledgerView) Code(ctx context.Context, hash string) (ledger.Code, error) {
	c, err := scanCode(v.q.QueryRow(ctx, `SELECT `+codeCols+` FROM ledger_codes WHERE hash = $1`, hash))
	if err != nil {
		return ledger.Code{}, notFound(err, "code")
	}
	return c, nil
}

// settledKinds selects the transfers that post a request's cost.
const settledKinds = ledgerrows.SettledKinds

func (v *ledgerView) AuditFacts(ctx context.Context, q ledger.AuditQuery) (ledger.AuditFacts, error) {
	var f ledger.AuditFacts
	var err error
	if f.Accounts, err = queryAll(ctx, v.q, scanAccount, `SELECT `+accountCols+` FROM ledger_accounts ORDER BY id`); err != nil {
		return f, fmt.Errorf("audit accounts: %w", err)
	}
	f.Sums = map[string]ledger.Delta{}
	type colSum struct {
		id string
		n  int64
	}
	scanSum := func(r scanner) (colSum, error) {
		var c colSum
		return c, r.Scan(&c.id, &c.n)
	}
	const open = `flag = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id AND r.pending_id <> '')`
	for i, query := range []string{
		`SELECT debit_account, sum(amount)::bigint FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY debit_account`,
		`SELECT credit_account, sum(amount)::bigint FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY credit_account`,
		`SELECT debit_account, sum(amount)::bigint FROM ledger_transfers t WHERE ` + open + ` GROUP BY debit_account`,
		`SELECT credit_account, sum(amount)::bigint FROM ledger_transfers t WHERE ` + open + ` GROUP BY credit_account`,
	} {
		sums, err := queryAll(ctx, v.q, scanSum, query)
		if err != nil {
			return f, fmt.Errorf("audit sums: %w", err)
		}
		for _, s := range sums {
			d := f.Sums[s.id]
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
			f.Sums[s.id] = d
		}
	}
	if f.OverdueHolds, err = v.PendingHolds(ctx, ledger.HoldQuery{ExpiresBefore: q.Deadline, Limit: q.Limit}); err != nil {
		return f, err
	}
	scanText := func(r scanner) (string, error) {
		var s string
		return s, r.Scan(&s)
	}
	for _, query := range []string{
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
	} {
		rows, err := queryAll(ctx, v.q, scanText, query, q.Limit)
		if err != nil {
			return f, fmt.Errorf("audit holds: %w", err)
		}
		f.HoldMismatches = append(f.HoldMismatches, rows...)
	}
	for _, query := range []string{
		`SELECT 'request ' || u.request_id || ': record costs ' || u.cost_nanos || ', posted ' || coalesce(p.posted, 0)
			FROM usage_records u LEFT JOIN (SELECT request_id, sum(amount)::bigint AS posted FROM ledger_transfers
				WHERE ` + settledKinds + ` GROUP BY request_id) p ON p.request_id = u.request_id
			WHERE u.cost_nanos <> coalesce(p.posted, 0) LIMIT $1`,
		`SELECT DISTINCT 'request ' || t.request_id || ': posted with no usage record' FROM ledger_transfers t
			WHERE ` + settledKinds + ` AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = t.request_id) LIMIT $1`,
	} {
		rows, err := queryAll(ctx, v.q, scanText, query, q.Limit)
		if err != nil {
			return f, fmt.Errorf("audit costs: %w", err)
		}
		f.CostMismatches = append(f.CostMismatches, rows...)
	}
	return f, nil
}

func (t *ledgerTx) CreateTenant(ctx context.Context, x ledger.Tenant) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO ledger_tenants (`+tenantCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`,
		x.ID, x.Name, string(x.Kind), string(x.Currency), x.CreditLimit, unixNanos(x.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("tenant %s: %w", x.ID, ledger.ErrExists)
	}
	return nil
}

func (t *ledgerTx) CreateAccount(ctx context.Context, a ledger.Account) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO ledger_accounts (id, tenant_id, kind, currency, credit_limit, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.TenantID, string(a.Kind), string(a.Currency), a.CreditLimit, unixNanos(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	return nil
}

func (t *ledgerTx) ApplyDelta(ctx context.Context, id string, d ledger.Delta, g ledger.Guard) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE ledger_accounts SET posted_debits = posted_debits + $1,
		posted_credits = posted_credits + $2, pending_debits = pending_debits + $3, pending_credits = pending_credits + $4
		WHERE id = $5
		AND (NOT $6::boolean OR posted_credits + $2 - posted_debits - $1 - pending_debits - $3 >= -credit_limit)
		AND ($7::text = '' OR NOT EXISTS (SELECT 1 FROM ledger_accounts d WHERE d.id = $7 AND d.posted_debits > d.posted_credits))
		AND ($8::text = '' OR NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = $8))`,
		d.PostedDebits, d.PostedCredits, d.PendingDebits, d.PendingCredits, id, g.Floor, g.NotOwing, g.NoRecord)
	if err != nil {
		return false, fmt.Errorf("update account %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) InsertTransfer(ctx context.Context, x ledger.Transfer) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO ledger_transfers (`+transferCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		x.ID, x.Debit, x.Credit, x.Amount, string(x.Currency), string(x.Kind), string(x.Flag), x.PendingID, x.RequestID,
		x.TenantID, x.Note, unixNanos(x.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("insert transfer %s: %w", x.ID, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) InsertHold(ctx context.Context, h ledger.Hold) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO ledger_holds (`+holdCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (request_id) DO NOTHING`,
		h.RequestID, h.TenantID, h.KeyID, h.AccountID, h.Amount, string(h.Currency), string(h.State), h.Node, h.Budgets,
		unixNanos(h.CreatedAt), unixNanos(h.ExpiresAt), unixNanos(h.ResolvedAt))
	if err != nil {
		return false, fmt.Errorf("insert hold %s: %w", h.RequestID, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) DeleteHold(ctx context.Context, requestID string) error {
	if _, err := t.tx.Exec(ctx, `DELETE FROM ledger_holds WHERE request_id = $1`, requestID); err != nil {
		return fmt.Errorf("delete hold %s: %w", requestID, err)
	}
	return nil
}

func (t *ledgerTx) ResolveHold(ctx context.Context, requestID string, state ledger.HoldState, at time.Time) (ledger.Hold, bool, error) {
	h, err := scanHold(t.tx.QueryRow(ctx, `UPDATE ledger_holds SET state = $1, resolved_at = $2
		WHERE request_id = $3 AND state = 'pending' RETURNING `+holdCols, string(state), unixNanos(at), requestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Hold{}, false, nil
	}
	if err != nil {
		return ledger.Hold{}, false, fmt.Errorf("resolve hold %s: %w", requestID, err)
	}
	return h, true, nil
}

func (t *ledgerTx) InsertRecord(ctx context.Context, rec usage.Record) (bool, error) {
	tag, err := t.tx.Exec(ctx, insertRecord, recordArgs(&rec)...)
	if err != nil {
		return false, fmt.Errorf("write usage record %s: %w", rec.RequestID, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) PutIdempotency(ctx context.Context, e ledger.IdempotencyEntry) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO ledger_idempotency (key, op, body_hash, result, created_at) VALUES ($1, $2, $3, $4, $5)`,
		e.Key, e.Op, e.BodyHash, string(e.Result), unixNanos(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store idempotency key: %w", err)
	}
	return nil
}

func (t *ledgerTx) CreateCode(ctx context.Context, c ledger.Code) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO ledger_codes (`+codeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.Hash, c.Prefix, c.Amount, string(c.Currency), c.State, c.TenantID, unixNanos(c.CreatedAt),
		unixNanos(c.ExpiresAt), unixNanos(c.RedeemedAt))
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return nil
}

func (t *ledgerTx) ClaimCode(ctx context.Context, hash, tenantID string, at time.Time) (ledger.Code, bool, error) {
	c, err := scanCode(t.tx.QueryRow(ctx, `UPDATE ledger_codes SET state = 'redeemed', tenant_id = $1, redeemed_at = $2
		WHERE hash = $3 AND state = 'active' AND (expires_at = 0 OR expires_at > $2) RETURNING `+codeCols,
		tenantID, unixNanos(at), hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Code{}, false, nil
	}
	if err != nil {
		return ledger.Code{}, false, fmt.Errorf("claim code: %w", err)
	}
	return c, true, nil
}

func (v *ledgerView) Budget(ctx context.Context, scope ledger.Scope, subject string) (ledger.Budget, bool, error) {
	b := ledger.Budget{Scope: scope, Subject: subject}
	var period, alerts string
	err := v.q.QueryRow(ctx, `SELECT period, limit_nanos, alerts FROM ledger_budgets WHERE scope = $1 AND subject = $2`,
		string(scope), subject).Scan(&period, &b.Limit, &alerts)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("budget of %s %s: %w", scope, subject, err)
	}
	b.Period = ledger.Period(period)
	b.Alerts, err = ledgerrows.ParseAlerts(alerts)
	return b, err == nil, err
}

func (v *ledgerView) BudgetSpend(ctx context.Context, k ledger.BudgetKey) (int64, int64, error) {
	var spent, pending int64
	err := v.q.QueryRow(ctx, `SELECT spent, pending FROM ledger_budget_usage WHERE scope = $1 AND subject = $2 AND period_start = $3`,
		string(k.Scope), k.Subject, k.PeriodStart).Scan(&spent, &pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("budget spend: %w", err)
	}
	return spent, pending, nil
}

func (t *ledgerTx) PutBudget(ctx context.Context, b ledger.Budget) error {
	var err error
	if b.Limit == 0 {
		_, err = t.tx.Exec(ctx, `DELETE FROM ledger_budgets WHERE scope = $1 AND subject = $2`, string(b.Scope), b.Subject)
	} else {
		_, err = t.tx.Exec(ctx, `INSERT INTO ledger_budgets (scope, subject, period, limit_nanos, alerts) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (scope, subject) DO UPDATE SET period = excluded.period, limit_nanos = excluded.limit_nanos, alerts = excluded.alerts`,
			string(b.Scope), b.Subject, string(b.Period), b.Limit, ledgerrows.FormatAlerts(b.Alerts))
	}
	if err != nil {
		return fmt.Errorf("put budget: %w", err)
	}
	return nil
}

func (t *ledgerTx) ReserveBudget(ctx context.Context, k ledger.BudgetKey, amount, limit int64) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending)
		VALUES ($1, $2, $3, $4) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending
		WHERE ledger_budget_usage.spent + ledger_budget_usage.pending + excluded.pending <= $5`,
		string(k.Scope), k.Subject, k.PeriodStart, amount, limit)
	if err != nil {
		return false, fmt.Errorf("reserve budget: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) MoveBudget(ctx context.Context, k ledger.BudgetKey, pending, spent int64) (int64, error) {
	var after int64
	err := t.tx.QueryRow(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending, spent)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending, spent = ledger_budget_usage.spent + excluded.spent
		RETURNING spent`, string(k.Scope), k.Subject, k.PeriodStart, pending, spent).Scan(&after)
	if err != nil {
		return 0, fmt.Errorf("move budget: %w", err)
	}
	return after, nil
}

func (t *ledgerTx) MarkAlerted(ctx context.Context, k ledger.BudgetKey, percent int) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE ledger_budget_usage SET alerted = $1
		WHERE scope = $2 AND subject = $3 AND period_start = $4 AND alerted < $1`,
		percent, string(k.Scope), k.Subject, k.PeriodStart)
	if err != nil {
		return false, fmt.Errorf("mark budget alert: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *ledgerTx) SetHoldBudgets(ctx context.Context, requestID, budgets string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE ledger_holds SET budgets = $1 WHERE request_id = $2`, budgets, requestID); err != nil {
		return fmt.Errorf("hold budgets: %w", err)
	}
	return nil
}

var _ ledger.HoldWriter = (*ledgerTx)(nil)

// sqlPlaceHold inserts a hold, reserves its amount under the guard and
// writes its pending transfer in one round trip; each step runs only if the
// one before it did.
const sqlPlaceHold = `WITH ins AS (
	INSERT INTO ledger_holds (` + holdCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (request_id) DO NOTHING RETURNING request_id
), upd AS (
	UPDATE ledger_accounts SET pending_debits = pending_debits + $5
	WHERE id = $4 AND EXISTS (SELECT 1 FROM ins)
	AND (NOT $13::boolean OR posted_credits - posted_debits - pending_debits - $5 >= -credit_limit)
	AND ($14::text = '' OR NOT EXISTS (SELECT 1 FROM ledger_accounts d WHERE d.id = $14 AND d.posted_debits > d.posted_credits))
	AND ($15::text = '' OR NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = $15))
	RETURNING id
), tr AS (
	INSERT INTO ledger_transfers (` + transferCols + `)
	SELECT $16, $4, $17, $5, $6, $18, 'pending', '', $1, $2, '', $10 WHERE EXISTS (SELECT 1 FROM upd)
	RETURNING id
)
SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM tr)`

func placeArgs(h ledger.Hold, g ledger.Guard, p ledger.Transfer) ([]any, error) {
	if p.Debit != h.AccountID || p.Amount != h.Amount || p.Flag != ledger.FlagPending || !p.CreatedAt.Equal(h.CreatedAt) {
		return nil, fmt.Errorf("place hold %s: transfer does not match the hold", h.RequestID)
	}
	return []any{h.RequestID, h.TenantID, h.KeyID, h.AccountID, h.Amount, string(h.Currency), string(h.State), h.Node, h.Budgets,
		unixNanos(h.CreatedAt), unixNanos(h.ExpiresAt), unixNanos(h.ResolvedAt),
		g.Floor, g.NotOwing, g.NoRecord, p.ID, p.Credit, string(p.Kind)}, nil
}

func scanPlace(row pgx.Row, h ledger.Hold, p ledger.Transfer) (ledger.HoldOutcome, error) {
	var inserted, updated, transferred bool
	err := row.Scan(&inserted, &updated, &transferred)
	switch {
	case err != nil:
		return 0, fmt.Errorf("place hold %s: %w", h.RequestID, err)
	case !inserted:
		return ledger.HoldDuplicate, nil
	case !updated:
		return ledger.HoldRefused, nil
	case !transferred:
		return 0, fmt.Errorf("place hold %s: transfer %s not written", h.RequestID, p.ID)
	}
	return ledger.HoldPlaced, nil
}

func (t *ledgerTx) PlaceHold(ctx context.Context, h ledger.Hold, g ledger.Guard, p ledger.Transfer) (ledger.HoldOutcome, error) {
	args, err := placeArgs(h, g, p)
	if err != nil {
		return 0, err
	}
	return scanPlace(t.tx.QueryRow(ctx, sqlPlaceHold, args...), h, p)
}

var _ ledger.SettleWriter = (*ledgerTx)(nil)

// sqlPostHold stores a usage record and settles its pending hold from it in
// one round trip: the record is inserted only while the hold is pending,
// and the hold is posted only if the record was inserted. Built from
// insertRecord so that the two never disagree on the record's columns.
var sqlPostHold = func() string {
	cols := insertRecord[:strings.Index(insertRecord, "VALUES")]
	n := len(recordArgs(&usage.Record{}))
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("$%d", i+1)
	}
	at, tid, pid, rev := fmt.Sprintf("$%d", n+1), fmt.Sprintf("$%d", n+2), fmt.Sprintf("$%d", n+3), fmt.Sprintf("$%d", n+4)
	return `WITH rec AS (
	` + cols + ` SELECT ` + strings.Join(ps, ", ") + `
	WHERE EXISTS (SELECT 1 FROM ledger_holds WHERE request_id = $1 AND state = 'pending')
	ON CONFLICT (request_id) DO NOTHING RETURNING cost_nanos
), res AS (
	UPDATE ledger_holds SET state = 'posted', resolved_at = ` + at + `
	WHERE request_id = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM rec) RETURNING ` + holdCols + `
), acct AS (
	UPDATE ledger_accounts a SET posted_debits = a.posted_debits + LEAST($28, res.amount),
		pending_debits = a.pending_debits - res.amount
	FROM res WHERE a.id = res.account_id RETURNING a.id
), tr AS (
	INSERT INTO ledger_transfers (` + transferCols + `)
	SELECT ` + tid + `, res.account_id, ` + rev + `, LEAST($28, res.amount), res.currency, 'settle', 'post', ` + pid + `,
		$1, res.tenant_id, '', ` + at + ` FROM res WHERE EXISTS (SELECT 1 FROM acct)
	RETURNING id
)
SELECT ` + holdCols + `, EXISTS (SELECT 1 FROM acct), EXISTS (SELECT 1 FROM tr) FROM res`
}()

func postArgs(rec usage.Record, settleID, pendingID, revenue string, at time.Time) ([]any, error) {
	args := recordArgs(&rec)
	if args[27] != any(rec.CostNanos) { // $28 in sqlPostHold
		return nil, fmt.Errorf("post hold %s: record columns moved", rec.RequestID)
	}
	return append(args, unixNanos(at), settleID, pendingID, revenue), nil
}

func scanPost(row pgx.Row, req, settleID string) (ledger.Hold, bool, error) {
	var h ledger.Hold
	var cur, state string
	var created, expires, resolved int64
	var updated, transferred bool
	err := row.Scan(&h.RequestID, &h.TenantID, &h.KeyID, &h.AccountID, &h.Amount,
		&cur, &state, &h.Node, &h.Budgets, &created, &expires, &resolved, &updated, &transferred)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Hold{}, false, nil
	}
	if err != nil {
		return ledger.Hold{}, false, fmt.Errorf("post hold %s: %w", req, err)
	}
	if !updated || !transferred {
		return ledger.Hold{}, false, fmt.Errorf("post hold %s: account %s or transfer %s not written", req, h.AccountID, settleID)
	}
	h.Currency, h.State = moneyCurrency(cur), ledger.HoldPending // as it was, like ResolveHold
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = fromUnixNanos(created), fromUnixNanos(expires), fromUnixNanos(resolved)
	return h, true, nil
}

func (t *ledgerTx) PostHold(ctx context.Context, rec usage.Record, settleID, pendingID, revenue string, at time.Time) (ledger.Hold, bool, error) {
	args, err := postArgs(rec, settleID, pendingID, revenue, at)
	if err != nil {
		return ledger.Hold{}, false, err
	}
	return scanPost(t.tx.QueryRow(ctx, sqlPostHold, args...), rec.RequestID, settleID)
}
