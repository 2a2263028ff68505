package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func recv(t *testing.T, c <-chan time.Time) (time.Time, bool) {
	t.Helper()
	select {
	case at := <-c:
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimer(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(10 * time.Second)
	f.Advance(9 * time.Second)
	if _, ok := recv(t, tm.C()); ok {
		t.Fatal("timer fired a second early")
	}
	f.Advance(time.Second)
	at, ok := recv(t, tm.C())
	if !ok || !at.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("timer at 10 s: fired %v at %v", ok, at)
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reports it pending")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a fired timer reports it pending")
	}
	if !tm.Stop() {
		t.Fatal("Stop of a reset timer reports it not pending")
	}
	f.Advance(time.Hour)
	if _, ok := recv(t, tm.C()); ok {
		t.Fatal("a stopped timer fired")
	}
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters left", f.Waiters())
	}
}

func TestFakeTickerAndOrder(t *testing.T) {
	f := NewFake(t0)
	var order []string
	done := make(chan string, 8)
	f.AfterFunc(3*time.Second, func() { done <- "after3" })
	tk := f.NewTicker(2 * time.Second)
	tm := f.NewTimer(5 * time.Second)
	// Step one second at a time, reading what fired at each step.
	for i := 1; i <= 6; i++ {
		f.Advance(time.Second)
		if at, ok := recv(t, tk.C()); ok {
			order = append(order, "tick@"+at.Sub(t0).String())
		}
		if at, ok := recv(t, tm.C()); ok {
			order = append(order, "timer@"+at.Sub(t0).String())
		}
		if i == 3 {
			order = append(order, <-done)
		}
	}
	want := []string{"tick@2s", "after3", "tick@4s", "timer@5s", "tick@6s"}
	if len(order) != len(want) {
		t.Fatalf("fired %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("fired %v, want %v", order, want)
		}
	}
	// A jump over several periods delivers one tick (the channel holds one),
	// as time.Ticker drops ticks nobody read.
	f.Advance(10 * time.Second)
	if _, ok := recv(t, tk.C()); !ok {
		t.Fatal("no tick after a 10 s jump")
	}
	if _, ok := recv(t, tk.C()); ok {
		t.Fatal("a second buffered tick")
	}
	tk.Stop()
	f.Advance(time.Minute)
	if _, ok := recv(t, tk.C()); ok {
		t.Fatal("a stopped ticker ticked")
	}
}

func TestFakeZeroTimerFiresAtOnce(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(0)
	if _, ok := recv(t, tm.C()); !ok {
		t.Fatal("a zero timer did not fire at once")
	}
}

func TestRealClock(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real timer never fired")
	}
	fired := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(fired) })
	<-fired
}
