package ledger

// What the ledger needs from a database: the rows its rules read and write
// (View, Tx), the reports built from many rows (Reports), and the optional
// one-round-trip abilities of a network database (HoldWriter, SettleWriter,
// Pipeliner).

import (
	"context"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// UsageLine is one group of a tenant's usage in a period, for statements.
type UsageLine struct {
	Model           string
	Currency        money.Currency
	Requests        int64
	Refused, Failed int64 // of Requests (see usage.Outcome); the rest were served
	Input           int64
	Output          int64
	CostNanos       int64
}

// AuditFacts is what a store reports for the audit to judge; lists are
// bounded by the query's Limit.
type AuditFacts struct {
	Accounts []Account
	// Sums are the four columns recomputed from transfers, by account id.
	Sums map[string]Delta
	// OverdueHolds are pending holds with ExpiresAt before the deadline.
	OverdueHolds []Hold
	// HoldMismatches describe holds whose state disagrees with their
	// resolving transfers, or holds resolved more than once.
	HoldMismatches []string
	// CostMismatches describe requests whose posted amount differs from
	// their usage record's CostNanos (or transfers with no record).
	CostMismatches []string
	// Unbilled are the requests whose holds were voided with nothing
	// known of what they delivered (their void transfer's note is
	// NoteLost), newest first.
	Unbilled []string
}

// AuditQuery parameterises AuditFacts.
type AuditQuery struct {
	Deadline time.Time // holds still pending that expired before this are overdue
	Limit    int
}

// View reads the rows the ledger's rules decide on, inside one consistent
// snapshot (or inside a write transaction, Tx): each method looks up one
// row or a few by key.
type View interface {
	Tenant(ctx context.Context, id string) (Tenant, error)    // ErrNotFound
	Account(ctx context.Context, id string) (Account, error)  // ErrNotFound
	Hold(ctx context.Context, requestID string) (Hold, error) // ErrNotFound
	PendingHolds(ctx context.Context, q HoldQuery) ([]Hold, error)
	TransfersByRequest(ctx context.Context, requestID string) ([]Transfer, error)
	// RecordCost returns what the usage record of requestID says it costs,
	// and whether there is one.
	RecordCost(ctx context.Context, requestID string) (StoredCost, bool, error)
	Idempotency(ctx context.Context, key string) (IdempotencyEntry, bool, error)
	Code(ctx context.Context, hash string) (Code, error) // ErrNotFound
	// Budget returns the budget of a key or tenant, and whether there is one.
	Budget(ctx context.Context, scope Scope, subject string) (Budget, bool, error)
	// BudgetSpend returns a budget period's spent and pending amounts.
	BudgetSpend(ctx context.Context, k BudgetKey) (spent, pending int64, err error)
	// BudgetsVersion returns a number that PutBudget changes in the same
	// transaction: a node that shares the store caches budgets while it
	// stays the same.
	BudgetsVersion(ctx context.Context) (int64, error)
	// HoldCheckpoint returns the last checkpoint written onto a hold (""
	// when none; ErrNotFound without a hold).
	HoldCheckpoint(ctx context.Context, requestID string) (string, error)
	// StaleNodes returns at most limit nodes last seen before before,
	// the longest unseen first.
	StaleNodes(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// StoredCost is what a stored usage record says its request costs.
type StoredCost struct {
	TenantID  string // as recorded ("" is the default tenant)
	Cost      int64  // CostNanos
	Currency  string
	SettledIn int64 // usage.Record.SettledIn: the batch transfer that posted it, or 0
}

// Reports reads what listings, statements and the audit need: many rows,
// grouped or summed. The rules never call them, so a write transaction
// does not offer them.
type Reports interface {
	Tenants(ctx context.Context) ([]Tenant, error)
	// TenantTransfers returns a tenant's transfers created in [from, to), oldest first.
	TenantTransfers(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]Transfer, error)
	// UsageLines groups a tenant's usage records started in [from, to) by
	// model and currency.
	UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]UsageLine, error)
	// EachRatedLines calls fn with the model and the rated lines (JSON, see
	// package price) of each of a tenant's usage records started in
	// [from, to), for statements by rule kind.
	EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error
	AuditFacts(ctx context.Context, q AuditQuery) (AuditFacts, error)
}

// Snapshot is one read-only snapshot of the ledger: its rows and reports.
type Snapshot interface {
	View
	Reports
}

