package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/store/ledgerrows"
	"baimo/internal/usage"
)

var _ ledger.Store = (*DB)(nil)

// LedgerUpdate runs fn in one write transaction (BEGIN IMMEDIATE: SQLite has
// one writer, so the conditional updates in it can never race).
func (db *DB) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	stmts, err := db.ledgerStmts()
	if err != nil {
		return err
	}
	return db.Tx(ctx, func(tx *sql.Tx) error { return fn(&ledgerTx{ledgerView{q: tx}, tx, stmts}) })
}

// Hot statements of the request path, prepared once per database on the
// write connection: parsing SQL costs more than running it in SQLite.
const (
	sqlApplyDelta = `UPDATE ledger_accounts SET posted_debits = posted_debits + ?1,
		posted_credits = posted_credits + ?2, pending_debits = pending_debits + ?3, pending_credits = pending_credits + ?4
		WHERE id = ?5
		AND (?6 = 0 OR posted_credits + ?2 - posted_debits - ?1 - pending_debits - ?3 >= -credit_limit)
		AND (?7 = '' OR NOT EXISTS (SELECT 1 FROM ledger_accounts d WHERE d.id = ?7 AND d.posted_debits > d.posted_credits))
		AND (?8 = '' OR NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = ?8))`
	sqlInsertTransfer = `INSERT INTO ledger_transfers (` + transferCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlInsertHold = `INSERT INTO ledger_holds (` + holdCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`
	sqlResolveHold = `UPDATE ledger_holds SET state = ?, resolved_at = ?
		WHERE request_id = ? AND state = 'pending' RETURNING ` + holdCols
)

type preparedSet struct {
	once  sync.Once
	stmts map[string]*sql.Stmt
	err   error
}

// prepared maps each open *DB to its statements. (A field of DB would be
// simpler; sqlite.go is shared, so the ledger keeps its own map.)
var prepared sync.Map

func (db *DB) ledgerStmts() (map[string]*sql.Stmt, error) {
	v, _ := prepared.LoadOrStore(db, &preparedSet{})
	p := v.(*preparedSet)
	p.once.Do(func() {
		p.stmts = map[string]*sql.Stmt{}
		for _, q := range []string{sqlApplyDelta, sqlInsertTransfer, sqlInsertHold, sqlResolveHold, insertRecord} {
			st, err := db.write.PrepareContext(context.Background(), q)
			if err != nil {
				p.err = fmt.Errorf("prepare ledger statements: %w", err)
				return
			}
			p.stmts[q] = st
		}
	})
	return p.stmts, p.err
}

// LedgerView runs fn in one read transaction on the read pool (a WAL
// snapshot taken at its first read).
func (db *DB) LedgerView(ctx context.Context, fn func(ledger.View) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(&ledgerView{q: tx})
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type ledgerView struct{ q querier }

type ledgerTx struct {
	ledgerView
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (t *ledgerTx) stmt(ctx context.Context, q string) *sql.Stmt {
	return t.tx.StmtContext(ctx, t.stmts[q])
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
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ledger.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (v *ledgerView) Tenant(ctx context.Context, id string) (ledger.Tenant, error) {
	t, err := scanTenant(v.q.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM ledger_tenants WHERE id = ?`, id))
	if err != nil {
		return ledger.Tenant{}, notFound(err, "tenant "+id)
	}
	return t, nil
}

func (v *ledgerView) Tenants(ctx context.Context) ([]ledger.Tenant, error) {
	return queryAll(ctx, v.q, scanTenant, `SELECT `+tenantCols+` FROM ledger_tenants ORDER BY id`)
}

func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
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

func (v *ledgerView) Account(ctx context.Context, id string) (ledger.Account, error) {
	a, err := scanAccount(v.q.QueryRowContext(ctx, `SELECT `+accountCols+` FROM ledger_accounts WHERE id = ?`, id))
	if err != nil {
		return ledger.Account{}, notFound(err, "account "+id)
	}
	return a, nil
}

