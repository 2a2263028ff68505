package route

import (
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// seeded returns a deterministic source for tests (not concurrency-safe).
func seeded(seed uint64) func() uint64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return r.Uint64
}

func ch(id string, prio, weight int, keys ...string) Channel {
	c := Channel{ID: id, Priority: prio, Weight: weight, Models: []string{"m"}}
	if len(keys) == 0 {
		keys = []string{id + "-k"}
	}
	for _, k := range keys {
		c.Keys = append(c.Keys, Key{ID: k})
	}
	return c
}

func newRouter(t *testing.T, cfg Config) (*Router, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	r, err := New(cfg, Options{Clock: clk, Rand: seeded(1)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, clk
}

func plan(t *testing.T, r *Router, req Request) Plan {
	t.Helper()
	if req.Model == "" {
		req.Model = "m"
	}
	p, err := r.Plan(req)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

func next(t *testing.T, p *Plan) Attempt {
	t.Helper()
	a, err := p.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return a
}

var (
	ok200 = Outcome{Status: 200}
	err5  = Outcome{Status: 502}
)

// one runs a single-attempt request and reports the outcome.
func one(t *testing.T, r *Router, o Outcome) string {
	t.Helper()
	p := plan(t, r, Request{})
	a := next(t, &p)
	p.Done(&a, o)
	return a.Channel.ID
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		o      Outcome
		retry  bool
		effect Effect
	}{
		{"ok", Outcome{Status: 200}, false, EffectSuccess},
		{"connect", Outcome{ConnectErr: true}, true, EffectFailure},
		{"first byte timeout", Outcome{FirstByteTimeout: true}, true, EffectFailure},
		{"500", Outcome{Status: 500}, true, EffectFailure},
		{"503", Outcome{Status: 503, RetryAfter: time.Second}, true, EffectFailure},
		{"408", Outcome{Status: 408}, true, EffectFailure},
		{"429", Outcome{Status: 429, RetryAfter: 2 * time.Second}, true, EffectCooldown},
		{"429 insufficient quota", Outcome{Status: 429, ErrorCode: "insufficient_quota"}, true, EffectPark},
		{"402 balance", Outcome{Status: 402, ErrorCode: "Insufficient_Balance"}, true, EffectPark},
		{"401", Outcome{Status: 401}, true, EffectPark},
		{"403", Outcome{Status: 403}, true, EffectPark},
		{"400 client", Outcome{Status: 400}, false, EffectNone},
		{"404 client", Outcome{Status: 404}, false, EffectNone},
		{"413 client", Outcome{Status: 413}, false, EffectNone},
		{"422 client", Outcome{Status: 422}, false, EffectNone},
		{"canceled", Outcome{Canceled: true}, false, EffectNone},
		{"500 after first byte", Outcome{Status: 500, ClientGotBytes: true}, false, EffectFailure},
		{"stream cut after first byte", Outcome{Status: 200, Broken: true, ClientGotBytes: true}, false, EffectFailure},
		{"connect after first byte", Outcome{ConnectErr: true, ClientGotBytes: true}, false, EffectFailure},
		{"429 after first byte", Outcome{Status: 429, ClientGotBytes: true}, false, EffectCooldown},
		{"bad body before client saw it", Outcome{Status: 200, Broken: true}, true, EffectFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Classify(tt.o)
			if d.Retry != tt.retry || d.Effect != tt.effect {
				t.Errorf("Classify(%+v) = retry %v effect %v, want %v %v", tt.o, d.Retry, d.Effect, tt.retry, tt.effect)
			}
		})
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	cfg := Breaker{Failures: 3, Window: 10 * time.Second, OpenFor: 30 * time.Second, Probes: 2}
	var b breaker
	now := t0.UnixNano()
	at := func(d time.Duration) int64 { return now + int64(d) }
	state := func() BreakerState { return BreakerState(b.state.Load()) }

	// Two failures, then the window passes: the count starts again.
	b.failure(at(0), false, &cfg)
	b.failure(at(time.Second), false, &cfg)
	b.failure(at(11*time.Second), false, &cfg)
	b.failure(at(12*time.Second), false, &cfg)
	if state() != Closed {
		t.Fatalf("opened on failures spread over more than the window")
	}
	// A success resets the run of failures.
	b.success(false, &cfg)
	b.failure(at(13*time.Second), false, &cfg)
	b.failure(at(14*time.Second), false, &cfg)
	if state() != Closed {
		t.Fatalf("opened although a success broke the run")
	}
	b.failure(at(15*time.Second), false, &cfg)
	if state() != Open {
		t.Fatalf("state %v after 3 failures in the window, want open", state())
	}
	// Open until 15s+30s.
	if _, ok := b.acquire(at(44*time.Second), &cfg); ok {
		t.Fatalf("admitted while open")
	}
	if b.usable(at(44*time.Second), &cfg) {
		t.Fatalf("usable while open")
	}
	// Half-open at 45s: exactly Probes probes.
	p1, ok1 := b.acquire(at(45*time.Second), &cfg)
	p2, ok2 := b.acquire(at(45*time.Second), &cfg)
	_, ok3 := b.acquire(at(45*time.Second), &cfg)
	if !ok1 || !ok2 || !p1 || !p2 || ok3 {
		t.Fatalf("half-open admitted %v %v %v, want two probes then refusal", ok1, ok2, ok3)
	}
	// A cancelled probe gives its slot back.
	b.abandon(p2)
	p2, ok2 = b.acquire(at(46*time.Second), &cfg)
	if !ok2 {
		t.Fatalf("abandoned probe slot not returned")
	}
	b.success(p1, &cfg)
	if state() != HalfOpen {
		t.Fatalf("closed after one of two probes")
	}
	b.success(p2, &cfg)
	if state() != Closed {
		t.Fatalf("state %v after both probes succeeded, want closed", state())
	}

	// Trip again; a failing probe reopens for a full OpenFor.
	for i := range 3 {
		b.failure(at(100*time.Second+time.Duration(i)), false, &cfg)
	}
	p, ok := b.acquire(at(131*time.Second), &cfg)
	if !ok || !p {
		t.Fatalf("no probe after open period")
	}
	b.failure(at(132*time.Second), true, &cfg)
	if state() != Open || b.openUntil.Load() != at(162*time.Second) {
		t.Fatalf("failed probe: state %v until %v", state(), time.Unix(0, b.openUntil.Load()))
	}
	// Probes that never report do not wedge the breaker.
	if _, ok := b.acquire(at(162*time.Second), &cfg); !ok {
		t.Fatalf("no probe at 162s")
	}
	b.acquire(at(162*time.Second), &cfg)
	if _, ok := b.acquire(at(170*time.Second), &cfg); ok {
		t.Fatalf("third probe admitted while two are out")
	}
	if _, ok := b.acquire(at(192*time.Second), &cfg); !ok {
		t.Fatalf("leaked probes wedged the breaker")
	}
}

func TestChannelBreakerThroughPlan(t *testing.T) {
	r, clk := newRouter(t, Config{
		Channels:       []Channel{ch("a", 0, 1), ch("b", 1, 1)},
		ChannelBreaker: Breaker{Failures: 2, Window: time.Minute, OpenFor: 10 * time.Second, Probes: 1},
		KeyBreaker:     Breaker{Failures: 100},
	})
	if got := one(t, r, err5); got != "a" {
		t.Fatalf("first pick %s, want a", got)
	}
	one(t, r, err5) // second failure opens a
	if got := one(t, r, ok200); got != "b" {
		t.Fatalf("with a open, picked %s, want b", got)
	}
	clk.Advance(10 * time.Second)
	// a admits one probe; a concurrent request goes to b meanwhile.
	p1 := plan(t, r, Request{})
	probe := next(t, &p1)
	p2 := plan(t, r, Request{})
	other := next(t, &p2)
	if probe.Channel.ID != "a" || other.Channel.ID != "b" {
		t.Fatalf("half-open: got %s then %s, want a then b", probe.Channel.ID, other.Channel.ID)
	}
	p1.Done(&probe, ok200)
	p2.Done(&other, ok200)
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("after a good probe picked %s, want a", got)
	}
	st := r.Snapshot()
	if st.Channels[0].Breaker.State != "closed" || st.Channels[0].Breaker.Trips != 1 {
		t.Fatalf("snapshot of a: %+v", st.Channels[0].Breaker)
	}
}

func TestFailoverOrder(t *testing.T) {
	r, _ := newRouter(t, Config{
		Defaults: Model{MaxAttempts: 5, Policy: PolicyWeighted},
		Channels: []Channel{ch("d", 9, 1), ch("c", 5, 1), ch("a", 0, 1), ch("b", 0, 1)},
	})
	p := plan(t, r, Request{})
	var got []string
	for {
		a, err := p.Next()
		if errors.Is(err, ErrNoChannel) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, a.Channel.ID)
		if d := p.Done(&a, Outcome{ConnectErr: true}); !d.Retry {
			t.Fatalf("connect error not retried")
		}
	}
	if len(got) != 4 || !(got[0] == "a" && got[1] == "b" || got[0] == "b" && got[1] == "a") || got[2] != "c" || got[3] != "d" {
		t.Fatalf("order %v, want a and b (any order), then c, then d", got)
	}
}

