// Package ledger is baimo's double-entry ledger: tenants and their accounts
// (prepaid, postpaid, free), immutable transfers, holds (pending transfers) for
// requests in flight, settlement together with the usage record, admin money
// mutations with idempotency keys, one-time redemption codes, statements and
// the audit that proves the books balance.
//
// Every account has four cached columns updated in the same transaction as
// the transfers that move them (TigerBeetle's model): posted and pending
// debits and credits. A customer account is credit-normal: its available
// balance is posted credits - posted debits - pending debits, and a hold
// (pending transfer) counts against it at once. The stores (package sqlite,
// package postgres) implement Store with small conditional primitives; the
// rules live here, once.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"baimo/internal/money"
	"baimo/internal/usage"
)

// Sentinel errors that callers decide on.
var (
	// ErrInsufficientFunds means the account cannot cover a hold or a debit
	// (or carries a debt that blocks new holds). The gateway answers 429
	// insufficient_quota.
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")
	// ErrNotFound means no tenant, hold or code matches.
	ErrNotFound = errors.New("ledger: not found")
	// ErrExists means a tenant with that id already exists.
	ErrExists = errors.New("ledger: already exists")
	// ErrIdempotencyConflict means an idempotency key was reused with a
	// different request body (HTTP 409).
	ErrIdempotencyConflict = errors.New("ledger: idempotency key reused with a different body")
	// ErrInvalid means the request is malformed (bad amount, id, currency).
	ErrInvalid = errors.New("ledger: invalid request")
	// ErrCodeUsed means a redemption code was already redeemed or has expired.
	ErrCodeUsed = errors.New("ledger: code already redeemed or expired")
	// ErrClosed means the ledger was closed; no more holds are accepted.
	ErrClosed = errors.New("ledger: closed")
)

// Limits on what one operation may carry.
const (
	// MaxAmount is the largest amount of one transfer: 100,000,000 main units.
	// Sums of many such amounts still fit in int64 for any realistic life;
	// the stores refuse an overflow instead of wrapping.
	MaxAmount = 100_000_000 * money.Scale
	// MaxIDLen bounds request ids, tenant ids and idempotency keys.
	MaxIDLen = 200
	// MaxNoteLen bounds free-text notes on admin transfers.
	MaxNoteLen = 500
)

// Kind is the kind of an account.
type Kind string

// Account kinds.
const (
	Prepaid  Kind = "prepaid"  // a balance that may not go below zero
	Postpaid Kind = "postpaid" // a credit limit, billed by statement
	Free     Kind = "free"     // no money; zero-priced models only
	System   Kind = "system"   // baimo's own side of every transfer; unbounded
	Debt     Kind = "debt"     // a prepaid tenant's unpaid overage; unbounded
)

// Valid reports whether k is a tenant account kind.
func (k Kind) Valid() bool { return k == Prepaid || k == Postpaid || k == Free }

// DefaultTenantID is the tenant of keys created without one.
const DefaultTenantID = "default"

// DefaultCreditLimit is the default tenant's demo credit limit: 1,000 CNY.
const DefaultCreditLimit = 1000 * money.Scale

// Tenant is an organisation (or one free-tier consumer) that owns keys and an
// account in one currency.
type Tenant struct {
	ID          string
	Name        string
	Kind        Kind
	Currency    money.Currency
	CreditLimit int64 // postpaid only, nanos
	CreatedAt   time.Time
}

// MainAccount returns the id of a tenant's account.
func MainAccount(tenantID string) string { return "tenant:" + tenantID }

// DebtAccount returns the id of the account that records a tenant's unpaid
// overage. While it is owing, new holds are refused.
func DebtAccount(tenantID string) string { return "debt:" + tenantID }

// RevenueAccount returns the id of the system account credited by charges.
func RevenueAccount(c money.Currency) string { return "sys:revenue:" + string(c) }

// FundingAccount returns the id of the system account debited by top-ups,
// adjustments and redemptions (the other side of money coming in).
func FundingAccount(c money.Currency) string { return "sys:funding:" + string(c) }

