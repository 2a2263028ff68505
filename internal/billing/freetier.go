package billing

import (
	"context"
	"errors"
	"sync"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// FreeTier enforces the free tier: tenants whose account is of kind free may
// use only models that cost nothing, within a daily quota of tokens and of
// requests (the C-end free tier). The day runs in Zone.
//
// Counting: at a tenant's first request of the day, and every reseed
// interval after it, the node reads the day's totals from the usage records;
// between reads it adds what it admitted itself. Tokens are reserved before
// the call (prompt plus capped max_tokens) and trued up after, so concurrent
// requests on one node cannot slip past. Several nodes each add their own
// admissions between reads, so together they may overshoot by what the other
// nodes admitted within one reseed interval.
type FreeTier struct {
	DailyTokens   int64 // 0: no token quota
	DailyRequests int64 // 0: no request quota
	Zone          *time.Location
	// Tenants tells a tenant's account kind; Totals reads the usage records.
	Tenants interface {
		Tenant(ctx context.Context, id string) (ledger.Tenant, error)
	}
	Totals usage.Store
	Clock  interface{ Now() time.Time }

	mu     sync.Mutex
	counts map[string]*dayCount
}

// reseedEvery is how often a tenant's day totals are read again.
const reseedEvery = 5 * time.Second

type dayCount struct {
	day    time.Time // start of the day counted
	seeded time.Time // when the store's totals were last read
	// tokens and requests are the store's totals at the last read plus what
	// finished on this node since; inflight* are admitted and not finished.
	tokens, requests                 int64
	inflightTokens, inflightRequests int64
}

// admit checks a request of a free tenant. It returns a release function to
// call with the tokens actually used, or nil when the tenant is not on the
// free tier.
func (f *FreeTier) admit(ctx context.Context, tenantID string, reserve int64, free bool) (func(used int64), error) {
	return f.admitFunc(ctx, tenantID, func() int64 { return reserve }, free)
}

// admitFunc is admit with the tokens to reserve computed only for a tenant
// on the free tier: counting a prompt is dear, and most tenants are not.
func (f *FreeTier) admitFunc(ctx context.Context, tenantID string, tokens func() int64, free bool) (func(used int64), error) {
	t, err := f.Tenants.Tenant(ctx, tenantID)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil // the ledger refuses unknown tenants with its own error
	}
	if err != nil {
		return nil, &UnavailableError{What: "check the account", Err: err}
	}
	if t.Kind != ledger.Free {
		return nil, nil
	}
	if !free {
		return nil, ErrNotFree
	}
	reserve := tokens()
	now := f.Clock.Now().In(f.Zone)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, f.Zone)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[string]*dayCount{}
	}
	c := f.counts[t.ID]
	if c == nil || !c.day.Equal(day) {
		c = &dayCount{day: day}
		f.counts[t.ID] = c
	}
	if c.seeded.IsZero() || now.Sub(c.seeded) >= reseedEvery {
		// Only served requests count against the quota, not refused ones.
		tot, err := f.Totals.TotalRecords(ctx, usage.Filter{TenantID: t.ID, From: day, Status: 200})
		if err != nil {
			return nil, &UnavailableError{What: "check the free-tier quota", Err: err}
		}
		c.tokens, c.requests, c.seeded = tot.Input+tot.Output, tot.Requests, now
	}
	if f.DailyRequests > 0 && c.requests+c.inflightRequests+1 > f.DailyRequests {
		return nil, f.exhausted("requests", f.DailyRequests, day)
	}
	if f.DailyTokens > 0 && c.tokens+c.inflightTokens+reserve > f.DailyTokens {
		return nil, f.exhausted("tokens", f.DailyTokens, day)
	}
	c.inflightRequests++
	c.inflightTokens += reserve
	return func(used int64) {
		f.mu.Lock()
		c.inflightRequests--
		c.inflightTokens -= reserve
		if used > 0 {
			c.requests++
			c.tokens += used
		}
		f.mu.Unlock()
	}, nil
}

func (f *FreeTier) exhausted(what string, limit int64, day time.Time) error {
	return &QuotaError{What: what, Limit: limit, Reset: day.Add(24 * time.Hour)}
}
