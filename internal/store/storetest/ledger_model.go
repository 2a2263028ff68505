package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// regressionSeeds are seeds that once found a bug; they run every time.
var regressionSeeds = []uint64{1000, 1001, 1002, 1077, 2066, 2134}

// modelSteps is the length of one randomised sequence.
const modelSteps = 150

// testLedgerModel runs seeded random sequences of top-ups, holds, settles,
// voids, expiries, same-id retries and duplicates, checking the ledger
// against a simple in-memory model after every step. A failure names its
// seed; add it to regressionSeeds. BAIMO_LEDGER_SEEDS=n runs n more seeds.
func testLedgerModel(t *testing.T, open func(t *testing.T) Store) {
	seeds := append([]uint64{}, regressionSeeds...)
	n := 4
	if v, err := strconv.Atoi(os.Getenv("BAIMO_LEDGER_SEEDS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < n; i++ {
		if seed := uint64(2000 + i); !slices.Contains(seeds, seed) {
			seeds = append(seeds, seed)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			if !runModel(t, open(t), seed) {
				t.Errorf("ledger diverged from the model with seed %d (add it to regressionSeeds)", seed)
			}
		})
	}
}

type modelHold struct {
	amount  int64
	state   ledger.HoldState
	expires time.Time
}

type modelTenant struct {
	kind                  ledger.Kind
	limit                 int64
	posted, pending, debt int64
}

// floorOK reports whether the tenant can take extra more debits now.
func (m *modelTenant) floorOK(extra int64) bool {
	return m.posted-m.pending-extra >= -m.limit
}

type model struct {
	tenants map[string]*modelTenant
	holds   map[string]*modelHold // by request id
	tenant  map[string]string     // request id -> tenant
	records map[string]int64      // request id -> stored cost
	settled map[string]bool
}

func (m *model) charge(tn *modelTenant, amt int64) (over, debt int64) {
	if tn.floorOK(amt) {
		tn.posted -= amt
		return amt, 0
	}
	tn.debt += amt
	return 0, amt
}

func (m *model) repay(tn *modelTenant) {
	if tn.debt <= 0 {
		return
	}
	r := min(tn.debt, tn.posted-tn.pending+tn.limit)
	if r > 0 {
		tn.posted -= r
		tn.debt -= r
	}
}

