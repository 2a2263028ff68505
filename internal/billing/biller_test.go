package billing

import (
	"context"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
)

// TestBillerRunsOnItsClock: the sweeper runs on the clock the Biller was
// given, so tests and simulations step it instead of waiting.
func TestBillerRunsOnItsClock(t *testing.T) {
	clk := clock.NewFake(t0)
	books := &sweepBooks{sweeps: make(chan struct{}, 1), res: ledger.SweepResult{}}
	b := New(Options{Rater: testRater(t), Books: books, Clock: clk, Log: quiet()})
	defer b.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, nil, time.Minute); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the sweeper's ticker on the fake clock", func() bool { return clk.Waiters() == 1 })
	clk.Advance(time.Minute)
	select {
	case <-books.sweeps:
	case <-time.After(10 * time.Second):
		t.Fatal("no sweep a minute later on the Biller's clock")
	}
}
