package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"baimo/internal/money"
)

// Holds in memory (Options.Exclusive).
//
// When this process is the only writer of its store (one gateway on an
// embedded SQLite database), a hold need not be a row: the process itself is
// the one place every admission passes, so it keeps the holds of requests in
// flight in memory and checks each new one against an exact mirror of the
// tenant's committed account. A request then waits for no write before its
// upstream call, and its one durable write is its settlement, posted with its
// usage record in one transaction as always.
//
// Nothing about money changes. A hold never moved money; it only kept
// concurrent requests from spending the same balance, and the mirror does
// that with the same rule (available minus every hold in flight stays above
// the floor). After a crash a durable hold with no usage record is voided
// and one with a record is settled from it; a hold in memory needs neither:
// the record and its settlement commit together or not at all.
//
// Exactness of the mirror rests on three things: every write of this
// process goes through Ledger.update, which serialises write transactions
// (writeMu), tracks their account deltas and applies them to the mirror only
// after the commit; a mirror entry is (re)loaded from the store only under
// writeMu, when no transaction is in flight; and while a transaction is in
// flight, admissions also count its decreases not covered by a hold (txneg),
// so the mirror is never more generous than the store either before or after
// the commit. Another process writing the same store would break the first
// of these: `baimo serve` takes a lock on the database for this reason.
type admission struct {
	writeMu sync.Mutex // held for each write transaction and each mirror load

	mu      sync.Mutex // guards the fields below
	tenants map[string]*mirror
	holds   map[string]*memHold // pending holds by request id
	recent  recentHolds         // resolved ones, for retries
}

// mirror is one tenant's committed accounts and what is held against them.
type mirror struct {
	loaded bool    // main and debt equal the store's committed rows
	main   Account // the tenant's main account
	debt   Account // its debt account
	holds  int64   // sum of the tenant's holds in memory
	txneg  int64   // decreases of the transaction in flight not covered by a hold
}

// memHold is a hold kept in memory.
type memHold struct {
	Hold
}

func newAdmission() *admission {
	return &admission{tenants: map[string]*mirror{}, holds: map[string]*memHold{},
		recent: recentHolds{max: recentHoldsMax}}
}

// recentHoldsMax bounds the resolved holds kept for retries (about 1 MB).
// The gateway's request ids are unique, so only a caller retrying the same
// request within this many later ones needs them; an older retry of a
// settled request gets a new hold, which no settlement charges twice (the
// first record and its transfers are found) and the sweeper releases at
// its expiry.
const recentHoldsMax = 1 << 12

// recentHolds remembers the last resolved holds (and requests settled with
// no hold, as a zero Hold) in a ring.
type recentHolds struct {
	max   int
	byReq map[string]Hold
	ring  []string
	next  int
}

func (r *recentHolds) add(req string, h Hold) {
	if r.byReq == nil {
		r.byReq = map[string]Hold{}
	}
	if _, ok := r.byReq[req]; !ok {
		if len(r.ring) < r.max {
			r.ring = append(r.ring, req)
		} else {
			delete(r.byReq, r.ring[r.next])
			r.ring[r.next] = req
			r.next = (r.next + 1) % r.max
		}
	}
	r.byReq[req] = h
}

// available is what the tenant may still hold or spend in memory's view.
func (m *mirror) available() (int64, bool) {
	a, err := money.SubNanos(m.main.Available(), m.holds)
	if err != nil {
		return 0, false
	}
	if a, err = money.SubNanos(a, m.txneg); err != nil {
		return 0, false
	}
	return a, true
}

func (m *mirror) owing() bool { return m.debt.PostedDebits > m.debt.PostedCredits }

