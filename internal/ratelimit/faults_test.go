package ratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/clock"
	"baimo/internal/faultproxy"
)

// Tests of the Redis limiter under faults: slots renewed while requests
// run, expired when a node dies, freed again after a failed release; a
// partition that fails open (or closed) within the limiter's budget; and
// go-redis's own logs routed through slog. The faults come from a TCP
// proxy between the limiter and BAIMO_TEST_REDIS.

const testTTL = 3 * time.Second

// nodeOn returns a limiter of a node reaching Redis at addr through its own
// client built as serve builds it, on the given prefix and clock.
func nodeOn(t *testing.T, addr, prefix string, clk clock.Clock, failOpen bool) *Redis {
	t.Helper()
	c := NewRedisClient(addr, 0, nil)
	t.Cleanup(func() { c.Close() })
	r, err := NewRedis(RedisOptions{Client: c, Prefix: prefix, Clock: clk, LeaseTTL: testTTL, FailOpen: failOpen,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// proxied returns a fault proxy in front of BAIMO_TEST_REDIS.
func proxied(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	c := redisClient(t)
	p, err := faultproxy.Start(c.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

var oneSlot = Request{Limits: []Limit{{Key: "k", Concurrency: 1}}}

// TestRedisSlotRenewedWhileRunning: a request that runs for several lease
// TTLs keeps its slot as long as its node renews it, and frees it at its
// release.
func TestRedisSlotRenewedWhileRunning(t *testing.T) {
	c := redisClient(t)
	prefix := testPrefix(t, c)
	clk := clock.NewFake(t0)
	a := nodeOn(t, c.Options().Addr, prefix, clk, false)
	b := nodeOn(t, c.Options().Addr, prefix, clk, false)
	held := acquire(t, a, oneSlot)
	if !held.Allowed {
		t.Fatal("first request refused")
	}
	for step := range 9 { // three TTLs, renewed every TTL/3
		clk.Advance(a.opt.RenewEvery)
		if !a.tick(context.Background()) {
			t.Fatalf("step %d: the keeper stopped with a request in flight", step)
		}
		if r := acquire(t, b, oneSlot); r.Allowed {
			t.Fatalf("after %s another node got the slot of a request still running", time.Duration(step+1)*a.opt.RenewEvery)
		}
	}
	release(t, a, &held, 0)
	if !acquire(t, b, oneSlot).Allowed {
		t.Fatal("slot not freed by the release")
	}
	if a.tick(context.Background()) {
		t.Fatal("the keeper goes on with nothing to keep")
	}
}

// TestRedisSlotOfDeadNodeExpires: a node that dies (no release, no
// renewal) holds its slot for the lease TTL, no longer.
func TestRedisSlotOfDeadNodeExpires(t *testing.T) {
	c := redisClient(t)
	prefix := testPrefix(t, c)
	clk := clock.NewFake(t0)
	dead := nodeOn(t, c.Options().Addr, prefix, clk, false)
	live := nodeOn(t, c.Options().Addr, prefix, clk, false)
	if !acquire(t, dead, oneSlot).Allowed {
		t.Fatal("first request refused")
	}
	dead.Close()
	clk.Advance(testTTL - time.Millisecond)
	if acquire(t, live, oneSlot).Allowed {
		t.Fatal("slot freed before its TTL")
	}
	clk.Advance(time.Millisecond)
	if !acquire(t, live, oneSlot).Allowed {
		t.Fatalf("the dead node's slot outlived its TTL of %s", testTTL)
	}
}

// TestRedisReleaseDuringOutage: a request that ends while its node's
// connections to Redis are cut cannot free its slot; the node frees it at
// its first renewal once Redis answers, without waiting for the TTL.
func TestRedisReleaseDuringOutage(t *testing.T) {
	p := proxied(t)
	c := redisClient(t)
	prefix := testPrefix(t, c)
	clk := clock.NewFake(t0)
	cut := nodeOn(t, p.Addr(), prefix, clk, false)
	other := nodeOn(t, c.Options().Addr, prefix, clk, false)
	held := acquire(t, cut, oneSlot)
	if !held.Allowed {
		t.Fatal("first request refused")
	}
	p.Cut()
	if err := cut.Release(context.Background(), &held.Lease, 0); err == nil {
		t.Fatal("release through a cut connection succeeded")
	}
	if acquire(t, other, oneSlot).Allowed {
		t.Fatal("slot free though its release failed (the test proves nothing)")
	}
	p.Restore()
	// The renewal after the restore frees it; go-redis may take up to a
	// second to dial again after failed dials.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cut.tick(context.Background())
		r := acquire(t, other, oneSlot)
		if r.Allowed {
			release(t, other, &r, 0)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot of the failed release is still held 10 s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cut.slots.mu.Lock()
	left := len(cut.slots.unfreed)
	cut.slots.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d failed releases still queued after they were freed", left)
	}
}

// partitionBound is the most a request may wait for the limiter during a
// partition: twenty times its budget, far below the seconds go-redis's
// defaults took (5 s per dial, 3 s per read), so the check fails only if a
// timeout is not honoured, never for a slow machine.
const partitionBound = 20 * DefaultRedisTimeout

// TestRedisPartition: while the proxy drops every packet, each Acquire
// fails open (or closed) within the limiter's budget, even under a request
// context with a long deadline and with many requests at once; after the
// partition heals the limiter checks again.
func TestRedisPartition(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		t.Run(map[bool]string{true: "fail_open", false: "fail_closed"}[failOpen], func(t *testing.T) {
			p := proxied(t)
			c := redisClient(t)
			r := nodeOn(t, p.Addr(), testPrefix(t, c), clock.Real{}, failOpen)
			req := Request{Limits: []Limit{{Key: "k", RPM: 1000, Concurrency: 100}}}
			first := acquire(t, r, req) // a pooled connection exists before the partition
			if !first.Allowed || first.Degraded {
				t.Fatalf("before the partition: %+v", first)
			}
			p.Blackhole()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			const n = 32
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() {
					start := time.Now()
					res, err := r.Acquire(ctx, req)
					took := time.Since(start)
					switch {
					case took > partitionBound:
						errs <- errors.New("waited " + took.String())
					case failOpen && (err != nil || !res.Allowed || !res.Degraded):
						errs <- errors.New("fail open: not admitted degraded")
					case !failOpen && !errors.Is(err, ErrUnavailable):
						errs <- errors.New("fail closed: no ErrUnavailable")
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("during the partition (bound %s): %v", partitionBound, err)
			}
			p.Restore()
			deadline := time.Now().Add(10 * time.Second)
			for {
				res, err := r.Acquire(context.Background(), req)
				if err == nil && res.Allowed && !res.Degraded {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("10 s after the partition healed the limiter still fails: %+v, %v", res, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestRedisLogsThroughSlog: what go-redis logs by itself (here a failed
// dial) comes out as a structured line of the gateway's logger.
func TestRedisLogsThroughSlog(t *testing.T) {
	var buf syncBuf
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	c := NewRedisClient("127.0.0.1:1", 0, log)
	defer c.Close()
	t.Cleanup(func() { RouteRedisLogs(slog.Default()) })
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	out := buf.String()
	if !strings.Contains(out, "redis client") {
		t.Fatalf("go-redis's dial failure not logged through slog: %q", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}

// TestNewRedisClientTimeouts: the client honours the budget it is given.
func TestNewRedisClientTimeouts(t *testing.T) {
	c := NewRedisClient("127.0.0.1:6379", 30*time.Millisecond, nil)
	defer c.Close()
	o := c.Options()
	if o.DialTimeout != 30*time.Millisecond || o.ReadTimeout != 30*time.Millisecond || o.WriteTimeout != 30*time.Millisecond ||
		o.PoolTimeout != 30*time.Millisecond || !o.ContextTimeoutEnabled || o.MaxRetries > 0 || o.DialerRetries != 1 {
		t.Fatalf("options %+v do not honour a 30ms budget", o)
	}
	var _ redis.Scripter = c
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