func (v *ledgerView) Hold(ctx context.Context, requestID string) (ledger.Hold, error) {
	h, err := scanHold(v.q.QueryRowContext(ctx, `SELECT `+holdCols+` FROM ledger_holds WHERE request_id = ?`, requestID))
	if err != nil {
		return ledger.Hold{}, notFound(err, "hold "+requestID)
	}
	return h, nil
}

func (v *ledgerView) PendingHolds(ctx context.Context, q ledger.HoldQuery) ([]ledger.Hold, error) {
	node, byNode := "", 0
	if q.Node != nil {
		node, byNode = *q.Node, 1
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	hs, err := queryAll(ctx, v.q, scanHold, `SELECT `+holdCols+` FROM ledger_holds WHERE state = 'pending'
		AND (?1 = 0 OR expires_at <= ?1) AND (?2 = 0 OR created_at < ?2) AND (?3 = 0 OR node = ?4)
		ORDER BY expires_at, request_id LIMIT ?5`,
		unixNanos(q.ExpiresBefore), unixNanos(q.CreatedBefore), byNode, node, limit)
	if err != nil {
		return nil, fmt.Errorf("pending holds: %w", err)
	}
	return hs, nil
}

func (v *ledgerView) TransfersByRequest(ctx context.Context, requestID string) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, v.q, scanTransfer, `SELECT `+transferCols+` FROM ledger_transfers WHERE request_id = ? ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", requestID, err)
	}
	return ts, nil
}

func (v *ledgerView) TenantTransfers(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, v.q, scanTransfer, `SELECT `+transferCols+` FROM ledger_transfers
		WHERE tenant_id = ? AND created_at >= ? AND created_at < ? ORDER BY seq LIMIT ?`,
		tenantID, from.UnixNano(), to.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", tenantID, err)
	}
	return ts, nil
}

func (v *ledgerView) RecordCost(ctx context.Context, requestID string) (int64, string, bool, error) {
	var cost int64
	var cur string
	err := v.q.QueryRowContext(ctx, `SELECT cost_nanos, currency FROM usage_records WHERE request_id = ?`, requestID).Scan(&cost, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("record of %s: %w", requestID, err)
	}
	return cost, cur, true, nil
}

func (v *ledgerView) UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]ledger.UsageLine, error) {
	alt := tenantID
	if tenantID == ledger.DefaultTenantID {
		alt = "" // records of keys without a tenant
	}
	lines, err := queryAll(ctx, v.q, func(r scanner) (ledger.UsageLine, error) {
		var l ledger.UsageLine
		err := r.Scan(&l.Model, &l.Currency, &l.Requests, &l.Input, &l.Output, &l.CostNanos)
		return l, err
	}, `SELECT model, currency, count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos) FROM usage_records
		WHERE tenant_id IN (?, ?) AND start_ns >= ? AND start_ns < ? GROUP BY model, currency ORDER BY model, currency`,
		tenantID, alt, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	return lines, nil
}

func (v *ledgerView) EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error {
	alt := tenantID
	if tenantID == ledger.DefaultTenantID {
		alt = ""
	}
	rows, err := v.q.QueryContext(ctx, `SELECT model, lines FROM usage_records
		WHERE tenant_id IN (?, ?) AND start_ns >= ? AND start_ns < ? AND lines != '[]'`, tenantID, alt, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("rated lines of %s: %w", tenantID, err)
	}
	defer rows.Close()
	var model string
	var lines []byte
	for rows.Next() {
		if err := rows.Scan(&model, &lines); err != nil {
			return fmt.Errorf("rated lines of %s: %w", tenantID, err)
		}
		if err := fn(model, lines); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (v *ledgerView) Idempotency(ctx context.Context, key string) (ledger.IdempotencyEntry, bool, error) {
	var e ledger.IdempotencyEntry
	var result string
	var created int64
	err := v.q.QueryRowContext(ctx, `SELECT key, op, body_hash, result, created_at FROM ledger_idempotency WHERE key = ?`, key).
		Scan(&e.Key, &e.Op, &e.BodyHash, &result, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("idempotency key: %w", err)
	}
	e.Result, e.CreatedAt = []byte(result), fromUnixNanos(created)
	return e, true, nil
}

func (v *ledgerView) Code(ctx context.Context, hash string) (ledger.Code, error) {
	c, err := scanCode(v.q.QueryRowContext(ctx, `SELECT `+codeCols+` FROM ledger_codes WHERE hash = ?`, hash))
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
		`SELECT debit_account, sum(amount) FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY debit_account`,
		`SELECT credit_account, sum(amount) FROM ledger_transfers t WHERE flag IN ('', 'post') GROUP BY credit_account`,
		`SELECT debit_account, sum(amount) FROM ledger_transfers t WHERE ` + open + ` GROUP BY debit_account`,
		`SELECT credit_account, sum(amount) FROM ledger_transfers t WHERE ` + open + ` GROUP BY credit_account`,
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
			JOIN ledger_transfers r ON r.pending_id = h.request_id || '/hold' AND r.pending_id <> '' WHERE h.state = 'pending' LIMIT ?`,
		`SELECT 'hold ' || h.request_id || ' is ' || h.state || ' but its resolution is ' || coalesce(r.flag, 'missing')
			FROM ledger_holds h LEFT JOIN ledger_transfers r ON r.pending_id = h.request_id || '/hold' AND r.pending_id <> ''
			WHERE h.state <> 'pending' AND (r.flag IS NULL OR (h.state = 'posted' AND r.flag <> 'post')
				OR (h.state = 'voided' AND r.flag <> 'void')) LIMIT ?`,
		`SELECT 'hold ' || h.request_id || ' has no matching pending transfer' FROM ledger_holds h
			LEFT JOIN ledger_transfers t ON t.id = h.request_id || '/hold'
			WHERE t.id IS NULL OR t.amount <> h.amount OR t.flag <> 'pending' LIMIT ?`,
		`SELECT 'pending transfer ' || pending_id || ' resolved ' || count(*) || ' times' FROM ledger_transfers
			WHERE pending_id <> '' GROUP BY pending_id HAVING count(*) > 1 LIMIT ?`,
		`SELECT 'post ' || r.id || ' of ' || r.amount || ' exceeds its hold' FROM ledger_transfers r
			JOIN ledger_transfers h ON h.id = r.pending_id WHERE r.flag = 'post' AND r.amount > h.amount LIMIT ?`,
	} {
		rows, err := queryAll(ctx, v.q, scanText, query, q.Limit)
		if err != nil {
			return f, fmt.Errorf("audit holds: %w", err)
		}
		f.HoldMismatches = append(f.HoldMismatches, rows...)
	}
	for _, query := range []string{
		`SELECT 'request ' || u.request_id || ': record costs ' || u.cost_nanos || ', posted ' || coalesce(p.posted, 0)
			FROM usage_records u LEFT JOIN (SELECT request_id, sum(amount) AS posted FROM ledger_transfers
				WHERE ` + settledKinds + ` GROUP BY request_id) p ON p.request_id = u.request_id
			WHERE u.cost_nanos <> coalesce(p.posted, 0) LIMIT ?`,
		`SELECT DISTINCT 'request ' || t.request_id || ': posted with no usage record' FROM ledger_transfers t
			WHERE ` + settledKinds + ` AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = t.request_id) LIMIT ?`,
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
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM ledger_tenants WHERE id = ?`, x.ID).Scan(&n); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("tenant %s: %w", x.ID, ledger.ErrExists)
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO ledger_tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		x.ID, x.Name, string(x.Kind), string(x.Currency), x.CreditLimit, unixNanos(x.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	return nil
}

func (t *ledgerTx) CreateAccount(ctx context.Context, a ledger.Account) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO ledger_accounts (id, tenant_id, kind, currency, credit_limit, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.TenantID, string(a.Kind), string(a.Currency), a.CreditLimit, unixNanos(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	return nil
}

func rowsChanged(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (t *ledgerTx) ApplyDelta(ctx context.Context, id string, d ledger.Delta, g ledger.Guard) (bool, error) {
	ok, err := rowsChanged(t.stmt(ctx, sqlApplyDelta).ExecContext(quiet(ctx),
		d.PostedDebits, d.PostedCredits, d.PendingDebits, d.PendingCredits, id, boolInt(g.Floor), g.NotOwing, g.NoRecord))
	if err != nil {
		return false, fmt.Errorf("update account %s: %w", id, err)
	}
	return ok, nil
}

func (t *ledgerTx) InsertTransfer(ctx context.Context, x ledger.Transfer) (bool, error) {
	ok, err := rowsChanged(t.stmt(ctx, sqlInsertTransfer).ExecContext(quiet(ctx),
		x.ID, x.Debit, x.Credit, x.Amount, string(x.Currency), string(x.Kind), string(x.Flag), x.PendingID, x.RequestID,
		x.TenantID, x.Note, unixNanos(x.CreatedAt)))
	if err != nil {
		return false, fmt.Errorf("insert transfer %s: %w", x.ID, err)
	}
	return ok, nil
}

func (t *ledgerTx) InsertHold(ctx context.Context, h ledger.Hold) (bool, error) {
	ok, err := rowsChanged(t.stmt(ctx, sqlInsertHold).ExecContext(quiet(ctx),
		h.RequestID, h.TenantID, h.KeyID, h.AccountID, h.Amount, string(h.Currency), string(h.State), h.Node, h.Budgets,
		unixNanos(h.CreatedAt), unixNanos(h.ExpiresAt), unixNanos(h.ResolvedAt)))
	if err != nil {
		return false, fmt.Errorf("insert hold %s: %w", h.RequestID, err)
	}
	return ok, nil
}

func (t *ledgerTx) DeleteHold(ctx context.Context, requestID string) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM ledger_holds WHERE request_id = ?`, requestID); err != nil {
		return fmt.Errorf("delete hold %s: %w", requestID, err)
	}
	return nil
}