func TestAttemptAndTimeBudget(t *testing.T) {
	r, clk := newRouter(t, Config{
		Defaults: Model{MaxAttempts: 2, MaxTotal: 10 * time.Second},
		Channels: []Channel{ch("a", 0, 1), ch("b", 0, 1), ch("c", 0, 1)},
	})
	p := plan(t, r, Request{})
	for range 2 {
		a := next(t, &p)
		p.Done(&a, err5)
	}
	if _, err := p.Next(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("third attempt: err %v, want ErrExhausted", err)
	}
	p = plan(t, r, Request{})
	a := next(t, &p)
	clk.Advance(10 * time.Second)
	p.Done(&a, Outcome{FirstByteTimeout: true})
	if _, err := p.Next(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("after the time budget: err %v, want ErrExhausted", err)
	}
	if !p.Deadline().Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("deadline %v", p.Deadline())
	}
}

func TestWeightedRespectsWeights(t *testing.T) {
	r, _ := newRouter(t, Config{
		Defaults: Model{Policy: PolicyWeighted},
		Channels: []Channel{ch("a", 0, 1), ch("b", 0, 3), ch("c", 0, 6)},
	})
	const n = 20000
	counts := map[string]int{}
	for range n {
		counts[one(t, r, ok200)]++
	}
	// Expected 2000/6000/12000; the seed is fixed, so this cannot flake,
	// and a 5% band still catches any skew in the choice.
	for id, w := range map[string]int{"a": 1, "b": 3, "c": 6} {
		want := n * w / 10
		if d := counts[id] - want; d > want/20 || -d > want/20 {
			t.Errorf("channel %s picked %d times, want %d ± 5%%", id, counts[id], want)
		}
	}
}

