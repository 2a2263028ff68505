package ledger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"baimo/internal/money"
)

// Scope says what a budget limits.
type Scope string

// Budget scopes.
const (
	ScopeKey    Scope = "key"    // one API key's spending
	ScopeTenant Scope = "tenant" // a whole tenant's spending
)

// Period is how often a budget starts over.
type Period string

// Budget periods; they start at midnight UTC (day) and on the first of the
// month UTC (month).
const (
	PeriodDay   Period = "day"
	PeriodMonth Period = "month"
	PeriodTotal Period = "total" // never resets: a key's spend limit
)

// Budget caps what a key or a tenant may spend in a period. Holds count
// against it at once (a request that could exceed it is refused with
// ErrBudgetExceeded); settlements replace the hold by the actual cost.
// Crossing an alert threshold (percent of Limit) is reported once per period.
type Budget struct {
	Scope   Scope
	Subject string // key id or tenant id
	Period  Period
	Limit   int64 // nanos
	Alerts  []int // percents, e.g. 50, 80, 100
}

// BudgetKey names one period of one budget's usage.
type BudgetKey struct {
	Scope       Scope
	Subject     string
	PeriodStart int64 // unix nanos; 0 for PeriodTotal
}

// BudgetAlert reports that a budget's spending crossed a threshold.
type BudgetAlert struct {
	Budget  Budget
	Percent int
	Spent   int64
	Period  time.Time
}

// ErrBudgetExceeded means a hold would take a key's or a tenant's spending
// in the period past its budget (HTTP 429, like insufficient funds).
var ErrBudgetExceeded = fmt.Errorf("%w: budget exceeded", ErrInsufficientFunds)

func periodStart(p Period, t time.Time) int64 {
	t = t.UTC()
	switch p {
	case PeriodDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).UnixNano()
	case PeriodMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).UnixNano()
	}
	return 0
}

// encodeBudgetKeys stores on a hold the budget periods it reserved, so its
// settlement moves the same rows even if the budget changed meanwhile.
func encodeBudgetKeys(ks []BudgetKey) string {
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = string(k.Scope) + "|" + k.Subject + "|" + strconv.FormatInt(k.PeriodStart, 10)
	}
	return strings.Join(parts, ";")
}

func decodeBudgetKeys(s string) ([]BudgetKey, error) {
	if s == "" {
		return nil, nil
	}
	var out []BudgetKey
	for _, p := range strings.Split(s, ";") {
		f := strings.Split(p, "|")
		if len(f) != 3 {
			return nil, fmt.Errorf("hold budgets %q: malformed", s)
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("hold budgets %q: %w", s, err)
		}
		out = append(out, BudgetKey{Scope: Scope(f[0]), Subject: f[1], PeriodStart: n})
	}
	return out, nil
}

// budgetCache keeps the budgets of keys and tenants in memory. An
// exclusive ledger (the store's only writer) trusts it until SetBudget
// changes an entry. A ledger that shares its store trusts it only within
// one version of the store's budgets (View.BudgetsVersion, which every
// budget change bumps in its own transaction): each write transaction reads
// the version first (syncBudgets), and a newer one empties the cache, so a
// budget set on any node governs every node's next transaction.
type budgetCache struct {
	mu      sync.Mutex
	version int64 // of the entries, for a shared store
	synced  bool  // version was read at least once
	entries map[string]budgetEntry
}

type budgetEntry struct {
	b  Budget
	ok bool // false: there is no budget
}

// maxCachedBudgets bounds the cache; past it the cache starts over.
const maxCachedBudgets = 100_000

// txBudgetsKey is the context key of the budgets version a write
// transaction read (see syncBudgets).
type txBudgetsKey struct{}

// syncBudgets reads the store's budgets version at the start of a write
// transaction of a shared ledger, empties the cache if it changed, and
// returns ctx carrying the version for budgetsFor.
func (l *Ledger) syncBudgets(ctx context.Context, v View) (context.Context, error) {
	ver, err := v.BudgetsVersion(ctx)
	if err != nil {
		return ctx, err
	}
	c := &l.budgets
	c.mu.Lock()
	if !c.synced || c.version != ver {
		c.version, c.synced, c.entries = ver, true, nil
	}
	c.mu.Unlock()
	return context.WithValue(ctx, txBudgetsKey{}, ver), nil
}

