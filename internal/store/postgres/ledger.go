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
	"baimo/internal/store/sqlcore"
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
			lt := &ledgerTx{db.Ledger(querier{tx}), tx}
			if err := fn(lt); err != nil {
				return err
			}
			return lt.FlushRollups(ctx)
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
func (db *DB) LedgerView(ctx context.Context, fn func(ledger.Snapshot) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	return fn(db.Ledger(querier{tx}))
}

// ledgerTx is the shared primitives (sqlcore.Ledger) plus PostgreSQL's
// one-round-trip forms of a hold and a settlement (HoldWriter,
// SettleWriter) and their pipelined batch (Pipeliner, pipeline.go).
type ledgerTx struct {
	*sqlcore.Ledger
	tx pgx.Tx
}

// The columns of the ledger's rows and of usage records, and their times.
const (
	holdCols     = sqlcore.HoldColumns
	transferCols = sqlcore.TransferColumns
)

var (
	unixNanos     = sqlcore.UnixNanos
	fromUnixNanos = sqlcore.FromUnixNanos
)

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
	cols := sqlcore.InsertRecord[:strings.Index(sqlcore.InsertRecord, "VALUES")]
	n := sqlcore.NumRecordColumns
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

func (t *ledgerTx) postArgs(ctx context.Context, rec usage.Record, settleID, pendingID, revenue string, at time.Time) ([]any, error) {
	args, err := t.RecordArgs(ctx, &rec)
	if err != nil {
		return nil, err
	}
	if args[sqlcore.RecordCostArg] != any(rec.CostNanos) { // $28 in sqlPostHold
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
	h.Currency, h.State = money.Currency(cur), ledger.HoldPending // as it was, like ResolveHold
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = fromUnixNanos(created), fromUnixNanos(expires), fromUnixNanos(resolved)
	return h, true, nil
}

func (t *ledgerTx) PostHold(ctx context.Context, rec usage.Record, settleID, pendingID, revenue string, at time.Time) (ledger.Hold, bool, error) {
	args, err := t.postArgs(ctx, rec, settleID, pendingID, revenue, at)
	if err != nil {
		return ledger.Hold{}, false, err
	}
	h, posted, err := scanPost(t.tx.QueryRow(ctx, sqlPostHold, args...), rec.RequestID, settleID)
	if posted {
		t.Inserted(rec) // the record is stored exactly when its hold is posted
	}
	return h, posted, err
}