// Account is one ledger account with its cached balance columns.
type Account struct {
	ID             string
	TenantID       string // "" for system accounts
	Kind           Kind
	Currency       money.Currency
	CreditLimit    int64
	PostedDebits   int64
	PostedCredits  int64
	PendingDebits  int64
	PendingCredits int64
	CreatedAt      time.Time
}

// Posted returns posted credits minus posted debits (may be negative).
func (a Account) Posted() int64 { return a.PostedCredits - a.PostedDebits }

// Available returns what the account can still spend before its floor, not
// counting the credit limit: posted minus pending debits.
func (a Account) Available() int64 { return a.PostedCredits - a.PostedDebits - a.PendingDebits }

// Delta is a change to an account's cached columns.
type Delta struct {
	PostedDebits, PostedCredits, PendingDebits, PendingCredits int64
}

func (d *Delta) add(o Delta) error {
	var err [4]error
	d.PostedDebits, err[0] = money.AddNanos(d.PostedDebits, o.PostedDebits)
	d.PostedCredits, err[1] = money.AddNanos(d.PostedCredits, o.PostedCredits)
	d.PendingDebits, err[2] = money.AddNanos(d.PendingDebits, o.PendingDebits)
	d.PendingCredits, err[3] = money.AddNanos(d.PendingCredits, o.PendingCredits)
	return errors.Join(err[:]...)
}

// Guard is the condition a conditional account update must meet; when it is
// not met the store changes nothing and reports false.
type Guard struct {
	// Floor requires posted credits - posted debits - pending debits, after
	// the update, to be at least -credit_limit.
	Floor bool
	// NotOwing, when set, names a debt account that must not be owing.
	NotOwing string
	// NoRecord, when set, is a request id that must have no usage record.
	NoRecord string
}

// TransferKind says why money moved.
type TransferKind string

// Transfer kinds.
const (
	KindHold     TransferKind = "hold"     // pending: a request's worst case
	KindSettle   TransferKind = "settle"   // posts (part of) a hold, in the store or in memory
	KindVoid     TransferKind = "void"     // releases a hold, posting nothing
	KindOverage  TransferKind = "overage"  // actual cost above the hold, from the account
	KindCharge   TransferKind = "charge"   // a cost with no open hold, from the account
	KindDebt     TransferKind = "debt"     // overage or charge the account could not cover
	KindTopUp    TransferKind = "topup"    // money in
	KindAdjust   TransferKind = "adjust"   // admin correction, either way
	KindRefund   TransferKind = "refund"   // money given back (revenue to account)
	KindRedeem   TransferKind = "redeem"   // a redemption code
	KindRepay    TransferKind = "repay"    // account pays down its debt
	KindWriteOff TransferKind = "writeoff" // reserved: debt forgiven
)

// Flag says how a transfer moves the cached columns.
type Flag string

// Transfer flags.
const (
	FlagPosted  Flag = ""        // posts Amount
	FlagPending Flag = "pending" // reserves Amount (a hold)
	FlagPost    Flag = "post"    // resolves PendingID, posting Amount (<= the hold)
	FlagVoid    Flag = "void"    // resolves PendingID, posting nothing
)

// Transfer is one immutable movement of money from Debit to Credit.
type Transfer struct {
	ID        string
	Debit     string
	Credit    string
	Amount    int64
	Currency  money.Currency
	Kind      TransferKind
	Flag      Flag
	PendingID string // the hold a post or void resolves
	RequestID string
	TenantID  string
	Note      string
	CreatedAt time.Time
}

// HoldState is where a hold is in its life.
type HoldState string

// Hold states.
const (
	HoldPending HoldState = "pending"
	HoldPosted  HoldState = "posted"
	HoldVoided  HoldState = "voided"
)

// Hold is a request's pending transfer.
type Hold struct {
	RequestID  string
	TenantID   string
	KeyID      string
	AccountID  string
	Amount     int64
	Currency   money.Currency
	State      HoldState
	Node       string // the gateway process that placed it (see Reconcile)
	Budgets    string // the budget periods it reserved (opaque to stores)
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ResolvedAt time.Time
}