func TestLeastInFlight(t *testing.T) {
	r, _ := newRouter(t, Config{
		Defaults: Model{Policy: PolicyLeastInFlight},
		Channels: []Channel{ch("a", 0, 1), ch("b", 0, 2), ch("c", 0, 1)},
	})
	// Hold requests open; each pick must go to the least loaded relative
	// to weight: b (weight 2) takes two for every one of a and c.
	var held []Attempt
	var plans []Plan
	counts := map[string]int{}
	for range 8 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		counts[a.Channel.ID]++
		held = append(held, a)
		plans = append(plans, p)
		// invariant: no channel is more than one request ahead of its share
		la, lb, lc := counts["a"], counts["b"], counts["c"]
		if lb > 2*min(la, lc)+2 || la > (lb+1)/2+1 || lc > (lb+1)/2+1 {
			t.Fatalf("loads a=%d b=%d c=%d not balanced by weight", la, lb, lc)
		}
	}
	if counts["a"] != 2 || counts["b"] != 4 || counts["c"] != 2 {
		t.Fatalf("loads %v, want a=2 b=4 c=2", counts)
	}
	// Release b's requests: b is now the least loaded.
	for i := range held {
		if held[i].Channel.ID == "b" {
			plans[i].Done(&held[i], ok200)
		}
	}
	p := plan(t, r, Request{})
	if a := next(t, &p); a.Channel.ID != "b" {
		t.Fatalf("picked %s, want b", a.Channel.ID)
	}
}

func TestLatencyPicksFastest(t *testing.T) {
	r, _ := newRouter(t, Config{
		Defaults: Model{Policy: PolicyLatency, Explore: -1},
		Channels: []Channel{ch("slow-ttft", 0, 1), ch("slow-tokens", 0, 1), ch("fast", 0, 1)},
	})
	// Channels without samples are tried first, so each gets measured.
	seen := map[string]bool{}
	sample := map[string]Outcome{
		"slow-ttft":   {Status: 200, TTFT: 2 * time.Second, PerToken: 10 * time.Millisecond},
		"slow-tokens": {Status: 200, TTFT: 200 * time.Millisecond, PerToken: 50 * time.Millisecond},
		"fast":        {Status: 200, TTFT: 300 * time.Millisecond, PerToken: 10 * time.Millisecond},
	}
	for range 3 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		seen[a.Channel.ID] = true
		p.Done(&a, sample[a.Channel.ID])
	}
	if len(seen) != 3 {
		t.Fatalf("unsampled channels not explored first: %v", seen)
	}
	for range 5 {
		p := plan(t, r, Request{ExpectedOutput: 100})
		a := next(t, &p)
		if a.Channel.ID != "fast" {
			t.Fatalf("picked %s, want fast (300ms+100×10ms)", a.Channel.ID)
		}
		p.Done(&a, sample["fast"])
	}
	// For a one-token answer the low-TTFT channel wins.
	p := plan(t, r, Request{ExpectedOutput: 1})
	if a := next(t, &p); a.Channel.ID != "slow-tokens" {
		t.Fatalf("1-token request picked %s, want slow-tokens", a.Channel.ID)
	}
	// EWMA moves 1/8 towards a new sample.
	for _, m := range r.Snapshot().Models[0].Channels {
		if m.Channel == "fast" && m.TTFT != 300*time.Millisecond {
			t.Fatalf("fast TTFT %v, want 300ms", m.TTFT)
		}
	}
}

