package ledger

// The committer: holds, settlements, voids and sweeps from many goroutines
// are queued and group-committed, each batch in one transaction of the
// store, in one global lock order, each caller getting its own result.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
	"baimo/internal/money"
)

// Options configures a Ledger. Zero values take the defaults noted.
type Options struct {
	Clock    clock.Clock   // default clock.Real
	HoldTTL  time.Duration // how long a hold lives before the sweeper resolves it; default 10m
	Node     string        // this gateway process's stable name, stamped on its holds (see Reconcile)
	MaxBatch int           // most operations committed in one transaction; default 256
	QueueLen int           // operations waiting for the committer; default 4096
	Logger   *slog.Logger  // default slog.Default()
	// TxTimeout bounds one batch transaction of the committer; default 5s.
	// A store that stops answering (a partition) stalls the committer at
	// most this long per batch.
	TxTimeout time.Duration
	// HoldWait, if set, bounds how long Hold, Settle and Void wait for
	// the committer when ctx allows longer (the gateway sets
	// limits.store_timeout). Either way a hold whose caller gave up is
	// voided if it was placed after all.
	HoldWait time.Duration
	// OnAlert, if set, is called (from the committer, after the commit) for
	// each budget alert threshold crossed; it must not block for long.
	OnAlert func(BudgetAlert)
	// NodeTimeout, if set with Node, makes this node write its liveness
	// into the store every fourth of it and resolve the pending holds of
	// the nodes not seen for longer (see nodes.go). Set it well above
	// the longest database outage a live node should ride out.
	NodeTimeout time.Duration
	// CheckpointEvery is how often checkpoints are written; default 1s.
	CheckpointEvery time.Duration
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
	tenants sync.Map // id -> Tenant; kind and currency never change once money moved (PrepareDefault)
	budgets budgetCache
	adm     *admission // holds in memory (Options.Exclusive); nil otherwise

	batches, ops atomic.Int64 // committed by the committer, for Stats

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *op
	done   chan struct{}

	checkpoints            checkpoints
	yield                  func()        // runtime.Gosched; gather's tests count its calls
	keeperStop, keeperDone chan struct{} // nil for an exclusive ledger
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
		o.TxTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = time.Second
	}
	l := &Ledger{store: s, clock: o.Clock, opts: o, log: o.Logger,
		queue: make(chan *op, o.QueueLen), done: make(chan struct{}), yield: runtime.Gosched}
	go l.commit()
	if o.Exclusive {
		l.adm = newAdmission()
	} else {
		l.keeperStop, l.keeperDone = make(chan struct{}), make(chan struct{})
		go l.keep()
	}
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
		if l.keeperStop != nil {
			close(l.keeperStop)
		}
	}
	l.mu.Unlock()
	<-l.done
	if l.keeperDone != nil {
		<-l.keeperDone
	}
	return nil
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
	// state is opWaiting until the committer answers (opAnswered) or the
	// caller gives up (opAbandoned), whichever comes first.
	state atomic.Int32
}

// op states.
const (
	opWaiting int32 = iota
	opAnswered
	opAbandoned
)

type opResult struct {
	hold   Hold
	settle SettleResult
	void   VoidResult
	swept  sweptAs
	err    error
}

// isClosed reports whether Close was called.
func (l *Ledger) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

func (l *Ledger) submit(ctx context.Context, o *op) (opResult, error) {
	if l.opts.HoldWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.HoldWait)
		defer cancel()
	}
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
	// committer reaches it. A caller that stops waiting abandons it: a hold
	// the committer places after all is voided (see runBatch), so a caller
	// never sees a timeout for a hold that stays in force.
	select {
	case <-o.done:
		return o.res, o.res.err
	case <-ctx.Done():
	}
	if o.state.CompareAndSwap(opWaiting, opAbandoned) {
		return opResult{}, ctx.Err()
	}
	<-o.done // answered meanwhile
	return o.res, o.res.err
}

// commit is the committer goroutine.
func (l *Ledger) commit() {
	defer close(l.done)
	for first := range l.queue {
		l.runBatch(l.gather([]*op{first}))
	}
}

