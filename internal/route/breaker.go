package route

import (
	"sync"
	"sync/atomic"
)

// BreakerState is the state of a circuit breaker.
type BreakerState int32

// Breaker states.
const (
	Closed   BreakerState = iota // traffic flows
	Open                         // no traffic until the open period ends
	HalfOpen                     // a limited number of probes may pass
)

var breakerStateNames = [...]string{"closed", "open", "half_open"}

// String returns the name shown in the admin API.
func (s BreakerState) String() string {
	if s >= 0 && int(s) < len(breakerStateNames) {
		return breakerStateNames[s]
	}
	return "unknown"
}

// breaker is a circuit breaker. Reads on the selection path are atomic loads;
// transitions take mu. Times are Unix nanoseconds from the router's clock.
type breaker struct {
	state      atomic.Int32
	openUntil  atomic.Int64
	failures   atomic.Int32 // consecutive failures in the current window
	admitted   atomic.Int32 // probes admitted in the current half-open period
	halfOpenAt atomic.Int64

	mu          sync.Mutex
	windowStart int64
	successes   int32 // probe successes in the current half-open period
	openedAt    int64
	trips       int64 // times opened, for the admin API
}

// usable reports, without side effects, whether a request could pass now.
func (b *breaker) usable(now int64, cfg *Breaker) bool {
	switch BreakerState(b.state.Load()) {
	case Closed:
		return true
	case Open:
		return now >= b.openUntil.Load()
	default:
		return b.admitted.Load() < int32(cfg.Probes) || now-b.halfOpenAt.Load() >= int64(cfg.OpenFor)
	}
}

// acquire lets a request through if the breaker allows one now. probe is true
// when the request is a half-open probe whose outcome decides the breaker.
func (b *breaker) acquire(now int64, cfg *Breaker) (probe, ok bool) {
	if BreakerState(b.state.Load()) == Closed {
		return false, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch BreakerState(b.state.Load()) {
	case Closed:
		return false, true
	case Open:
		if now < b.openUntil.Load() {
			return false, false
		}
		b.toHalfOpen(now)
	}
	// Half-open. Probes that never reported (a leaked attempt) must not
	// wedge the breaker: after another OpenFor, admit a fresh round.
	if now-b.halfOpenAt.Load() >= int64(cfg.OpenFor) {
		b.toHalfOpen(now)
	}
	if b.admitted.Load() >= int32(cfg.Probes) {
		return false, false
	}
	b.admitted.Add(1)
	return true, true
}

func (b *breaker) toHalfOpen(now int64) {
	b.state.Store(int32(HalfOpen))
	b.halfOpenAt.Store(now)
	b.admitted.Store(0)
	b.successes = 0
}

// success records a request that showed the upstream works.
func (b *breaker) success(probe bool, cfg *Breaker) {
	st := BreakerState(b.state.Load())
	if st == Closed && b.failures.Load() == 0 {
		return // the common case: no lock
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch BreakerState(b.state.Load()) {
	case Closed:
		b.failures.Store(0)
	case HalfOpen:
		if !probe {
			return
		}
		b.successes++
		if b.successes >= int32(cfg.Probes) {
			b.state.Store(int32(Closed))
			b.failures.Store(0)
			b.admitted.Store(0)
		}
	}
}

// failure records a failed request and opens the breaker when due.
func (b *breaker) failure(now int64, probe bool, cfg *Breaker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch BreakerState(b.state.Load()) {
	case Closed:
		if b.failures.Load() == 0 || now-b.windowStart > int64(cfg.Window) {
			b.windowStart = now
			b.failures.Store(0)
		}
		if b.failures.Add(1) >= int32(cfg.Failures) {
			b.open(now, cfg)
		}
	case HalfOpen:
		if probe {
			b.open(now, cfg)
		}
	}
	// Open: a late result from before the trip changes nothing.
}

func (b *breaker) open(now int64, cfg *Breaker) {
	b.state.Store(int32(Open))
	b.openUntil.Store(now + int64(cfg.OpenFor))
	b.openedAt = now
	b.failures.Store(0)
	b.admitted.Store(0)
	b.trips++
}

// abandon gives back a probe slot whose request ended without a verdict
// (the client went away, or another component failed first).
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if BreakerState(b.state.Load()) == HalfOpen && b.admitted.Load() > 0 {
		b.admitted.Add(-1)
	}
}

// reset closes the breaker (operator action).
func (b *breaker) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Store(int32(Closed))
	b.failures.Store(0)
	b.admitted.Store(0)
}

// openEpoch reports whether the breaker is open and still inside its open
// period at now, and if so which trip that is (the trip count identifies
// the open period even when two trips share a timestamp).
func (b *breaker) openEpoch(now int64) (epoch int64, open bool) {
	if BreakerState(b.state.Load()) != Open || now >= b.openUntil.Load() {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if BreakerState(b.state.Load()) != Open {
		return 0, false
	}
	return b.trips, true
}

// probeSucceeded ends the open period that began with trip epoch early, by
// moving the breaker to half-open: real requests then confirm the upstream
// (it closes after Probes successes) or open it again on the first failure.
// It does nothing, and reports false, if the breaker has moved on since the
// probe started (closed, half-open, or opened again by a later trip).
func (b *breaker) probeSucceeded(now, epoch int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if BreakerState(b.state.Load()) != Open || b.trips != epoch {
		return false
	}
	b.toHalfOpen(now)
	return true
}

// trial puts the breaker in half-open whatever its state, so that only
// probe requests pass until one succeeds (used when a probe brings a parked
// key back: real traffic must confirm it before the key takes its share).
func (b *breaker) trial(now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.toHalfOpen(now)
}
