package route

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrExhausted is returned by Plan.Next when the attempt or time budget of
// the request is spent.
var ErrExhausted = errors.New("route: attempts or time exhausted")

// ErrNoChannel is returned by Plan.Next when no untried channel and key is
// usable now (breakers open, keys parked or cooling down, limits reached).
var ErrNoChannel = errors.New("route: no usable channel")

// ErrPinned is returned by Plan when the request is pinned to a channel
// and key that do not serve its model (any more).
var ErrPinned = errors.New("route: the pinned channel and key do not serve the model")

// Pin restricts a request to one channel and one of its keys: a follow-up
// whose context (a stored conversation, a vendor's reasoning state) lives
// with the account that served its predecessor.
type Pin struct {
	Channel string // Channel.ID
	Key     string // Key.ID
}

// CostFunc rates one channel for the request at hand, in nano-units of the
// caller's currency (as money.Amount.Nanos). ok is false if it cannot rate
// the channel. It is called for each candidate of a group, so it must be
// cheap and must not block.
type CostFunc func(ch *Channel) (nanos int64, ok bool)

// Request is what selection needs to know about one request.
type Request struct {
	Model string
	// Tokens is the estimate reserved against vendor TPM limits: prompt
	// tokens plus the capped max_tokens. Outcome.Tokens settles it.
	Tokens int64
	// ExpectedOutput is the output length used for latency scores;
	// 0 means the model's default.
	ExpectedOutput int
	// Cost rates channels for PolicyCost and Blend.Cost; nil means no
	// cost information (the cost policy then falls back to weights).
	Cost CostFunc
	// Now, if not zero, is the request's arrival time as the caller already
	// read it from the same clock; it saves a clock read on the hot path.
	Now time.Time
	// Pin, if set, restricts the plan to one channel and key.
	Pin *Pin
}

// Plan walks the candidates for one request. It is a value meant to live on
// the caller's stack; it is not safe for concurrent use. Every Attempt that
// Next returns must be passed to Done exactly once.
type Plan struct {
	r        *Router
	tab      *table
	m        *model
	req      Request
	tried    bitset
	attempts int
	deadline int64
	start    int64 // the clock at Plan, reused by the first Next
	// panic lets breakers through: every candidate that only a breaker
	// kept out is tried rather than none (Envoy's panic threshold), so a
	// breaker never takes out the last usable target of a model.
	panic bool
	// strict makes the scan check vendor limits for every candidate. Off,
	// limits are checked only for the chosen channel (the common case
	// costs one pass with two loads per channel); Next turns it on after a
	// choice failed to acquire, so saturation costs at most one extra pass
	// per failed choice rather than a pass per saturated channel.
	strict bool
	// pinKey, when positive, is 1 + the index of the only key a pinned
	// request may use.
	pinKey int
}

// Attempt is one try at one channel with one key.
type Attempt struct {
	Channel *Channel // read-only
	Key     *Key     // read-only
	Number  int      // 1 for the first attempt of the request

	mem      *member
	key      *keyRef
	keyIdx   int // index of key in the channel's keys
	idx      int
	tokens   int64
	chProbe  bool
	keyProbe bool
	done     bool
}

type bitset [MaxChannelsPerModel / 64]uint64

func (b *bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b *bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }

// Plan starts the candidate walk for req.
func (r *Router) Plan(req Request) (Plan, error) {
	tab := r.tab.Load()
	m := tab.models[req.Model]
	if m == nil {
		return Plan{}, fmt.Errorf("plan %q: %w", req.Model, ErrUnknownModel)
	}
	req.Tokens = min(max(req.Tokens, 0), maxEstimatedTokens)
	if req.ExpectedOutput <= 0 || req.ExpectedOutput > maxExpectedOutput {
		req.ExpectedOutput = m.cfg.ExpectedOutput
	}
	var now int64
	if req.Now.IsZero() {
		now = r.now()
	} else {
		now = req.Now.UnixNano()
	}
	p := Plan{r: r, tab: tab, m: m, req: req, start: now, deadline: now + int64(m.cfg.MaxTotal)}
	if req.Pin != nil {
		if err := p.pin(*req.Pin); err != nil {
			return Plan{}, fmt.Errorf("plan %q: %w", req.Model, err)
		}
	}
	return p, nil
}

