package ratelimit

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
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

// TestLocalStripeAffinity checks what keeps the local check at one lock: a
// new bucket joins the stripe of the request's existing buckets, so a key,
// its tenant and the key on a model share a lock, and so do the tenant's
// other keys.
func TestLocalStripeAffinity(t *testing.T) {
	l := NewLocal(clock.NewFake(t0))
	ctx := context.Background()
	stripeOf := func(key string) uint8 {
		t.Helper()
		v, ok := l.buckets.Load(key)
		if !ok {
			t.Fatalf("no bucket %q", key)
		}
		return v.(*bucket).stripe
	}
	lim := func(key string) Limit { return Limit{Key: key, RPM: 100} }
	if _, err := l.Acquire(ctx, Request{Limits: []Limit{lim("k:1"), lim("t:acme"), lim("k:1|m:x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, Request{Limits: []Limit{lim("k:2"), lim("t:acme"), lim("k:2|m:x")}}); err != nil {
		t.Fatal(err)
	}
	s := stripeOf("t:acme")
	for _, k := range []string{"k:1", "k:1|m:x", "k:2", "k:2|m:x"} {
		if got := stripeOf(k); got != s {
			t.Errorf("bucket %q in stripe %d, want the tenant's %d", k, got, s)
		}
	}
	// A request whose buckets are all new starts a family of its own.
	if _, err := l.Acquire(ctx, Request{Limits: []Limit{lim("k:3"), lim("t:other")}}); err != nil {
		t.Fatal(err)
	}
	if stripeOf("t:other") == s || stripeOf("k:3") != stripeOf("t:other") {
		t.Errorf("new family: stripes %d and %d, tenant acme in %d", stripeOf("k:3"), stripeOf("t:other"), s)
	}
}

func TestStripesOf(t *testing.T) {
	b := func(s uint8) *bucket { return &bucket{stripe: s} }
	tests := []struct {
		name string
		bs   []*bucket
		want []uint8
	}{
		{"none", nil, nil},
		{"one", []*bucket{b(7)}, []uint8{7}},
		{"same", []*bucket{b(3), b(3), b(3)}, []uint8{3}},
		{"sorted and deduplicated", []*bucket{b(9), b(2), b(9), b(5), b(2)}, []uint8{2, 5, 9}},
		{"nil skipped", []*bucket{nil, b(4), nil, b(1)}, []uint8{1, 4}},
		{"nil after same", []*bucket{b(4), b(4), nil}, []uint8{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := stripesOf(tt.bs)
			if got := set.s[:set.n]; !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("stripes %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLocalCrossStripeConcurrency makes buckets in different stripes (each
// created alone) and has many goroutines acquire and release overlapping
// sets of them in different orders: no deadlock, no race (run with -race),
// and the shared bucket admits exactly its burst.
func TestLocalCrossStripeConcurrency(t *testing.T) {
	l := NewLocal(clock.NewFake(t0))
	ctx := context.Background()
	keys := []Limit{
		{Key: "a", RPM: 1_000_000}, {Key: "b", RPM: 1_000_000}, {Key: "c", RPM: 1_000_000},
		{Key: "d", RPM: 1_000_000, Concurrency: 3},
	}
	shared := Limit{Key: "shared", RPM: 1000, Burst: 150}
	for _, k := range append(slices.Clone(keys), shared) {
		r, err := l.Acquire(ctx, Request{Limits: []Limit{{Key: k.Key}}})
		if err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
	}
	seen := map[uint8]bool{}
	l.buckets.Range(func(_, v any) bool { seen[v.(*bucket).stripe] = true; return true })
	if len(seen) < 5 {
		t.Fatalf("buckets in %d stripes, want 5 (the test needs them apart)", len(seen))
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				a, b := keys[(g+i)%4], keys[(g+2*i+1)%4]
				limits := []Limit{a, shared}
				if a.Key != b.Key {
					limits = []Limit{shared, b, a}
				}
				if g%2 == 1 {
					slices.Reverse(limits)
				}
				r, err := l.Acquire(ctx, Request{Limits: limits, Tokens: 1})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed.Add(1)
					if err := l.Release(ctx, &r.Lease, 1); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 150 {
		t.Fatalf("allowed %d, want exactly the shared burst of 150", got)
	}
	v, _ := l.buckets.Load("d")
	if c := v.(*bucket).conc; c != 0 {
		t.Fatalf("%d requests still counted in flight after every release", c)
	}
}

// TestWallMillis checks the cheap read of the real clock against time.Now
// taken just before and just after it.
func TestWallMillis(t *testing.T) {
	for range 1000 {
		before := time.Now().UnixMilli()
		got := wallMillis()
		after := time.Now().UnixMilli()
		if got < before || got > after {
			t.Fatalf("wallMillis %d outside [%d, %d] read by time.Now around it", got, before, after)
		}
	}
}