func TestEWMA(t *testing.T) {
	var l latency
	l.add(800*time.Millisecond, 0)
	l.add(0, 16*time.Millisecond)
	l.add(1600*time.Millisecond, 8*time.Millisecond)
	if got := time.Duration(l.ttft.Load()); got != 900*time.Millisecond {
		t.Errorf("ttft %v, want 900ms", got)
	}
	if got := time.Duration(l.perToken.Load()); got != 15*time.Millisecond {
		t.Errorf("per token %v, want 15ms", got)
	}
}

func TestCostPolicy(t *testing.T) {
	r, clk := newRouter(t, Config{
		Defaults: Model{Policy: PolicyCost},
		Channels: []Channel{ch("deepseek", 0, 1), ch("reseller", 0, 1), ch("unrated", 0, 5)},
	})
	// DeepSeek is half price off-peak (16:30–00:30 UTC); the reseller
	// gives a flat 20% discount.
	const list = 2_000_000 // nanos for this prompt at list price
	cost := func(c *Channel) (int64, bool) {
		switch c.ID {
		case "deepseek":
			h := clk.Now().Hour()*60 + clk.Now().Minute()
			if h >= 16*60+30 || h < 30 {
				return list / 2, true
			}
			return list, true
		case "reseller":
			return list * 8 / 10, true
		}
		return 0, false
	}
	pick := func() string {
		p := plan(t, r, Request{Cost: cost})
		a := next(t, &p)
		p.Done(&a, ok200)
		return a.Channel.ID
	}
	clk.Set(time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC))
	for range 10 {
		if got := pick(); got != "reseller" {
			t.Fatalf("peak: picked %s, want reseller", got)
		}
	}
	clk.Set(time.Date(2026, 1, 2, 17, 0, 0, 0, time.UTC))
	for range 10 {
		if got := pick(); got != "deepseek" {
			t.Fatalf("off-peak: picked %s, want deepseek", got)
		}
	}
	// The blend policy with only a cost term agrees.
	if err := r.Update(Config{
		Defaults: Model{Policy: PolicyBlend, Blend: Blend{Cost: 1}, Explore: -1},
		Channels: []Channel{ch("deepseek", 0, 1), ch("reseller", 0, 1), ch("unrated", 0, 5)},
	}); err != nil {
		t.Fatal(err)
	}
	if got := pick(); got != "deepseek" {
		t.Fatalf("blend off-peak: picked %s, want deepseek", got)
	}
}

