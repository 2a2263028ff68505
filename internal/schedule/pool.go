package schedule

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Metrics is what one scrape of a replica's metrics endpoint reported.
type Metrics struct {
	At      time.Time // when the scrape completed
	Waiting int       // requests queued in the engine (vllm:num_requests_waiting)
	Running int       // requests in the batch (vllm:num_requests_running)
	KVUsage float64   // fraction of KV blocks in use (vllm:kv_cache_usage_perc)
	Blocks  int       // KV capacity in blocks, 0 if unknown (vllm:cache_config_info)
	Hits    float64   // prompt tokens found in the prefix cache, a counter
	Queries float64   // prompt tokens looked up, a counter
	Healthy bool      // the scrape succeeded
	Err     string    // why it failed, for operators
}

// Replica is one self-hosted inference server of a pool, with the load the
// gateway knows of exactly (requests it sent and has not seen end) and the
// load the replica last reported.
type Replica struct {
	Name string

	inflight atomic.Int64 // requests sent, not ended
	prefill  atomic.Int64 // their prompt tokens not in cache, before the first token
	decoding atomic.Int64 // requests past their first token, not ended
	online   atomic.Int64 // requests in flight that are not batch
	metrics  atomic.Pointer[scrape]

	routed   atomic.Int64 // requests sent
	prompt   atomic.Int64 // prompt tokens sent
	matched  atomic.Int64 // prompt tokens the index expected in cache
	failOpen atomic.Int64 // requests sent while every replica was saturated

	// The time to first token of online requests, as the gateway saw it:
	// an average weighting the newest 1/8, and when it last changed.
	ttft   atomic.Int64 // ns
	ttftAt atomic.Int64 // Unix ns
	// Likewise the time between output tokens of online streams, updated
	// with every token (weighting the newest 1/64): the replica's step
	// time as the streams show it.
	tpot   atomic.Int64
	tpotAt atomic.Int64
}

// ttftWindow is how long an online TTFT average counts without a new first
// token: a replica no online request reached recently is not busy with them.
const ttftWindow = 5 * time.Second

// observe folds d into the average v last updated at *at, the new value
// weighing 1/2^shift.
func observe(v, at *atomic.Int64, d time.Duration, now int64, shift uint) {
	for {
		old := v.Load()
		next := int64(d)
		if old != 0 && now-at.Load() <= int64(ttftWindow) {
			next = old + (int64(d)-old)>>shift
		}
		if v.CompareAndSwap(old, next) {
			at.Store(now)
			return
		}
	}
}

// recent returns the average v unless it is older than the window.
func recent(v, at *atomic.Int64, now int64) time.Duration {
	if now-at.Load() > int64(ttftWindow) {
		return 0
	}
	return time.Duration(v.Load())
}

// scrape is a stored Metrics with its time in Unix nanoseconds, so the hot
// path compares integers.
type scrape struct {
	Metrics
	at int64
}

// SetMetrics stores a scrape.
func (r *Replica) SetMetrics(m *Metrics) { r.metrics.Store(&scrape{Metrics: *m, at: m.At.UnixNano()}) }

// Metrics returns the last scrape, nil before the first.
func (r *Replica) Metrics() *Metrics {
	if s := r.metrics.Load(); s != nil {
		return &s.Metrics
	}
	return nil
}

// Load is a replica's load as the policies see it.
type Load struct {
	InFlight int64 // requests the gateway sent and has not seen end
	Prefill  int64 // their uncached prompt tokens still to be prefilled
	Decoding int64 // requests generating, the larger of the gateway's count and the scrape's running
	Waiting  int   // the scrape's engine queue
	KVUsage  float64
	Stale    bool // no scrape, a failed one, or one older than StaleAfter
	// Online is the gateway's interactive and standard requests in flight.
	Online int64
	// OnlineTTFT and OnlineTPOT are the recent averages of the time to
	// first token and the time between output tokens of online
	// (interactive and standard) requests, as the gateway saw them; 0 if
	// none in the last 5 s.
	OnlineTTFT, OnlineTPOT time.Duration
}

// ReplicaStats are a replica's counters for metrics and the admin API.
type ReplicaStats struct {
	Name     string
	Load     Load
	Routed   int64
	Prompt   int64
	Matched  int64
	FailOpen int64
	Metrics  *Metrics
}

