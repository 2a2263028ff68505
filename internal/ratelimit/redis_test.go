package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/clock"
)

// redisClient returns a client for BAIMO_TEST_REDIS or skips the test.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("BAIMO_TEST_REDIS")
	if addr == "" {
		t.Skip("BAIMO_TEST_REDIS is not set (e.g. 127.0.0.1:6379); skipping Redis tests")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix is a key prefix unique to this test; its keys are deleted when
// the test ends.
func testPrefix(t *testing.T, c *redis.Client) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "baimo:test:rl:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

func newTestRedis(t *testing.T, c *redis.Client, clk clock.Clock) *Redis {
	t.Helper()
	r, err := NewRedis(RedisOptions{Client: c, Prefix: testPrefix(t, c), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedis(t *testing.T) {
	c := redisClient(t)
	runSuite(t, func(t *testing.T, clk clock.Clock) Limiter { return newTestRedis(t, c, clk) })
}

// TestRedisAgreesWithLocal runs one seeded random script of acquires,
// releases and clock steps against both limiters and requires identical
// results at every step.
func TestRedisAgreesWithLocal(t *testing.T) {
	c := redisClient(t)
	const seed = 7
	rng := mrand.New(mrand.NewPCG(seed, seed))
	clk := clock.NewFake(t0)
	local := NewLocal(clk)
	shared := newTestRedis(t, c, clk)
	pool := []Limit{
		{Key: "key:a", RPM: 30, Burst: 4, TPM: 20000, Concurrency: 3},
		{Key: "key:b", RPM: 120, TPM: 50000},
		{Key: "tenant:x", RPM: 50, Burst: 10, TPM: 60000, Concurrency: 5},
		{Key: "tenant:x|model:m", TPM: 7000, Concurrency: 2},
		{Key: "tenant:y", RPM: 7, Burst: 2},
	}
	type held struct{ l, r Result }
	var out []held
	kinds := map[Kind]int{}
	ctx := context.Background()
	for step := range 400 {
		switch op := rng.IntN(10); {
		case op < 6:
			var limits []Limit
			for _, l := range pool {
				if rng.IntN(2) == 0 {
					limits = append(limits, l)
				}
			}
			req := Request{Limits: limits, Tokens: int64(rng.IntN(3000))}
			lr, err1 := local.Acquire(ctx, req)
			rr, err2 := shared.Acquire(ctx, req)
			if err1 != nil || err2 != nil {
				t.Fatalf("step %d: %v / %v", step, err1, err2)
			}
			if lr.Allowed != rr.Allowed || lr.Refused != rr.Refused || lr.RefusedKey != rr.RefusedKey ||
				lr.RetryAfter != rr.RetryAfter || lr.TooLarge != rr.TooLarge ||
				lr.Requests != rr.Requests || lr.Tokens != rr.Tokens {
				t.Fatalf("seed %d step %d: local %+v\nredis %+v", seed, step, strip(lr), strip(rr))
			}
			kinds[lr.Refused]++
			if lr.Allowed {
				out = append(out, held{lr, rr})
			}
		case op < 8 && len(out) > 0:
			i := rng.IntN(len(out))
			used := int64(rng.IntN(4000))
			if err := local.Release(ctx, &out[i].l.Lease, used); err != nil {
				t.Fatal(err)
			}
			if err := shared.Release(ctx, &out[i].r.Lease, used); err != nil {
				t.Fatal(err)
			}
			out = append(out[:i], out[i+1:]...)
		default:
			clk.Advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
			// A live node renews its slots at least every RenewEvery
			// (5 s); Local's slots never expire.
			shared.tick(ctx)
		}
	}
	// The script must reach every outcome, or agreement proves little.
	t.Logf("outcomes: %v", kinds)
	for k := KindNone; k <= KindConcurrency; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %v outcome in the script; change the seed or the pool", k)
		}
	}
}

func strip(r Result) string {
	r.Lease = Lease{}
	return fmt.Sprintf("%+v", r)
}

// TestRedisFailure checks fail-open and fail-closed against a port where
// nothing listens; it needs no Redis.
func TestRedisFailure(t *testing.T) {
	req := Request{Limits: []Limit{{Key: "k", RPM: 1}}}
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
			defer c.Close()
			var logs strings.Builder
			r, err := NewRedis(RedisOptions{Client: c, FailOpen: failOpen, Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logs), nil))})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Acquire(context.Background(), req)
			if failOpen {
				if err != nil || !res.Allowed || !res.Degraded {
					t.Fatalf("fail open: %+v, %v", res, err)
				}
			} else if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("fail closed: err %v, want ErrUnavailable", err)
			}
			if !strings.Contains(logs.String(), "redis failed") {
				t.Fatalf("failure not logged: %q", logs.String())
			}
		})
	}
}
