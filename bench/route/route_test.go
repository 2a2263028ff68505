package route

import (
	"fmt"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/route"
)

// config builds n channels of 4 keys each, all in one priority group (the
// worst case: every channel is a candidate), with vendor limits high enough
// never to bind.
func config(n int, policy route.Policy) route.Config {
	cfg := route.Config{Defaults: route.Model{Policy: policy}}
	for i := range n {
		c := route.Channel{
			ID: fmt.Sprintf("ch%03d", i), Weight: 1 + i%5,
			Models: []string{"m"},
			Limits: route.Limits{RPM: 1e9, TPM: 1e9, Concurrency: 1e6},
		}
		for k := range 4 {
			c.Keys = append(c.Keys, route.Key{ID: fmt.Sprintf("k%d", k), Limits: route.Limits{Concurrency: 1e6}})
		}
		cfg.Channels = append(cfg.Channels, c)
	}
	return cfg
}

func newRouter(b *testing.B, n int, policy route.Policy) *route.Router {
	return newRouterFor(b, n, config(n, policy))
}

func newRouterFor(b *testing.B, n int, cfg route.Config) *route.Router {
	r, err := route.New(cfg, route.Options{Clock: clock.Real{}})
	if err != nil {
		b.Fatal(err)
	}
	// Warm the latency averages so the latency and blend policies compare
	// real numbers.
	for i := range 4 * n {
		p, _ := r.Plan(route.Request{Model: "m"})
		a, err := p.Next()
		if err != nil {
			b.Fatal(err)
		}
		p.Done(&a, route.Outcome{Status: 200, TTFT: time.Duration(100+i%37) * time.Millisecond, PerToken: time.Duration(10+i%7) * time.Millisecond})
	}
	return r
}

var policies = []route.Policy{route.PolicyBalanced, route.PolicyWeighted, route.PolicyLeastInFlight, route.PolicyLatency, route.PolicyCost, route.PolicyBlend}

// benchTokens is each request's token reservation. The latency and blend
// policies send every request to the same (fastest) channel, so its TPM
// meter must refill faster than the benchmark drains it: at TPM = 1e9 a
// token is 60 ns of meter time, and 10 tokens (9 used) is 540 ns a request.
// With 1000 tokens (as before) that channel ran out of TPM after about a
// million requests, and from then on every pick was a saturated one (a
// failed acquire, then a strict scan): a different case from the one named.
const benchTokens = 10

// cost is a cheap stand-in for the rating package.
func cost(ch *route.Channel) (int64, bool) { return int64(ch.Weight) * 1000, true }

// BenchmarkChoose measures one request's choice: Plan, Next (choose a
// channel and key, take its slots) and Done (release, record health).
func BenchmarkChoose(b *testing.B) { benchmarkChoose(b, false) }

// BenchmarkChooseCallerNow is BenchmarkChoose with the request's arrival
// time passed in (Request.Now), as the gateway does: it reads the clock
// once per request anyway. The read is in the loop, so it is timed here
// too; the figure shows what Plan costs given a time, plus one clock read.
func BenchmarkChooseCallerNow(b *testing.B) { benchmarkChoose(b, true) }

func benchmarkChoose(b *testing.B, callerNow bool) {
	for _, n := range []int{10, 100} {
		for _, pol := range policies {
			b.Run(fmt.Sprintf("%s/%dch", pol, n), func(b *testing.B) {
				r := newRouter(b, n, pol)
				req := route.Request{Model: "m", Tokens: benchTokens, Cost: cost}
				ok := route.Outcome{Status: 200, Tokens: benchTokens - 1}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU()
				defer cpu.stop(b)
				for b.Loop() {
					if callerNow {
						req.Now = time.Now()
					}
					p, err := r.Plan(req)
					if err != nil {
						b.Fatal(err)
					}
					a, err := p.Next()
					if err != nil {
						b.Fatal(err)
					}
					p.Done(&a, ok)
				}
			})
		}
	}
}

// BenchmarkChooseParallel is BenchmarkChoose from all procs at once, to show
// contention on the shared atomics.
func BenchmarkChooseParallel(b *testing.B) {
	for _, pol := range []route.Policy{route.PolicyBalanced, route.PolicyWeighted, route.PolicyBlend} {
		b.Run(fmt.Sprintf("%s/100ch", pol), func(b *testing.B) {
			r := newRouter(b, 100, pol)
			req := route.Request{Model: "m", Tokens: benchTokens, Cost: cost}
			ok := route.Outcome{Status: 200, Tokens: benchTokens - 1}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, _ := r.Plan(req)
					a, err := p.Next()
					if err != nil {
						b.Error(err)
						return
					}
					p.Done(&a, ok)
				}
			})
		})
	}
}

// BenchmarkChooseSaturated is BenchmarkChoose with every channel but the
// last out of tokens (a TPM of 1 that no request fits): the policy's first
// pick is almost always one of those, acquiring it fails, and Next rescans
// in strict mode, checking every candidate's vendor limits, to find the
// last. The worst case of a group at its vendor limits.
func BenchmarkChooseSaturated(b *testing.B) {
	for _, pol := range []route.Policy{route.PolicyBalanced, route.PolicyWeighted, route.PolicyLatency, route.PolicyBlend} {
		b.Run(fmt.Sprintf("%s/100ch", pol), func(b *testing.B) {
			cfg := config(100, pol)
			for i := range cfg.Channels {
				if i < len(cfg.Channels)-1 {
					cfg.Channels[i].Limits.TPM = 1
				}
			}
			r := newRouterFor(b, 100, cfg)
			req := route.Request{Model: "m", Tokens: benchTokens, Cost: cost}
			ok := route.Outcome{Status: 200, Tokens: benchTokens - 1}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			defer cpu.stop(b)
			for b.Loop() {
				p, err := r.Plan(req)
				if err != nil {
					b.Fatal(err)
				}
				a, err := p.Next()
				if err != nil {
					b.Fatal(err)
				}
				p.Done(&a, ok)
			}
		})
	}
}