// PoolConfig sets what saturates a replica and how policies weigh load.
// Zero fields get the defaults named beside them.
type PoolConfig struct {
	// StaleAfter is the age beyond which a replica's metrics no longer
	// count and the replica counts as saturated (default 2s: 20–40 missed
	// scrapes at the 50–100 ms scrape interval).
	StaleAfter time.Duration
	// MaxWaiting saturates a replica whose engine queue holds this many
	// requests (default 8). The engine queues only when its batch or KV
	// cache is full, so a queue means new work waits.
	MaxWaiting int
	// MaxKVUsage saturates a replica whose KV cache is this full (default
	// 0.95): beyond it the engine preempts.
	MaxKVUsage float64
	// MaxPrefill saturates a replica with this many uncached prompt tokens
	// in flight (default 65,536: about two seconds of prefill for an 8B
	// model on an H100, the TTFT a request would wait behind them).
	MaxPrefill int64
	// MaxInFlight saturates a replica with this many requests in flight; 0
	// means no limit (the default).
	MaxInFlight int64
	// StickyPrefill releases prefix stickiness: a replica holding the
	// prompt's prefix is preferred only while its uncached prefill backlog,
	// this request's included, stays under this many tokens (default
	// 32,768).
	StickyPrefill int64
	// AffinityFraction: a replica holding at least this fraction of the
	// prompt's blocks holds its prefix (default 0.5). Below it a shared
	// prefix (a common system prompt) does not make a replica sticky: the
	// load score, which counts the uncached tokens, places the request.
	AffinityFraction float64
	// MinAffinityBlocks is the shortest match that makes a replica sticky
	// (default 4 blocks, 64 tokens: shorter shared prefixes, such as a
	// chat template's first block, are not worth queueing for).
	MinAffinityBlocks int
	// DecodeWeight prices one generating request in the load score, in
	// prompt tokens (default 64).
	DecodeWeight int64
	// IndexTTL and IndexBlocks configure the prefix index (defaults
	// DefaultIndexTTL, and each replica's reported KV size or
	// DefaultIndexBlocks).
	IndexTTL    time.Duration
	IndexBlocks []int
	// Rand is the random source of the random and power-of-two policies
	// (default math/rand/v2); it must be safe for concurrent use.
	Rand func() uint64
}

func (c *PoolConfig) defaults() {
	if c.StaleAfter <= 0 {
		c.StaleAfter = 2 * time.Second
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = 8
	}
	if c.MaxKVUsage <= 0 {
		c.MaxKVUsage = 0.95
	}
	if c.MaxPrefill <= 0 {
		c.MaxPrefill = 65_536
	}
	if c.StickyPrefill <= 0 {
		c.StickyPrefill = 32_768
	}
	if c.AffinityFraction <= 0 {
		c.AffinityFraction = 0.5
	}
	if c.MinAffinityBlocks <= 0 {
		c.MinAffinityBlocks = 4
	}
	if c.DecodeWeight <= 0 {
		c.DecodeWeight = 64
	}
	if c.Rand == nil {
		c.Rand = rand.Uint64
	}
}

// Pool is the replicas serving one model, their prefix index and the
// round-robin cursor. It is safe for concurrent use.
type Pool struct {
	cfg   PoolConfig
	reps  []*Replica
	index *Index
	rr    atomic.Uint64
	// onRecord, if set, is told of every record (several gateway nodes
	// share their records through it).
	onRecord func(blocks []uint64, replica int, now time.Time)
}

// NewPool returns a pool of the named replicas.
func NewPool(names []string, cfg PoolConfig) (*Pool, error) {
	if len(names) == 0 || len(names) > MaxReplicas {
		return nil, fmt.Errorf("schedule: a pool has 1 to %d replicas, not %d", MaxReplicas, len(names))
	}
	cfg.defaults()
	p := &Pool{cfg: cfg, index: NewIndex(len(names), cfg.IndexBlocks, cfg.IndexTTL)}
	for _, n := range names {
		p.reps = append(p.reps, &Replica{Name: n})
	}
	return p, nil
}

// Config returns the pool's configuration with defaults filled in.
func (p *Pool) Config() PoolConfig { return p.cfg }

// Len is the number of replicas.
func (p *Pool) Len() int { return len(p.reps) }

// Replica returns replica i.
func (p *Pool) Replica(i int) *Replica { return p.reps[i] }

// Index returns the pool's prefix index.
func (p *Pool) Index() *Index { return p.index }

// OnRecord sets a function told of every index record, for sharing the
// index between gateway nodes. Set it before use.
func (p *Pool) OnRecord(f func(blocks []uint64, replica int, now time.Time)) { p.onRecord = f }

// Load returns replica i's load at now.
func (p *Pool) Load(i int, now time.Time) Load {
	var l Load
	p.load(i, now.UnixNano(), &l)
	return l
}