// holdInMemory places r's hold in memory. done is false when the hold must
// be written to the store instead (the key or tenant has a budget, whose
// periods are reserved in the store).
func (l *Ledger) holdInMemory(ctx context.Context, r HoldRequest) (h Hold, done bool, err error) {
	t, ok := l.cachedTenant(r.TenantID)
	now := l.clock.Now()
	bs, hit := l.cachedBudgets(r.KeyID, r.TenantID)
	if !ok || !hit {
		err := l.store.LedgerView(ctx, func(v Snapshot) error {
			var err error
			if t, err = l.tenant(ctx, v, r.TenantID); err != nil {
				return err
			}
			bs, err = l.budgetsFor(ctx, v, r.KeyID, t.ID)
			return err
		})
		if err != nil {
			return Hold{}, true, err
		}
	}
	if len(bs) > 0 {
		return Hold{}, false, nil
	}
	if r.Amount.Currency != "" && r.Amount.Currency != t.Currency {
		return Hold{}, true, fmt.Errorf("hold in %s for a %s account: %w", r.Amount.Currency, t.Currency, ErrInvalid)
	}
	a := l.adm
	for {
		a.mu.Lock()
		m := a.tenants[t.ID]
		if m != nil && m.loaded {
			h, err := a.place(m, t, r, l, now)
			a.mu.Unlock()
			return h, true, err
		}
		a.mu.Unlock()
		if err := l.loadMirror(ctx, t.ID); err != nil {
			return Hold{}, true, err
		}
	}
}

// place decides a hold on a loaded mirror; a.mu is held.
func (a *admission) place(m *mirror, t Tenant, r HoldRequest, l *Ledger, now time.Time) (Hold, error) {
	if h, ok := a.holds[r.RequestID]; ok {
		return h.Hold, nil
	}
	if h, ok := a.recent.byReq[r.RequestID]; ok {
		if h.RequestID == "" {
			return Hold{}, fmt.Errorf("request %s is already settled: %w", r.RequestID, ErrInvalid)
		}
		return h, nil
	}
	if m.owing() || (t.Kind == Free && r.Amount.Nanos != 0) {
		return Hold{}, ErrInsufficientFunds
	}
	avail, ok := m.available()
	if !ok {
		return Hold{}, ErrInsufficientFunds
	}
	if after, err := money.SubNanos(avail, r.Amount.Nanos); err != nil || after < -m.main.CreditLimit {
		return Hold{}, ErrInsufficientFunds
	}
	h, _, _ := l.newHold(t, r, now)
	m.holds += h.Amount
	a.holds[h.RequestID] = &memHold{Hold: h}
	return h, nil
}