// pin marks every member but the pinned channel as tried and keeps only
// the pinned key.
func (p *Plan) pin(pin Pin) error {
	found := -1
	for i := range p.m.members {
		if p.m.members[i].ch.cfg.ID == pin.Channel {
			found = i
		} else {
			p.tried.set(i)
		}
	}
	if found < 0 {
		return ErrPinned
	}
	for j := range p.m.members[found].ch.keys {
		if p.m.members[found].ch.keys[j].cfg.ID == pin.Key {
			p.pinKey = j + 1
			return nil
		}
	}
	return ErrPinned
}

// Deadline is when the request's total time budget ends; the caller should
// bound each attempt's context by it.
func (p *Plan) Deadline() time.Time { return time.Unix(0, p.deadline) }

// Attempts returns how many attempts Next has handed out.
func (p *Plan) Attempts() int { return p.attempts }

// Next returns the next candidate, taking an in-flight slot, meter budget
// and (in half-open state) a probe slot for it.
func (p *Plan) Next() (Attempt, error) {
	if p.m == nil {
		return Attempt{}, ErrUnknownModel
	}
	if p.attempts >= p.m.cfg.MaxAttempts {
		return Attempt{}, ErrExhausted
	}
	now := p.start
	if p.attempts > 0 {
		now = p.r.now()
	}
	if now >= p.deadline {
		return Attempt{}, ErrExhausted
	}
	for {
		skip := p.tried
		p.strict = false
		for range len(p.m.members) {
			i, ok := p.choose(now, &skip)
			if !ok {
				break
			}
			if a, ok := p.acquire(i, now); ok {
				p.attempts++
				a.Number = p.attempts
				return a, nil
			}
			skip.set(i) // at a limit, or no key usable: look further
			p.strict = true
		}
		if p.panic || !p.breakersOnly(now) {
			return Attempt{}, ErrNoChannel
		}
		p.panic = true // only breakers keep every target out: let them through
	}
}

// breakersOnly reports whether some untried member is kept out by a breaker
// (its channel's, or every usable key's) and by nothing else.
func (p *Plan) breakersOnly(now int64) bool {
	for i := range p.m.members {
		mem := &p.m.members[i]
		if p.tried.has(i) || mem.st.cooldown.Load() > now {
			continue
		}
		chOpen := !mem.st.br.usable(now, &p.tab.chBreaker)
		keyOpen := false
		for j := range mem.ch.keys {
			ks := mem.ch.keys[j].st
			if ks.parked.Load() > now || mem.cool[j].Load() > now {
				continue
			}
			if !ks.br.usable(now, &p.tab.keyBreaker) {
				keyOpen = true
			} else if !chOpen {
				keyOpen = false
				break // a usable key and channel: not kept out by breakers
			}
		}
		if chOpen || keyOpen {
			return true
		}
	}
	return false
}

// RetryAfter says, after Next found no usable candidate, whether every
// target of the model is resting after a 429 (its channel cooling down, or
// each of its keys rate limited for this model) and when the first comes
// back: the caller answers 429 with that retry-after, as the vendor did.
func (p *Plan) RetryAfter() (time.Duration, bool) {
	now := p.r.now()
	first := int64(math.MaxInt64)
	for i := range p.m.members {
		mem := &p.m.members[i]
		if cd := mem.st.cooldown.Load(); cd > now {
			first = min(first, cd)
			continue
		}
		rest := int64(math.MaxInt64)
		for j := range mem.ch.keys {
			if mem.ch.keys[j].st.parked.Load() > now {
				continue
			}
			c := mem.cool[j].Load()
			if c <= now {
				return 0, false // a key free of cooldowns: kept out by something else
			}
			rest = min(rest, c)
		}
		if rest == math.MaxInt64 {
			continue // every key parked
		}
		first = min(first, rest)
	}
	if first == math.MaxInt64 {
		return 0, false
	}
	return time.Duration(first - now), true
}

// choose returns the index of the member the policy prefers among the first
// priority group that has a usable candidate.
func (p *Plan) choose(now int64, skip *bitset) (int, bool) {
	m := p.m
	rnd := p.r.rnd()
	pol := m.pol
	if (pol == polLatency || pol == polBlend) && p.explore(rnd) {
		pol = polWeighted
	}
	for g := 0; g+1 < len(m.groups); g++ {
		lo, hi := m.groups[g], m.groups[g+1]
		var i int
		switch pol {
		case polBalanced:
			i = p.balanced(lo, hi, now, skip, rnd)
		case polWeighted:
			i = p.weighted(lo, hi, now, skip, rnd)
		case polLeastInFlight:
			i = p.leastInFlight(lo, hi, now, skip, rnd)
		case polLatency:
			i = p.lowestLatency(lo, hi, now, skip, rnd)
		case polCost:
			i = p.cheapest(lo, hi, now, skip, rnd)
		default:
			i = p.blend(lo, hi, now, skip, rnd)
		}
		if i >= 0 {
			return i, true
		}
	}
	return 0, false
}