func TestParkOnAuthAndBalance(t *testing.T) {
	var mu sync.Mutex
	var reported []ParkedKey
	clk := clock.NewFake(t0)
	r, err := New(Config{
		Channels: []Channel{ch("a", 0, 1, "k1", "k2")},
		ParkFor:  time.Hour,
	}, Options{Clock: clk, Rand: seeded(1), OnPark: func(p ParkedKey) {
		mu.Lock()
		reported = append(reported, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := plan(t, r, Request{})
	a := next(t, &p)
	first := a.Key.ID
	d := p.Done(&a, Outcome{Status: 402, ErrorCode: "insufficient_balance"})
	if !d.Retry || d.Effect != EffectPark {
		t.Fatalf("decision %+v, want retry and park", d)
	}
	b := next(t, &p) // same channel, the other key
	if b.Channel.ID != "a" || b.Key.ID == first {
		t.Fatalf("retry went to %s/%s, want a with the other key", b.Channel.ID, b.Key.ID)
	}
	p.Done(&b, Outcome{Status: 401})
	if _, err := p.Next(); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("with both keys parked: %v, want ErrNoChannel", err)
	}
	if len(reported) != 2 || len(r.Parked()) != 2 {
		t.Fatalf("reported %d, listed %d parked keys, want 2", len(reported), len(r.Parked()))
	}
	// Not retried later either, until unparked.
	clk.Advance(59 * time.Minute)
	q := plan(t, r, Request{})
	if _, err := q.Next(); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("parked key used before unpark: %v", err)
	}
	if err := r.Unpark("a", first); err != nil {
		t.Fatal(err)
	}
	if a := next(t, &q); a.Key.ID != first {
		t.Fatalf("after unpark got %s, want %s", a.Key.ID, first)
	}
	clk.Advance(time.Minute) // the park timer ends for the other
	if len(r.Parked()) != 0 {
		t.Fatalf("still parked after park_for: %+v", r.Parked())
	}
	if err := r.Unpark("a", "nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Unpark unknown: %v", err)
	}
	// A park reported by another node.
	if err := r.Park("a", first, "remote:insufficient_balance"); err != nil {
		t.Fatal(err)
	}
	if ps := r.Parked(); len(ps) != 1 || ps[0].Key != first || ps[0].Reason != "remote:insufficient_balance" {
		t.Fatalf("after remote park: %+v", ps)
	}
	if len(reported) != 2 {
		t.Fatalf("remote park echoed to OnPark")
	}
}

func TestRetryAfterCooldown(t *testing.T) {
	r, clk := newRouter(t, Config{
		Defaults: Model{Policy: PolicyWeighted},
		Channels: []Channel{ch("a", 0, 1), ch("b", 1, 1)},
	})
	p := plan(t, r, Request{})
	a := next(t, &p)
	d := p.Done(&a, Outcome{Status: 429, RetryAfter: 20 * time.Second})
	if !d.Retry {
		t.Fatal("429 not retried")
	}
	if b := next(t, &p); b.Channel.ID != "b" {
		t.Fatalf("retry went to %s, want b", b.Channel.ID)
	}
	clk.Advance(19 * time.Second)
	if got := one(t, r, ok200); got != "b" {
		t.Fatalf("a used during its retry-after: %s", got)
	}
	clk.Advance(time.Second)
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("a not used after retry-after: %s", got)
	}
	// A 503 with retry-after rests the whole channel.
	p = plan(t, r, Request{})
	a = next(t, &p)
	p.Done(&a, Outcome{Status: 503, RetryAfter: 5 * time.Second})
	if got := one(t, r, ok200); got != "b" {
		t.Fatalf("a used during 503 retry-after: %s", got)
	}
	if s := r.Snapshot(); s.Channels[0].CooldownUntil.IsZero() {
		t.Fatalf("snapshot shows no cooldown for a")
	}
}

func TestVendorLimitsSpreadLoad(t *testing.T) {
	a := ch("a", 0, 1, "a1", "a2")
	a.Limits = Limits{Concurrency: 3}
	a.Keys[0].Limits = Limits{Concurrency: 1}
	a.Keys[1].Limits = Limits{Concurrency: 1}
	b := ch("b", 1, 1)
	b.Limits = Limits{RPM: 60} // burst: 10s worth = 10 requests
	r, clk := newRouter(t, Config{Channels: []Channel{a, b}})
	var plans []Plan
	var held []Attempt
	got := map[string]int{}
	for range 13 {
		p := plan(t, r, Request{})
		at, err := p.Next()
		if err != nil {
			got[err.Error()]++
			continue
		}
		got[at.Channel.ID+"/"+at.Key.ID]++
		plans = append(plans, p)
		held = append(held, at)
	}
	// a's keys allow one each (the channel would allow 3); b's RPM burst
	// allows 10; the last is refused.
	want := map[string]int{"a/a1": 1, "a/a2": 1, "b/b-k": 10, ErrNoChannel.Error(): 1}
	if !maps.Equal(got, want) {
		t.Fatalf("spread %v, want %v", got, want)
	}
	for i := range held {
		plans[i].Done(&held[i], ok200)
	}
	clk.Advance(time.Second)
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("after release picked %s, want a", got)
	}
}

func TestTokenReservationRefunded(t *testing.T) {
	a := ch("a", 0, 1)
	a.Limits = Limits{TPM: 1000}
	r, _ := newRouter(t, Config{Channels: []Channel{a, ch("b", 1, 1)}})
	p := plan(t, r, Request{Tokens: 800})
	at := next(t, &p)
	if at.Channel.ID != "a" {
		t.Fatalf("got %s", at.Channel.ID)
	}
	q := plan(t, r, Request{Tokens: 300})
	if b := next(t, &q); b.Channel.ID != "b" {
		t.Fatalf("reservation not held: second request went to %s", b.Channel.ID)
	}
	p.Done(&at, Outcome{Status: 200, Tokens: 100}) // 700 refunded
	s := plan(t, r, Request{Tokens: 800})
	if c := next(t, &s); c.Channel.ID != "a" {
		t.Fatalf("refund not applied: went to %s", c.Channel.ID)
	}
}

