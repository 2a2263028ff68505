package ratelimit

import (
	"context"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/clock"
	"baimo/internal/ratelimit"
)

// Limits high enough never to refuse during a run, so each op is the full
// admit path.
var (
	keyLimit    = ratelimit.Limit{Key: "key:7f3a9c", RPM: ratelimit.MaxRate, TPM: ratelimit.MaxRate, Concurrency: ratelimit.MaxConcurrency}
	tenantLimit = ratelimit.Limit{Key: "tenant:acme", RPM: ratelimit.MaxRate, TPM: ratelimit.MaxRate, Concurrency: ratelimit.MaxConcurrency}
	modelLimit  = ratelimit.Limit{Key: "tenant:acme|model:gpt-4o", RPM: ratelimit.MaxRate, TPM: ratelimit.MaxRate}
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rateOnly strips the concurrency limits, so Acquire can run alone without
// filling the concurrency slots.
func rateOnly(ls []ratelimit.Limit) []ratelimit.Limit {
	out := make([]ratelimit.Limit, len(ls))
	for i, l := range ls {
		l.Concurrency = 0
		out[i] = l
	}
	return out
}

// BenchmarkLocalCheck is the check on the request path: one Acquire that
// checks and takes RPM and TPM from every bucket at once. "cycle" adds
// concurrency limits and the Release (slot freed, reservation refunded)
// that follows every request. cpu-ns/op is the thread's CPU time, which
// excludes time descheduled on a busy machine.
func BenchmarkLocalCheck(b *testing.B) {
	for _, tc := range []struct {
		name   string
		limits []ratelimit.Limit
	}{
		{"1limit", []ratelimit.Limit{keyLimit}},
		{"3limits", []ratelimit.Limit{keyLimit, tenantLimit, modelLimit}},
	} {
		for _, mode := range []string{"acquire", "acquire/caller-now", "cycle"} {
			cycle := mode == "cycle"
			limits := rateOnly(tc.limits)
			if cycle {
				limits = tc.limits
			}
			b.Run(tc.name+"/"+mode, func(b *testing.B) {
				l := ratelimit.NewLocal(clock.Real{})
				ctx := context.Background()
				// 10 tokens a request: a TPM of MaxRate lasts 10^8 ops.
				req := ratelimit.Request{Limits: limits, Tokens: 10}
				if mode == "acquire/caller-now" {
					// The gateway reads the clock once per request and
					// passes it; read here once, outside the loop.
					req.Now = time.Now()
				}
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				start := threadCPU()
				for b.Loop() {
					r, err := l.Acquire(ctx, req)
					if err != nil || !r.Allowed {
						b.Fatalf("%+v %v", r, err)
					}
					if cycle {
						if err := l.Release(ctx, &r.Lease, 9); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64((threadCPU()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkLocalCheckParallel is the 3-limit check from all procs at once
// on the same buckets (the worst case: one hot tenant).
func BenchmarkLocalCheckParallel(b *testing.B) {
	l := ratelimit.NewLocal(clock.Real{})
	req := ratelimit.Request{Limits: []ratelimit.Limit{keyLimit, tenantLimit, modelLimit}, Tokens: 10}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			r, err := l.Acquire(ctx, req)
			if err != nil || !r.Allowed {
				b.Errorf("%+v %v", r, err)
				return
			}
			l.Release(ctx, &r.Lease, 9)
		}
	})
}

// countHook counts commands sent to Redis (a script run is one).
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkRedisCheck measures Acquire alone (the request path) and
// Acquire+Release against BAIMO_TEST_REDIS, reporting round trips per op.
func BenchmarkRedisCheck(b *testing.B) {
	addr := os.Getenv("BAIMO_TEST_REDIS")
	if addr == "" {
		b.Skip("BAIMO_TEST_REDIS is not set (e.g. 127.0.0.1:6379); skipping Redis benchmarks")
	}
	if h, _, err := net.SplitHostPort(addr); err != nil || (h != "127.0.0.1" && h != "localhost") {
		b.Skip("benchmark traffic goes to 127.0.0.1 only")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	hook := &countHook{}
	c.AddHook(hook)
	prefix := "baimo:bench:rl:" + time.Now().Format("150405.000000") + ":"
	defer func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	}()
	l, err := ratelimit.NewRedis(ratelimit.RedisOptions{Client: c, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	req := ratelimit.Request{Limits: []ratelimit.Limit{keyLimit, tenantLimit, modelLimit}, Tokens: 1000}
	ctx := context.Background()
	// Load the script once so EVALSHA hits.
	if r, err := l.Acquire(ctx, req); err != nil || !r.Allowed {
		b.Fatal(r, err)
	} else {
		l.Release(ctx, &r.Lease, 1000)
	}
	for _, withRelease := range []bool{false, true} {
		name := "acquire"
		if withRelease {
			name = "acquire+release"
		}
		b.Run(name, func(b *testing.B) {
			hook.n.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				r, err := l.Acquire(ctx, req)
				if err != nil || !r.Allowed {
					b.Fatalf("%+v %v", r, err)
				}
				if withRelease {
					if err := l.Release(ctx, &r.Lease, 900); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
		})
	}
}
