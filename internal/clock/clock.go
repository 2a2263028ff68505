// Package clock gives the time, timers and tickers to code that decides
// something by them, so tests can step time instead of sleeping (as
// tailscale's tstime does).
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the current time and makes timers and tickers that run on it.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d after now.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that fires every d (d > 0).
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine d after now.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a time.Timer on a Clock. C is nil for a timer made by AfterFunc.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
	// Reset makes the timer fire d after now; it reports whether it was pending.
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker on a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Real is the wall clock.
type Real struct{}

var _ Clock = Real{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// NewTicker returns a time.Ticker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }

// Fake is a clock that moves only when told; its timers and tickers fire as
// Advance or Set passes their time, in time order. It is safe for concurrent
// use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d, firing what falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	to := f.now.Add(d)
	f.mu.Unlock()
	f.Set(to)
}

// Set moves the fake time to t, firing, in order, every timer and ticker due
// at or before t. A time before now only sets the clock back.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].when.Before(f.waiters[j].when) })
		if len(f.waiters) == 0 || f.waiters[0].when.After(t) {
			f.now = t
			f.mu.Unlock()
			return
		}
		w := f.waiters[0]
		if w.when.After(f.now) {
			f.now = w.when
		}
		at := f.now
		if w.period > 0 {
			w.when = w.when.Add(w.period)
		} else {
			f.waiters = f.waiters[1:]
			w.active = false
		}
		f.mu.Unlock()
		w.fire(at)
	}
}

// Waiters returns how many timers and tickers are pending, so a test can wait
// until the code under test has armed one before it advances the clock.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// NewTimer returns a timer on the fake clock.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc calls fn in its own goroutine when the fake time reaches d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

// NewTicker returns a ticker on the fake clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker period")
	}
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.resetPeriod(d, d)
	return fakeTicker{t}
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	fn     func()
	when   time.Time
	period time.Duration
	active bool // guarded by f.mu
}

func (t *fakeTimer) fire(at time.Time) {
	if t.fn != nil {
		go t.fn()
		return
	}
	select { // like time.Ticker, drop a tick the reader has not taken
	case t.c <- at:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.remove()
}

// remove takes t off the clock; f.mu is held.
func (t *fakeTimer) remove() bool {
	was := t.active
	if was {
		for i, w := range t.f.waiters {
			if w == t {
				t.f.waiters = append(t.f.waiters[:i], t.f.waiters[i+1:]...)
				break
			}
		}
	}
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool { return t.resetPeriod(d, 0) }

func (t *fakeTimer) resetPeriod(d, period time.Duration) bool {
	t.f.mu.Lock()
	was := t.remove()
	t.when, t.period, t.active = t.f.now.Add(d), period, true
	t.f.waiters = append(t.f.waiters, t)
	due := !t.when.After(t.f.now)
	now := t.f.now
	t.f.mu.Unlock()
	if due { // a timer of 0 or less fires at once, as time.Timer does
		t.f.Set(now)
	}
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time   { return k.t.c }
func (k fakeTicker) Stop()                 { k.t.Stop() }
func (k fakeTicker) Reset(d time.Duration) { k.t.resetPeriod(d, d) }