func TestUpdateKeepsState(t *testing.T) {
	cfg := Config{
		Channels:       []Channel{ch("a", 0, 1), ch("b", 1, 1)},
		ChannelBreaker: Breaker{Failures: 1},
	}
	r, _ := newRouter(t, cfg)
	one(t, r, err5) // opens a
	cfg.Channels = append(cfg.Channels, ch("c", 2, 1))
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := one(t, r, ok200); got != "b" {
		t.Fatalf("breaker state lost on update: picked %s", got)
	}
	if err := r.ResetChannel("a"); err != nil {
		t.Fatal(err)
	}
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("after reset picked %s, want a", got)
	}
}

func TestConfigErrors(t *testing.T) {
	good := func() Config { return Config{Channels: []Channel{ch("a", 0, 1)}} }
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no keys", func(c *Config) { c.Channels[0].Keys = nil }},
		{"duplicate channel", func(c *Config) { c.Channels = append(c.Channels, ch("a", 0, 1)) }},
		{"duplicate key", func(c *Config) { c.Channels[0].Keys = append(c.Channels[0].Keys, c.Channels[0].Keys[0]) }},
		{"negative weight", func(c *Config) { c.Channels[0].Weight = -1 }},
		{"negative limit", func(c *Config) { c.Channels[0].Limits.RPM = -1 }},
		{"unknown policy", func(c *Config) { c.Defaults.Policy = "fastest" }},
		{"model without channel", func(c *Config) { c.Models = []Model{{Name: "x"}} }},
		{"too many attempts", func(c *Config) { c.Defaults.MaxAttempts = 99 }},
		{"bad breaker", func(c *Config) { c.ChannelBreaker.Failures = -2 }},
		{"empty id", func(c *Config) { c.Channels[0].ID = "" }},
		{"no models", func(c *Config) { c.Channels[0].Models = nil }},
		{"NaN blend", func(c *Config) { c.Defaults.Blend.Cost = nan() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mod(&c)
			if _, err := New(c, Options{}); err == nil {
				t.Fatalf("accepted")
			}
		})
	}
	if _, err := New(good(), Options{}); err != nil {
		t.Fatalf("good config: %v", err)
	}
	r, _ := New(good(), Options{})
	if _, err := r.Plan(Request{Model: "nope"}); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("unknown model: %v", err)
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestDoneTwiceIsHarmless(t *testing.T) {
	a := ch("a", 0, 1)
	a.Limits.Concurrency = 1
	r, _ := newRouter(t, Config{Channels: []Channel{a}})
	p := plan(t, r, Request{})
	at := next(t, &p)
	p.Done(&at, ok200)
	p.Done(&at, ok200)
	if s := r.Snapshot(); s.Channels[0].InFlight != 0 {
		t.Fatalf("in flight %d after double Done", s.Channels[0].InFlight)
	}
}

