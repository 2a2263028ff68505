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
	"errors"
	"fmt"
	"time"

	"baimo/internal/money"
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
	KindHold   TransferKind = "hold"   // pending: a request's worst case
	KindSettle TransferKind = "settle" // posts (part of) a hold, in the store or in memory
	// KindSettleBatch posts, from one account, the settlements of a group
	// commit whose holds were in memory and covered their cost; each of
	// their usage records names it (usage.Record.SettledIn).
	KindSettleBatch TransferKind = "settle_batch"
	KindVoid        TransferKind = "void"     // releases a hold, posting nothing
	KindOverage     TransferKind = "overage"  // actual cost above the hold, from the account
	KindCharge      TransferKind = "charge"   // a cost with no open hold, from the account
	KindDebt        TransferKind = "debt"     // overage or charge the account could not cover
	KindTopUp       TransferKind = "topup"    // money in
	KindAdjust      TransferKind = "adjust"   // admin correction, either way
	KindRefund      TransferKind = "refund"   // money given back (revenue to account)
	KindRedeem      TransferKind = "redeem"   // a redemption code
	KindRepay       TransferKind = "repay"    // account pays down its debt
	KindWriteOff    TransferKind = "writeoff" // reserved: debt forgiven
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