// policyKind is Model.Policy as a small integer, resolved once per table so
// that choose does not compare strings.
type policyKind uint8

const (
	polBalanced policyKind = iota
	polWeighted
	polLeastInFlight
	polLatency
	polCost
	polBlend
)

// prepare derives the model's selection fields from its config; build calls
// it once per table, after cfg, members and groups are set.
func (m *model) prepare() {
	switch m.cfg.Policy {
	case PolicyWeighted:
		m.pol = polWeighted
	case PolicyLeastInFlight:
		m.pol = polLeastInFlight
	case PolicyLatency:
		m.pol = polLatency
	case PolicyCost:
		m.pol = polCost
	case PolicyBlend:
		m.pol = polBlend
	default:
		m.pol = polBalanced
	}
}

// ok reports whether member i may be chosen now: not yet tried, not resting,
// breaker letting requests through, vendor limits not reached (in strict
// mode). The scans ask free first, which inlines; ok decides the rest.
func (p *Plan) ok(i int, now int64, skip *bitset) bool {
	st := p.m.members[i].st
	if skip.has(i) || st.cooldown.Load() > now {
		return false
	}
	if st.br.state.Load() == int32(Closed) && !p.strict {
		return true
	}
	if p.panic {
		return !p.strict || p.fits(i, now)
	}
	return p.okSlow(i, now)
}

// free is ok's common case, small enough to inline into the scans: member i
// is untried, not cooling down, and its breaker is closed. Only when it
// says false, or the scan is strict, does a scan call ok. (In strict mode
// ok also checks vendor limits.)
func free(st *channelState, i int, now int64, skip *bitset) bool {
	return !skip.has(i) && st.cooldown.Load() <= now && st.br.state.Load() == int32(Closed)
}

func (p *Plan) okSlow(i int, now int64) bool {
	return p.m.members[i].st.br.usable(now, &p.tab.chBreaker) && (!p.strict || p.fits(i, now))
}

// fits checks member i's vendor limits.
func (p *Plan) fits(i int, now int64) bool {
	mem := &p.m.members[i]
	return mem.st.m.fits(mem.params, now, p.req.Tokens)
}

// explore uses the top 24 bits of rnd; the other helpers use the low bits.
func (p *Plan) explore(rnd uint64) bool {
	e := p.m.cfg.Explore
	return e > 0 && float64(rnd>>40)/(1<<24) < e
}

// candidates writes the usable members of [lo,hi) to cand, in member order,
// and returns how many there are and how many of them come before pivot.
// Scans that break ties by order start at a random pivot and wrap around
// (cand[split:n], then cand[:split]), so ties are not always won by the
// first channel of a group.
func (p *Plan) candidates(cand *[MaxChannelsPerModel]uint16, lo, hi, pivot int, now int64, skip *bitset) (n, split int) {
	if p.strict {
		return p.candidatesFrom(cand, lo, hi, pivot, lo, 0, now, skip)
	}
	ms := p.m.members[:hi]
	for i := lo; i < hi; i++ {
		if i == pivot {
			split = n
		}
		if !free(ms[i].st, i, now, skip) {
			// The rare case: ok decides, in a loop of its own so that
			// this one makes no calls and keeps its values in registers.
			return p.candidatesFrom(cand, lo, hi, pivot, i, n, now, skip)
		}
		cand[n] = uint16(i)
		n++
	}
	return n, split
}

// candidatesFrom is candidates from member i on, with n candidates found
// before it.
func (p *Plan) candidatesFrom(cand *[MaxChannelsPerModel]uint16, lo, hi, pivot, i, n int, now int64, skip *bitset) (int, int) {
	split := 0
	if pivot < i {
		for split < n && int(cand[split]) < pivot {
			split++
		}
	}
	ms := p.m.members[:hi]
	strict, tokens := p.strict, p.req.Tokens
	for ; i < hi; i++ {
		if i == pivot {
			split = n
		}
		mem := &ms[i]
		var ok bool
		if free(mem.st, i, now, skip) {
			// ok's answer for a free member, without the call.
			ok = !strict || mem.st.m.fits(mem.params, now, tokens)
		} else {
			ok = p.ok(i, now, skip)
		}
		if ok {
			cand[n] = uint16(i)
			n++
		}
	}
	return n, split
}