func TestConcurrentUse(t *testing.T) {
	var chans []Channel
	for i := range 10 {
		c := ch(string(rune('a'+i)), i%3, 1+i%4, "k1", "k2")
		c.Limits.Concurrency = 4
		chans = append(chans, c)
	}
	r, err := New(Config{Channels: chans, ChannelBreaker: Breaker{Failures: 3}}, Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				p, _ := r.Plan(Request{Model: "m", Tokens: 10})
				for {
					a, err := p.Next()
					if err != nil {
						break
					}
					o := ok200
					if (i+g)%7 == 0 {
						o = err5
					}
					if !p.Done(&a, o).Retry {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	for _, c := range r.Snapshot().Channels {
		if c.InFlight != 0 {
			t.Errorf("channel %s: %d in flight after all done", c.ID, c.InFlight)
		}
		for _, k := range c.Keys {
			if k.InFlight != 0 {
				t.Errorf("key %s/%s: %d in flight", c.ID, k.ID, k.InFlight)
			}
		}
	}
}

func TestBalanced(t *testing.T) {
	r, _ := newRouter(t, Config{
		Channels:       []Channel{ch("slow", 0, 1), ch("fast", 0, 1), ch("down", 0, 1), ch("backup", 1, 1)},
		ChannelBreaker: Breaker{Failures: 1},
	})
	if got := r.tab.Load().models["m"].cfg.Policy; got != PolicyBalanced {
		t.Fatalf("default policy %q, want balanced", got)
	}
	// Take "down" out with its breaker.
	p := plan(t, r, Request{})
	for {
		a := next(t, &p)
		if a.Channel.ID == "down" {
			p.Done(&a, err5)
			break
		}
		p.Done(&a, ok200)
		p = plan(t, r, Request{})
	}
	lat := map[string]Outcome{
		"slow": {Status: 200, TTFT: time.Second, PerToken: 50 * time.Millisecond},
		"fast": {Status: 200, TTFT: 100 * time.Millisecond, PerToken: 5 * time.Millisecond},
	}
	counts := map[string]int{}
	for range 1000 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		counts[a.Channel.ID]++
		p.Done(&a, lat[a.Channel.ID])
	}
	// With two usable channels both are drawn every time (unless the same
	// one twice) and the faster wins; the slow one gets only the draws of
	// itself twice, about a quarter.
	if counts["down"] != 0 || counts["backup"] != 0 {
		t.Fatalf("picked an open or lower-priority channel: %v", counts)
	}
	if counts["fast"] < 650 || counts["slow"] > 350 {
		t.Fatalf("counts %v, want fast to take most", counts)
	}
	// Load counts: with 20 requests held on fast, slow (10× slower) wins.
	var held []Attempt
	var plans []Plan
	for len(held) < 20 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		if a.Channel.ID != "fast" {
			p.Done(&a, lat[a.Channel.ID])
			continue
		}
		held = append(held, a)
		plans = append(plans, p)
	}
	counts = map[string]int{}
	for range 100 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		counts[a.Channel.ID]++
		p.Done(&a, Outcome{Status: 200})
	}
	if counts["slow"] < 60 {
		t.Fatalf("with fast loaded, counts %v, want slow to take most", counts)
	}
	for i := range held {
		plans[i].Done(&held[i], ok200)
	}
}

func TestKeyBreakerIsolatesBadKey(t *testing.T) {
	r, clk := newRouter(t, Config{
		Channels:       []Channel{ch("a", 0, 1, "good", "bad")},
		ChannelBreaker: Breaker{Failures: 3},
		KeyBreaker:     Breaker{Failures: 2, OpenFor: time.Minute},
	})
	// The bad key fails every time, the good one never: the key breaker
	// opens after two failures; the channel's run of failures is broken by
	// the good key's successes, so the channel stays closed.
	keys := map[string]int{}
	for range 20 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		keys[a.Key.ID]++
		if a.Key.ID == "bad" {
			p.Done(&a, err5)
		} else {
			p.Done(&a, ok200)
		}
	}
	if keys["bad"] != 2 || keys["good"] != 18 {
		t.Fatalf("key use %v, want bad twice then only good", keys)
	}
	s := r.Snapshot().Channels[0]
	if s.Breaker.State != "closed" || s.Keys[1].Breaker.State != "open" {
		t.Fatalf("channel %s, bad key %s; want closed and open", s.Breaker.State, s.Keys[1].Breaker.State)
	}
	// After the open period the bad key gets one probe; it succeeds.
	clk.Advance(time.Minute)
	for range 2 {
		p := plan(t, r, Request{})
		a := next(t, &p)
		keys[a.Key.ID]++
		p.Done(&a, ok200)
	}
	if keys["bad"] != 3 || r.Snapshot().Channels[0].Keys[1].Breaker.State != "closed" {
		t.Fatalf("bad key not probed and closed: %v", keys)
	}
}

// TestRateLimitCoolsKeyForItsModel: a vendor 429 for one model rests the key
// for that model only; when every target of the model rests, RetryAfter
// says when the first comes back (the gateway answers 429, not 503).
func TestRateLimitCoolsKeyForItsModel(t *testing.T) {
	c := ch("a", 0, 1)
	c.Models = []string{"m", "other"}
	r, clk := newRouter(t, Config{Channels: []Channel{c}})
	p := plan(t, r, Request{Model: "m"})
	a := next(t, &p)
	p.Done(&a, Outcome{Status: 429, Fault: FaultRate, RetryAfter: 7 * time.Second})

	other := plan(t, r, Request{Model: "other"})
	if b := next(t, &other); b.Channel.ID != "a" {
		t.Fatalf("the key rests for every model: %v", b)
	} else {
		other.Done(&b, ok200)
	}
	again := plan(t, r, Request{Model: "m"})
	if _, err := again.Next(); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("the key serves m during its retry-after: %v", err)
	}
	if d, ok := again.RetryAfter(); !ok || d != 7*time.Second {
		t.Fatalf("RetryAfter = %v, %v; want 7s, true", d, ok)
	}
	if k := r.Snapshot().Channels[0].Keys[0]; k.CooldownModels["m"].IsZero() || !k.CooldownModels["other"].IsZero() {
		t.Fatalf("snapshot: %+v", k)
	}
	clk.Advance(7 * time.Second)
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("after the retry-after: %s", got)
	}
}