// HoldQuery selects pending holds for the sweeper and reconciliation.
type HoldQuery struct {
	ExpiresBefore time.Time // pending holds with ExpiresAt <= this; zero: any
	CreatedBefore time.Time // and CreatedAt < this; zero: any
	Node          *string   // and placed by this node; nil: any
	Limit         int
}

// IdempotencyEntry remembers the first result of an admin mutation.
type IdempotencyEntry struct {
	Key       string
	Op        string
	BodyHash  string
	Result    []byte // JSON of the first result
	CreatedAt time.Time
}

// Code is a one-time redemption code as stored (hashed, never in clear).
type Code struct {
	Hash       string
	Prefix     string
	Amount     int64
	Currency   money.Currency
	State      string // "active" or "redeemed"
	TenantID   string // who redeemed it
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	RedeemedAt time.Time
}

// UsageLine is one group of a tenant's usage in a period, for statements.
type UsageLine struct {
	Model     string
	Currency  money.Currency
	Requests  int64
	Input     int64
	Output    int64
	CostNanos int64
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
}

// AuditQuery parameterises AuditFacts.
type AuditQuery struct {
	Deadline time.Time // holds still pending that expired before this are overdue
	Limit    int
}

// View reads the ledger inside one consistent snapshot.
type View interface {
	Tenant(ctx context.Context, id string) (Tenant, error) // ErrNotFound
	Tenants(ctx context.Context) ([]Tenant, error)
	Account(ctx context.Context, id string) (Account, error)  // ErrNotFound
	Hold(ctx context.Context, requestID string) (Hold, error) // ErrNotFound
	PendingHolds(ctx context.Context, q HoldQuery) ([]Hold, error)
	TransfersByRequest(ctx context.Context, requestID string) ([]Transfer, error)
	// TenantTransfers returns a tenant's transfers created in [from, to), oldest first.
	TenantTransfers(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]Transfer, error)
	// RecordCost returns the CostNanos and Currency of the usage record of
	// requestID, and whether there is one.
	RecordCost(ctx context.Context, requestID string) (cost int64, currency string, found bool, err error)
	// UsageLines groups a tenant's usage records started in [from, to) by
	// model and currency.
	UsageLines(ctx context.Context, tenantID string, from, to time.Time) ([]UsageLine, error)
	// EachRatedLines calls fn with the model and the rated lines (JSON, see
	// package price) of each of a tenant's usage records started in
	// [from, to), for statements by rule kind.
	EachRatedLines(ctx context.Context, tenantID string, from, to time.Time, fn func(model string, lines []byte) error) error
	Idempotency(ctx context.Context, key string) (IdempotencyEntry, bool, error)
	Code(ctx context.Context, hash string) (Code, error) // ErrNotFound
	// Budget returns the budget of a key or tenant, and whether there is one.
	Budget(ctx context.Context, scope Scope, subject string) (Budget, bool, error)
	// BudgetSpend returns a budget period's spent and pending amounts.
	BudgetSpend(ctx context.Context, k BudgetKey) (spent, pending int64, err error)
	AuditFacts(ctx context.Context, q AuditQuery) (AuditFacts, error)
}

// Tx is one write transaction. Methods that report a bool return false (and
// change nothing) when their condition is not met.
type Tx interface {
	View
	CreateTenant(ctx context.Context, t Tenant) error // ErrExists
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
	LedgerView(ctx context.Context, fn func(View) error) error
}

func checkID(what, id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("%s %q: empty or longer than %d: %w", what, id, MaxIDLen, ErrInvalid)
	}
	return nil
}

func checkAmount(n int64) error {
	if n < 0 || n > MaxAmount {
		return fmt.Errorf("amount %s outside [0, %s]: %w", money.FormatNanos(n), money.FormatNanos(MaxAmount), ErrInvalid)
	}
	return nil
}

// TenantFor returns the tenant of a key's TenantID ("" is the default tenant).
func TenantFor(keyTenantID string) string {
	if keyTenantID == "" {
		return DefaultTenantID
	}
	return keyTenantID
}
