package route

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
)

// TestChooseMatchesReference runs the selection scans against refChoose, a
// copy of the straightforward scans they replaced (below), on random
// groups, states and draws: same configuration, same state, same random
// word, same pick. The state covers cooling and open, half-open and closed
// breakers, tried channels, strict scans with vendor limits at their edge,
// channels without latency samples or with hopeless ones, unrated and
// negative costs, and ties everywhere (few distinct weights and figures).
func TestChooseMatchesReference(t *testing.T) {
	const seed = 7
	rng := rand.New(rand.NewPCG(seed, 1))
	policies := []Policy{PolicyBalanced, PolicyWeighted, PolicyLeastInFlight, PolicyLatency, PolicyCost, PolicyBlend}
	blends := []float64{0, 0, 0.5, 1, 2}
	picks := map[Policy]int{}
	for round := range 400 {
		n := 1 + rng.IntN(40)
		if round%10 == 0 {
			n = 100 + rng.IntN(157) // up to MaxChannelsPerModel
		}
		pol := policies[round%len(policies)]
		m := Model{Name: "m", Policy: pol, Explore: -1}
		if round%3 == 0 {
			m.Explore = 0.3
		}
		m.Blend = Blend{Latency: blends[rng.IntN(5)], InFlight: blends[rng.IntN(5)], Cost: blends[rng.IntN(5)], Weight: blends[rng.IntN(5)]}
		cfg := Config{Models: []Model{m}}
		for i := range n {
			c := ch(fmt.Sprintf("c%03d", i), rng.IntN(3), []int{1, 1, 2, 3, 10}[rng.IntN(5)])
			if rng.IntN(4) == 0 {
				c.Limits = Limits{RPM: 60, TPM: 6000, Concurrency: 3}
			}
			cfg.Channels = append(cfg.Channels, c)
		}
		var word uint64
		r, err := New(cfg, Options{Rand: func() uint64 { return word }})
		if err != nil {
			t.Fatal(err)
		}
		tab := r.tab.Load()
		now := time.Now().UnixNano()
		for _, c := range tab.channels {
			st := c.st
			switch rng.IntN(8) {
			case 0:
				st.cooldown.Store(now + int64(time.Second))
			case 1:
				st.cooldown.Store(now - int64(time.Second))
			}
			switch rng.IntN(10) {
			case 0:
				st.br.state.Store(int32(Open))
				st.br.openUntil.Store(now + int64(rng.IntN(3)-1)*int64(time.Second))
			case 1:
				st.br.state.Store(int32(HalfOpen))
				st.br.admitted.Store(int32(rng.IntN(3)))
				st.br.halfOpenAt.Store(now - int64(rng.IntN(2))*int64(time.Hour))
			}
			st.m.inFlight.Store(int64(rng.IntN(4)))
			// Meters from empty to past their limit, for strict scans.
			st.m.req.tat.Store(now + int64(rng.IntN(4))*int64(4*time.Second))
			st.m.tok.tat.Store(now + int64(rng.IntN(4))*int64(20*time.Second))
		}
		mod := tab.models["m"]
		for i := range mod.members {
			lat := mod.members[i].lat
			lat.ttft.Store([]int64{0, 0, int64(100 * time.Millisecond), int64(200 * time.Millisecond), 1 << 41}[rng.IntN(5)])
			lat.perToken.Store([]int64{0, int64(10 * time.Millisecond), int64(20 * time.Millisecond)}[rng.IntN(3)])
		}
		costs := map[string]int64{}
		for id := range tab.channels {
			costs[id] = []int64{-1, -5, 0, 100, 100, 200}[rng.IntN(6)]
		}
		cost := func(c *Channel) (int64, bool) {
			v := costs[c.ID]
			return v, v != -1
		}
		for range 50 {
			req := Request{Model: "m", Tokens: int64(rng.IntN(3) * 1000), ExpectedOutput: []int{0, 1, 100}[rng.IntN(3)]}
			if rng.IntN(4) > 0 {
				req.Cost = cost
			}
			p, err := r.Plan(req)
			if err != nil {
				t.Fatal(err)
			}
			p.strict = rng.IntN(3) == 0
			var skip bitset
			for i := range n {
				if rng.IntN(5) == 0 {
					skip.set(i)
				}
			}
			word = rng.Uint64()
			got, gotOK := p.choose(now, &skip)
			want, wantOK := p.refChoose(now, &skip)
			if got != want || gotOK != wantOK {
				t.Fatalf("seed %d round %d: %s over %d channels (strict %v, blend %+v): picked %d %v, reference %d %v",
					seed, round, pol, n, p.strict, m.Blend, got, gotOK, want, wantOK)
			}
			if gotOK {
				picks[pol]++
			}
		}
	}
	for _, pol := range policies {
		if picks[pol] < 1000 {
			t.Errorf("%s picked only %d times: the cases test little", pol, picks[pol])
		}
	}
}

