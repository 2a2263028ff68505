package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/clock"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// factory returns a fresh, empty limiter on clk.
type factory func(t *testing.T, clk clock.Clock) Limiter

// runSuite is the behavioural suite every Limiter must pass.
func runSuite(t *testing.T, newLimiter factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, l Limiter, clk *clock.Fake)
	}{
		{"burst exactly as configured", testBurst},
		{"burst defaults to rpm", testDefaultBurst},
		{"token reservation held and refunded", testTokens},
		{"overrun charged", testOverrun},
		{"too large", testTooLarge},
		{"concurrency released", testConcurrency},
		{"all or none", testAllOrNone},
		{"tightest bucket reported", testTightest},
		{"release is idempotent", testReleaseTwice},
		{"invalid requests", testInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			tt.run(t, newLimiter(t, clk), clk)
		})
	}
}

func acquire(t *testing.T, l Limiter, req Request) Result {
	t.Helper()
	r, err := l.Acquire(context.Background(), req)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return r
}

func release(t *testing.T, l Limiter, r *Result, used int64) {
	t.Helper()
	if err := l.Release(context.Background(), &r.Lease, used); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func one(lim Limit, tokens int64) Request { return Request{Limits: []Limit{lim}, Tokens: tokens} }

func testBurst(t *testing.T, l Limiter, clk *clock.Fake) {
	req := one(Limit{Key: "k", RPM: 60, Burst: 5}, 0)
	for i := range 5 {
		r := acquire(t, l, req)
		if !r.Allowed {
			t.Fatalf("request %d of the burst refused", i+1)
		}
		if r.Requests.Limit != 60 || r.Requests.Remaining != int64(4-i) || r.Requests.Reset != time.Duration(i+1)*time.Second {
			t.Fatalf("request %d: quota %+v", i+1, r.Requests)
		}
	}
	r := acquire(t, l, req)
	if r.Allowed || r.Refused != KindRequests || r.RefusedKey != "k" || r.RetryAfter != time.Second {
		t.Fatalf("6th: %+v, want refused on requests, retry after 1s", r)
	}
	clk.Advance(999 * time.Millisecond)
	if r := acquire(t, l, req); r.Allowed || r.RetryAfter != time.Millisecond {
		t.Fatalf("at 999ms: allowed %v retry %v, want refused, 1ms", r.Allowed, r.RetryAfter)
	}
	clk.Advance(time.Millisecond)
	if !acquire(t, l, req).Allowed {
		t.Fatalf("refused after retry-after")
	}
	if acquire(t, l, req).Allowed {
		t.Fatalf("allowed a second request one interval later")
	}
	// A long pause refills the whole burst, no more.
	clk.Advance(time.Hour)
	for i := range 5 {
		if !acquire(t, l, req).Allowed {
			t.Fatalf("after an hour, request %d refused", i+1)
		}
	}
	if acquire(t, l, req).Allowed {
		t.Fatalf("burst grew beyond 5 after an idle hour")
	}
}

func testDefaultBurst(t *testing.T, l Limiter, clk *clock.Fake) {
	req := one(Limit{Key: "k", RPM: 3}, 0)
	for range 3 {
		if !acquire(t, l, req).Allowed {
			t.Fatal("refused within rpm")
		}
	}
	if r := acquire(t, l, req); r.Allowed || r.RetryAfter != 20*time.Second {
		t.Fatalf("4th: allowed %v retry %v, want refused, 20s", r.Allowed, r.RetryAfter)
	}
}

func testTokens(t *testing.T, l Limiter, clk *clock.Fake) {
	lim := Limit{Key: "k", TPM: 1000}
	a := acquire(t, l, one(lim, 600))
	if !a.Allowed || a.Tokens.Remaining != 400 || a.Tokens.Limit != 1000 {
		t.Fatalf("first reservation: %+v", a)
	}
	// A concurrent request cannot slip past while the first is out.
	b := acquire(t, l, one(lim, 600))
	if b.Allowed || b.Refused != KindTokens {
		t.Fatalf("second reservation of 600 of 1000: %+v", b)
	}
	// 200 tokens over; 1000 per minute leak 1 per 60ms: 12s.
	if b.RetryAfter != 12*time.Second {
		t.Fatalf("retry after %v, want 12s", b.RetryAfter)
	}
	release(t, l, &a, 100) // refunds 500
	c := acquire(t, l, one(lim, 600))
	if !c.Allowed || c.Tokens.Remaining != 300 {
		t.Fatalf("after refund: %+v", c)
	}
}

func testOverrun(t *testing.T, l Limiter, clk *clock.Fake) {
	lim := Limit{Key: "k", TPM: 1000}
	a := acquire(t, l, one(lim, 100))
	release(t, l, &a, 700)
	if r := acquire(t, l, one(lim, 400)); r.Allowed {
		t.Fatalf("overrun not charged: %+v", r.Tokens)
	}
	if r := acquire(t, l, one(lim, 300)); !r.Allowed || r.Tokens.Remaining != 0 {
		t.Fatalf("300 after 700 used: %+v", r)
	}
}

func testTooLarge(t *testing.T, l Limiter, clk *clock.Fake) {
	r := acquire(t, l, one(Limit{Key: "k", TPM: 1000}, 1001))
	if r.Allowed || !r.TooLarge || r.Refused != KindTokens || r.RetryAfter != 0 {
		t.Fatalf("%+v, want too large", r)
	}
}

func testConcurrency(t *testing.T, l Limiter, clk *clock.Fake) {
	req := one(Limit{Key: "k", Concurrency: 2}, 0)
	a, b := acquire(t, l, req), acquire(t, l, req)
	c := acquire(t, l, req)
	if !a.Allowed || !b.Allowed || c.Allowed || c.Refused != KindConcurrency {
		t.Fatalf("concurrency 2: %v %v %v (%v)", a.Allowed, b.Allowed, c.Allowed, c.Refused)
	}
	release(t, l, &a, 0)
	if !acquire(t, l, req).Allowed {
		t.Fatal("slot not released")
	}
}

func testAllOrNone(t *testing.T, l Limiter, clk *clock.Fake) {
	wide := Limit{Key: "tenant", RPM: 10, TPM: 10000, Concurrency: 5}
	narrow := Limit{Key: "key", RPM: 1}
	req := Request{Limits: []Limit{wide, narrow}, Tokens: 1000}
	if !acquire(t, l, req).Allowed {
		t.Fatal("first refused")
	}
	r := acquire(t, l, req)
	if r.Allowed || r.RefusedKey != "key" {
		t.Fatalf("second: %+v, want refused by key", r)
	}
	// The refusal took nothing from the tenant bucket.
	w := acquire(t, l, Request{Limits: []Limit{wide}, Tokens: 1000})
	if !w.Allowed || w.Requests.Remaining != 8 || w.Tokens.Remaining != 8000 {
		t.Fatalf("tenant after a refusal: %+v %+v, want 8 requests and 8000 tokens left", w.Requests, w.Tokens)
	}
	// Concurrency: 2 held (first and w), 3 more fit, then the tenant refuses.
	for range 3 {
		if !acquire(t, l, Request{Limits: []Limit{wide}}).Allowed {
			t.Fatal("refused within concurrency")
		}
	}
	if r := acquire(t, l, Request{Limits: []Limit{wide}}); r.Allowed || r.Refused != KindConcurrency {
		t.Fatalf("sixth in flight: %+v", r)
	}
}

func testTightest(t *testing.T, l Limiter, clk *clock.Fake) {
	req := Request{Limits: []Limit{
		{Key: "key", RPM: 100, TPM: 5000},
		{Key: "tenant", RPM: 10, TPM: 100000},
	}, Tokens: 100}
	r := acquire(t, l, req)
	if r.Requests.Limit != 10 || r.Requests.Remaining != 9 || r.Tokens.Limit != 5000 || r.Tokens.Remaining != 4900 {
		t.Fatalf("quotas %+v %+v", r.Requests, r.Tokens)
	}
	if r.Tokens.Reset != 1200*time.Millisecond {
		t.Fatalf("token reset %v, want 1.2s", r.Tokens.Reset)
	}
}

func testReleaseTwice(t *testing.T, l Limiter, clk *clock.Fake) {
	req := one(Limit{Key: "k", Concurrency: 1, TPM: 1000}, 500)
	a := acquire(t, l, req)
	release(t, l, &a, 0)
	release(t, l, &a, 0)
	var zero Lease
	if err := l.Release(context.Background(), &zero, 0); err != nil {
		t.Fatalf("zero lease: %v", err)
	}
	b := acquire(t, l, req)
	if !b.Allowed || b.Tokens.Remaining != 500 {
		t.Fatalf("after double release: %+v", b)
	}
	if r := acquire(t, l, req); r.Allowed {
		t.Fatal("double release freed two slots")
	}
}

func testInvalid(t *testing.T, l Limiter, clk *clock.Fake) {
	many := make([]Limit, MaxLimits+1)
	for i := range many {
		many[i] = Limit{Key: string(rune('a' + i))}
	}
	for _, req := range []Request{
		{Limits: []Limit{{Key: "k"}, {Key: "k"}}},
		{Limits: []Limit{{Key: "k", RPM: 5, Burst: 6}}},
		{Limits: []Limit{{Key: ""}}},
		{Limits: []Limit{{Key: "k", TPM: -1}}},
		{Limits: []Limit{{Key: "k", RPM: MaxRate + 1}}},
		{Limits: []Limit{{Key: "k"}}, Tokens: -1},
		{Limits: many},
	} {
		if _, err := l.Acquire(context.Background(), req); !errors.Is(err, ErrInvalid) {
			t.Errorf("Acquire(%+v) = %v, want ErrInvalid", req, err)
		}
	}
}
