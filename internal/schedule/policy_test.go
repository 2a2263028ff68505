package schedule

import (
	"fmt"
	"testing"
	"time"
)

func newPool(t *testing.T, n int, cfg PoolConfig) *Pool {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i)
	}
	p, err := NewPool(names, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fresh gives every replica an idle scrape taken at now.
func fresh(p *Pool, now time.Time) {
	for i := range p.Len() {
		p.Replica(i).SetMetrics(&Metrics{At: now, Healthy: true})
	}
}

func prompt(family, n int) *Request {
	return &Request{Model: "m", PromptTokens: n, Blocks: AppendTokenBlocks(nil, ModelSeed("m"), tokens(family, n))}
}

var prefixPolicies = []Policy{Prefix{}, Score{}}

func TestCacheMissGoesToTheLeastLoadedNeverReplicaZero(t *testing.T) {
	for _, pol := range prefixPolicies {
		p := newPool(t, 4, PoolConfig{})
		fresh(p, t0)
		seen := map[int]int{}
		for i := range 40 {
			d := pol.Pick(p, prompt(1000+i, 256), t0)
			if d.Reason != ReasonMiss || d.Saturated {
				t.Fatalf("%s: a miss on an idle pool decided %+v", pol.Name(), d)
			}
			seen[d.Replica]++
		}
		if len(seen) != 4 {
			t.Fatalf("%s: misses on an idle pool went to %v; ties must spread over the pool", pol.Name(), seen)
		}
		// Load every replica but 2: misses go to 2.
		for _, r := range []int{0, 1, 3} {
			p.Dispatch(prompt(r, 512), Decision{Replica: r}, t0)
		}
		for i := range 10 {
			if d := pol.Pick(p, prompt(2000+i, 256), t0); d.Replica != 2 {
				t.Fatalf("%s: a miss went to loaded replica %d, not idle replica 2", pol.Name(), d.Replica)
			}
		}
	}
}

func TestPrefixIsStickyUntilSaturated(t *testing.T) {
	p := newPool(t, 4, PoolConfig{StickyPrefill: 4096})
	fresh(p, t0)
	first := prompt(7, 2048)
	d := (Prefix{}).Pick(p, first, t0)
	tk := p.Dispatch(first, d, t0)
	tk.FirstToken(t0)
	tk.End()
	// The follow-up shares 2048 tokens and adds 100: sticky, 128 blocks matched.
	follow := &Request{Model: "m", PromptTokens: 2148, Blocks: AppendTokenBlocks(nil, ModelSeed("m"), append(tokens(7, 2048), tokens(8, 100)...))}
	d2 := (Prefix{}).Pick(p, follow, t0)
	if d2.Replica != d.Replica || d2.Reason != ReasonSticky || d2.Matched != 128 {
		t.Fatalf("follow-up decided %+v, want sticky to %d with 128 blocks", d2, d.Replica)
	}
	// Stickiness is released when the replica's uncached backlog would pass
	// StickyPrefill: load it with 4000 uncached tokens in flight.
	p.Dispatch(prompt(50, 4000), Decision{Replica: d.Replica}, t0)
	if d3 := (Prefix{}).Pick(p, follow, t0); d3.Replica == d.Replica {
		t.Fatalf("still sticky to a replica with a 4000-token backlog: %+v", d3)
	}
	// And when the replica is saturated (its engine queue is long).
	p2 := newPool(t, 4, PoolConfig{})
	fresh(p2, t0)
	tk = p2.Dispatch(first, Decision{Replica: 1}, t0)
	tk.End()
	p2.Replica(1).SetMetrics(&Metrics{At: t0, Healthy: true, Waiting: 100})
	if d4 := (Prefix{}).Pick(p2, follow, t0); d4.Replica == 1 || d4.Saturated {
		t.Fatalf("chose saturated replica 1: %+v", d4)
	}
}

func TestStaleMetricsCountAsSaturated(t *testing.T) {
	p := newPool(t, 3, PoolConfig{StaleAfter: time.Second})
	fresh(p, t0)
	// Replica 0 holds the prefix but has not reported for 2 s.
	p.Dispatch(prompt(3, 1024), Decision{Replica: 0}, t0).End()
	now := t0.Add(2 * time.Second)
	p.Replica(1).SetMetrics(&Metrics{At: now, Healthy: true})
	p.Replica(2).SetMetrics(&Metrics{At: now, Healthy: true})
	if !p.Saturated(p.Load(0, now)) {
		t.Fatal("a replica with 2 s old metrics is not saturated")
	}
	for _, pol := range prefixPolicies {
		if d := pol.Pick(p, prompt(3, 1024), now); d.Replica == 0 || d.Saturated {
			t.Fatalf("%s chose stale replica 0: %+v", pol.Name(), d)
		}
	}
	// A failed scrape counts the same, and so does a replica never scraped.
	p.Replica(1).SetMetrics(&Metrics{At: now, Healthy: false, Err: "connection refused"})
	if !p.Saturated(p.Load(1, now)) {
		t.Fatal("a replica whose scrape failed is not saturated")
	}
	q := newPool(t, 2, PoolConfig{})
	if !q.Saturated(q.Load(0, t0)) {
		t.Fatal("a replica never scraped is not saturated")
	}
}

func TestFailOpenToTheLeastLoaded(t *testing.T) {
	p := newPool(t, 4, PoolConfig{})
	// No replica has reported: every one is saturated.
	for _, r := range []int{0, 1, 3} {
		p.Dispatch(prompt(r, 300), Decision{Replica: r}, t0)
	}
	for _, pol := range prefixPolicies {
		d := pol.Pick(p, prompt(9, 100), t0)
		if !d.Saturated || d.Reason != ReasonFailOpen || d.Replica != 2 {
			t.Fatalf("%s with every replica filtered out decided %+v, want fail open to idle replica 2", pol.Name(), d)
		}
	}
	for _, pol := range []Policy{RoundRobin{}, Random{}, LeastRequest{}, PowerOfTwo{}} {
		if d := pol.Pick(p, prompt(9, 100), t0); !d.Saturated {
			t.Fatalf("%s did not report the saturated pool", pol.Name())
		}
	}
}

func TestBaselines(t *testing.T) {
	p := newPool(t, 4, PoolConfig{})
	fresh(p, t0)
	var got []int
	for range 8 {
		got = append(got, (RoundRobin{}).Pick(p, prompt(0, 10), t0).Replica)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != (got[i-1]+1)%4 {
			t.Fatalf("round robin order %v", got)
		}
	}
	p.Dispatch(prompt(1, 10), Decision{Replica: 0}, t0)
	p.Dispatch(prompt(1, 10), Decision{Replica: 1}, t0)
	p.Dispatch(prompt(1, 10), Decision{Replica: 3}, t0)
	for range 20 {
		if d := (LeastRequest{}).Pick(p, prompt(0, 10), t0); d.Replica != 2 {
			t.Fatalf("least request chose %d, want idle replica 2", d.Replica)
		}
		if d := (PowerOfTwo{}).Pick(p, prompt(0, 10), t0); d.Replica < 0 || d.Replica > 3 {
			t.Fatalf("power of two chose %d", d.Replica)
		}
	}
	if _, err := NewPolicy("nope"); err == nil {
		t.Fatal("unknown policy accepted")
	}
	for _, n := range PolicyNames {
		if pol, err := NewPolicy(n); err != nil || pol.Name() != n {
			t.Fatalf("NewPolicy(%q) = %v, %v", n, pol, err)
		}
	}
}

func TestTicketDecrementsOnEveryEnding(t *testing.T) {
	p := newPool(t, 1, PoolConfig{})
	req := prompt(1, 1000)
	zero := func(what string) {
		t.Helper()
		if l := p.Load(0, t0); l.InFlight != 0 || l.Prefill != 0 || l.Decoding != 0 {
			t.Fatalf("%s: load %+v, want zero", what, l)
		}
	}
	// Ends before the first token (an upstream error, or a client that left).
	tk := p.Dispatch(req, Decision{Replica: 0}, t0)
	if l := p.Load(0, t0); l.InFlight != 1 || l.Prefill != 1000 {
		t.Fatalf("after dispatch: %+v", l)
	}
	tk.End()
	tk.End()
	tk.FirstToken(t0) // too late: ignored
	zero("cancelled before the first token")
	// Ends mid-stream.
	tk = p.Dispatch(req, Decision{Replica: 0}, t0)
	tk.FirstToken(t0)
	if l := p.Load(0, t0); l.Prefill != 0 || l.Decoding != 1 {
		t.Fatalf("after the first token: %+v", l)
	}
	tk.End()
	zero("ended mid-stream")
	// Concurrent endings count once.
	for range 100 {
		tk := p.Dispatch(req, Decision{Replica: 0}, t0)
		done := make(chan struct{})
		for range 4 {
			go func() { tk.FirstToken(t0); tk.End(); done <- struct{}{} }()
		}
		for range 4 {
			<-done
		}
	}
	zero("concurrent endings")
}