// cacheable reports whether budgets read under ctx may be cached and taken
// from the cache: always for an exclusive ledger; for a shared one, when
// ctx's transaction read the cache's version. The caller holds budgets.mu.
func (l *Ledger) cacheable(ctx context.Context) bool {
	if l.adm != nil {
		return true
	}
	ver, ok := ctx.Value(txBudgetsKey{}).(int64)
	return ok && l.budgets.synced && ver == l.budgets.version
}

type budgetScope struct {
	scope   Scope
	subject string
}

// budgetScopes are the budgets a request may meet: its key's and its tenant's.
func budgetScopes(keyID, tenantID string) [2]budgetScope {
	return [2]budgetScope{{ScopeKey, keyID}, {ScopeTenant, tenantID}}
}

// cachedBudgets returns the budgets of a key and of a tenant from the cache
// of an exclusive ledger alone; hit is false when the cache cannot say.
func (l *Ledger) cachedBudgets(keyID, tenantID string) (out []Budget, hit bool) {
	l.budgets.mu.Lock()
	defer l.budgets.mu.Unlock()
	for _, s := range budgetScopes(keyID, tenantID) {
		if s.subject == "" {
			continue
		}
		e, ok := l.budgets.entries[string(s.scope)+"|"+s.subject]
		if !ok {
			return nil, false
		}
		if e.ok {
			out = append(out, e.b)
		}
	}
	return out, true
}

// budgetsFor returns the budgets of a key and of a tenant that exist.
func (l *Ledger) budgetsFor(ctx context.Context, v View, keyID, tenantID string) ([]Budget, error) {
	var out []Budget
	for _, s := range budgetScopes(keyID, tenantID) {
		if s.subject == "" {
			continue
		}
		id := string(s.scope) + "|" + s.subject
		l.budgets.mu.Lock()
		e, hit := l.budgets.entries[id]
		hit = hit && l.cacheable(ctx)
		l.budgets.mu.Unlock()
		if !hit {
			b, ok, err := v.Budget(ctx, s.scope, s.subject)
			if err != nil {
				return nil, err
			}
			e = budgetEntry{b: b, ok: ok}
			l.budgets.mu.Lock()
			if l.cacheable(ctx) {
				if l.budgets.entries == nil || len(l.budgets.entries) >= maxCachedBudgets {
					l.budgets.entries = map[string]budgetEntry{}
				}
				l.budgets.entries[id] = e
			}
			l.budgets.mu.Unlock()
		}
		if e.ok {
			out = append(out, e.b)
		}
	}
	return out, nil
}

// SetBudget creates or replaces the budget of a key or a tenant. A zero
// Limit removes it.
func (l *Ledger) SetBudget(ctx context.Context, b Budget) error {
	if b.Scope != ScopeKey && b.Scope != ScopeTenant {
		return fmt.Errorf("budget scope %q: %w", b.Scope, ErrInvalid)
	}
	if err := checkID("budget subject", b.Subject); err != nil {
		return err
	}
	if b.Period != PeriodDay && b.Period != PeriodMonth && b.Period != PeriodTotal {
		return fmt.Errorf("budget period %q: %w", b.Period, ErrInvalid)
	}
	if err := checkAmount(b.Limit); err != nil {
		return fmt.Errorf("budget limit: %w", err)
	}
	if len(b.Alerts) > 10 {
		return fmt.Errorf("budget: more than 10 alert thresholds: %w", ErrInvalid)
	}
	for _, a := range b.Alerts {
		if a <= 0 || a > 1000 {
			return fmt.Errorf("budget alert %d%%: %w", a, ErrInvalid)
		}
	}
	b.Alerts = slices.Clone(b.Alerts)
	slices.Sort(b.Alerts)
	if err := l.update(ctx, func(tx Tx) error { return tx.PutBudget(ctx, b) }); err != nil {
		return fmt.Errorf("set budget of %s %s: %w", b.Scope, b.Subject, err)
	}
	// An exclusive ledger's cache is never checked against the store: drop
	// the entry. A shared ledger's next transaction sees the new version.
	l.budgets.mu.Lock()
	delete(l.budgets.entries, string(b.Scope)+"|"+b.Subject)
	l.budgets.mu.Unlock()
	return nil
}

// BudgetUsage returns what a budget has spent and holds in the period
// containing at.
func (l *Ledger) BudgetUsage(ctx context.Context, scope Scope, subject string, at time.Time) (b Budget, spent, pending int64, err error) {
	err = l.store.LedgerView(ctx, func(v Snapshot) error {
		var ok bool
		b, ok, err = v.Budget(ctx, scope, subject)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("budget of %s %s: %w", scope, subject, ErrNotFound)
		}
		spent, pending, err = v.BudgetSpend(ctx, BudgetKey{Scope: scope, Subject: subject, PeriodStart: periodStart(b.Period, at)})
		return err
	})
	return b, spent, pending, err
}

