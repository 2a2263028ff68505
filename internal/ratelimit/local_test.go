package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
)

func TestLocal(t *testing.T) {
	runSuite(t, func(t *testing.T, clk clock.Clock) Limiter { return NewLocal(clk) })
}

// TestLocalConcurrentNeverOverAdmits hammers one bucket from many goroutines
// at a frozen clock: exactly the burst and exactly the concurrency pass.
func TestLocalConcurrentNeverOverAdmits(t *testing.T) {
	l := NewLocal(clock.NewFake(t0))
	tenant := Limit{Key: "tenant", RPM: 1000, Burst: 100, TPM: 100_000}
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				// Each goroutine also has its own key bucket, so lock
				// ordering across buckets is exercised.
				key := Limit{Key: string(rune('a' + (g+i)%4)), RPM: 1000}
				r, err := l.Acquire(context.Background(), Request{Limits: []Limit{key, tenant}, Tokens: 500})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// Tokens bind first: 100000/500 = 200 > burst 100, so requests bind.
	if allowed != 100 {
		t.Fatalf("allowed %d, want exactly the burst of 100", allowed)
	}
}

func TestLocalSweepsIdleBuckets(t *testing.T) {
	clk := clock.NewFake(t0)
	l := NewLocal(clk)
	held, err := l.Acquire(context.Background(), Request{Limits: []Limit{{Key: "held", Concurrency: 1}}})
	if err != nil || !held.Allowed {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := l.Acquire(context.Background(), Request{Limits: []Limit{{Key: k, RPM: 10}}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)
	l.sweep()
	if l.Len() != 1 {
		t.Fatalf("%d buckets after sweep, want 1 (the one with a request in flight)", l.Len())
	}
}
