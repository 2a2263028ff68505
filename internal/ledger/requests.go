package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Options configures a Ledger. Zero values take the defaults noted.
type Options struct {
	Clock     clock.Clock   // default clock.Real
	HoldTTL   time.Duration // how long a hold lives before the sweeper resolves it; default 10m
	Node      string        // this gateway process's stable name, stamped on its holds (see Reconcile)
	MaxBatch  int           // most operations committed in one transaction; default 256
	QueueLen  int           // operations waiting for the committer; default 4096
	TxTimeout time.Duration // bound on one batch transaction; default 30s
	Logger    *slog.Logger  // default slog.Default()
	// OnAlert, if set, is called (from the committer, after the commit) for
	// each budget alert threshold crossed; it must not block for long.
	OnAlert func(BudgetAlert)
	// Exclusive says this ledger is the only writer of its store (one
	// gateway process on an embedded database). Holds of keys and tenants
	// without budgets are then kept in memory against an exact mirror of
	// the accounts, and a request waits for no write before its upstream
	// call (see admission.go). Never set it for a store several processes
	// write.
	Exclusive bool
}

// Ledger applies the billing rules on a Store. Hold, Settle and Void from
// many goroutines are group-committed: a committer goroutine takes whatever
// is queued (up to MaxBatch) and commits it in one transaction, each caller
// getting its own result. It is safe for concurrent use.
type Ledger struct {
	store   Store
	clock   clock.Clock
	opts    Options
	log     *slog.Logger
	tenants sync.Map // id -> Tenant; kind and currency never change
	budgets budgetCache
	adm     *admission // holds in memory (Options.Exclusive); nil otherwise

	batches, ops atomic.Int64 // committed by the committer, for Stats

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *op
	done   chan struct{}
}

// New returns a Ledger on s and starts its committer. Call Close to stop it.
func New(s Store, o Options) *Ledger {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.HoldTTL <= 0 {
		o.HoldTTL = 10 * time.Minute
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.TxTimeout <= 0 {
		o.TxTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &Ledger{store: s, clock: o.Clock, opts: o, log: o.Logger,
		queue: make(chan *op, o.QueueLen), done: make(chan struct{})}
	if o.Exclusive {
		l.adm = newAdmission()
	}
	go l.commit()
	return l
}

// Close stops accepting operations, commits those already queued (their
// callers get their results), and returns when the committer has stopped.
// Holds placed before Close stay pending until settled, voided, swept or
// reconciled.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

// HoldRequest asks to reserve a request's worst-case cost.
type HoldRequest struct {
	RequestID string
	TenantID  string // "" is the default tenant
	KeyID     string
	Amount    money.Amount // Currency "" means the tenant's currency
	TTL       time.Duration
}

// Settlement is one finished request: its usage record, whose CostNanos and
// Currency are the rated cost to post. Record.RequestID names the hold.
type Settlement struct {
	Record usage.Record
}

// SettleResult is what a settlement posted. A retried settlement returns
// the first one's figures with Duplicate set.
type SettleResult struct {
	RequestID string
	Posted    int64         // posted against the hold
	Released  int64         // hold amount given back
	Overage   int64         // cost above the hold (or with no hold) taken from the account
	Debt      int64         // cost the account could not cover, recorded as debt
	Alerts    []BudgetAlert // budget thresholds this settlement crossed
	Duplicate bool
	Err       error // per-item failure (invalid, unknown tenant); nothing was written
}

// VoidResult is the hold a Void resolved (or had already been resolved).
type VoidResult struct {
	Hold      Hold
	Duplicate bool
}

type opKind uint8

const (
	opHold opKind = iota
	opSettle
	opVoid
	opSweep // resolve a pending hold: settle from its record, or void
)

type op struct {
	ctx    context.Context
	kind   opKind
	tenant string
	hold   HoldRequest
	settle Settlement
	req    string // void/sweep request id
	sweep  Hold
	res    opResult
	done   chan struct{}
}

type opResult struct {
	hold   Hold
	settle SettleResult
	void   VoidResult
	swept  HoldState
	err    error
}

// Hold reserves r's amount against the tenant's available balance as a
// pending transfer. A repeated request id returns the first hold. Not enough
// funds (or an open debt) is ErrInsufficientFunds.
func (l *Ledger) Hold(ctx context.Context, r HoldRequest) (Hold, error) {
	r.TenantID = TenantFor(r.TenantID)
	if err := checkID("request id", r.RequestID); err != nil {
		return Hold{}, err
	}
	if err := checkAmount(r.Amount.Nanos); err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
	}
	if l.adm != nil {
		if l.isClosed() {
			return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, ErrClosed)
		}
		h, done, err := l.holdInMemory(ctx, r)
		if err != nil {
			return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
		}
		if done {
			return h, nil
		}
	}
	res, err := l.submit(ctx, &op{kind: opHold, tenant: r.TenantID, hold: r})
	if err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", r.RequestID, err)
	}
	return res.hold, nil
}