// reserveBudgets counts a hold against its key's and tenant's budgets; it
// returns the periods reserved, or ErrBudgetExceeded having reserved none.
func (l *Ledger) reserveBudgets(ctx context.Context, tx Tx, keyID, tenantID string, amount int64, now time.Time) ([]BudgetKey, error) {
	bs, err := l.budgetsFor(ctx, tx, keyID, tenantID)
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	var keys []BudgetKey
	for _, b := range bs {
		k := BudgetKey{Scope: b.Scope, Subject: b.Subject, PeriodStart: periodStart(b.Period, now)}
		ok := amount <= b.Limit
		if ok {
			if ok, err = tx.ReserveBudget(ctx, k, amount, b.Limit); err != nil {
				return nil, err
			}
		}
		if !ok {
			// Give back what the earlier budget of this hold reserved.
			for _, r := range keys {
				if _, err := tx.MoveBudget(ctx, r, -amount, 0); err != nil {
					return nil, err
				}
			}
			return nil, fmt.Errorf("%s %s: %w", b.Scope, b.Subject, ErrBudgetExceeded)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// releaseBudgets replaces a hold's reservation by its cost (0 for a void)
// and reports the alert thresholds the spending crossed. A budget of the
// hold's key or tenant that it did not reserve (set while the request
// ran, on any node) is charged the cost in the current period too: every
// cost counts against every budget in force when it is settled.
func (l *Ledger) releaseBudgets(ctx context.Context, tx Tx, h Hold, cost int64, now time.Time) ([]BudgetAlert, error) {
	keys, err := decodeBudgetKeys(h.Budgets)
	if err != nil {
		return nil, err
	}
	alerts, err := l.spendBudgets(ctx, tx, keys, -h.Amount, cost)
	if err != nil || cost == 0 {
		return alerts, err
	}
	bs, err := l.budgetsFor(ctx, tx, h.KeyID, h.TenantID)
	if err != nil {
		return nil, err
	}
	var late []BudgetKey
	for _, b := range bs {
		if !slices.ContainsFunc(keys, func(k BudgetKey) bool { return k.Scope == b.Scope && k.Subject == b.Subject }) {
			late = append(late, BudgetKey{Scope: b.Scope, Subject: b.Subject, PeriodStart: periodStart(b.Period, now)})
		}
	}
	more, err := l.spendBudgets(ctx, tx, late, 0, cost)
	return append(alerts, more...), err
}

// chargeBudgets counts a cost that had no hold against the budgets of its
// key and tenant in the current period.
func (l *Ledger) chargeBudgets(ctx context.Context, tx Tx, keyID, tenantID string, cost int64, now time.Time) ([]BudgetAlert, error) {
	if cost == 0 {
		return nil, nil
	}
	bs, err := l.budgetsFor(ctx, tx, keyID, tenantID)
	if err != nil {
		return nil, err
	}
	keys := make([]BudgetKey, len(bs))
	for i, b := range bs {
		keys[i] = BudgetKey{Scope: b.Scope, Subject: b.Subject, PeriodStart: periodStart(b.Period, now)}
	}
	return l.spendBudgets(ctx, tx, keys, 0, cost)
}

func (l *Ledger) spendBudgets(ctx context.Context, tx Tx, keys []BudgetKey, pending, cost int64) ([]BudgetAlert, error) {
	var alerts []BudgetAlert
	for _, k := range keys {
		spent, err := tx.MoveBudget(ctx, k, pending, cost)
		if err != nil {
			return nil, err
		}
		if cost == 0 {
			continue
		}
		b, ok, err := tx.Budget(ctx, k.Scope, k.Subject)
		if err != nil {
			return nil, err
		}
		if !ok || b.Limit == 0 {
			continue
		}
		crossed := 0
		for _, a := range b.Alerts {
			threshold, err := money.MulDiv(b.Limit, int64(a), 100)
			if err != nil {
				return nil, err
			}
			if spent >= threshold {
				crossed = a
			}
		}
		if crossed == 0 {
			continue
		}
		first, err := tx.MarkAlerted(ctx, k, crossed)
		if err != nil {
			return nil, err
		}
		if first {
			alerts = append(alerts, BudgetAlert{Budget: b, Percent: crossed, Spent: spent, Period: time.Unix(0, k.PeriodStart).UTC()})
		}
	}
	return alerts, nil
}