// load fills *l (through a pointer: this runs for every replica on every
// decision, and a returned struct is copied twice).
func (p *Pool) load(i int, t int64, l *Load) {
	r := p.reps[i]
	l.InFlight, l.Prefill, l.Decoding, l.Online = r.inflight.Load(), r.prefill.Load(), r.decoding.Load(), r.online.Load()
	l.OnlineTTFT = recent(&r.ttft, &r.ttftAt, t)
	l.OnlineTPOT = recent(&r.tpot, &r.tpotAt, t)
	m := r.metrics.Load()
	if m == nil || !m.Healthy || t-m.at > int64(p.cfg.StaleAfter) {
		l.Waiting, l.KVUsage, l.Stale = 0, 0, true
		return
	}
	l.Waiting, l.KVUsage, l.Stale = m.Waiting, m.KVUsage, false
	l.Decoding = max(l.Decoding, int64(m.Running))
}

// Saturated reports whether a replica with load l takes no more work by
// choice: stale metrics, a queue, a full KV cache or prefill backlog, or
// too many requests in flight.
func (p *Pool) Saturated(l Load) bool { return p.saturated(&l) }

func (p *Pool) saturated(l *Load) bool {
	return l.Stale || l.Waiting >= p.cfg.MaxWaiting || l.KVUsage >= p.cfg.MaxKVUsage ||
		l.Prefill >= p.cfg.MaxPrefill || (p.cfg.MaxInFlight > 0 && l.InFlight >= p.cfg.MaxInFlight)
}

// Stats returns every replica's counters at now.
func (p *Pool) Stats(now time.Time) []ReplicaStats {
	out := make([]ReplicaStats, len(p.reps))
	for i, r := range p.reps {
		out[i] = ReplicaStats{Name: r.Name, Load: p.Load(i, now), Routed: r.routed.Load(), Prompt: r.prompt.Load(),
			Matched: r.matched.Load(), FailOpen: r.failOpen.Load(), Metrics: r.Metrics()}
	}
	return out
}

// Ticket is one request's hold on a replica's load counters, from just
// before it is sent until its stream ends, fails or is cancelled. Its
// methods are safe to call more than once and from several goroutines; only
// the first FirstToken and the first End count.
type Ticket struct {
	rep     *Replica
	Replica int
	prefill int64
	sent    int64 // Unix ns
	first   int64 // Unix ns of the first token
	last    atomic.Int64
	online  bool
	state   atomic.Int32 // 0 sent, 1 first token seen, 2 ended
}

// Dispatch sends req to the replica d chose: it records the prompt's blocks
// in the index and takes the replica's load counters. Call it just before
// the request goes out; End the ticket however the request ends.
func (p *Pool) Dispatch(req *Request, d Decision, now time.Time) *Ticket {
	r := p.reps[d.Replica]
	uncached := req.uncached(d.Matched)
	r.inflight.Add(1)
	r.prefill.Add(uncached)
	if req.Class != Batch {
		r.online.Add(1)
	}
	r.routed.Add(1)
	r.prompt.Add(int64(req.PromptTokens))
	r.matched.Add(int64(req.PromptTokens) - uncached)
	if d.Saturated {
		r.failOpen.Add(1)
	}
	if len(req.Blocks) > 0 {
		p.index.Record(req.Blocks, d.Replica, now)
		if p.onRecord != nil {
			p.onRecord(req.Blocks, d.Replica, now)
		}
	}
	return &Ticket{rep: r, Replica: d.Replica, prefill: uncached, sent: now.UnixNano(), online: req.Class != Batch}
}

// FirstToken moves the request from prefill to decoding; now is when its
// first token arrived.
func (t *Ticket) FirstToken(now time.Time) {
	if t.state.CompareAndSwap(0, 1) {
		t.rep.prefill.Add(-t.prefill)
		t.rep.decoding.Add(1)
		if t.online {
			t.first = now.UnixNano()
			observe(&t.rep.ttft, &t.rep.ttftAt, time.Duration(t.first-t.sent), t.first, 3)
			t.last.Store(t.first)
		}
	}
}

// Token notes an output token after the first, which arrived at now. It is
// for one goroutine (the one relaying the stream).
func (t *Ticket) Token(now time.Time) {
	if !t.online || t.state.Load() != 1 {
		return
	}
	n := now.UnixNano()
	if prev := t.last.Swap(n); prev > 0 && n > prev {
		observe(&t.rep.tpot, &t.rep.tpotAt, time.Duration(n-prev), n, 6)
	}
}

// End releases the request's load, whatever stage it reached.
func (t *Ticket) End() {
	switch t.state.Swap(2) {
	case 0:
		t.rep.prefill.Add(-t.prefill)
	case 1:
		t.rep.decoding.Add(-1)
	default:
		return
	}
	t.rep.inflight.Add(-1)
	if t.online {
		t.rep.online.Add(-1)
	}
}