func (t *ledgerTx) ResolveHold(ctx context.Context, requestID string, state ledger.HoldState, at time.Time) (ledger.Hold, bool, error) {
	h, err := scanHold(t.stmt(ctx, sqlResolveHold).QueryRowContext(quiet(ctx), string(state), unixNanos(at), requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Hold{}, false, nil
	}
	if err != nil {
		return ledger.Hold{}, false, fmt.Errorf("resolve hold %s: %w", requestID, err)
	}
	return h, true, nil
}

func (t *ledgerTx) InsertRecord(ctx context.Context, rec usage.Record) (bool, error) {
	ok, err := rowsChanged(t.stmt(ctx, insertRecord).ExecContext(quiet(ctx), RecordArgs(&rec)...))
	if err != nil {
		return false, fmt.Errorf("write usage record %s: %w", rec.RequestID, err)
	}
	return ok, nil
}

func (t *ledgerTx) PutIdempotency(ctx context.Context, e ledger.IdempotencyEntry) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO ledger_idempotency (key, op, body_hash, result, created_at) VALUES (?, ?, ?, ?, ?)`,
		e.Key, e.Op, e.BodyHash, string(e.Result), unixNanos(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store idempotency key: %w", err)
	}
	return nil
}

func (t *ledgerTx) CreateCode(ctx context.Context, c ledger.Code) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO ledger_codes (`+codeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Hash, c.Prefix, c.Amount, string(c.Currency), c.State, c.TenantID, unixNanos(c.CreatedAt),
		unixNanos(c.ExpiresAt), unixNanos(c.RedeemedAt))
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return nil
}