// TestBlendWeighsAsDocumented checks PolicyBlend against scores worked out
// by hand: each term is divided by its maximum over the usable candidates,
// weighted, and summed with Weight × (1 − weight/max weight); the lowest
// score wins; a channel the CostFunc cannot rate counts as the most
// expensive.
func TestBlendWeighsAsDocumented(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	type state struct {
		lat, inFlight int64
		cost          int64 // -1: unrated
		cooling       bool
	}
	tests := []struct {
		name  string
		blend Blend
		state map[string]state // channels a (weight 1), b (2), c (4)
		want  string
	}{
		{
			// a: 0.5×(1−1/4) + 200/800 = 0.625; b: 0.25 + 0.5; c: 0 + 1.
			name:  "latency against weight",
			blend: Blend{Latency: 1, Weight: 0.5},
			state: map[string]state{"a": {lat: ms(200)}, "b": {lat: ms(400)}, "c": {lat: ms(800)}},
			want:  "a",
		},
		{
			// Equal latency: the weight term decides, c has the most.
			name:  "weight breaks equal latency",
			blend: Blend{Latency: 1, Weight: 0.5},
			state: map[string]state{"a": {lat: ms(200)}, "b": {lat: ms(200)}, "c": {lat: ms(200)}},
			want:  "c",
		},
		{
			// Load is in-flight / weight: a 1, b 0.5, c 1.
			name:  "load counts per unit of weight",
			blend: Blend{InFlight: 1},
			state: map[string]state{"a": {inFlight: 1}, "b": {inFlight: 1}, "c": {inFlight: 4}},
			want:  "b",
		},
		{
			// a unrated counts as 1, b 100/200, c 1.
			name:  "unrated cost is the most expensive",
			blend: Blend{Cost: 1},
			state: map[string]state{"a": {cost: -1}, "b": {cost: 100}, "c": {cost: 200}},
			want:  "b",
		},
		{
			// Loads a 2, b 1 (2 on weight 2). Over a and b only:
			// a 100/300 + 2/2 = 1.33, b 1 + 1/2 = 1.5. Had the cooling c
			// (latency 1000ms, load 4) counted in the maxima, b would
			// win: a 0.1 + 0.5, b 0.3 + 0.25.
			name:  "maxima over usable candidates only",
			blend: Blend{Latency: 1, InFlight: 1},
			state: map[string]state{"a": {lat: ms(100), inFlight: 2}, "b": {lat: ms(300), inFlight: 2}, "c": {lat: ms(1000), inFlight: 16, cooling: true}},
			want:  "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cost := func(c *Channel) (int64, bool) {
				v := tt.state[c.ID].cost
				return v, v >= 0
			}
			for _, seed := range []uint64{1, 2, 3, 4} { // ties would show as different picks
				clk := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
				r, err := New(Config{
					Defaults: Model{Policy: PolicyBlend, Blend: tt.blend, Explore: -1},
					Channels: []Channel{ch("a", 0, 1), ch("b", 0, 2), ch("c", 0, 4)},
				}, Options{Rand: seeded(seed), Clock: clock.NewFake(clk)})
				if err != nil {
					t.Fatal(err)
				}
				for _, mem := range r.tab.Load().models["m"].members {
					s := tt.state[mem.ch.cfg.ID]
					mem.lat.ttft.Store(s.lat)
					mem.st.m.inFlight.Store(s.inFlight)
					if s.cooling {
						mem.st.cooldown.Store(clk.Add(time.Minute).UnixNano())
					}
				}
				p, err := r.Plan(Request{Model: "m", Cost: cost})
				if err != nil {
					t.Fatal(err)
				}
				a, err := p.Next()
				if err != nil {
					t.Fatal(err)
				}
				if a.Channel.ID != tt.want {
					t.Fatalf("seed %d: picked %s, want %s", seed, a.Channel.ID, tt.want)
				}
			}
		})
	}
}

// The reference: the selection scans as they were before the prefiltered
// candidate lists, kept verbatim (renamed) so TestChooseMatchesReference
// can hold the new ones to the same picks.

// rotate returns the j-th index of [lo,hi) counted from a random start, so
// ties are not always won by the first channel of a group.
func rotate(lo, hi, start, j int) int {
	i := lo + start + j
	if i >= hi {
		i -= hi - lo
	}
	return i
}