// TestRetryAfterOnlyForRest: targets kept out by something other than a
// rate limit (a parked key) do not make the answer a 429.
func TestRetryAfterOnlyForRest(t *testing.T) {
	r, _ := newRouter(t, Config{Channels: []Channel{ch("a", 0, 1)}})
	p := plan(t, r, Request{})
	a := next(t, &p)
	p.Done(&a, Outcome{Status: 401, Fault: FaultKey})
	again := plan(t, r, Request{})
	if _, err := again.Next(); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("a parked key served: %v", err)
	}
	if d, ok := again.RetryAfter(); ok {
		t.Fatalf("RetryAfter = %v for a parked key", d)
	}
}

// TestBreakerPanicKeepsLastTarget: a model's only channel whose breaker is
// open still gets requests, which succeed or fail on their own; with a
// healthy second channel the open one is avoided as before.
func TestBreakerPanicKeepsLastTarget(t *testing.T) {
	brk := Breaker{Failures: 2, Window: time.Minute, OpenFor: time.Hour, Probes: 1}
	r, _ := newRouter(t, Config{Channels: []Channel{ch("solo", 0, 1)}, ChannelBreaker: brk, KeyBreaker: brk})
	one(t, r, err5)
	one(t, r, err5) // the breakers open
	if s := r.Snapshot().Channels[0].Breaker.State; s != "open" {
		t.Fatalf("breaker %s, want open", s)
	}
	for i := 0; i < 3; i++ {
		p := plan(t, r, Request{})
		a, err := p.Next()
		if err != nil || a.Channel.ID != "solo" {
			t.Fatalf("the only channel is out: %v", err)
		}
		p.Done(&a, err5)
	}

	r, _ = newRouter(t, Config{Channels: []Channel{ch("a", 0, 1), ch("b", 1, 1)}, ChannelBreaker: brk, KeyBreaker: Breaker{Failures: 100}})
	one(t, r, err5)
	one(t, r, err5) // a opens
	for i := 0; i < 5; i++ {
		if got := one(t, r, ok200); got != "b" {
			t.Fatalf("with b healthy, picked %s", got)
		}
	}
}

// TestRequestFaultParksNothing: an error about the request (a model the
// account may not use, content policy) neither parks the key nor counts
// against the breaker, and is not retried elsewhere.
func TestRequestFaultParksNothing(t *testing.T) {
	r, _ := newRouter(t, Config{Channels: []Channel{ch("a", 0, 1), ch("b", 1, 1)},
		ChannelBreaker: Breaker{Failures: 1, Window: time.Minute, OpenFor: time.Hour, Probes: 1}})
	for i := 0; i < 3; i++ {
		p := plan(t, r, Request{})
		a := next(t, &p)
		if d := p.Done(&a, Outcome{Status: 403, Fault: FaultRequest}); d.Retry || d.Effect != EffectNone {
			t.Fatalf("decision %+v", d)
		}
	}
	s := r.Snapshot().Channels[0]
	if s.Breaker.State != "closed" || s.Keys[0].Parked {
		t.Fatalf("state after request faults: %+v", s)
	}
}

func TestSkipPassesToTheNextChannelWithoutBlame(t *testing.T) {
	r, _ := newRouter(t, Config{Channels: []Channel{
		{ID: "pool", Priority: 0, Models: []string{"m"}, Keys: []Key{{ID: "k"}}},
		{ID: "vendor", Priority: 1, Models: []string{"m"}, Keys: []Key{{ID: "k"}}},
	}, Defaults: Model{MaxAttempts: 1}})
	for range 5 {
		p, err := r.Plan(Request{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.Next()
		if err != nil || a.Channel.ID != "pool" {
			t.Fatalf("first attempt %v %v", a.Channel, err)
		}
		p.Skip(&a)
		b, err := p.Next()
		if err != nil || b.Channel.ID != "vendor" {
			t.Fatalf("after a skip (one attempt allowed): %v %v", b.Channel, err)
		}
		p.Done(&b, Outcome{Status: 200})
	}
	if s := r.Snapshot(); s.Channels[0].Breaker.State != "closed" || s.Channels[0].Breaker.Failures != 0 {
		t.Fatalf("skips opened the pool's breaker: %+v", s.Channels[0])
	}
}