func runModel(t *testing.T, s Store, seed uint64) bool {
	ctx := context.Background()
	l, clk := newLedger(t, s)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := &model{tenants: map[string]*modelTenant{}, holds: map[string]*modelHold{}, tenant: map[string]string{},
		records: map[string]int64{}, settled: map[string]bool{}}
	for _, tn := range []struct {
		id    string
		kind  ledger.Kind
		limit int64
	}{{"pre", ledger.Prepaid, 0}, {"post", ledger.Postpaid, 20 * yuan}} {
		mustTenant(t, l, tn.id, tn.kind, tn.limit)
		m.tenants[tn.id] = &modelTenant{kind: tn.kind, limit: tn.limit}
	}
	tenantIDs := []string{"pre", "post"}
	nextReq := 0
	pickReq := func() string {
		if nextReq > 0 && rng.IntN(3) > 0 {
			return fmt.Sprintf("q%d", rng.IntN(nextReq))
		}
		nextReq++
		return fmt.Sprintf("q%d", nextReq-1)
	}
	amount := func() int64 { return int64(rng.IntN(9)) * yuan / 4 }
	ok := true
	trace := os.Getenv("BAIMO_LEDGER_TRACE") != ""
	logf := func(step int, format string, args ...any) {
		if trace {
			t.Logf("step %d: %s", step, fmt.Sprintf(format, args...))
		}
	}
	fail := func(step int, format string, args ...any) {
		t.Errorf("seed %d step %d: %s", seed, step, fmt.Sprintf(format, args...))
		ok = false
	}
	for step := 0; step < modelSteps && ok; step++ {
		switch op := rng.IntN(10); {
		case op == 0: // top-up
			tid := tenantIDs[rng.IntN(2)]
			amt := int64(1+rng.IntN(8)) * yuan
			logf(step, "top-up %s by %d", tid, amt)
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: tid, Amount: amt}); err != nil {
				fail(step, "TopUp: %v", err)
				break
			}
			tn := m.tenants[tid]
			tn.posted += amt
			m.repay(tn)
		case op <= 3: // hold (new or a retry of a known id)
			req := pickReq()
			tid, known := m.tenant[req]
			if !known {
				tid = tenantIDs[rng.IntN(2)]
			}
			amt := amount()
			h, err := l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: tid, Amount: cny(amt)})
			logf(step, "hold %s on %s of %d: %+v, %v", req, tid, amt, h, err)
			tn := m.tenants[tid]
			if mh, dup := m.holds[req]; dup {
				if err != nil || h.Amount != mh.amount {
					fail(step, "retried Hold %s = %+v, %v; want the first hold of %d", req, h, err, mh.amount)
				}
				break
			}
			if _, done := m.records[req]; done {
				if !errors.Is(err, ledger.ErrInvalid) {
					fail(step, "Hold %s after its settlement: %v, want ErrInvalid", req, err)
				}
				break
			}
			want := tn.debt == 0 && tn.floorOK(amt)
			switch {
			case want && err != nil:
				fail(step, "Hold %s of %d on %s: %v; model allows it (%+v)", req, amt, tid, err, *tn)
			case !want && !errors.Is(err, ledger.ErrInsufficientFunds):
				fail(step, "Hold %s of %d on %s: %v; model refuses it (%+v)", req, amt, tid, err, *tn)
			case want:
				tn.pending += amt
				m.holds[req] = &modelHold{amount: amt, state: ledger.HoldPending, expires: clk.Now().Add(holdTTL)}
				m.tenant[req] = tid
			}
		case op <= 6: // settle (possibly a retry, or with no hold at all)
			req := pickReq()
			tid, known := m.tenant[req]
			if !known {
				tid = tenantIDs[rng.IntN(2)]
			}
			cost := amount()
			if rng.IntN(4) == 0 {
				cost += amount() // an overage
			}
			r, err := l.Settle(ctx, ledger.Settlement{Record: rec(req, tid, cost)})
			logf(step, "settle %s on %s cost %d: %+v, %v", req, tid, cost, r, err)
			if err != nil {
				fail(step, "Settle %s: %v", req, err)
				break
			}
			if m.settled[req] {
				break // a retry: nothing changes (checked by the balances below)
			}
			if c, ok := m.records[req]; ok {
				cost = c
			}
			m.records[req] = cost
			m.settled[req] = true
			m.tenant[req] = tid
			tn := m.tenants[tid]
			var want ledger.SettleResult
			if mh := m.holds[req]; mh != nil && mh.state == ledger.HoldPending {
				post := min(cost, mh.amount)
				tn.pending -= mh.amount
				tn.posted -= post
				mh.state = ledger.HoldPosted
				want.Posted, want.Released = post, mh.amount-post
				if cost > post {
					want.Overage, want.Debt = m.charge(tn, cost-post)
				}
			} else if cost > 0 {
				want.Overage, want.Debt = m.charge(tn, cost)
			}
			if r.Posted != want.Posted || r.Released != want.Released || r.Overage != want.Overage || r.Debt != want.Debt {
				fail(step, "Settle %s cost %d = %+v, model wants %+v", req, cost, r, want)
			}
		case op == 7: // void
			req := pickReq()
			v, err := l.Void(ctx, req)
			logf(step, "void %s: %+v, %v", req, v, err)
			mh := m.holds[req]
			switch {
			case mh == nil:
				if !errors.Is(err, ledger.ErrNotFound) {
					fail(step, "Void(%s) with no hold: %v, want ErrNotFound", req, err)
				}
			case err != nil:
				fail(step, "Void(%s): %v", req, err)
			case mh.state == ledger.HoldPending:
				if _, ok := m.records[req]; ok {
					m.settleHold(req) // a recorded request is settled, not voided
					break
				}
				mh.state = ledger.HoldVoided
				m.tenants[m.tenant[req]].pending -= mh.amount
			}
		case op == 8: // the record arrives by another path before any settlement
			req := pickReq()
			mh := m.holds[req]
			if _, recorded := m.records[req]; mh == nil || mh.state != ledger.HoldPending || recorded {
				break
			}
			cost := amount()
			logf(step, "record %s cost %d", req, cost)
			if err := s.WriteRecords(ctx, []usage.Record{rec(req, m.tenant[req], cost)}); err != nil {
				fail(step, "WriteRecords: %v", err)
			}
			m.records[req] = cost
		case op == 9: // time passes; the sweeper runs
			clk.Advance(time.Duration(1+rng.IntN(4)) * 2 * time.Minute)
			sw, err := l.Sweep(ctx)
			logf(step, "sweep at %s: %+v", clk.Now().Format(time.TimeOnly), sw)
			if err != nil {
				fail(step, "Sweep: %v", err)
			}
			m.expire(clk.Now())
		}
		if !ok {
			break
		}
		for _, tid := range tenantIDs {
			b, err := l.Balance(ctx, tid)
			tn := m.tenants[tid]
			if err != nil || b.Posted != tn.posted || b.Pending != tn.pending || b.Debt != tn.debt {
				fail(step, "Balance(%s) = %+v, %v; model %+v", tid, b, err, *tn)
			}
		}
	}
	if ok {
		// Finally everything expires and is swept: the books must be clean.
		clk.Advance(time.Hour)
		if _, err := l.Sweep(ctx); err != nil {
			fail(modelSteps, "final Sweep: %v", err)
		}
	}
	return ok
}

// expire applies the sweep to the model: pending holds whose expiry has
// passed are settled from their record when there is one, voided otherwise.
func (m *model) expire(now time.Time) {
	var due []string
	for req, mh := range m.holds {
		if mh.state == ledger.HoldPending && !mh.expires.After(now) {
			due = append(due, req)
		}
	}
	// The sweeper takes them by expiry, then request id.
	slices.SortFunc(due, func(a, b string) int {
		if c := m.holds[a].expires.Compare(m.holds[b].expires); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, req := range due {
		mh := m.holds[req]
		if _, ok := m.records[req]; ok {
			m.settleHold(req)
			continue
		}
		mh.state = ledger.HoldVoided
		m.tenants[m.tenant[req]].pending -= mh.amount
	}
}

// settleHold settles a pending hold from its stored record.
func (m *model) settleHold(req string) {
	mh, tn, cost := m.holds[req], m.tenants[m.tenant[req]], m.records[req]
	tn.pending -= mh.amount
	mh.state = ledger.HoldPosted
	m.settled[req] = true
	post := min(cost, mh.amount)
	tn.posted -= post
	if cost > post {
		m.charge(tn, cost-post)
	}
}