// choose returns the index of the member the policy prefers among the first
// priority group that has a usable candidate.
func (p *Plan) refChoose(now int64, skip *bitset) (int, bool) {
	m := p.m
	rnd := p.r.rnd()
	pol := m.cfg.Policy
	explore := (pol == PolicyLatency || pol == PolicyBlend) && p.refExplore(rnd)
	for g := 0; g+1 < len(m.groups); g++ {
		lo, hi := m.groups[g], m.groups[g+1]
		var i int
		switch {
		case pol == PolicyBalanced:
			i = p.refBalanced(lo, hi, now, skip, rnd)
		case explore || pol == PolicyWeighted:
			i = p.refWeighted(lo, hi, now, skip, rnd)
		case pol == PolicyLeastInFlight:
			i = p.refLeastInFlight(lo, hi, now, skip, rnd)
		case pol == PolicyLatency:
			i = p.refLowestLatency(lo, hi, now, skip, rnd)
		case pol == PolicyCost:
			i = p.refCheapest(lo, hi, now, skip, rnd)
		default:
			i = p.refBlend(lo, hi, now, skip, rnd)
		}
		if i >= 0 {
			return i, true
		}
	}
	return 0, false
}

// ok reports whether member i may be chosen now: not yet tried, not resting,
// breaker letting requests through, vendor limits not reached (in strict
// mode). Small enough to inline; the rare cases go to okSlow.
func (p *Plan) refOk(i int, now int64, skip *bitset) bool {
	st := p.m.members[i].st
	if skip.has(i) || st.cooldown.Load() > now {
		return false
	}
	if st.br.state.Load() == int32(Closed) && !p.strict {
		return true
	}
	return p.refOkSlow(i, now)
}

func (p *Plan) refOkSlow(i int, now int64) bool {
	return p.m.members[i].st.br.usable(now, &p.tab.chBreaker) && (!p.strict || p.refFits(i, now))
}

// fits checks member i's vendor limits (kept out of ok so ok inlines).
func (p *Plan) refFits(i int, now int64) bool {
	mem := &p.m.members[i]
	return mem.st.m.fits(mem.params, now, p.req.Tokens)
}

// explore uses the top 24 bits of rnd; the other helpers use the low bits.
func (p *Plan) refExplore(rnd uint64) bool {
	e := p.m.cfg.Explore
	return e > 0 && float64(rnd>>40)/(1<<24) < e
}

// weighted picks at random in proportion to weight among usable members of
// [lo,hi), or returns -1.
func (p *Plan) refWeighted(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	var cand [MaxChannelsPerModel]uint16
	n := 0
	var total int64
	for i := lo; i < hi; i++ {
		if p.refOk(i, now, skip) {
			cand[n] = uint16(i)
			n++
			total += p.m.members[i].weight
		}
	}
	if n == 0 {
		return -1
	}
	x := int64((rnd & (1<<40 - 1)) % uint64(total))
	for _, i := range cand[:n] {
		x -= p.m.members[i].weight
		if x < 0 {
			return int(i)
		}
	}
	return int(cand[n-1])
}

// balanced is the power-of-two-choices pick of PolicyBalanced. Draws that
// land on unusable channels are retried a few times; if fewer than two
// usable channels turn up, it falls back to a full weighted scan.
func (p *Plan) refBalanced(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	m := p.m
	total := uint64(m.cum[hi-1])
	a, b := -1, -1
	x := rnd
	for range balancedDraws {
		x = splitmix(x)
		i := p.refDrawWeighted(lo, hi, int64((x>>1)%total))
		if i == a || !p.refOk(i, now, skip) {
			continue
		}
		if a < 0 {
			a = i
			continue
		}
		b = i
		break
	}
	if b < 0 {
		if a >= 0 && hi-lo == 1 {
			return a
		}
		return p.refWeighted(lo, hi, now, skip, rnd)
	}
	if p.refPeakCost(b) < p.refPeakCost(a) {
		return b
	}
	return a
}

