// Package simulate is a discrete-event simulator of a gateway in front of a
// pool of inference replicas. It replays a trace in virtual time against N
// replicas that run the engine step model (internal/engine), placing every
// request with the gateway's own scheduling code (internal/schedule, imported,
// not rewritten): the same policies, prefix index, load tickets and queue.
// The gateway sees the replicas only as a real one does: through its own
// in-flight counts and through metrics scraped every ScrapeInterval, so its
// view is as stale as a scrape. Several gateway nodes, each with its own
// index and counts, may share their prefix records with a delay, as they do
// through Redis.
package simulate

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"baimo/internal/engine"
	"baimo/internal/schedule"
)

// Config is one simulation run.
type Config struct {
	Trace *Trace
	// Rate multiplies the trace's arrival rate: a request recorded at At
	// arrives at At/Rate (default 1).
	Rate     float64
	Replicas int
	Engine   engine.Config
	Policy   string
	Pool     schedule.PoolConfig
	// Queue puts the gateway-side queue (traffic classes, bounded waits,
	// the batch gate) in front of the pool. Nil dispatches every request at
	// once to the policy's choice, failing open when every replica is
	// saturated, as a plain load balancer does.
	Queue *schedule.QueueConfig
	// ScrapeInterval is the metrics scrape period (default 50 ms); each
	// replica's scrapes fall at a random phase with ±10% jitter.
	ScrapeInterval time.Duration
	// Nodes is the number of gateway nodes (default 1); each request
	// reaches one at random.
	Nodes int
	// ShareIndex makes every node apply the other nodes' prefix records
	// ShareDelay (default 5 ms) after they happen.
	ShareIndex bool
	ShareDelay time.Duration
	// Batch, if set, submits batch-class requests at time zero.
	Batch *BatchLoad
	// StopAfterOnline ends the run when the last online request finishes,
	// leaving the batch backlog unfinished (for goodput searches, which
	// look at online requests only).
	StopAfterOnline bool
	// Vendor serves requests the scheduler overflows.
	Vendor Vendor
	Seed   uint64
	// Model salts the block hashes (default "sim").
	Model string
	// Tenants spreads the trace's requests over this many tenants by
	// conversation (default 16).
	Tenants int
}

// BatchLoad is a backlog of batch requests.
type BatchLoad struct {
	Requests []Request // their At is ignored: all arrive at time zero
	Deadline time.Duration
}

// Vendor is the latency of a vendor channel requests overflow to.
type Vendor struct {
	TTFT, TPOT time.Duration
}

// Outcome is what happened to one request.
type Outcome struct {
	Class   schedule.Class
	Arrival time.Duration
	// TTFT and TPOT are the time to the first token and the mean time per
	// later token; zero if the request was shed.
	TTFT, TPOT time.Duration
	Finish     time.Duration
	Prompt     int
	Output     int
	Cached     int // prompt tokens the replica's prefix cache supplied
	Replica    int // -1 if not served by a replica
	Vendor     bool
	Shed       bool
	Deadline   time.Duration // batch only
}

// Result is one run's raw outcome.
type Result struct {
	Config   *Config
	Outcomes []Outcome
	// Window is the span of online arrivals (virtual time); End is when the
	// last request finished.
	Window, End time.Duration
	// BusyWindow is the replica-time spent stepping within Window, summed
	// over replicas; Busy over the whole run.
	BusyWindow, Busy time.Duration
	PrefixHits       int64 // prompt tokens the replicas' caches supplied
	PrefixQueries    int64
	Preemptions      int64
	Steps            int64
	IndexMatched     int64 // prompt tokens the gateway's index expected cached
	// Output tokens generated within Window, by online and batch requests.
	OnlineTokensWindow, BatchTokensWindow int64
	// Reasons counts the placement decisions by reason.
	Reasons [5]int64
}

type evKind uint8

const (
	evStepEnd evKind = iota + 1
	evScrape
	evRecord
	evPump
	evVendorFirst
	evVendorDone
)