func (t *ledgerTx) ClaimCode(ctx context.Context, hash, tenantID string, at time.Time) (ledger.Code, bool, error) {
	c, err := scanCode(t.tx.QueryRowContext(ctx, `UPDATE ledger_codes SET state = 'redeemed', tenant_id = ?, redeemed_at = ?
		WHERE hash = ? AND state = 'active' AND (expires_at = 0 OR expires_at > ?) RETURNING `+codeCols,
		tenantID, unixNanos(at), hash, unixNanos(at)))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Code{}, false, nil
	}
	if err != nil {
		return ledger.Code{}, false, fmt.Errorf("claim code: %w", err)
	}
	return c, true, nil
}

func (v *ledgerView) Budget(ctx context.Context, scope ledger.Scope, subject string) (ledger.Budget, bool, error) {
	b := ledger.Budget{Scope: scope, Subject: subject}
	var alerts string
	err := v.q.QueryRowContext(ctx, `SELECT period, limit_nanos, alerts FROM ledger_budgets WHERE scope = ? AND subject = ?`,
		string(scope), subject).Scan(&b.Period, &b.Limit, &alerts)
	if errors.Is(err, sql.ErrNoRows) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("budget of %s %s: %w", scope, subject, err)
	}
	b.Alerts, err = ledgerrows.ParseAlerts(alerts)
	return b, err == nil, err
}