// Tx is one write transaction. Methods that report a bool return false (and
// change nothing) when their condition is not met.
type Tx interface {
	View
	CreateTenant(ctx context.Context, t Tenant) error // ErrExists
	// RestartTenant gives a tenant whose accounts have never moved (every
	// cached column zero) another currency and creation time, its accounts
	// the currency; false, changing nothing, if one of them has moved.
	RestartTenant(ctx context.Context, id string, c money.Currency, createdAt time.Time) (bool, error)
	// CreateAccount inserts a, or does nothing if its id exists.
	CreateAccount(ctx context.Context, a Account) error
	// ApplyDelta adds d to the account's cached columns if g holds.
	ApplyDelta(ctx context.Context, accountID string, d Delta, g Guard) (bool, error)
	// InsertTransfer inserts t, or reports false if its id exists.
	InsertTransfer(ctx context.Context, t Transfer) (bool, error)
	// InsertHold inserts h, or reports false if its request id has one.
	InsertHold(ctx context.Context, h Hold) (bool, error)
	// DeleteHold removes a hold inserted earlier in the same transaction.
	DeleteHold(ctx context.Context, requestID string) error
	// ResolveHold moves a pending hold to state and returns it as it was;
	// false if it is not pending (or absent).
	ResolveHold(ctx context.Context, requestID string, state HoldState, at time.Time) (Hold, bool, error)
	// InsertRecord stores a usage record, or reports false if its request
	// id is already stored (leaving that record as it was).
	InsertRecord(ctx context.Context, rec usage.Record) (bool, error)
	PutIdempotency(ctx context.Context, e IdempotencyEntry) error
	CreateCode(ctx context.Context, c Code) error
	// ClaimCode marks an active, unexpired code redeemed by tenantID.
	ClaimCode(ctx context.Context, hash, tenantID string, at time.Time) (Code, bool, error)
	// PutBudget creates or replaces a budget; a zero Limit deletes it.
	PutBudget(ctx context.Context, b Budget) error
	// ReserveBudget adds amount to a period's pending if spent + pending +
	// amount stays within limit (creating the period's row if needed).
	ReserveBudget(ctx context.Context, k BudgetKey, amount, limit int64) (bool, error)
	// MoveBudget adds to a period's pending and spent (creating the row if
	// needed) and returns spent after.
	MoveBudget(ctx context.Context, k BudgetKey, pending, spent int64) (int64, error)
	// MarkAlerted records that a period crossed percent; false if it already had.
	MarkAlerted(ctx context.Context, k BudgetKey, percent int) (bool, error)
	// SetHoldBudgets records the budget periods a pending hold reserved.
	SetHoldBudgets(ctx context.Context, requestID, budgets string) error
	// CheckpointHold stores a pending hold's latest checkpoint (opaque to
	// stores); false if the hold is not pending.
	CheckpointHold(ctx context.Context, requestID, checkpoint string) (bool, error)
	// TouchNode records that node was alive at at.
	TouchNode(ctx context.Context, node string, at time.Time) error
}

// BatchWriter is an optional ability of a Tx, for the group commit of
// settlements of holds kept in memory (Options.Exclusive): store a batch's
// usage records in a few statements, and post, from each account, one
// transfer for all its settlements, which their records name.
type BatchWriter interface {
	// InsertRecords stores recs and reports which it stored (false: the
	// request id had a record, left as it was).
	InsertRecords(ctx context.Context, recs []usage.Record) ([]bool, error)
	// PostBatch inserts t, a batch's settlements from one account, and
	// returns its sequence number, which the records it posts carry
	// (usage.Record.SettledIn).
	PostBatch(ctx context.Context, t Transfer) (int64, error)
}

// HoldOutcome is what a HoldWriter did.
type HoldOutcome uint8

// Hold outcomes.
const (
	HoldPlaced    HoldOutcome = iota // hold, account update and pending transfer written
	HoldDuplicate                    // a hold with the request id exists; nothing written
	HoldRefused                      // the guard failed; only the hold row was written (the ledger deletes it)
)

// HoldWriter is an optional ability of a Tx (a network database, where
// round trips dominate): InsertHold, ApplyDelta of the hold's amount to
// pending debits under g, and InsertTransfer of pending, in one round trip,
// each step only if the one before it took effect. The ledger uses it for
// holds that reserve no budget.
type HoldWriter interface {
	PlaceHold(ctx context.Context, h Hold, g Guard, pending Transfer) (HoldOutcome, error)
}

// PlaceStep is one HoldWriter.PlaceHold in a pipeline; Outcome is its result.
type PlaceStep struct {
	Hold    Hold
	Guard   Guard
	Pending Transfer
	Outcome HoldOutcome
}

// PostStep is one SettleWriter.PostHold in a pipeline; Hold and Posted are
// its results.
type PostStep struct {
	Record                       usage.Record
	SettleID, PendingID, Revenue string
	At                           time.Time
	Hold                         Hold
	Posted                       bool
}

// Step is one operation of a pipeline: Place or Post.
type Step struct {
	Place *PlaceStep
	Post  *PostStep
}

// Pipeliner is an optional ability of a Tx: run the one-statement holds and
// settlements of a whole batch in one round trip, filling in each step's
// results as if each step ran alone in order, except that a store may run
// all the settlements before the holds (they only release pending amounts).
// Steps name distinct request ids.
type Pipeliner interface {
	HoldWriter
	SettleWriter
	Pipeline(ctx context.Context, steps []Step) error
}

// SettleWriter is an optional ability of a Tx: in one round trip, store rec
// (only while its hold is pending) and post its pending hold: mark it
// posted, move min(rec.CostNanos, hold) from pending to posted debits on the
// hold's account, and insert the post transfer (settleID, resolving
// pendingID, crediting revenue). It returns the hold as it was and true, or
// false when the hold was not pending or the record already stored; then it
// wrote nothing, or only the record, and the ledger goes the general way.
// System accounts are left to the ledger.
type SettleWriter interface {
	PostHold(ctx context.Context, rec usage.Record, settleID, pendingID, revenue string, at time.Time) (Hold, bool, error)
}

// Store is what the ledger needs from a database.
type Store interface {
	// LedgerUpdate runs fn in one write transaction, committing if it
	// returns nil. fn may be called more than once (a PostgreSQL store
	// retries on serialization failures and deadlocks), so it must not
	// keep effects outside the transaction before it returns.
	LedgerUpdate(ctx context.Context, fn func(Tx) error) error
	// LedgerView runs fn in one read-only snapshot.
	LedgerView(ctx context.Context, fn func(Snapshot) error) error
}