// Settle posts one settlement with its usage record (group-committed with
// concurrent callers). Per-item failures come back as the error.
func (l *Ledger) Settle(ctx context.Context, s Settlement) (SettleResult, error) {
	res, err := l.submit(ctx, &op{kind: opSettle, tenant: TenantFor(s.Record.TenantID), settle: s})
	if err != nil {
		return SettleResult{RequestID: s.Record.RequestID, Err: err}, fmt.Errorf("settle %s: %w", s.Record.RequestID, err)
	}
	return res.settle, nil
}

// Void releases a hold without posting anything (the request failed before
// any cost). Voiding a resolved hold is a no-op returning it; an unknown
// request id is ErrNotFound. If the request has a usage record after all,
// the hold is settled from it instead (State HoldPosted).
func (l *Ledger) Void(ctx context.Context, requestID string) (VoidResult, error) {
	if err := checkID("request id", requestID); err != nil {
		return VoidResult{}, err
	}
	res, err := l.submit(ctx, &op{kind: opVoid, req: requestID})
	if err != nil {
		return VoidResult{}, fmt.Errorf("void %s: %w", requestID, err)
	}
	return res.void, nil
}

// SettleBatch posts many settlements, each with its usage record, in ONE
// transaction (the spine's group commit). An item that fails on its own
// (Err set) writes nothing and does not stop the others; the error return is
// for the transaction as a whole, in which case nothing was written.
func (l *Ledger) SettleBatch(ctx context.Context, ss []Settlement) ([]SettleResult, error) {
	ops := make([]*op, len(ss))
	for i, s := range ss {
		ops[i] = &op{ctx: ctx, kind: opSettle, tenant: TenantFor(s.Record.TenantID), settle: s}
	}
	if err := l.runTx(ctx, ops); err != nil {
		return nil, fmt.Errorf("settle batch of %d: %w", len(ss), err)
	}
	l.batches.Add(1)
	l.ops.Add(int64(len(ops)))
	out := make([]SettleResult, len(ss))
	for i, o := range ops {
		out[i] = o.res.settle
		if o.res.err != nil {
			out[i] = SettleResult{RequestID: s(ss[i]), Err: o.res.err}
		}
	}
	return out, nil
}

func s(st Settlement) string { return st.Record.RequestID }

// isClosed reports whether Close was called.
func (l *Ledger) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

func (l *Ledger) submit(ctx context.Context, o *op) (opResult, error) {
	o.ctx = ctx
	o.done = make(chan struct{})
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return opResult{}, ErrClosed
	}
	select {
	case l.queue <- o:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return opResult{}, ctx.Err()
	}
	// Once queued, the operation runs unless its context ends before the
	// committer reaches it; wait for the outcome either way, so a caller
	// never sees a timeout for a hold that was in fact placed.
	<-o.done
	return o.res, o.res.err
}

// commit is the committer goroutine.
func (l *Ledger) commit() {
	defer close(l.done)
	for first := range l.queue {
		batch := []*op{first}
		// Let the callers just woken by the last batch run and queue their
		// next operation before this one is cut: with few cores the first
		// sender would otherwise wake the committer alone, and batches
		// would shrink to one. Stop as soon as a round brings nothing.
		for round := 0; round < 8 && len(batch) < l.opts.MaxBatch; round++ {
			runtime.Gosched()
			n := len(batch)
			batch = l.drain(batch)
			if len(batch) == n {
				break
			}
		}
		l.runBatch(batch)
	}
}