type event struct {
	t    int64
	seq  uint64
	kind evKind
	a, b int32
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// record is one request in flight through the simulation.
type record struct {
	idx     int
	req     schedule.Request
	ereq    engine.Request
	node    int
	replica int
	ticket  *schedule.Ticket
	waiter  *schedule.Waiter
	out     *Outcome
	first   int64
	arrival int64
}

type replicaSim struct {
	eng     *engine.Engine
	busy    bool
	stepAt  int64
	pending []engine.Event
}

type node struct {
	pool  *schedule.Pool
	pol   schedule.Policy
	sched *schedule.Scheduler
	pump  bool // a pump event is scheduled
}

type sharedRecord struct {
	blocks  []uint64
	replica int
	at      int64
}

type sim struct {
	cfg      *Config
	rng      *rand.Rand
	h        eventHeap
	seq      uint64
	reps     []replicaSim
	nodes    []node
	recs     []record
	shared   []sharedRecord
	seed     uint64
	res      *Result
	window   int64
	lastDone int64
	active   int // requests arrived and not finished or shed
	online   int // of which online
	pumpBuf  []*schedule.Waiter
	scrapeNs int64
}

func (s *sim) push(t int64, k evKind, a, b int32) {
	s.seq++
	heap.Push(&s.h, event{t: t, seq: s.seq, kind: k, a: a, b: b})
}

func at(t int64) time.Time { return time.Unix(0, t) }

// Run simulates cfg.
func Run(cfg Config) (*Result, error) {
	if cfg.Trace == nil || len(cfg.Trace.Requests) == 0 {
		return nil, errors.New("simulate: empty trace")
	}
	if cfg.Replicas < 1 || cfg.Replicas > schedule.MaxReplicas {
		return nil, fmt.Errorf("simulate: %d replicas, want 1 to %d", cfg.Replicas, schedule.MaxReplicas)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.ScrapeInterval <= 0 {
		cfg.ScrapeInterval = 50 * time.Millisecond
	}
	if cfg.Nodes <= 0 {
		cfg.Nodes = 1
	}
	if cfg.ShareDelay <= 0 {
		cfg.ShareDelay = 5 * time.Millisecond
	}
	if cfg.Model == "" {
		cfg.Model = "sim"
	}
	if cfg.Tenants <= 0 {
		cfg.Tenants = 16
	}
	if cfg.Vendor.TTFT <= 0 {
		cfg.Vendor = Vendor{TTFT: 800 * time.Millisecond, TPOT: 30 * time.Millisecond}
	}
	s := &sim{cfg: &cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), seed: schedule.ModelSeed(cfg.Model),
		scrapeNs: int64(cfg.ScrapeInterval)}
	s.res = &Result{Config: &cfg}
	names := make([]string, cfg.Replicas)
	for i := range names {
		names[i] = fmt.Sprintf("replica-%d", i)
		eng, err := engine.New(cfg.Engine)
		if err != nil {
			return nil, err
		}
		s.reps = append(s.reps, replicaSim{eng: eng})
	}
	for n := range cfg.Nodes {
		pc := cfg.Pool
		pc.Rand = s.rng.Uint64 // single-threaded: a seeded source keeps runs reproducible
		if pc.IndexBlocks == nil {
			pc.IndexBlocks = make([]int, cfg.Replicas)
			for i := range pc.IndexBlocks {
				pc.IndexBlocks[i] = cfg.Engine.NumBlocks
			}
		}
		pool, err := schedule.NewPool(names, pc)
		if err != nil {
			return nil, err
		}
		pol, err := schedule.NewPolicy(cfg.Policy)
		if err != nil {
			return nil, err
		}
		nd := node{pool: pool, pol: pol}
		if cfg.Queue != nil {
			nd.sched = schedule.NewScheduler(pool, pol, *cfg.Queue)
		}
		if cfg.ShareIndex && cfg.Nodes > 1 {
			from := n
			pool.OnRecord(func(blocks []uint64, replica int, now time.Time) {
				s.shared = append(s.shared, sharedRecord{blocks: blocks, replica: replica, at: now.UnixNano()})
				for other := range s.cfg.Nodes {
					if other != from {
						s.push(now.UnixNano()+int64(s.cfg.ShareDelay), evRecord, int32(other), int32(len(s.shared)-1))
					}
				}
			})
		}
		s.nodes = append(s.nodes, nd)
		for r := range cfg.Replicas {
			s.push(s.rng.Int64N(s.scrapeNs), evScrape, int32(n), int32(r))
		}
	}
	s.build()
	if err := s.loop(); err != nil {
		return nil, err
	}
	return s.res, nil
}

// build makes a record per request: the trace's online requests, then the
// batch backlog.
func (s *sim) build() {
	cfg := s.cfg
	n := len(cfg.Trace.Requests)
	nb := 0
	if cfg.Batch != nil {
		nb = len(cfg.Batch.Requests)
	}
	s.recs = make([]record, n+nb)
	s.res.Outcomes = make([]Outcome, n+nb)
	for i := range s.recs {
		rec := &s.recs[i]
		var tr *Request
		class := schedule.Interactive
		var arrival int64
		if i < n {
			tr = &cfg.Trace.Requests[i]
			arrival = int64(float64(tr.At) / cfg.Rate)
		} else {
			tr = &cfg.Batch.Requests[i-n]
			class = schedule.Batch
		}
		tenant := uint64(i)
		if len(tr.IDs) > 0 {
			tenant = tr.IDs[0] * 0x9E3779B97F4A7C15 >> 7
			if len(tr.IDs) > 1 {
				tenant = tr.IDs[1] * 0x9E3779B97F4A7C15 >> 7 // id 0 is a shared system prompt in Mooncake's trace
			}
		}
		rec.idx, rec.arrival, rec.replica = i, arrival, -1
		rec.req = schedule.Request{Model: cfg.Model, PromptTokens: tr.Prompt, Class: class,
			Tenant: fmt.Sprintf("t%d", tenant%uint64(cfg.Tenants))}
		rec.ereq = engine.Request{ID: uint64(i), PromptTokens: tr.Prompt, OutputTokens: tr.Output, Tag: rec}
		if class == schedule.Batch {
			rec.ereq.Priority = 1
			rec.req.Deadline = at(int64(cfg.Batch.Deadline))
		}
		rec.out = &s.res.Outcomes[i]
		*rec.out = Outcome{Class: class, Arrival: time.Duration(arrival), Prompt: tr.Prompt, Output: tr.Output, Replica: -1}
		if class == schedule.Batch {
			rec.out.Deadline = cfg.Batch.Deadline
		}
		if i < n && arrival > s.window {
			s.window = arrival
		}
	}
}

// blocks hashes a request's prompt blocks when it arrives (and drops them
// when it finishes, to keep memory flat).
func (s *sim) blocks(rec *record) []uint64 {
	var tr *Request
	if n := len(s.cfg.Trace.Requests); rec.idx < n {
		tr = &s.cfg.Trace.Requests[rec.idx]
	} else {
		tr = &s.cfg.Batch.Requests[rec.idx-n]
	}
	if len(tr.IDs) > 0 {
		return schedule.AppendTraceBlocks(nil, s.seed, tr.IDs, s.cfg.Trace.IDTokens, tr.Prompt)
	}
	// No sharing information: a prompt of its own.
	return schedule.AppendTraceBlocks(nil, s.seed, []uint64{^uint64(rec.idx)}, tr.Prompt+schedule.BlockTokens, tr.Prompt)
}

func (s *sim) loop() error {
	nOnline := len(s.cfg.Trace.Requests)
	for i := nOnline; i < len(s.recs); i++ { // the batch backlog, at time zero
		s.arrive(&s.recs[i], 0)
	}
	next := 0 // the next online arrival
	for next < nOnline || s.online > 0 || (s.active > 0 && !s.cfg.StopAfterOnline) {
		if next < nOnline && (len(s.h) == 0 || s.recs[next].arrival <= s.h[0].t) {
			s.arrive(&s.recs[next], s.recs[next].arrival)
			next++
			continue
		}
		if len(s.h) == 0 {
			return errors.New("simulate: requests left but nothing scheduled (a bug)")
		}
		ev := heap.Pop(&s.h).(event)
		t := ev.t
		switch ev.kind {
		case evStepEnd:
			s.stepEnd(int(ev.a), t)
		case evScrape:
			s.scrape(int(ev.a), int(ev.b), t)
		case evRecord:
			r := &s.shared[ev.b]
			s.nodes[ev.a].pool.Index().Record(r.blocks, r.replica, at(r.at))
		case evPump:
			s.nodes[ev.a].pump = false
			s.pump(int(ev.a), t)
		case evVendorFirst:
			rec := &s.recs[ev.b]
			rec.out.TTFT = time.Duration(t - rec.arrival)
			rec.first = t
		case evVendorDone:
			s.finish(&s.recs[ev.b], t)
		}
	}
	s.collect()
	return nil
}

func (s *sim) arrive(rec *record, t int64) {
	s.active++
	if rec.req.Class != schedule.Batch {
		s.online++
	}
	rec.node = 0
	if len(s.nodes) > 1 {
		rec.node = s.rng.IntN(len(s.nodes))
	}
	rec.req.Blocks = s.blocks(rec)
	rec.ereq.BlockHashes = rec.req.Blocks
	nd := &s.nodes[rec.node]
	now := at(t)
	if nd.sched == nil {
		d := nd.pol.Pick(nd.pool, &rec.req, now)
		s.start(rec, d, nd.pool.Dispatch(&rec.req, d, now), t)
		return
	}
	w := &schedule.Waiter{Req: &rec.req, Tag: rec}
	rec.waiter = w
	switch nd.sched.Submit(w, now) {
	case schedule.Dispatched:
		s.start(rec, w.Decision, w.Ticket, t)
	case schedule.Queued:
		s.schedulePump(rec.node, t)
	case schedule.Overflow:
		rec.out.Vendor = true
		s.push(t+int64(s.cfg.Vendor.TTFT), evVendorFirst, 0, int32(rec.idx))
		s.push(t+int64(s.cfg.Vendor.TTFT)+int64(max(rec.ereq.OutputTokens-1, 0))*int64(s.cfg.Vendor.TPOT), evVendorDone, 0, int32(rec.idx))
	case schedule.Shed:
		s.shed(rec, t)
	}
}

// done counts a request out of the run.
func (s *sim) done(rec *record) {
	s.active--
	if rec.req.Class != schedule.Batch {
		s.online--
	}
}

func (s *sim) shed(rec *record, t int64) {
	s.done(rec)
	rec.out.Shed = true
	rec.out.Finish = time.Duration(t)
	rec.req.Blocks, rec.ereq.BlockHashes = nil, nil
}

// start sends a dispatched request to its replica.
func (s *sim) start(rec *record, d schedule.Decision, tk *schedule.Ticket, t int64) {
	rec.replica, rec.ticket = d.Replica, tk
	rec.out.Replica = d.Replica
	s.res.Reasons[d.Reason]++
	s.res.IndexMatched += int64(min(d.Matched*schedule.BlockTokens, rec.ereq.PromptTokens))
	r := &s.reps[d.Replica]
	if _, err := r.eng.Add(&rec.ereq); err != nil {
		// Longer than the replica's KV cache: it fails as a real server
		// would refuse it.
		tk.End()
		s.shed(rec, t)
		return
	}
	if !r.busy {
		s.step(d.Replica, t)
	}
}

// step starts replica i's next step at t, if it has work.
func (s *sim) step(i int, t int64) {
	r := &s.reps[i]
	for range 4 {
		if r.eng.Idle() {
			r.busy = false
			return
		}
		res := r.eng.Step()
		if res.Duration == 0 {
			continue // everything was preempted: reschedule at once
		}
		r.pending = append(r.pending[:0], res.Events...)
		r.busy, r.stepAt = true, t
		s.res.Steps++
		s.push(t+int64(res.Duration), evStepEnd, int32(i), 0)
		return
	}
	r.busy = false
}

func (s *sim) stepEnd(i int, t int64) {
	r := &s.reps[i]
	dur := t - r.stepAt
	s.res.Busy += time.Duration(dur)
	if r.stepAt < s.window {
		s.res.BusyWindow += time.Duration(min(t, s.window) - r.stepAt)
	}
	released := -1
	for _, ev := range r.pending {
		rec := ev.Seq.Req.Tag.(*record)
		switch ev.Kind {
		case engine.Token:
			if t <= s.window {
				if rec.req.Class == schedule.Batch {
					s.res.BatchTokensWindow++
				} else {
					s.res.OnlineTokensWindow++
				}
			}
			if ev.Index > 1 {
				rec.ticket.Token(at(t))
			}
			if ev.Index == 1 {
				rec.first = t
				rec.out.TTFT = time.Duration(t - rec.arrival)
				rec.out.Cached = ev.Seq.CachedTokens()
				rec.ticket.FirstToken(at(t))
			}
		case engine.Finished:
			rec.ticket.End()
			s.finish(rec, t)
			released = rec.node
		}
	}
	r.busy = false
	s.step(i, t)
	if released >= 0 && s.nodes[released].sched != nil {
		s.pump(released, t)
	}
}

func (s *sim) finish(rec *record, t int64) {
	s.done(rec)
	rec.out.Finish = time.Duration(t)
	if rec.out.Output > 1 && rec.first > 0 {
		rec.out.TPOT = time.Duration((t - rec.first) / int64(rec.out.Output-1))
	}
	rec.req.Blocks, rec.ereq.BlockHashes = nil, nil
	s.lastDone = max(s.lastDone, t)
}

func (s *sim) scrape(n, r int, t int64) {
	st := s.reps[r].eng.Stats()
	s.nodes[n].pool.Replica(r).SetMetrics(&schedule.Metrics{At: at(t), Healthy: true, Waiting: st.Waiting,
		Running: st.Running, KVUsage: st.KVUsage(), Blocks: st.NumBlocks,
		Hits: float64(st.PrefixHits), Queries: float64(st.PrefixQueries)})
	jitter := s.scrapeNs/10 - s.rng.Int64N(s.scrapeNs/5+1)
	s.push(t+s.scrapeNs+jitter, evScrape, int32(n), int32(r))
	if s.nodes[n].sched != nil {
		s.pump(n, t)
	}
}

// schedulePump makes sure node n pumps its queue within 10 ms while
// anything waits (bounded waits and the batch gate are checked then).
func (s *sim) schedulePump(n int, t int64) {
	if !s.nodes[n].pump {
		s.nodes[n].pump = true
		s.push(t+int64(10*time.Millisecond), evPump, int32(n), 0)
	}
}

func (s *sim) pump(n int, t int64) {
	nd := &s.nodes[n]
	s.pumpBuf = nd.sched.Pump(at(t), s.pumpBuf[:0])
	for _, w := range s.pumpBuf {
		rec := s.recOf(w)
		s.start(rec, w.Decision, w.Ticket, t)
	}
	waiting := false
	for c := schedule.Interactive; c <= schedule.Batch; c++ {
		if nd.sched.Waiting(c) > 0 {
			waiting = true
		}
	}
	if waiting {
		s.schedulePump(n, t)
	}
}

func (s *sim) recOf(w *schedule.Waiter) *record { return w.Tag.(*record) }

func (s *sim) collect() {
	s.res.Window = time.Duration(s.window)
	s.res.End = time.Duration(s.lastDone)
	for i := range s.reps {
		st := s.reps[i].eng.Stats()
		s.res.PrefixHits += st.PrefixHits
		s.res.PrefixQueries += st.PrefixQueries
		s.res.Preemptions += st.Preemptions
	}
}
