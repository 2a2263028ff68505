package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
)

// bucket is the state of one limit key in process. Its fields are guarded by
// the lock of its stripe.
type bucket struct {
	stripe uint8 // index into Local.stripes; fixed at creation
	dead   bool  // swept from the map; Acquire must look the key up again
	rd, rt int64 // request debt and when it was last updated (ms)
	td, tt int64 // token debt and its time
	conc   int64 // requests in flight
}

// idle reports whether the bucket holds nothing worth keeping at now (ms).
// The caller holds the bucket's stripe lock.
func (b *bucket) idle(now int64) bool {
	return b.conc == 0 && now-b.rt > unit && now-b.tt > unit
}

// stripeCount is how many locks guard the buckets. A power of two at most
// 256 (bucket.stripe is a uint8).
const stripeCount = 64

// stripe is one lock, padded to the size of a cache line so that stripes
// taken on different cores seldom share one.
type stripe struct {
	mu sync.Mutex
	_  [56]byte
}

// Local is the in-process Limiter. Buckets appear on first use and are swept
// when idle.
//
// Each bucket is guarded by one of a fixed set of stripe locks, and a new
// bucket joins the stripe of the first existing bucket of the request that
// creates it. So the buckets that requests use together (a key, its tenant,
// the key on a model) end up under one lock, and a check takes one lock
// however many buckets it names, while unrelated tenants spread over the
// stripes. A request whose buckets span stripes locks them all, in stripe
// order, so concurrent checks cannot deadlock.
type Local struct {
	clk     clock.Clock
	wall    bool     // clk is clock.Real: read the time with wallMillis
	buckets sync.Map // string → *bucket
	count   atomic.Int64
	next    atomic.Uint32 // picks the stripe of a request whose buckets are all new
	sweepAt atomic.Int64
	sweepMu sync.Mutex
	stripes [stripeCount]stripe
}

var _ Limiter = (*Local)(nil)

// minSweepAt is the bucket count above which idle buckets are swept.
const minSweepAt = 100_000

// NewLocal returns an in-process limiter on clk (nil means clock.Real).
func NewLocal(clk clock.Clock) *Local {
	if clk == nil {
		clk = clock.Real{}
	}
	_, wall := clk.(clock.Real)
	l := &Local{clk: clk, wall: wall}
	l.sweepAt.Store(minSweepAt)
	return l
}

// nowMs is t, or the clock's time when t is zero, in Unix milliseconds.
func (l *Local) nowMs(t time.Time) int64 {
	switch {
	case !t.IsZero():
		return t.UnixMilli()
	case l.wall:
		return wallMillis()
	default:
		return l.clk.Now().UnixMilli()
	}
}

// resolve sets bs[i] to the bucket of limits[i], creating the missing ones
// in the stripe of the first existing one (or a fresh stripe if none
// exists).
func (l *Local) resolve(bs *[MaxLimits]*bucket, limits []Limit) {
	s, missing := -1, false
	for i := range limits {
		bs[i] = nil
		if v, ok := l.buckets.Load(limits[i].Key); ok {
			b := v.(*bucket)
			bs[i] = b
			if s < 0 {
				s = int(b.stripe)
			}
		} else {
			missing = true
		}
	}
	if !missing {
		return
	}
	if s < 0 {
		s = int(l.next.Add(1) % stripeCount)
	}
	for i := range limits {
		if bs[i] == nil {
			bs[i] = l.create(limits[i].Key, uint8(s))
		}
	}
}

// create returns the bucket of key, making it in stripe s unless another
// request made it first.
func (l *Local) create(key string, s uint8) *bucket {
	b, loaded := l.buckets.LoadOrStore(key, &bucket{stripe: s})
	if !loaded {
		if l.count.Add(1) > l.sweepAt.Load() {
			l.sweep()
		}
	}
	return b.(*bucket)
}

// stripeSet is the distinct stripes of a request's buckets, ascending: the
// order in which they are locked.
type stripeSet struct {
	n int
	s [MaxLimits]uint8
}

// stripesOf collects the stripes of the non-nil buckets in bs.
func stripesOf(bs []*bucket) stripeSet {
	var set stripeSet
	if len(bs) > 0 && bs[0] != nil {
		// The common case: every bucket in the first one's stripe.
		s := bs[0].stripe
		same := true
		for _, b := range bs[1:] {
			same = same && b != nil && b.stripe == s
		}
		if same {
			set.n, set.s[0] = 1, s
			return set
		}
	}
	for _, b := range bs {
		if b == nil {
			continue
		}
		s := b.stripe
		j := set.n
		for j > 0 && set.s[j-1] > s {
			j--
		}
		if j > 0 && set.s[j-1] == s {
			continue // already in the set
		}
		copy(set.s[j+1:set.n+1], set.s[j:set.n])
		set.s[j] = s
		set.n++
	}
	return set
}

func (l *Local) lock(set *stripeSet) {
	for _, s := range set.s[:set.n] {
		l.stripes[s].mu.Lock()
	}
}

func (l *Local) unlock(set *stripeSet) {
	for _, s := range set.s[:set.n] {
		l.stripes[s].mu.Unlock()
	}
}