// drain appends what is queued, without waiting, up to MaxBatch.
func (l *Ledger) drain(batch []*op) []*op {
	for len(batch) < l.opts.MaxBatch {
		select {
		case o, ok := <-l.queue:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// Stats counts the ledger's group commits since New.
type Stats struct {
	Batches int64 // transactions of the committer and of SettleBatch
	Ops     int64 // holds, settlements and voids in them
	Queued  int   // operations waiting now
	// HeldInMemory is how many holds are kept in memory now
	// (Options.Exclusive).
	HeldInMemory int
}

// Stats returns the committer's counters (Ops/Batches is the mean batch).
func (l *Ledger) Stats() Stats {
	st := Stats{Batches: l.batches.Load(), Ops: l.ops.Load(), Queued: len(l.queue)}
	if l.adm != nil {
		l.adm.mu.Lock()
		st.HeldInMemory = len(l.adm.holds)
		l.adm.mu.Unlock()
	}
	return st
}

func (l *Ledger) runBatch(batch []*op) {
	l.batches.Add(1)
	l.ops.Add(int64(len(batch)))
	live := batch[:0:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.res.err = err
			close(o.done)
			continue
		}
		live = append(live, o)
	}
	if len(live) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.TxTimeout)
		err := l.runTx(ctx, live)
		if err != nil && len(live) > 1 {
			// One bad item must not fail its neighbours: retry each alone.
			l.log.Warn("ledger batch failed; retrying items one by one", "items", len(live), "err", err)
			for _, o := range live {
				if e := l.runTx(ctx, []*op{o}); e != nil {
					o.res = opResult{err: e}
				}
			}
		} else if err != nil {
			live[0].res = opResult{err: err}
		}
		cancel()
		for _, o := range live {
			close(o.done)
		}
	}
}

// runTx applies ops in one transaction. Item-level failures are left in each
// op's result; any other error aborts the transaction and is returned.
func (l *Ledger) runTx(ctx context.Context, ops []*op) error {
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	// Lock order: customer accounts by tenant id, then system accounts.
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].tenant < ops[order[b]].tenant })
	results := make([]opResult, len(ops))
	err := l.update(ctx, func(tx Tx) error {
		now := l.clock.Now()
		sys := sysDeltas{}
		pre, err := l.pipeline(ctx, tx, ops, order, now)
		if err != nil {
			return err
		}
		for _, i := range order {
			o := ops[i]
			var r opResult
			var err error
			switch p := pre[i]; {
			case p.place != nil:
				r.hold, err = l.finishPlace(ctx, tx, p.place, sys)
			case p.post != nil && p.post.Posted:
				r.settle, err = l.finishPost(ctx, tx, p.tenant, p.post, sys)
			case o.kind == opHold:
				r.hold, err = l.holdTx(ctx, tx, o.hold, now, sys)
			case o.kind == opSettle:
				r.settle, err = l.settleTx(ctx, tx, o.settle.Record, true, p.post == nil, now, sys)
			case o.kind == opVoid:
				r.void, err = l.voidTx(ctx, tx, o.req, true, now, sys)
			case o.kind == opSweep:
				r.swept, err = l.sweepTx(ctx, tx, o.sweep, now, sys)
			}
			if err != nil {
				if !itemError(err) {
					return err
				}
				r = opResult{err: err}
			}
			results[i] = r
			// Let requests waiting on the same core run between the
			// batch's operations (pure-Go SQLite spends tens of
			// microseconds on each).
			runtime.Gosched()
		}
		return sys.apply(ctx, tx)
	})
	if err != nil {
		return err
	}
	for i, o := range ops {
		o.res = results[i]
		for _, a := range o.res.settle.Alerts {
			l.log.Warn("budget alert", "scope", a.Budget.Scope, "subject", a.Budget.Subject, "percent", a.Percent,
				"spent_nanos", a.Spent, "limit_nanos", a.Budget.Limit, "period", a.Period)
			if l.opts.OnAlert != nil {
				l.opts.OnAlert(a)
			}
		}
	}
	return nil
}

