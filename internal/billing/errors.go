package billing

import (
	"errors"
	"fmt"
	"time"

	"baimo/internal/money"
)

// Errors the request path decides on; the gateway maps each to a client
// error in one place.
var (
	// ErrNoAccount says the key's tenant has no billing account.
	ErrNoAccount = errors.New("billing: the tenant has no account")
	// ErrBudgetExceeded says a key's or tenant's spending budget for the
	// period is used up.
	ErrBudgetExceeded = errors.New("billing: budget exceeded")
	// ErrNotFree says a free-tier tenant asked for a model that costs money.
	ErrNotFree = errors.New("billing: the free tier can use only free models")
)

// InsufficientError says the tenant's balance or credit cannot cover the
// request's hold.
type InsufficientError struct {
	Need     int64 // the hold that was refused, in nanos
	Currency money.Currency
	Err      error
}

func (e *InsufficientError) Error() string {
	return fmt.Sprintf("billing: cannot cover a hold of %s %s: %v", money.FormatNanos(e.Need), e.Currency, e.Err)
}

// Unwrap returns the cause.
func (e *InsufficientError) Unwrap() error { return e.Err }

// QuotaError says a free-tier daily quota is used up until Reset.
type QuotaError struct {
	What  string // "tokens" or "requests"
	Limit int64
	Reset time.Time
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("billing: the free tier's daily quota of %d %s is used up until %s", e.Limit, e.What, e.Reset.Format(time.RFC3339))
}

// UnavailableError says the books could not be consulted (the store is
// down, the ledger is closed): the request may be retried.
type UnavailableError struct {
	What string // what could not be done, for the client: "reserve the request's cost"
	Err  error
}

func (e *UnavailableError) Error() string { return "billing: cannot " + e.What + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// CurrencyError says a tenant's account is in another currency than the
// gateway bills in: a configuration error (billing.currency, or the tenant
// made in the wrong currency), not a passing fault. Retrying cannot help.
type CurrencyError struct {
	TenantID string
	Tenant   money.Currency // the tenant's account's currency
	Billing  money.Currency // the gateway's billing currency
}

func (e *CurrencyError) Error() string {
	return fmt.Sprintf("billing: tenant %s is billed in %s but the gateway bills in %s", e.TenantID, e.Tenant, e.Billing)
}