// drawWeighted maps x in [0, group total weight) to its member, by binary
// search on the group's cumulative weights.
func (p *Plan) refDrawWeighted(lo, hi int, x int64) int {
	cum := p.m.cum
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// peakCost is (expected latency + 1ns) × (in-flight + 1) / weight, as a
// float so the product cannot overflow. Channels without samples count as
// 1ns, so they get measured, and among them load decides.
func (p *Plan) refPeakCost(i int) float64 {
	mem := &p.m.members[i]
	return float64(p.refLatencyOf(mem)+1) * float64(mem.st.m.inFlight.Load()+1) * mem.invWeight
}

// leastInFlight compares (inFlight+1)/weight by cross-multiplication.
func (p *Plan) refLeastInFlight(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	n := hi - lo
	start := int(rnd % uint64(n))
	best := -1
	var bl, bw int64
	for j := range n {
		i := rotate(lo, hi, start, j)
		if !p.refOk(i, now, skip) {
			continue
		}
		mem := &p.m.members[i]
		l := mem.st.m.inFlight.Load() + 1
		if best < 0 || l*bw < bl*mem.weight {
			best, bl, bw = i, l, mem.weight
		}
	}
	return best
}

func (p *Plan) refLatencyOf(mem *member) int64 {
	ttft := mem.lat.ttft.Load()
	per := mem.lat.perToken.Load()
	// ExpectedOutput < 2^21 and both terms < 2^40 ns (18 min) cannot
	// overflow; beyond that the channel is hopeless anyway.
	if per >= 1<<40 || ttft >= 1<<40 {
		return math.MaxInt64 / 2
	}
	return ttft + per*int64(p.req.ExpectedOutput)
}

// lowestLatency prefers channels without samples (so they get measured),
// then the lowest expected latency.
func (p *Plan) refLowestLatency(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	n := hi - lo
	start := int(rnd % uint64(n))
	best, bl := -1, int64(0)
	for j := range n {
		i := rotate(lo, hi, start, j)
		if !p.refOk(i, now, skip) {
			continue
		}
		if l := p.refLatencyOf(&p.m.members[i]); best < 0 || l < bl {
			best, bl = i, l
		}
	}
	return best
}

// cheapest picks the lowest cost; channels the CostFunc cannot rate are used
// (by weight) only when none can be rated.
func (p *Plan) refCheapest(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	if p.req.Cost == nil {
		return p.refWeighted(lo, hi, now, skip, rnd)
	}
	n := hi - lo
	start := int(rnd % uint64(n))
	best, bc := -1, int64(0)
	for j := range n {
		i := rotate(lo, hi, start, j)
		if !p.refOk(i, now, skip) {
			continue
		}
		c, ok := p.req.Cost(p.m.members[i].ch.cfg)
		if ok && (best < 0 || c < bc) {
			best, bc = i, c
		}
	}
	if best < 0 {
		return p.refWeighted(lo, hi, now, skip, rnd)
	}
	return best
}

// refBlendScratch holds one blend pass's per-candidate figures. It is too big
// for every goroutine's stack, so blend borrows one from a pool.
type refBlendScratch struct {
	cand [MaxChannelsPerModel]uint16
	lat  [MaxChannelsPerModel]int64
	load [MaxChannelsPerModel]float64
	w    [MaxChannelsPerModel]float64
	cost [MaxChannelsPerModel]int64 // -1: the CostFunc cannot rate it
}

var refBlendPool = sync.Pool{New: func() any { return new(refBlendScratch) }}

// blend scores each candidate by the model's Blend and takes the lowest.
// Each term is divided by its maximum over the candidates, so the weights
// compare like with like whatever the units.
func (p *Plan) refBlend(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	sc := refBlendPool.Get().(*refBlendScratch)
	defer refBlendPool.Put(sc)
	bw := p.m.cfg.Blend
	useCost := bw.Cost > 0 && p.req.Cost != nil
	var maxLat, maxCost, maxW int64
	var maxLoad float64
	n := 0
	for i := lo; i < hi; i++ {
		if !p.refOk(i, now, skip) {
			continue
		}
		mem := &p.m.members[i]
		if bw.Latency > 0 {
			l := p.refLatencyOf(mem)
			sc.lat[n] = l
			maxLat = max(maxLat, l)
		}
		if bw.InFlight > 0 {
			l := float64(mem.st.m.inFlight.Load()) * mem.invWeight
			sc.load[n] = l
			if l > maxLoad { // not max(): float max handles NaN and is slow
				maxLoad = l
			}
		}
		if useCost {
			c, ok := p.req.Cost(mem.ch.cfg)
			if !ok || c < 0 {
				c = -1
			}
			sc.cost[n] = c
			maxCost = max(maxCost, c)
		}
		maxW = max(maxW, mem.weight)
		sc.w[n] = mem.fweight
		sc.cand[n] = uint16(i)
		n++
	}
	if n == 0 {
		return -1
	}
	// Fold each term's weight and normaliser into one factor.
	var kLat, kLoad, kCost float64
	if maxLat > 0 {
		kLat = bw.Latency / float64(maxLat)
	}
	if maxLoad > 0 {
		kLoad = bw.InFlight / maxLoad
	}
	if maxCost > 0 {
		kCost = bw.Cost / float64(maxCost)
	}
	kW := bw.Weight / float64(maxW)
	start := int(rnd % uint64(n))
	best, bs := -1, 0.0
	for k := range n {
		j := rotate(0, n, start, k)
		s := bw.Weight - kW*sc.w[j]
		if kLat > 0 {
			s += kLat * float64(sc.lat[j])
		}
		if kLoad > 0 {
			s += kLoad * sc.load[j]
		}
		if useCost {
			if sc.cost[j] < 0 {
				s += bw.Cost // unknown cost counts as the most expensive
			} else {
				s += kCost * float64(sc.cost[j])
			}
		}
		if best < 0 || s < bs {
			best, bs = int(sc.cand[j]), s
		}
	}
	return best
}