// weighted picks at random in proportion to weight among usable members of
// [lo,hi), or returns -1.
func (p *Plan) weighted(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	var cand [MaxChannelsPerModel]uint16
	n, _ := p.candidates(&cand, lo, hi, lo, now, skip)
	if n == 0 {
		return -1
	}
	ms := p.m.members
	if n == hi-lo {
		// Every member is a candidate: the group's cumulative weights
		// give the walk's answer below by binary search.
		x := int64((rnd & (1<<40 - 1)) % uint64(p.m.cum[hi-1]))
		return p.drawWeighted(lo, hi, x)
	}
	var total int64
	for _, i := range cand[:n] {
		total += ms[i].weight
	}
	x := int64((rnd & (1<<40 - 1)) % uint64(total))
	for _, i := range cand[:n] {
		x -= ms[i].weight
		if x < 0 {
			return int(i)
		}
	}
	return int(cand[n-1])
}

// balanced is the power-of-two-choices pick of PolicyBalanced. Draws that
// land on unusable channels are retried a few times; if fewer than two
// usable channels turn up, it falls back to a full weighted scan.
func (p *Plan) balanced(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	m := p.m
	total := uint64(m.cum[hi-1])
	strict := p.strict
	a, b := -1, -1
	x := rnd
	for range balancedDraws {
		x = splitmix(x)
		i := p.drawWeighted(lo, hi, int64((x>>1)%total))
		if i == a || (strict || !free(m.members[i].st, i, now, skip)) && !p.ok(i, now, skip) {
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
		return p.weighted(lo, hi, now, skip, rnd)
	}
	if p.peakCost(b) < p.peakCost(a) {
		return b
	}
	return a
}

// balancedDraws bounds the random draws of one balanced pick.
const balancedDraws = 6

// drawWeighted maps x in [0, group total weight) to its member, by binary
// search on the group's cumulative weights.
func (p *Plan) drawWeighted(lo, hi int, x int64) int {
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
func (p *Plan) peakCost(i int) float64 {
	mem := &p.m.members[i]
	return float64(p.latencyOf(mem)+1) * float64(mem.st.m.inFlight.Load()+1) * mem.invWeight
}

// splitmix is one step of the SplitMix64 generator: fresh bits from one
// random word without another call to the router's source.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// leastInFlight compares (inFlight+1)/weight by cross-multiplication.
func (p *Plan) leastInFlight(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	var cand [MaxChannelsPerModel]uint16
	n, split := p.candidates(&cand, lo, hi, lo+int(rnd%uint64(hi-lo)), now, skip)
	ms := p.m.members
	best := -1
	var bl, bw int64
	// From the random start to the end, then around from the beginning.
	for _, part := range [2][]uint16{cand[split:n], cand[:split]} {
		for _, i := range part {
			mem := &ms[i]
			l := mem.st.m.inFlight.Load() + 1
			if best < 0 || l*bw < bl*mem.weight {
				best, bl, bw = int(i), l, mem.weight
			}
		}
	}
	return best
}

func (p *Plan) latencyOf(mem *member) int64 {
	return expectedLatency(mem.lat, int64(p.req.ExpectedOutput))
}

// expectedLatency is ttft + perToken × out. With out < 2^21 and both terms
// below 2^40 ns (18 min) it cannot overflow; beyond that the channel is
// hopeless anyway.
func expectedLatency(l *latency, out int64) int64 {
	ttft := l.ttft.Load()
	per := l.perToken.Load()
	if per >= 1<<40 || ttft >= 1<<40 {
		return math.MaxInt64 / 2
	}
	return ttft + per*out
}

// lowestLatency prefers channels without samples (so they get measured),
// then the lowest expected latency.
func (p *Plan) lowestLatency(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	var cand [MaxChannelsPerModel]uint16
	n, split := p.candidates(&cand, lo, hi, lo+int(rnd%uint64(hi-lo)), now, skip)
	ms := p.m.members
	out := int64(p.req.ExpectedOutput)
	// expectedLatency never returns more than MaxInt64/2, so the first
	// candidate always beats bl.
	best, bl := -1, int64(math.MaxInt64)
	for _, part := range [2][]uint16{cand[split:n], cand[:split]} {
		for _, i := range part {
			if l := expectedLatency(ms[i].lat, out); l < bl {
				best, bl = int(i), l
			}
		}
	}
	return best
}

// cheapest picks the lowest cost; channels the CostFunc cannot rate are used
// (by weight) only when none can be rated.
func (p *Plan) cheapest(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	if p.req.Cost == nil {
		return p.weighted(lo, hi, now, skip, rnd)
	}
	var cand [MaxChannelsPerModel]uint16
	n, split := p.candidates(&cand, lo, hi, lo+int(rnd%uint64(hi-lo)), now, skip)
	ms := p.m.members
	cost := p.req.Cost
	best, bc := -1, int64(0)
	for _, part := range [2][]uint16{cand[split:n], cand[:split]} {
		for _, i := range part {
			c, ok := cost(ms[i].ch.cfg)
			if ok && (best < 0 || c < bc) {
				best, bc = int(i), c
			}
		}
	}
	if best < 0 {
		return p.weighted(lo, hi, now, skip, rnd)
	}
	return best
}

// blendScratch holds one blend pass's per-candidate figures. It is too big
// for every goroutine's stack, so blend borrows one from a pool.
type blendScratch struct {
	cand [MaxChannelsPerModel]uint16
	lat  [MaxChannelsPerModel]int64
	load [MaxChannelsPerModel]float64
	w    [MaxChannelsPerModel]float64
	cost [MaxChannelsPerModel]int64 // -1: the CostFunc cannot rate it
}

var blendPool = sync.Pool{New: func() any { return new(blendScratch) }}

// blend scores each candidate by the model's Blend and takes the lowest.
// Each term is divided by its maximum over the candidates, so the weights
// compare like with like whatever the units.
func (p *Plan) blend(lo, hi int, now int64, skip *bitset, rnd uint64) int {
	sc := blendPool.Get().(*blendScratch)
	defer blendPool.Put(sc)
	bw := &p.m.cfg.Blend
	useLat, useLoad := bw.Latency > 0, bw.InFlight > 0
	useCost := bw.Cost > 0 && p.req.Cost != nil
	ms := p.m.members[:hi]
	out := int64(p.req.ExpectedOutput)
	var maxLat, maxW int64
	var maxLoad float64
	n := 0
	// The common case, every member free, in one loop without calls; the
	// loop below does the same over the candidates ok lets through.
	if !p.strict {
		for i := lo; i < hi; i++ {
			mem := &ms[i]
			st := mem.st
			if !free(st, i, now, skip) {
				n = -1
				break
			}
			sc.cand[n] = uint16(i)
			maxW = max(maxW, mem.weight)
			sc.w[n] = mem.fweight
			if useLat {
				l := expectedLatency(mem.lat, out)
				sc.lat[n] = l
				maxLat = max(maxLat, l)
			}
			if useLoad {
				l := float64(st.m.inFlight.Load()) * mem.invWeight
				sc.load[n] = l
				if l > maxLoad { // not max(): float max handles NaN and is slow
					maxLoad = l
				}
			}
			n++
		}
	}
	if p.strict || n < 0 {
		n, _ = p.candidates(&sc.cand, lo, hi, lo, now, skip)
		maxLat, maxW, maxLoad = 0, 0, 0
		for k, i := range sc.cand[:n] {
			mem := &ms[i]
			maxW = max(maxW, mem.weight)
			sc.w[k] = mem.fweight
			if useLat {
				l := expectedLatency(mem.lat, out)
				sc.lat[k] = l
				maxLat = max(maxLat, l)
			}
			if useLoad {
				l := float64(mem.st.m.inFlight.Load()) * mem.invWeight
				sc.load[k] = l
				if l > maxLoad {
					maxLoad = l
				}
			}
		}
	}
	if n == 0 {
		return -1
	}
	cand := sc.cand[:n]
	var maxCost int64
	if useCost {
		cost := p.req.Cost
		for k, i := range cand {
			c, ok := cost(ms[i].ch.cfg)
			if !ok || c < 0 {
				c = -1
			}
			sc.cost[k] = c
			maxCost = max(maxCost, c)
		}
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
	// Scores are finite (blend weights are validated), so the first
	// candidate beats bs; ties go to the earliest from start.
	best, bs := 0, math.Inf(1)
	for _, r := range [2][2]int{{start, n}, {0, start}} {
		for j := r[0]; j < r[1]; j++ {
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
			if s < bs {
				best, bs = j, s
			}
		}
	}
	return int(sc.cand[best])
}

// acquire takes the channel's breaker, meter and a key, or nothing.
func (p *Plan) acquire(i int, now int64) (Attempt, bool) {
	mem := &p.m.members[i]
	ch := mem.ch
	tab := p.tab
	tokens := p.req.Tokens
	chProbe, ok := ch.st.br.acquire(now, &tab.chBreaker)
	if !ok && !p.panic {
		return Attempt{}, false
	}
	if !ch.st.m.take(&ch.params, now, tokens) {
		ch.st.br.abandon(chProbe)
		return Attempt{}, false
	}
	n := uint64(len(ch.keys))
	start := ch.st.rr.Add(1)
	if p.pinKey > 0 {
		n, start = 1, uint64(p.pinKey-1)
	}
	for j := range n {
		ki := int((start + j) % uint64(len(ch.keys)))
		k := &ch.keys[ki]
		ks := k.st
		if ks.parked.Load() > now || mem.cool[ki].Load() > now ||
			(!p.panic && !ks.br.usable(now, &tab.keyBreaker)) || !ks.m.fits(&k.params, now, tokens) {
			continue
		}
		kProbe, ok := ks.br.acquire(now, &tab.keyBreaker)
		if !ok && !p.panic {
			continue
		}
		if !ks.m.take(&k.params, now, tokens) {
			ks.br.abandon(kProbe)
			continue
		}
		return Attempt{
			Channel: ch.cfg, Key: k.cfg,
			mem: mem, key: k, keyIdx: ki, idx: i, tokens: tokens,
			chProbe: chProbe, keyProbe: kProbe,
		}, true
	}
	ch.st.m.untake(&ch.params, tokens)
	ch.st.br.abandon(chProbe)
	return Attempt{}, false
}

// Skip ends an attempt its channel declined before sending anything (a
// saturated replica pool that passes its overflow on): it counts for the
// channel's health neither way, does not use up an attempt, and the plan
// does not offer the channel again.
func (p *Plan) Skip(a *Attempt) {
	if a.done || a.mem == nil {
		return
	}
	p.Done(a, Outcome{Canceled: true})
	p.tried.set(a.idx)
	p.attempts--
}

// Done ends an attempt: it releases the attempt's slots, settles its token
// reservation with o.Tokens, updates breakers, parks or rests the key as the
// outcome demands, feeds the latency averages, and returns Classify's
// decision. When the decision is to retry, call Next for the next candidate.
func (p *Plan) Done(a *Attempt, o Outcome) Decision {
	if a.done || a.mem == nil {
		return Decision{Reason: "already_done"}
	}
	a.done = true
	d := Classify(o)
	var now int64
	if d.Effect != EffectSuccess {
		now = p.r.now()
	}
	ch, k, tab := a.mem.ch, a.key, p.tab
	k.st.m.done(&k.params, a.tokens, o.Tokens)
	ch.st.m.done(&ch.params, a.tokens, o.Tokens)

	switch d.Effect {
	case EffectSuccess:
		ch.st.br.success(a.chProbe, &tab.chBreaker)
		k.st.br.success(a.keyProbe, &tab.keyBreaker)
		if o.TTFT > 0 || o.PerToken > 0 {
			a.mem.lat.add(o.TTFT, o.PerToken)
		}
	case EffectFailure:
		k.st.br.failure(now, a.keyProbe, &tab.keyBreaker)
		ch.st.br.failure(now, a.chProbe, &tab.chBreaker)
		if d.RetryAfter > 0 { // a 503 with retry-after speaks for the channel
			ch.st.cooldown.Store(now + min(int64(d.RetryAfter), tab.maxCooldown))
		}
		p.tried.set(a.idx)
	case EffectPark:
		ch.st.br.success(a.chProbe, &tab.chBreaker) // the channel answered
		k.st.br.abandon(a.keyProbe)
		p.r.park(tab, ch, k, now, d.Reason, true)
	case EffectCooldown:
		ch.st.br.success(a.chProbe, &tab.chBreaker)
		k.st.br.abandon(a.keyProbe)
		rest := int64(d.RetryAfter)
		if rest <= 0 {
			rest = int64(DefaultCooldown)
		}
		a.mem.cool[a.keyIdx].Store(now + min(rest, tab.maxCooldown))
	default:
		if o.Status != 0 && !o.Canceled { // a client-fault answer still shows the upstream is up
			ch.st.br.success(a.chProbe, &tab.chBreaker)
			k.st.br.success(a.keyProbe, &tab.keyBreaker)
		} else {
			ch.st.br.abandon(a.chProbe)
			k.st.br.abandon(a.keyProbe)
		}
	}
	return d
}