// gather lets the callers just woken by the last batch run and queue their
// next operation before batch is cut: with few cores the first sender
// would otherwise wake the committer alone, and batches would shrink to
// one. It yields at most 8 times, and stops as soon as a round brings
// nothing or the batch is full.
func (l *Ledger) gather(batch []*op) []*op {
	for round := 0; round < 8 && len(batch) < l.opts.MaxBatch; round++ {
		l.yield()
		n := len(batch)
		batch = l.drain(batch)
		if len(batch) == n {
			break
		}
	}
	return batch
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
			l.answer(o)
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TxTimeout)
	err := l.runTx(ctx, live)
	if err != nil && len(live) > 1 {
		// One bad item must not fail its neighbours: retry each alone,
		// except those whose callers have given up meanwhile.
		l.log.Warn("ledger batch failed; retrying items one by one", "items", len(live), "err", err)
		for _, o := range live {
			if o.ctx.Err() != nil {
				o.res = opResult{err: err}
				continue
			}
			if e := l.runTx(ctx, []*op{o}); e != nil {
				o.res = opResult{err: e}
			}
		}
	} else if err != nil {
		live[0].res = opResult{err: err}
	}
	cancel()
	var undo []string
	for _, o := range live {
		if !l.answer(o) && o.kind == opHold && o.res.err == nil && o.res.hold.State == HoldPending {
			undo = append(undo, o.res.hold.RequestID)
		}
	}
	l.voidAbandoned(undo)
}

// answer hands an operation's result to its caller; false if the caller
// had given up on it.
func (l *Ledger) answer(o *op) bool {
	answered := o.state.CompareAndSwap(opWaiting, opAnswered)
	close(o.done)
	return answered
}

// voidAbandoned voids the holds placed for callers that had stopped
// waiting (their requests were refused): nothing will settle them. If the
// store fails again they stay pending until they expire and are swept.
func (l *Ledger) voidAbandoned(reqs []string) {
	if len(reqs) == 0 {
		return
	}
	ops := make([]*op, len(reqs))
	for i, req := range reqs {
		ops[i] = &op{ctx: context.Background(), kind: opVoid, req: req}
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TxTimeout)
	defer cancel()
	if err := l.runTx(ctx, ops); err != nil {
		l.log.Warn("holds of requests that stopped waiting were not voided; they expire and are swept", "holds", len(reqs), "err", err)
		return
	}
	l.batches.Add(1)
	l.ops.Add(int64(len(ops)))
}

// runTx applies ops in one transaction. Item-level failures are left in each
// op's result; any other error aborts the transaction and is returned.
func (l *Ledger) runTx(ctx context.Context, ops []*op) error {
	err := l.runTxOnce(ctx, ops, true)
	if errors.Is(err, errUnbatch) {
		err = l.runTxOnce(ctx, ops, false)
	}
	return err
}

// runTxOnce is runTx; batch says whether settlements of holds in memory may
// be posted together (settleInBatch).
func (l *Ledger) runTxOnce(ctx context.Context, ops []*op, batch bool) error {
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	// Lock order: customer accounts by tenant id, then system accounts.
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].tenant < ops[order[b]].tenant })
	results := make([]opResult, len(ops))
	err := l.update(ctx, func(tx Tx) error {
		ctx := ctx
		if l.adm == nil { // budgets may have changed on another node
			var err error
			if ctx, err = l.syncBudgets(ctx, tx); err != nil {
				return err
			}
		}
		now := l.clock.Now()
		sys := sysDeltas{}
		pre, err := l.pipeline(ctx, tx, ops, order, now)
		if err != nil {
			return err
		}
		var batched map[int]SettleResult
		if tt, ok := tx.(*trackTx); ok && batch {
			if batched, err = l.settleInBatch(ctx, tt, ops, order, now, sys); err != nil {
				return err
			}
		}
		for _, i := range order {
			o := ops[i]
			var r opResult
			var err error
			if b, ok := batched[i]; ok {
				results[i] = opResult{settle: b}
				continue
			}
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
				r.void, err = l.voidTx(ctx, tx, o.req, true, "", now, sys)
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