// sweep drops idle buckets. A bucket is marked dead under its stripe lock
// before it leaves the map, so an Acquire that looked it up just before
// retries with the new one instead of counting on a dropped bucket. The
// caller must hold no stripe lock.
func (l *Local) sweep() {
	if !l.sweepMu.TryLock() {
		return
	}
	defer l.sweepMu.Unlock()
	now := l.nowMs(time.Time{})
	l.buckets.Range(func(k, v any) bool {
		b := v.(*bucket)
		mu := &l.stripes[b.stripe].mu
		mu.Lock()
		if b.idle(now) && l.buckets.CompareAndDelete(k, v) {
			b.dead = true
			l.count.Add(-1)
		}
		mu.Unlock()
		return true
	})
	l.sweepAt.Store(max(minSweepAt, 2*l.count.Load()))
}

// Len returns the number of buckets held (for metrics and tests).
func (l *Local) Len() int { return int(l.count.Load()) }

// Acquire implements Limiter.
func (l *Local) Acquire(_ context.Context, req Request) (r Result, err error) {
	if err := validate(&req); err != nil {
		return Result{}, err
	}
	now := l.nowMs(req.Now)
	n := len(req.Limits)
	var bs [MaxLimits]*bucket
	var set stripeSet
	for {
		l.resolve(&bs, req.Limits)
		set = stripesOf(bs[:n])
		l.lock(&set)
		dead := false
		for _, b := range bs[:n] {
			dead = dead || b.dead
		}
		if !dead {
			break
		}
		l.unlock(&set) // swept meanwhile: look up again
	}
	var v verdict
	check(&v, &req, now, bs[:n])
	l.unlock(&set)
	fillResult(&r, &req, &v)
	if r.Allowed {
		// A local lease needs no keys: it holds the buckets themselves.
		r.Lease.n, r.Lease.tokens, r.Lease.buckets = n, req.Tokens, bs
		for i := range n {
			r.Lease.tpm[i] = req.Limits[i].TPM
			r.Lease.conc[i] = req.Limits[i].Concurrency > 0
		}
	}
	return r, nil
}

// check decides on req against the locked buckets and, if allowed, commits.
// It is the Go twin of the Lua acquire script.
func check(v *verdict, req *Request, now int64, bs []*bucket) {
	var rd, td [MaxLimits]int64
	c := req.Tokens * unit
	for i, b := range bs {
		l := &req.Limits[i]
		rd[i] = leak(b.rd, b.rt, now, l.RPM)
		td[i] = leak(b.td, b.tt, now, l.TPM)
		v.per[i] = perLimit{rd: rd[i], td: td[i]}
		if v.refused != KindNone {
			continue
		}
		switch tolR, tolT := burstOf(l)*unit, l.TPM*unit; {
		case l.RPM > 0 && rd[i]+unit > tolR:
			v.refused, v.refusedIdx, v.retryMs = KindRequests, i, cdiv(rd[i]+unit-tolR, l.RPM)
		case l.TPM > 0 && c > 0 && c > tolT:
			v.refused, v.refusedIdx, v.retryMs = KindTokens, i, -1
		case l.TPM > 0 && c > 0 && td[i]+c > tolT:
			v.refused, v.refusedIdx, v.retryMs = KindTokens, i, cdiv(td[i]+c-tolT, l.TPM)
		case l.Concurrency > 0 && b.conc >= l.Concurrency:
			v.refused, v.refusedIdx, v.retryMs = KindConcurrency, i, concurrencyRetryMs
		}
	}
	if v.refused != KindNone {
		return
	}
	for i, b := range bs {
		l := &req.Limits[i]
		if l.RPM > 0 {
			rd[i] += unit
		}
		if l.TPM > 0 {
			td[i] += c
		}
		b.rd, b.rt = rd[i], max(b.rt, now)
		b.td, b.tt = td[i], max(b.tt, now)
		if l.Concurrency > 0 {
			b.conc++
		}
		v.per[i] = perLimit{rd: rd[i], td: td[i]}
	}
}

// concurrencyRetryMs is the retry-after suggested when a concurrency limit
// refuses: the limiter cannot know when a slot frees, so it says a second.
const concurrencyRetryMs = 1000

// Release implements Limiter.
func (l *Local) Release(_ context.Context, lease *Lease, usedTokens int64) error {
	if lease == nil || lease.n == 0 || lease.released {
		return nil
	}
	if usedTokens < 0 || usedTokens > MaxRate {
		return fmt.Errorf("%w: used tokens %d out of range", ErrInvalid, usedTokens)
	}
	lease.released = true
	// Read the clock only if a reservation is to be settled.
	var now int64
	if usedTokens != lease.tokens {
		for _, tpm := range lease.tpm[:lease.n] {
			if tpm > 0 {
				now = l.nowMs(time.Time{})
				break
			}
		}
	}
	set := stripesOf(lease.buckets[:lease.n])
	l.lock(&set)
	for i := range lease.n {
		b := lease.buckets[i]
		if b == nil {
			continue
		}
		if lease.conc[i] && b.conc > 0 {
			b.conc--
		}
		if tpm := lease.tpm[i]; tpm > 0 && usedTokens != lease.tokens {
			b.td = settle(b.td, b.tt, now, tpm, lease.tokens, usedTokens)
			b.tt = max(b.tt, now)
		}
	}
	l.unlock(&set)
	return nil
}

// settle adjusts token debt for a reservation of reserved that used used:
// a refund when less, a charge when more, kept within [0, a minute's worth].
func settle(d, t, now, tpm, reserved, used int64) int64 {
	d = leak(d, t, now, tpm) + (used-reserved)*unit
	return min(max(d, 0), tpm*unit)
}