// loadMirror reads a tenant's accounts into the mirror while no write
// transaction of this process is in flight.
func (l *Ledger) loadMirror(ctx context.Context, tenantID string) error {
	a := l.adm
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	var main, debt Account
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		var err error
		if main, err = v.Account(ctx, MainAccount(tenantID)); err != nil {
			return err
		}
		debt, err = v.Account(ctx, DebtAccount(tenantID))
		return err
	})
	if err != nil {
		return fmt.Errorf("load account of %s: %w", tenantID, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.tenants[tenantID]
	if m == nil {
		m = &mirror{}
		a.tenants[tenantID] = m
	}
	m.main, m.debt, m.loaded = main, debt, true
	return nil
}

// mirrorBalance returns a tenant's balance from the mirror, its holds in
// memory counted as pending: one consistent view, since a commit's deltas
// and the release of the holds it settled reach the mirror together (the
// store's rows and the holds, read one after the other, could count a
// settled request twice). ok is false when the tenant has no hold in
// memory: then the store alone says the balance.
func (l *Ledger) mirrorBalance(tenantID string) (Balance, bool) {
	if l.adm == nil {
		return Balance{}, false
	}
	for {
		l.adm.mu.Lock()
		m := l.adm.tenants[tenantID]
		if m == nil || m.holds == 0 {
			l.adm.mu.Unlock()
			return Balance{}, false
		}
		if m.loaded {
			main := m.main
			main.PendingDebits += m.holds
			b := balanceOf(main, m.debt)
			l.adm.mu.Unlock()
			return b, true
		}
		l.adm.mu.Unlock()
		if err := l.loadMirror(context.Background(), tenantID); err != nil {
			return Balance{}, false
		}
	}
}

// expiredMemHolds returns the holds in memory whose expiry has passed.
func (l *Ledger) expiredMemHolds(now time.Time) []Hold {
	if l.adm == nil {
		return nil
	}
	l.adm.mu.Lock()
	defer l.adm.mu.Unlock()
	var out []Hold
	for _, h := range l.adm.holds {
		if !h.ExpiresAt.After(now) {
			out = append(out, h.Hold)
		}
	}
	// In the order the store's sweep takes its holds: by expiry, then id.
	slices.SortFunc(out, func(a, b Hold) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	return out
}

// update runs fn in one write transaction of the store. With holds in
// memory it serialises this process's writes, checks guarded decreases of
// tenant accounts against the holds too, and brings the mirror up to date
// after the commit.
func (l *Ledger) update(ctx context.Context, fn func(Tx) error) error {
	if l.adm == nil {
		return l.store.LedgerUpdate(ctx, fn)
	}
	a := l.adm
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	var tt *trackTx
	err := l.store.LedgerUpdate(ctx, func(tx Tx) error {
		if tt != nil {
			tt.abort() // the store retries fn: start afresh
		}
		tt = &trackTx{Tx: tx, adm: a}
		return fn(tt)
	})
	if tt != nil {
		if err != nil {
			tt.abort()
		} else {
			tt.commit()
		}
	}
	return err
}

// trackTx is a write transaction seen through the mirror.
type trackTx struct {
	Tx
	adm      *admission
	deltas   map[string]*txDelta // by tenant id
	consumed map[string]*memHold // holds this transaction resolves, by request id
	settled  []string            // requests it settles with no hold
}

// txDelta is what one transaction does to a tenant's accounts.
type txDelta struct {
	main, debt Delta
	credit     int64 // consumed holds not yet used by decreases
	txneg      int64 // decreases beyond them (also added to mirror.txneg)
	touched    bool
}

func (t *trackTx) delta(tenantID string) *txDelta {
	if t.deltas == nil {
		t.deltas = map[string]*txDelta{}
	}
	d := t.deltas[tenantID]
	if d == nil {
		d = &txDelta{}
		t.deltas[tenantID] = d
	}
	return d
}

// tenantOf maps an account id to its tenant and whether it is the main
// (rather than the debt) account; ok is false for system accounts.
func tenantOf(accountID string) (tenant string, main, ok bool) {
	switch {
	case len(accountID) > len("tenant:") && accountID[:len("tenant:")] == "tenant:":
		return accountID[len("tenant:"):], true, true
	case len(accountID) > len("debt:") && accountID[:len("debt:")] == "debt:":
		return accountID[len("debt:"):], false, true
	}
	return "", false, false
}

// takeHold resolves the memory hold of req in this transaction (effective
// at commit) and returns it; nil if there is none to resolve.
func (t *trackTx) takeHold(req string, state HoldState, at time.Time) *memHold {
	if _, done := t.consumed[req]; done {
		return nil
	}
	a := t.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.holds[req]
	if h == nil {
		return nil
	}
	if t.consumed == nil {
		t.consumed = map[string]*memHold{}
	}
	res := *h
	res.State, res.ResolvedAt = state, at
	t.consumed[req] = &res
	if state == HoldPosted {
		t.delta(h.TenantID).credit += h.Amount
	}
	return &res
}

// resolvedHere returns the hold this transaction already resolved for req.
func (t *trackTx) resolvedHere(req string) (Hold, bool) {
	h, ok := t.consumed[req]
	if !ok {
		return Hold{}, false
	}
	return h.Hold, true
}

// Account shows a tenant's main account with its holds in memory as pending
// debits, as if they were rows.
func (t *trackTx) Account(ctx context.Context, id string) (Account, error) {
	acc, err := t.Tx.Account(ctx, id)
	if err != nil {
		return acc, err
	}
	if tenant, main, ok := tenantOf(id); ok && main {
		acc.PendingDebits += t.unconsumedHolds(tenant)
	}
	return acc, nil
}

// unconsumedHolds is the sum of a tenant's memory holds this transaction has
// not resolved.
func (t *trackTx) unconsumedHolds(tenant string) int64 {
	a := t.adm
	a.mu.Lock()
	var n int64
	if m := a.tenants[tenant]; m != nil {
		n = m.holds
	}
	a.mu.Unlock()
	for _, h := range t.consumed {
		if h.TenantID == tenant {
			n -= h.Amount
		}
	}
	return n
}

// ApplyDelta applies d in the store; a guarded decrease of a tenant's main
// account must also leave room for the tenant's holds in memory.
func (t *trackTx) ApplyDelta(ctx context.Context, id string, d Delta, g Guard) (bool, error) {
	tenant, main, ok := tenantOf(id)
	if !ok {
		return t.Tx.ApplyDelta(ctx, id, d, g)
	}
	a := t.adm
	a.mu.Lock()
	m := a.tenants[tenant]
	tracked := m != nil && m.loaded
	a.mu.Unlock()
	if !main {
		ok, err := t.Tx.ApplyDelta(ctx, id, d, g)
		if ok && err == nil && tracked {
			td := t.delta(tenant)
			td.touched = true
			err = td.debt.add(d)
		}
		return ok, err
	}
	dec := d.PostedDebits + d.PendingDebits - d.PostedCredits // how much less is available after d
	if g.Floor && dec > 0 {
		if held := t.unconsumedHolds(tenant); held > 0 {
			var cur Account
			if tracked {
				// The store's row as this transaction sees it: the
				// committed mirror plus this transaction's deltas.
				a.mu.Lock()
				cur = m.main
				a.mu.Unlock()
				if err := cur.apply(t.delta(tenant).main); err != nil {
					return false, err
				}
			} else {
				var err error
				if cur, err = t.Tx.Account(ctx, id); err != nil {
					return false, err
				}
			}
			after, err := money.SubNanos(cur.Available(), dec)
			if err == nil {
				after, err = money.SubNanos(after, held)
			}
			if err != nil || after < -cur.CreditLimit {
				return false, nil
			}
		}
	}
	td := t.delta(tenant)
	var neg int64
	if tracked && dec > 0 {
		use := min(td.credit, dec)
		td.credit -= use
		neg = dec - use
		a.mu.Lock()
		m.txneg += neg
		a.mu.Unlock()
		td.txneg += neg
	}
	ok, err := t.Tx.ApplyDelta(ctx, id, d, g)
	if err != nil || !ok {
		if neg > 0 {
			a.mu.Lock()
			m.txneg -= neg
			a.mu.Unlock()
			td.txneg -= neg
			td.credit += dec - neg
		}
		return ok, err
	}
	if tracked {
		td.touched = true
		if err := td.main.add(d); err != nil {
			return false, err
		}
	}
	return true, nil
}

// commit brings the mirror up to the committed state; writeMu is held.
func (t *trackTx) commit() {
	a := t.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	for tenant, td := range t.deltas {
		m := a.tenants[tenant]
		if m == nil {
			continue
		}
		m.txneg -= td.txneg
		if td.touched && m.loaded {
			if m.main.apply(td.main) != nil || m.debt.apply(td.debt) != nil {
				m.loaded = false // reload from the store rather than guess
			}
		}
	}
	for req, h := range t.consumed {
		if live := a.holds[req]; live != nil {
			delete(a.holds, req)
			if m := a.tenants[live.TenantID]; m != nil {
				m.holds -= live.Amount
			}
		}
		a.recent.add(req, h.Hold)
	}
	for _, req := range t.settled {
		if _, ok := a.recent.byReq[req]; !ok {
			a.recent.add(req, Hold{})
		}
	}
}

// abort undoes what the transaction reserved in the mirror. A failed commit
// may still have landed, so the tenants it touched are reloaded from the
// store before their next hold; holds it meant to resolve stay until a
// retried settlement or the sweeper resolves them.
func (t *trackTx) abort() {
	a := t.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	for tenant, td := range t.deltas {
		if m := a.tenants[tenant]; m != nil {
			m.txneg -= td.txneg
			if td.touched || td.txneg != 0 {
				m.loaded = false
			}
		}
	}
	t.deltas, t.consumed, t.settled = nil, nil, nil
}

// apply adds d to the account's cached columns.
func (acc *Account) apply(d Delta) error {
	c := Delta{PostedDebits: acc.PostedDebits, PostedCredits: acc.PostedCredits,
		PendingDebits: acc.PendingDebits, PendingCredits: acc.PendingCredits}
	if err := c.add(d); err != nil {
		return err
	}
	acc.PostedDebits, acc.PostedCredits, acc.PendingDebits, acc.PendingCredits =
		c.PostedDebits, c.PostedCredits, c.PendingDebits, c.PendingCredits
	return nil
}

// cachedTenant returns a tenant from the cache only.
func (l *Ledger) cachedTenant(id string) (Tenant, bool) {
	t, ok := l.tenants.Load(id)
	if !ok {
		return Tenant{}, false
	}
	return t.(Tenant), true
}

// lookup returns the hold of req in memory: live (pending) or recently
// resolved; ok is false when memory knows no hold of req.
func (a *admission) lookup(req string) (h Hold, live, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if mh := a.holds[req]; mh != nil {
		return mh.Hold, true, true
	}
	if h, ok := a.recent.byReq[req]; ok && h.RequestID != "" {
		return h, false, true
	}
	return Hold{}, false, false
}