// itemError reports whether err belongs to one item (which wrote nothing)
// rather than to the transaction.
func itemError(err error) bool {
	for _, e := range []error{ErrInsufficientFunds, ErrNotFound, ErrInvalid, money.ErrCurrencyMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sysDeltas accumulates a transaction's changes to system accounts, applied
// once at the end in id order (one update of each hot row per batch).
type sysDeltas map[string]*Delta

func (s sysDeltas) add(id string, d Delta) error {
	cur, ok := s[id]
	if !ok {
		cur = &Delta{}
		s[id] = cur
	}
	return cur.add(d)
}

func (s sysDeltas) apply(ctx context.Context, tx Tx) error {
	ids := make([]string, 0, len(s))
	for id := range s {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		d := *s[id]
		if d == (Delta{}) {
			continue
		}
		ok, err := tx.ApplyDelta(ctx, id, d, Guard{})
		if err != nil {
			return fmt.Errorf("update %s: %w", id, err)
		}
		if !ok {
			return fmt.Errorf("update %s: system account missing", id)
		}
	}
	return nil
}

// tenant returns a tenant from the cache or the store.
func (l *Ledger) tenant(ctx context.Context, v View, id string) (Tenant, error) {
	if t, ok := l.tenants.Load(id); ok {
		return t.(Tenant), nil
	}
	t, err := v.Tenant(ctx, id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, err)
	}
	l.tenants.Store(id, t)
	return t, nil
}

func (l *Ledger) holdTx(ctx context.Context, tx Tx, r HoldRequest, now time.Time, sys sysDeltas) (Hold, error) {
	t, err := l.tenant(ctx, tx, r.TenantID)
	if err != nil {
		return Hold{}, err
	}
	if r.Amount.Currency != "" && r.Amount.Currency != t.Currency {
		return Hold{}, fmt.Errorf("hold in %s for a %s account: %w", r.Amount.Currency, t.Currency, ErrInvalid)
	}
	h, guard, pending := l.newHold(t, r, now)
	rev := pending.Credit
	if hw, fast := tx.(HoldWriter); fast && (t.Kind != Free || h.Amount == 0) {
		bs, err := l.budgetsFor(ctx, tx, r.KeyID, t.ID, now)
		if err != nil {
			return Hold{}, err
		}
		if len(bs) == 0 {
			st := &PlaceStep{Hold: h, Guard: guard, Pending: pending}
			if st.Outcome, err = hw.PlaceHold(ctx, h, guard, pending); err != nil {
				return Hold{}, err
			}
			return l.finishPlace(ctx, tx, st, sys)
		}
	}
	ok, err := tx.InsertHold(ctx, h)
	if err != nil {
		return Hold{}, err
	}
	if !ok {
		return tx.Hold(ctx, r.RequestID)
	}
	ok = false
	if t.Kind != Free || h.Amount == 0 {
		// NoRecord: a request already settled without a hold is finished; a
		// hold now would be settled a second time from the same record.
		ok, err = tx.ApplyDelta(ctx, h.AccountID, Delta{PendingDebits: h.Amount}, guard)
		if err != nil {
			return Hold{}, err
		}
	}
	if !ok {
		if err := tx.DeleteHold(ctx, h.RequestID); err != nil {
			return Hold{}, err
		}
		if _, _, found, err := tx.RecordCost(ctx, r.RequestID); err != nil || found {
			if err == nil {
				err = fmt.Errorf("request %s is already settled: %w", r.RequestID, ErrInvalid)
			}
			return Hold{}, err
		}
		return Hold{}, ErrInsufficientFunds
	}
	keys, err := l.reserveBudgets(ctx, tx, r.KeyID, t.ID, h.Amount, now)
	if err != nil {
		if !errors.Is(err, ErrBudgetExceeded) {
			return Hold{}, err
		}
		if uerr := mustApply(ctx, tx, h.AccountID, Delta{PendingDebits: -h.Amount}); uerr != nil {
			return Hold{}, uerr
		}
		if derr := tx.DeleteHold(ctx, h.RequestID); derr != nil {
			return Hold{}, derr
		}
		return Hold{}, err
	}
	if len(keys) > 0 {
		h.Budgets = encodeBudgetKeys(keys)
		if err := tx.SetHoldBudgets(ctx, h.RequestID, h.Budgets); err != nil {
			return Hold{}, err
		}
	}
	if err := mustInsert(ctx, tx, pending); err != nil {
		return Hold{}, err
	}
	return h, sys.add(rev, Delta{PendingCredits: h.Amount})
}

// newHold builds the hold of r on t, its guard and its pending transfer.
func (l *Ledger) newHold(t Tenant, r HoldRequest, now time.Time) (Hold, Guard, Transfer) {
	ttl := r.TTL
	if ttl <= 0 {
		ttl = l.opts.HoldTTL
	}
	h := Hold{RequestID: r.RequestID, TenantID: t.ID, KeyID: r.KeyID, AccountID: MainAccount(t.ID),
		Amount: r.Amount.Nanos, Currency: t.Currency, State: HoldPending, Node: l.opts.Node,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	// NoRecord: a request already settled without a hold is finished; a hold
	// now would be settled a second time from the same record.
	g := Guard{Floor: true, NotOwing: DebtAccount(t.ID), NoRecord: h.RequestID}
	p := Transfer{ID: holdID(h.RequestID), Debit: h.AccountID, Credit: RevenueAccount(t.Currency), Amount: h.Amount,
		Currency: t.Currency, Kind: KindHold, Flag: FlagPending, RequestID: h.RequestID, TenantID: t.ID, CreatedAt: now}
	return h, g, p
}

// finishPlace completes a hold a store placed in one statement.
func (l *Ledger) finishPlace(ctx context.Context, tx Tx, st *PlaceStep, sys sysDeltas) (Hold, error) {
	h := st.Hold
	switch st.Outcome {
	case HoldPlaced:
		return h, sys.add(st.Pending.Credit, Delta{PendingCredits: h.Amount})
	case HoldDuplicate:
		return tx.Hold(ctx, h.RequestID)
	}
	if err := tx.DeleteHold(ctx, h.RequestID); err != nil {
		return Hold{}, err
	}
	if _, _, found, err := tx.RecordCost(ctx, h.RequestID); err != nil || found {
		if err == nil {
			err = fmt.Errorf("request %s is already settled: %w", h.RequestID, ErrInvalid)
		}
		return Hold{}, err
	}
	return Hold{}, ErrInsufficientFunds
}

func holdID(req string) string { return req + "/hold" }

func mustInsert(ctx context.Context, tx Tx, t Transfer) error {
	ok, err := tx.InsertTransfer(ctx, t)
	if err != nil {
		return fmt.Errorf("transfer %s: %w", t.ID, err)
	}
	if !ok {
		return fmt.Errorf("transfer %s already exists", t.ID)
	}
	return nil
}

func mustApply(ctx context.Context, tx Tx, id string, d Delta) error {
	ok, err := tx.ApplyDelta(ctx, id, d, Guard{})
	if err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("update %s: no such account", id)
	}
	return nil
}

// settleTx posts rec's cost. writeRecord is false when the record is
// already stored (the sweeper settling from it); tryFast is false when a
// pipeline already tried the store's one-statement settlement.
func (l *Ledger) settleTx(ctx context.Context, tx Tx, rec usage.Record, writeRecord, tryFast bool, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := rec.RequestID
	res := SettleResult{RequestID: req}
	if err := checkID("request id", req); err != nil {
		return res, err
	}
	if err := checkAmount(rec.CostNanos); err != nil {
		return res, fmt.Errorf("settle %s: %w", req, err)
	}
	t, err := l.tenant(ctx, tx, TenantFor(rec.TenantID))
	if err != nil {
		return res, err
	}
	badCurrency := func() bool { return rec.CostNanos != 0 && money.Currency(rec.Currency) != t.Currency }
	if badCurrency() {
		return res, fmt.Errorf("settle %s: cost in %q for a %s account: %w", req, rec.Currency, t.Currency, ErrInvalid)
	}
	if writeRecord {
		rec.TenantID = t.ID
		if rec.Currency == "" {
			rec.Currency = string(t.Currency)
		}
	}
	if sw, fast := tx.(SettleWriter); fast && writeRecord && tryFast {
		st := &PostStep{Record: rec, SettleID: req + "/settle", PendingID: holdID(req), Revenue: RevenueAccount(t.Currency), At: now}
		if st.Hold, st.Posted, err = sw.PostHold(ctx, rec, st.SettleID, st.PendingID, st.Revenue, now); err != nil {
			return res, err
		}
		if st.Posted {
			return l.finishPost(ctx, tx, t, st, sys)
		}
	}
	fresh := false // the record is stored by this settlement, so nothing settled it before
	if writeRecord {
		// The first stored record is the truth: a retry (or a record the
		// spine stored by another path) settles what that record says.
		inserted, err := tx.InsertRecord(ctx, rec)
		if err != nil {
			return res, err
		}
		fresh = inserted
		if !inserted {
			c, cur, _, err := tx.RecordCost(ctx, req)
			if err != nil {
				return res, err
			}
			rec.CostNanos, rec.Currency = c, cur
			if badCurrency() {
				return res, fmt.Errorf("settle %s: stored record costs %q on a %s account: %w", req, cur, t.Currency, ErrInvalid)
			}
		}
	}
	cost := rec.CostNanos
	if tt, ok := tx.(*trackTx); ok {
		if mh := tt.takeHold(req, HoldPosted, now); mh != nil {
			if !fresh {
				prev, err := tx.TransfersByRequest(ctx, req)
				if err != nil {
					return res, err
				}
				if settled(prev) {
					return resultFrom(req, prev), nil // the hold is released at the commit
				}
			}
			return l.settleMemHold(ctx, tx, t, mh.Hold, cost, now, sys)
		}
		tt.settled = append(tt.settled, req)
	}
	h, resolved, err := tx.ResolveHold(ctx, req, HoldPosted, now)
	if err != nil {
		return res, err
	}
	if resolved {
		if h.TenantID != t.ID {
			return res, fmt.Errorf("settle %s: record of tenant %q for a hold of %q", req, t.ID, h.TenantID)
		}
		post := min(cost, h.Amount)
		if err := mustApply(ctx, tx, h.AccountID, Delta{PostedDebits: post, PendingDebits: -h.Amount}); err != nil {
			return res, err
		}
		if err := mustInsert(ctx, tx, Transfer{ID: req + "/settle", Debit: h.AccountID, Credit: RevenueAccount(h.Currency),
			Amount: post, Currency: h.Currency, Kind: KindSettle, Flag: FlagPost, PendingID: holdID(req), RequestID: req,
			TenantID: t.ID, CreatedAt: now}); err != nil {
			return res, err
		}
		return l.afterPost(ctx, tx, t, h, cost, now, sys)
	} else {
		prev, err := tx.TransfersByRequest(ctx, req)
		if err != nil {
			return res, err
		}
		if settled(prev) {
			return resultFrom(req, prev), nil
		}
		// No hold, or one the sweeper voided before this settlement came:
		// the cost is still owed.
		if cost > 0 {
			if err := l.charge(ctx, tx, t, cost, req+"/charge", KindCharge, req, now, sys, &res); err != nil {
				return res, err
			}
			if res.Alerts, err = l.chargeBudgets(ctx, tx, rec.KeyID, t.ID, cost, now); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// settleMemHold settles a request held in memory: the cost up to the hold
// is charged from the account (the hold kept room for it), the rest as an
// overage, which may become debt.
func (l *Ledger) settleMemHold(ctx context.Context, tx Tx, t Tenant, h Hold, cost int64, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := h.RequestID
	if h.TenantID != t.ID || h.Currency != t.Currency {
		return SettleResult{}, fmt.Errorf("settle %s: record of tenant %q for a hold of %q in %s", req, t.ID, h.TenantID, h.Currency)
	}
	post := min(cost, h.Amount)
	res := SettleResult{RequestID: req, Released: h.Amount - post}
	// The charge is written even when it is zero: a retried settlement
	// finds it and knows the request is settled.
	var covered SettleResult
	if err := l.charge(ctx, tx, t, post, req+"/settle", KindSettle, req, now, sys, &covered); err != nil {
		return res, err
	}
	res.Posted, res.Debt = covered.Overage, covered.Debt
	if cost > post {
		if err := l.charge(ctx, tx, t, cost-post, req+"/overage", KindOverage, req, now, sys, &res); err != nil {
			return res, err
		}
	}
	var err error
	if cost > 0 {
		res.Alerts, err = l.chargeBudgets(ctx, tx, h.KeyID, t.ID, cost, now)
	}
	return res, err
}

// finishPost completes a settlement a store posted in one statement.
func (l *Ledger) finishPost(ctx context.Context, tx Tx, t Tenant, st *PostStep, sys sysDeltas) (SettleResult, error) {
	h := st.Hold
	if h.TenantID != t.ID || h.Currency != t.Currency {
		return SettleResult{}, fmt.Errorf("settle %s: record of tenant %q for a hold of %q in %s", h.RequestID, t.ID, h.TenantID, h.Currency)
	}
	return l.afterPost(ctx, tx, t, h, st.Record.CostNanos, st.At, sys)
}

// afterPost finishes the settlement of a hold whose post transfer is
// written: revenue, the overage, the budgets.
func (l *Ledger) afterPost(ctx context.Context, tx Tx, t Tenant, h Hold, cost int64, now time.Time, sys sysDeltas) (SettleResult, error) {
	req := h.RequestID
	post := min(cost, h.Amount)
	res := SettleResult{RequestID: req, Posted: post, Released: h.Amount - post}
	if err := sys.add(RevenueAccount(h.Currency), Delta{PostedCredits: post, PendingCredits: -h.Amount}); err != nil {
		return res, err
	}
	if cost > post {
		if err := l.charge(ctx, tx, t, cost-post, req+"/overage", KindOverage, req, now, sys, &res); err != nil {
			return res, err
		}
	}
	var err error
	if res.Alerts, err = l.releaseBudgets(ctx, tx, h, cost); err != nil {
		return res, err
	}
	return res, nil
}

// settled reports whether transfers of a request include a settlement.
func settled(ts []Transfer) bool {
	for _, t := range ts {
		if t.Flag == FlagPost || t.Kind == KindSettle || t.Kind == KindCharge ||
			(t.Kind == KindDebt && (strings.HasSuffix(t.ID, "/charge") || strings.HasSuffix(t.ID, "/settle"))) {
			return true
		}
	}
	return false
}

func resultFrom(req string, ts []Transfer) SettleResult {
	r := SettleResult{RequestID: req, Duplicate: true}
	var held int64
	for _, t := range ts {
		switch {
		case t.Flag == FlagPending:
			held = t.Amount
		case t.Flag == FlagPost || t.Kind == KindSettle: // a hold's post, in the store or in memory
			r.Posted = t.Amount
		case t.Kind == KindOverage || t.Kind == KindCharge:
			r.Overage += t.Amount
		case t.Kind == KindDebt:
			r.Debt += t.Amount
		}
	}
	if held > r.Posted {
		r.Released = held - r.Posted
	}
	return r
}

// charge takes amount from the tenant's account within its floor (balance
// for prepaid, credit limit for postpaid) or, when it cannot, records it as
// debt, which blocks new holds until paid.
func (l *Ledger) charge(ctx context.Context, tx Tx, t Tenant, amount int64, id string, kind TransferKind, req string, now time.Time, sys sysDeltas, res *SettleResult) error {
	main, rev := MainAccount(t.ID), RevenueAccount(t.Currency)
	ok, err := tx.ApplyDelta(ctx, main, Delta{PostedDebits: amount}, Guard{Floor: true})
	if err != nil {
		return err
	}
	from := main
	if ok {
		res.Overage += amount
	} else {
		from, kind = DebtAccount(t.ID), KindDebt
		if err := mustApply(ctx, tx, from, Delta{PostedDebits: amount}); err != nil {
			return err
		}
		res.Debt += amount
	}
	if err := mustInsert(ctx, tx, Transfer{ID: id, Debit: from, Credit: rev, Amount: amount, Currency: t.Currency,
		Kind: kind, RequestID: req, TenantID: t.ID, CreatedAt: now}); err != nil {
		return err
	}
	return sys.add(rev, Delta{PostedCredits: amount})
}

// voidTx voids a pending hold. When checkRecord is set and the request has
// a usage record after all, the hold is settled from it instead: a record
// never stays without its settlement.
func (l *Ledger) voidTx(ctx context.Context, tx Tx, req string, checkRecord bool, now time.Time, sys sysDeltas) (VoidResult, error) {
	if tt, ok := tx.(*trackTx); ok {
		if v, done, err := l.voidMemHold(ctx, tt, req, checkRecord, now, sys); done {
			return v, err
		}
	}
	if checkRecord {
		cost, cur, found, err := tx.RecordCost(ctx, req)
		if err != nil {
			return VoidResult{}, err
		}
		if found {
			h, err := tx.Hold(ctx, req)
			if err != nil {
				return VoidResult{}, fmt.Errorf("hold %s: %w", req, err)
			}
			if h.State != HoldPending {
				return VoidResult{Hold: h, Duplicate: true}, nil
			}
			rec := usage.Record{RequestID: req, TenantID: h.TenantID, CostNanos: cost, Currency: cur}
			if _, err := l.settleTx(ctx, tx, rec, false, false, now, sys); err != nil {
				return VoidResult{}, err
			}
			h.State, h.ResolvedAt = HoldPosted, now
			return VoidResult{Hold: h}, nil
		}
	}
	h, ok, err := tx.ResolveHold(ctx, req, HoldVoided, now)
	if err != nil {
		return VoidResult{}, err
	}
	if !ok {
		h, err := tx.Hold(ctx, req)
		if err != nil {
			return VoidResult{}, fmt.Errorf("hold %s: %w", req, err)
		}
		return VoidResult{Hold: h, Duplicate: true}, nil
	}
	if err := mustApply(ctx, tx, h.AccountID, Delta{PendingDebits: -h.Amount}); err != nil {
		return VoidResult{}, err
	}
	if _, err := l.releaseBudgets(ctx, tx, h, 0); err != nil {
		return VoidResult{}, err
	}
	rev := RevenueAccount(h.Currency)
	if err := mustInsert(ctx, tx, Transfer{ID: req + "/void", Debit: h.AccountID, Credit: rev, Amount: h.Amount,
		Currency: h.Currency, Kind: KindVoid, Flag: FlagVoid, PendingID: holdID(req), RequestID: req,
		TenantID: h.TenantID, CreatedAt: now}); err != nil {
		return VoidResult{}, err
	}
	h.State, h.ResolvedAt = HoldVoided, now
	return VoidResult{Hold: h}, sys.add(rev, Delta{PendingCredits: -h.Amount})
}

// voidMemHold voids a hold kept in memory (or settles it from the
// request's record). done is false when req has no hold in memory.
func (l *Ledger) voidMemHold(ctx context.Context, tt *trackTx, req string, checkRecord bool, now time.Time, sys sysDeltas) (VoidResult, bool, error) {
	if h, ok := tt.resolvedHere(req); ok {
		return VoidResult{Hold: h, Duplicate: true}, true, nil
	}
	h, live, ok := tt.adm.lookup(req)
	switch {
	case !ok:
		return VoidResult{}, false, nil
	case !live:
		return VoidResult{Hold: h, Duplicate: true}, true, nil
	}
	if checkRecord {
		cost, cur, found, err := tt.RecordCost(ctx, req)
		if err != nil {
			return VoidResult{}, true, err
		}
		if found {
			rec := usage.Record{RequestID: req, TenantID: h.TenantID, CostNanos: cost, Currency: cur}
			if _, err := l.settleTx(ctx, tt, rec, false, false, now, sys); err != nil {
				return VoidResult{}, true, err
			}
			h.State, h.ResolvedAt = HoldPosted, now
			return VoidResult{Hold: h}, true, nil
		}
	}
	if mh := tt.takeHold(req, HoldVoided, now); mh != nil {
		return VoidResult{Hold: mh.Hold}, true, nil
	}
	return VoidResult{}, false, nil
}

// sweepTx resolves one pending hold: settled from its usage record when
// there is one, voided otherwise.
func (l *Ledger) sweepTx(ctx context.Context, tx Tx, h Hold, now time.Time, sys sysDeltas) (HoldState, error) {
	cost, cur, found, err := tx.RecordCost(ctx, h.RequestID)
	if err != nil {
		return "", err
	}
	if found {
		rec := usage.Record{RequestID: h.RequestID, TenantID: h.TenantID, CostNanos: cost, Currency: cur}
		if _, err := l.settleTx(ctx, tx, rec, false, false, now, sys); err != nil {
			return "", err
		}
		return HoldPosted, nil
	}
	if _, err := l.voidTx(ctx, tx, h.RequestID, false, now, sys); err != nil {
		return "", err
	}
	return HoldVoided, nil
}

// SweepResult counts the holds a sweep or reconciliation resolved.
type SweepResult struct {
	Settled int
	Voided  int
	Failed  int
}

const sweepChunk = 256

// Sweep resolves every pending hold whose expiry has passed: settled from
// its usage record when one exists (the process died after recording but
// before settling, or the record came by another path), voided otherwise.
// The gateway runs it every sweep interval.
func (l *Ledger) Sweep(ctx context.Context) (SweepResult, error) {
	now := l.clock.Now()
	out, err := l.resolve(ctx, HoldQuery{ExpiresBefore: now})
	if err != nil {
		return out, err
	}
	mem := l.expiredMemHolds(now)
	for len(mem) > 0 {
		n := min(len(mem), sweepChunk)
		r, err := l.resolveHolds(ctx, mem[:n])
		out.Settled, out.Voided, out.Failed = out.Settled+r.Settled, out.Voided+r.Voided, out.Failed+r.Failed
		if err != nil {
			return out, err
		}
		mem = mem[n:]
	}
	return out, nil
}

// Reconcile resolves, at start-up, the pending holds this node (Options.Node)
// placed before startedAt: a crash left them, and no request of this process
// will settle them. Other nodes' holds are left to expire.
func (l *Ledger) Reconcile(ctx context.Context, startedAt time.Time) (SweepResult, error) {
	node := l.opts.Node
	return l.resolve(ctx, HoldQuery{CreatedBefore: startedAt, Node: &node})
}

func (l *Ledger) resolve(ctx context.Context, q HoldQuery) (SweepResult, error) {
	var out SweepResult
	q.Limit = sweepChunk
	seen := map[string]bool{}
	for {
		var holds []Hold
		err := l.store.LedgerView(ctx, func(v View) error {
			var err error
			holds, err = v.PendingHolds(ctx, q)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("sweep: %w", err)
		}
		fresh := holds[:0:0]
		for _, h := range holds {
			if !seen[h.RequestID] { // one that failed before is not retried: do not spin on it
				seen[h.RequestID] = true
				fresh = append(fresh, h)
			}
		}
		if len(fresh) == 0 {
			return out, nil
		}
		r, err := l.resolveHolds(ctx, fresh)
		out.Settled, out.Voided, out.Failed = out.Settled+r.Settled, out.Voided+r.Voided, out.Failed+r.Failed
		if err != nil {
			return out, err
		}
		if len(holds) < sweepChunk {
			return out, nil
		}
	}
}

// resolveHolds settles or voids holds in one transaction.
func (l *Ledger) resolveHolds(ctx context.Context, holds []Hold) (SweepResult, error) {
	var out SweepResult
	ops := make([]*op, len(holds))
	for i, h := range holds {
		ops[i] = &op{ctx: ctx, kind: opSweep, tenant: h.TenantID, sweep: h}
	}
	if err := l.runTx(ctx, ops); err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	for _, o := range ops {
		switch {
		case o.res.err != nil:
			out.Failed++
			l.log.Error("sweep hold", "request_id", o.sweep.RequestID, "err", o.res.err)
		case o.res.swept == HoldPosted:
			out.Settled++
		case o.res.swept == HoldVoided:
			out.Voided++
		}
	}
	return out, nil
}