func (v *ledgerView) BudgetSpend(ctx context.Context, k ledger.BudgetKey) (int64, int64, error) {
	var spent, pending int64
	err := v.q.QueryRowContext(ctx, `SELECT spent, pending FROM ledger_budget_usage WHERE scope = ? AND subject = ? AND period_start = ?`,
		string(k.Scope), k.Subject, k.PeriodStart).Scan(&spent, &pending)
	if errors.Is(err, sql.ErrNoRows) {
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
		_, err = t.tx.ExecContext(ctx, `DELETE FROM ledger_budgets WHERE scope = ? AND subject = ?`, string(b.Scope), b.Subject)
	} else {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO ledger_budgets (scope, subject, period, limit_nanos, alerts) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (scope, subject) DO UPDATE SET period = excluded.period, limit_nanos = excluded.limit_nanos, alerts = excluded.alerts`,
			string(b.Scope), b.Subject, string(b.Period), b.Limit, ledgerrows.FormatAlerts(b.Alerts))
	}
	if err != nil {
		return fmt.Errorf("put budget: %w", err)
	}
	return nil
}

func (t *ledgerTx) ReserveBudget(ctx context.Context, k ledger.BudgetKey, amount, limit int64) (bool, error) {
	ok, err := rowsChanged(t.tx.ExecContext(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending)
		VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending
		WHERE ledger_budget_usage.spent + ledger_budget_usage.pending + excluded.pending <= ?5`,
		string(k.Scope), k.Subject, k.PeriodStart, amount, limit))
	if err != nil {
		return false, fmt.Errorf("reserve budget: %w", err)
	}
	return ok, nil
}

func (t *ledgerTx) MoveBudget(ctx context.Context, k ledger.BudgetKey, pending, spent int64) (int64, error) {
	var after int64
	err := t.tx.QueryRowContext(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending, spent)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending, spent = ledger_budget_usage.spent + excluded.spent
		RETURNING spent`, string(k.Scope), k.Subject, k.PeriodStart, pending, spent).Scan(&after)
	if err != nil {
		return 0, fmt.Errorf("move budget: %w", err)
	}
	return after, nil
}

func (t *ledgerTx) MarkAlerted(ctx context.Context, k ledger.BudgetKey, percent int) (bool, error) {
	ok, err := rowsChanged(t.tx.ExecContext(ctx, `UPDATE ledger_budget_usage SET alerted = ?
		WHERE scope = ? AND subject = ? AND period_start = ? AND alerted < ?`,
		percent, string(k.Scope), k.Subject, k.PeriodStart, percent))
	if err != nil {
		return false, fmt.Errorf("mark budget alert: %w", err)
	}
	return ok, nil
}

func (t *ledgerTx) SetHoldBudgets(ctx context.Context, requestID, budgets string) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE ledger_holds SET budgets = ? WHERE request_id = ?`, budgets, requestID); err != nil {
		return fmt.Errorf("hold budgets: %w", err)
	}
	return nil
}

// quiet drops ctx's cancellation for one hot statement: the driver would
// otherwise start a watcher goroutine per statement. The transaction as a
// whole still ends with ctx (database/sql rolls it back), and a statement
// cannot wait longer than busy_timeout.
func quiet(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
