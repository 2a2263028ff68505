package sqlcore

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Ledger is the ledger's rows and reports (ledger.Tx, ledger.Snapshot) over
// a Querier: a read snapshot or a write transaction that the store opened.
type Ledger struct {
	recordWriter
	// store and inserted: the records this transaction stored, for the
	// rollups (nil store: a read-only view).
	store    *Store
	inserted []usage.Record
}

var _ ledger.Tx = (*Ledger)(nil)

// Ledger returns the ledger's primitives on q, a write transaction whose
// records go to the rollups when it calls FlushRollups.
func (s *Store) Ledger(q Querier) *Ledger {
	return &Ledger{recordWriter: recordWriter{q: q, names: s.names, added: txNames{}}, store: s}
}

// View returns the ledger's rows and reports on q, a read-only snapshot.
func (s *Store) View(q Querier) *Ledger {
	return &Ledger{recordWriter: recordWriter{q: q, names: s.names}}
}

func notFound(err error, what string) error {
	if noRows(err) {
		return fmt.Errorf("%s: %w", what, ledger.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Tenant implements ledger.View.
func (l *Ledger) Tenant(ctx context.Context, id string) (ledger.Tenant, error) {
	t, err := scanTenant(l.q.QueryRow(ctx, `SELECT `+tenantCols+` FROM ledger_tenants WHERE id = $1`, id))
	if err != nil {
		return ledger.Tenant{}, notFound(err, "tenant "+id)
	}
	return t, nil
}

// Account implements ledger.View.
func (l *Ledger) Account(ctx context.Context, id string) (ledger.Account, error) {
	a, err := scanAccount(l.q.QueryRow(ctx, `SELECT `+accountCols+` FROM ledger_accounts WHERE id = $1`, id))
	if err != nil {
		return ledger.Account{}, notFound(err, "account "+id)
	}
	return a, nil
}

// Hold implements ledger.View.
func (l *Ledger) Hold(ctx context.Context, requestID string) (ledger.Hold, error) {
	h, err := scanHold(l.q.QueryRow(ctx, `SELECT `+HoldColumns+` FROM ledger_holds WHERE request_id = $1`, requestID))
	if err != nil {
		return ledger.Hold{}, notFound(err, "hold "+requestID)
	}
	return h, nil
}

// HoldCheckpoint implements ledger.View.
func (l *Ledger) HoldCheckpoint(ctx context.Context, requestID string) (string, error) {
	var cp string
	err := l.q.QueryRow(ctx, `SELECT checkpoint FROM ledger_holds WHERE request_id = $1`, requestID).Scan(&cp)
	if err != nil {
		return "", notFound(err, "hold "+requestID)
	}
	return cp, nil
}

// StaleNodes implements ledger.View.
func (l *Ledger) StaleNodes(ctx context.Context, before time.Time, limit int) ([]string, error) {
	nodes, err := queryAll(ctx, l.q, func(r Row) (string, error) {
		var n string
		return n, r.Scan(&n)
	}, `SELECT node FROM ledger_nodes WHERE seen_at < $1 ORDER BY seen_at LIMIT $2`, UnixNanos(before), limit)
	if err != nil {
		return nil, fmt.Errorf("stale nodes: %w", err)
	}
	return nodes, nil
}

// PendingHolds implements ledger.View.
func (l *Ledger) PendingHolds(ctx context.Context, q ledger.HoldQuery) ([]ledger.Hold, error) {
	node, byNode := "", false
	if q.Node != nil {
		node, byNode = *q.Node, true
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	hs, err := queryAll(ctx, l.q, scanHold, `SELECT `+HoldColumns+` FROM ledger_holds WHERE state = 'pending'
		AND (CAST($1 AS BIGINT) = 0 OR expires_at <= $1) AND (CAST($2 AS BIGINT) = 0 OR created_at < $2)
		AND (NOT CAST($3 AS BOOLEAN) OR node = $4)
		ORDER BY expires_at, request_id LIMIT $5`,
		UnixNanos(q.ExpiresBefore), UnixNanos(q.CreatedBefore), byNode, node, limit)
	if err != nil {
		return nil, fmt.Errorf("pending holds: %w", err)
	}
	return hs, nil
}

// TransfersByRequest implements ledger.View.
func (l *Ledger) TransfersByRequest(ctx context.Context, requestID string) ([]ledger.Transfer, error) {
	ts, err := queryAll(ctx, l.q, scanTransfer, `SELECT `+TransferColumns+` FROM ledger_transfers WHERE request_id = $1 ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("transfers of %s: %w", requestID, err)
	}
	return ts, nil
}

// RecordCost implements ledger.View.
func (l *Ledger) RecordCost(ctx context.Context, requestID string) (ledger.StoredCost, bool, error) {
	var c ledger.StoredCost
	err := l.q.QueryRow(ctx, `SELECT r.cost_nanos, r.currency, r.settled_in, coalesce(n.name, '') FROM usage_records r
		LEFT JOIN usage_names n ON n.id = r.tenant_ref WHERE r.request_id = $1`, requestID).
		Scan(&c.Cost, &c.Currency, &c.SettledIn, &c.TenantID)
	if noRows(err) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("record of %s: %w", requestID, err)
	}
	return c, true, nil
}

// Idempotency implements ledger.View.
func (l *Ledger) Idempotency(ctx context.Context, key string) (ledger.IdempotencyEntry, bool, error) {
	var e ledger.IdempotencyEntry
	var result string
	var created int64
	err := l.q.QueryRow(ctx, `SELECT key, op, body_hash, result, created_at FROM ledger_idempotency WHERE key = $1`, key).
		Scan(&e.Key, &e.Op, &e.BodyHash, &result, &created)
	if noRows(err) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("idempotency key: %w", err)
	}
	e.Result, e.CreatedAt = []byte(result), FromUnixNanos(created)
	return e, true, nil
}

// Code implements ledger.View.
func (l *Ledger) Code(ctx context.Context, hash string) (ledger.Code, error) {
	c, err := scanCode(l.q.QueryRow(ctx, `SELECT `+codeCols+` FROM ledger_codes WHERE hash = $1`, hash))
	if err != nil {
		return ledger.Code{}, notFound(err, "code")
	}
	return c, nil
}

// Budget implements ledger.View.
func (l *Ledger) Budget(ctx context.Context, scope ledger.Scope, subject string) (ledger.Budget, bool, error) {
	b := ledger.Budget{Scope: scope, Subject: subject}
	var period, alerts string
	err := l.q.QueryRow(ctx, `SELECT period, limit_nanos, alerts FROM ledger_budgets WHERE scope = $1 AND subject = $2`,
		string(scope), subject).Scan(&period, &b.Limit, &alerts)
	if noRows(err) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("budget of %s %s: %w", scope, subject, err)
	}
	b.Period = ledger.Period(period)
	b.Alerts, err = parseAlerts(alerts)
	return b, err == nil, err
}

// BudgetsVersion implements ledger.View.
func (l *Ledger) BudgetsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := l.q.QueryRow(ctx, `SELECT version FROM ledger_budget_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("budgets version: %w", err)
	}
	return v, nil
}

// BudgetSpend implements ledger.View.
func (l *Ledger) BudgetSpend(ctx context.Context, k ledger.BudgetKey) (int64, int64, error) {
	var spent, pending int64
	err := l.q.QueryRow(ctx, `SELECT spent, pending FROM ledger_budget_usage WHERE scope = $1 AND subject = $2 AND period_start = $3`,
		string(k.Scope), k.Subject, k.PeriodStart).Scan(&spent, &pending)
	if noRows(err) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("budget spend: %w", err)
	}
	return spent, pending, nil
}

// CreateTenant implements ledger.Tx.
func (l *Ledger) CreateTenant(ctx context.Context, x ledger.Tenant) error {
	n, err := l.q.Exec(ctx, `INSERT INTO ledger_tenants (`+tenantCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`,
		x.ID, x.Name, string(x.Kind), string(x.Currency), x.CreditLimit, UnixNanos(x.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("tenant %s: %w", x.ID, ledger.ErrExists)
	}
	return nil
}

// RestartTenant implements ledger.Tx.
func (l *Ledger) RestartTenant(ctx context.Context, id string, c money.Currency, createdAt time.Time) (bool, error) {
	var moved int64
	err := l.q.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_accounts WHERE tenant_id = $1
		AND (posted_debits <> 0 OR posted_credits <> 0 OR pending_debits <> 0 OR pending_credits <> 0)`, id).Scan(&moved)
	if err != nil {
		return false, fmt.Errorf("restart tenant %s: %w", id, err)
	}
	if moved > 0 {
		return false, nil
	}
	if _, err := l.q.Exec(ctx, `UPDATE ledger_accounts SET currency = $2 WHERE tenant_id = $1`, id, string(c)); err != nil {
		return false, fmt.Errorf("restart tenant %s: %w", id, err)
	}
	n, err := l.q.Exec(ctx, `UPDATE ledger_tenants SET currency = $2, created_at = $3 WHERE id = $1`, id, string(c), UnixNanos(createdAt))
	if err != nil {
		return false, fmt.Errorf("restart tenant %s: %w", id, err)
	}
	return n == 1, nil
}

// CreateAccount implements ledger.Tx.
func (l *Ledger) CreateAccount(ctx context.Context, a ledger.Account) error {
	_, err := l.q.Exec(ctx, `INSERT INTO ledger_accounts (id, tenant_id, kind, currency, credit_limit, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.TenantID, string(a.Kind), string(a.Currency), a.CreditLimit, UnixNanos(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.ID, err)
	}
	return nil
}

// ApplyDelta implements ledger.Tx.
func (l *Ledger) ApplyDelta(ctx context.Context, id string, d ledger.Delta, g ledger.Guard) (bool, error) {
	n, err := l.q.Exec(ctx, `UPDATE ledger_accounts SET posted_debits = posted_debits + $1,
		posted_credits = posted_credits + $2, pending_debits = pending_debits + $3, pending_credits = pending_credits + $4
		WHERE id = $5
		AND (NOT CAST($6 AS BOOLEAN) OR posted_credits + $2 - posted_debits - $1 - pending_debits - $3 >= -credit_limit)
		AND (CAST($7 AS TEXT) = '' OR NOT EXISTS (SELECT 1 FROM ledger_accounts d WHERE d.id = $7 AND d.posted_debits > d.posted_credits))
		AND (CAST($8 AS TEXT) = '' OR NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = $8))`,
		d.PostedDebits, d.PostedCredits, d.PendingDebits, d.PendingCredits, id, g.Floor, g.NotOwing, g.NoRecord)
	if err != nil {
		return false, fmt.Errorf("update account %s: %w", id, err)
	}
	return n > 0, nil
}

// InsertTransfer implements ledger.Tx.
func (l *Ledger) InsertTransfer(ctx context.Context, x ledger.Transfer) (bool, error) {
	n, err := l.q.Exec(ctx, `INSERT INTO ledger_transfers (`+TransferColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		x.ID, x.Debit, x.Credit, x.Amount, string(x.Currency), string(x.Kind), string(x.Flag), x.PendingID, x.RequestID,
		x.TenantID, x.Note, UnixNanos(x.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("insert transfer %s: %w", x.ID, err)
	}
	return n > 0, nil
}

// InsertHold implements ledger.Tx.
func (l *Ledger) InsertHold(ctx context.Context, h ledger.Hold) (bool, error) {
	n, err := l.q.Exec(ctx, `INSERT INTO ledger_holds (`+HoldColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (request_id) DO NOTHING`,
		h.RequestID, h.TenantID, h.KeyID, h.AccountID, h.Amount, string(h.Currency), string(h.State), h.Node, h.Budgets,
		UnixNanos(h.CreatedAt), UnixNanos(h.ExpiresAt), UnixNanos(h.ResolvedAt))
	if err != nil {
		return false, fmt.Errorf("insert hold %s: %w", h.RequestID, err)
	}
	return n > 0, nil
}

// DeleteHold implements ledger.Tx.
func (l *Ledger) DeleteHold(ctx context.Context, requestID string) error {
	if _, err := l.q.Exec(ctx, `DELETE FROM ledger_holds WHERE request_id = $1`, requestID); err != nil {
		return fmt.Errorf("delete hold %s: %w", requestID, err)
	}
	return nil
}

// ResolveHold implements ledger.Tx.
func (l *Ledger) ResolveHold(ctx context.Context, requestID string, state ledger.HoldState, at time.Time) (ledger.Hold, bool, error) {
	h, err := scanHold(l.q.QueryRow(ctx, `UPDATE ledger_holds SET state = $1, resolved_at = $2
		WHERE request_id = $3 AND state = 'pending' RETURNING `+HoldColumns, string(state), UnixNanos(at), requestID))
	if noRows(err) {
		return ledger.Hold{}, false, nil
	}
	if err != nil {
		return ledger.Hold{}, false, fmt.Errorf("resolve hold %s: %w", requestID, err)
	}
	return h, true, nil
}

// InsertRecord implements ledger.Tx.
func (l *Ledger) InsertRecord(ctx context.Context, rec usage.Record) (bool, error) {
	stored, err := l.InsertRecords(ctx, []usage.Record{rec})
	if err != nil {
		return false, err
	}
	return stored[0], nil
}

var _ ledger.BatchWriter = (*Ledger)(nil)

// InsertRecords implements ledger.BatchWriter. It is the one way records
// are written (Store.InsertRecords too); those it stores go to the rollups.
func (l *Ledger) InsertRecords(ctx context.Context, recs []usage.Record) ([]bool, error) {
	stored, err := l.insert(ctx, recs)
	if err != nil {
		return nil, err
	}
	for i, ok := range stored {
		if ok {
			l.Inserted(recs[i])
		}
	}
	return stored, nil
}

// PostBatch implements ledger.BatchWriter.
func (l *Ledger) PostBatch(ctx context.Context, x ledger.Transfer) (int64, error) {
	var seq int64
	err := l.q.QueryRow(ctx, `INSERT INTO ledger_transfers (`+TransferColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq`,
		x.ID, x.Debit, x.Credit, x.Amount, string(x.Currency), string(x.Kind), string(x.Flag), x.PendingID, x.RequestID,
		x.TenantID, x.Note, UnixNanos(x.CreatedAt)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("insert transfer %s: %w", x.ID, err)
	}
	return seq, nil
}

// Inserted notes a record this transaction stored by another statement
// (PostgreSQL's one-statement settlements), for the rollups.
func (l *Ledger) Inserted(rec usage.Record) {
	if l.store != nil {
		l.inserted = append(l.inserted, rec)
	}
}

// FlushRollups adds the records this transaction stored to the rollups;
// the store calls it last, just before the commit.
func (l *Ledger) FlushRollups(ctx context.Context) error {
	if l.store == nil || len(l.inserted) == 0 {
		return nil
	}
	err := l.store.rollupRecords(ctx, l.q, l.inserted)
	l.inserted = l.inserted[:0]
	return err
}

// PutIdempotency implements ledger.Tx.
func (l *Ledger) PutIdempotency(ctx context.Context, e ledger.IdempotencyEntry) error {
	_, err := l.q.Exec(ctx, `INSERT INTO ledger_idempotency (key, op, body_hash, result, created_at) VALUES ($1, $2, $3, $4, $5)`,
		e.Key, e.Op, e.BodyHash, string(e.Result), UnixNanos(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store idempotency key: %w", err)
	}
	return nil
}

// CreateCode implements ledger.Tx.
func (l *Ledger) CreateCode(ctx context.Context, c ledger.Code) error {
	_, err := l.q.Exec(ctx, `INSERT INTO ledger_codes (`+codeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.Hash, c.Prefix, c.Amount, string(c.Currency), c.State, c.TenantID, UnixNanos(c.CreatedAt),
		UnixNanos(c.ExpiresAt), UnixNanos(c.RedeemedAt))
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return nil
}

// ClaimCode implements ledger.Tx.
func (l *Ledger) ClaimCode(ctx context.Context, hash, tenantID string, at time.Time) (ledger.Code, bool, error) {
	c, err := scanCode(l.q.QueryRow(ctx, `UPDATE ledger_codes SET state = 'redeemed', tenant_id = $1, redeemed_at = $2
		WHERE hash = $3 AND state = 'active' AND (expires_at = 0 OR expires_at > $2) RETURNING `+codeCols,
		tenantID, UnixNanos(at), hash))
	if noRows(err) {
		return ledger.Code{}, false, nil
	}
	if err != nil {
		return ledger.Code{}, false, fmt.Errorf("claim code: %w", err)
	}
	return c, true, nil
}

// PutBudget implements ledger.Tx.
func (l *Ledger) PutBudget(ctx context.Context, b ledger.Budget) error {
	var err error
	if b.Limit == 0 {
		_, err = l.q.Exec(ctx, `DELETE FROM ledger_budgets WHERE scope = $1 AND subject = $2`, string(b.Scope), b.Subject)
	} else {
		_, err = l.q.Exec(ctx, `INSERT INTO ledger_budgets (scope, subject, period, limit_nanos, alerts) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (scope, subject) DO UPDATE SET period = excluded.period, limit_nanos = excluded.limit_nanos, alerts = excluded.alerts`,
			string(b.Scope), b.Subject, string(b.Period), b.Limit, formatAlerts(b.Alerts))
	}
	if err != nil {
		return fmt.Errorf("put budget: %w", err)
	}
	if _, err := l.q.Exec(ctx, `UPDATE ledger_budget_version SET version = version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("put budget: bump version: %w", err)
	}
	return nil
}

// ReserveBudget implements ledger.Tx.
func (l *Ledger) ReserveBudget(ctx context.Context, k ledger.BudgetKey, amount, limit int64) (bool, error) {
	n, err := l.q.Exec(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending)
		VALUES ($1, $2, $3, $4) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending
		WHERE ledger_budget_usage.spent + ledger_budget_usage.pending + excluded.pending <= $5`,
		string(k.Scope), k.Subject, k.PeriodStart, amount, limit)
	if err != nil {
		return false, fmt.Errorf("reserve budget: %w", err)
	}
	return n > 0, nil
}

// MoveBudget implements ledger.Tx.
func (l *Ledger) MoveBudget(ctx context.Context, k ledger.BudgetKey, pending, spent int64) (int64, error) {
	var after int64
	err := l.q.QueryRow(ctx, `INSERT INTO ledger_budget_usage (scope, subject, period_start, pending, spent)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, subject, period_start) DO UPDATE
		SET pending = ledger_budget_usage.pending + excluded.pending, spent = ledger_budget_usage.spent + excluded.spent
		RETURNING spent`, string(k.Scope), k.Subject, k.PeriodStart, pending, spent).Scan(&after)
	if err != nil {
		return 0, fmt.Errorf("move budget: %w", err)
	}
	return after, nil
}

// MarkAlerted implements ledger.Tx.
func (l *Ledger) MarkAlerted(ctx context.Context, k ledger.BudgetKey, percent int) (bool, error) {
	n, err := l.q.Exec(ctx, `UPDATE ledger_budget_usage SET alerted = $1
		WHERE scope = $2 AND subject = $3 AND period_start = $4 AND alerted < $1`,
		percent, string(k.Scope), k.Subject, k.PeriodStart)
	if err != nil {
		return false, fmt.Errorf("mark budget alert: %w", err)
	}
	return n > 0, nil
}

// CheckpointHold implements ledger.Tx.
func (l *Ledger) CheckpointHold(ctx context.Context, requestID, checkpoint string) (bool, error) {
	n, err := l.q.Exec(ctx, `UPDATE ledger_holds SET checkpoint = $1 WHERE request_id = $2 AND state = 'pending'`, checkpoint, requestID)
	if err != nil {
		return false, fmt.Errorf("checkpoint hold %s: %w", requestID, err)
	}
	return n == 1, nil
}

// TouchNode implements ledger.Tx.
func (l *Ledger) TouchNode(ctx context.Context, node string, at time.Time) error {
	if _, err := l.q.Exec(ctx, `INSERT INTO ledger_nodes (node, seen_at) VALUES ($1, $2)
		ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at`, node, UnixNanos(at)); err != nil {
		return fmt.Errorf("touch node %s: %w", node, err)
	}
	return nil
}

// SetHoldBudgets implements ledger.Tx.
func (l *Ledger) SetHoldBudgets(ctx context.Context, requestID, budgets string) error {
	if _, err := l.q.Exec(ctx, `UPDATE ledger_holds SET budgets = $1 WHERE request_id = $2`, budgets, requestID); err != nil {
		return fmt.Errorf("hold budgets: %w", err)
	}
	return nil
}
