package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"baimo/internal/clock"
)

// bucket is the state of one limit key in process.
type bucket struct {
	mu     sync.Mutex
	seq    uint64 // lock order
	rd, rt int64  // request debt and when it was last updated (ms)
	td, tt int64  // token debt and its time
	conc   int64  // requests in flight
	dead   bool   // swept from the map; Acquire must look the key up again
}

// idle reports whether the bucket holds nothing worth keeping at now (ms).
// The caller holds b.mu.
func (b *bucket) idle(now int64) bool {
	return b.conc == 0 && now-b.rt > unit && now-b.tt > unit
}

// Local is the in-process Limiter. Buckets appear on first use and are swept
// when idle.
type Local struct {
	clk     clock.Clock
	buckets sync.Map // string → *bucket
	count   atomic.Int64
	seq     atomic.Uint64
	sweepAt atomic.Int64
	sweepMu sync.Mutex
}

var _ Limiter = (*Local)(nil)

// minSweepAt is the bucket count above which idle buckets are swept.
const minSweepAt = 100_000

// NewLocal returns an in-process limiter on clk (nil means clock.Real).
func NewLocal(clk clock.Clock) *Local {
	if clk == nil {
		clk = clock.Real{}
	}
	l := &Local{clk: clk}
	l.sweepAt.Store(minSweepAt)
	return l
}

func (l *Local) bucket(key string) *bucket {
	if b, ok := l.buckets.Load(key); ok {
		return b.(*bucket)
	}
	nb := &bucket{seq: l.seq.Add(1)}
	b, loaded := l.buckets.LoadOrStore(key, nb)
	if !loaded {
		if l.count.Add(1) > l.sweepAt.Load() {
			l.sweep()
		}
	}
	return b.(*bucket)
}

// sweep drops idle buckets. A bucket is marked dead under its lock before it
// leaves the map, so an Acquire that looked it up just before retries with
// the new one instead of counting on a dropped bucket.
func (l *Local) sweep() {
	if !l.sweepMu.TryLock() {
		return
	}
	defer l.sweepMu.Unlock()
	now := l.clk.Now().UnixMilli()
	l.buckets.Range(func(k, v any) bool {
		b := v.(*bucket)
		b.mu.Lock()
		if b.idle(now) && l.buckets.CompareAndDelete(k, v) {
			b.dead = true
			l.count.Add(-1)
		}
		b.mu.Unlock()
		return true
	})
	l.sweepAt.Store(max(minSweepAt, 2*l.count.Load()))
}

// Len returns the number of buckets held (for metrics and tests).
func (l *Local) Len() int { return int(l.count.Load()) }

// Acquire implements Limiter.
func (l *Local) Acquire(_ context.Context, req Request) (Result, error) {
	if err := validate(&req); err != nil {
		return Result{}, err
	}
	now := nowMs(l.clk, req.Now)
	n := len(req.Limits)
	var bs [MaxLimits]*bucket
	var order [MaxLimits]uint8
	for {
		for i := range n {
			bs[i] = l.bucket(req.Limits[i].Key)
		}
		order = lockOrder(&bs, n)
		dead := false
		for _, i := range order[:n] {
			bs[i].mu.Lock()
			dead = dead || bs[i].dead
		}
		if !dead {
			break
		}
		for _, i := range order[:n] { // swept meanwhile: look up again
			bs[i].mu.Unlock()
		}
	}
	var v verdict
	check(&v, &req, now, bs[:n])
	var lease Lease
	if v.refused == KindNone {
		lease = Lease{n: n, tokens: req.Tokens, buckets: bs}
		for i := range n {
			lease.keys[i] = req.Limits[i].Key
			lease.tpm[i] = req.Limits[i].TPM
			lease.conc[i] = req.Limits[i].Concurrency > 0
		}
	}
	for _, i := range order[:n] {
		bs[i].mu.Unlock()
	}
	r := result(&req, &v)
	r.Lease = lease
	return r, nil
}

// lockOrder returns the indexes of bs sorted by bucket sequence, the global
// lock order that keeps concurrent Acquires from deadlocking.
func lockOrder(bs *[MaxLimits]*bucket, n int) [MaxLimits]uint8 {
	var o [MaxLimits]uint8
	for i := range n {
		o[i] = uint8(i)
		for j := i; j > 0 && bs[o[j]].seq < bs[o[j-1]].seq; j-- {
			o[j], o[j-1] = o[j-1], o[j]
		}
	}
	return o
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
	now := l.clk.Now().UnixMilli()
	for i := range lease.n {
		b := lease.buckets[i]
		if b == nil {
			continue
		}
		b.mu.Lock()
		if lease.conc[i] && b.conc > 0 {
			b.conc--
		}
		if tpm := lease.tpm[i]; tpm > 0 && usedTokens != lease.tokens {
			b.td = settle(b.td, b.tt, now, tpm, lease.tokens, usedTokens)
			b.tt = max(b.tt, now)
		}
		b.mu.Unlock()
	}
	return nil
}

// settle adjusts token debt for a reservation of reserved that used used:
// a refund when less, a charge when more, kept within [0, a minute's worth].
func settle(d, t, now, tpm, reserved, used int64) int64 {
	d = leak(d, t, now, tpm) + (used-reserved)*unit
	return min(max(d, 0), tpm*unit)
}
