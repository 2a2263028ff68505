package schedule

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// Outcome is what the scheduler did with a request.
type Outcome uint8

const (
	// Dispatched: the request goes to Decision.Replica now; Ticket holds its load.
	Dispatched Outcome = iota + 1
	// Queued: the request waits in the gateway-side queue.
	Queued
	// Overflow: every replica is saturated; send the request to a vendor
	// channel instead.
	Overflow
	// Shed: refuse the request (429) and tell the client to retry after
	// QueueConfig.RetryAfter.
	Shed
)

var outcomeNames = [...]string{"", "dispatched", "queued", "overflow", "shed"}

func (o Outcome) String() string { return outcomeNames[o] }

// ErrShed is returned by Acquire when the request is refused; the client
// should retry after Scheduler.RetryAfter.
var ErrShed = errors.New("schedule: the pool is saturated; retry later")

// QueueConfig sets the gateway-side queue. Zero fields get the defaults
// named beside them.
type QueueConfig struct {
	// MaxQueued bounds the interactive and standard requests waiting
	// (default 1024); MaxPerTenant bounds one tenant's (default 256).
	MaxQueued    int
	MaxPerTenant int
	// MaxBatchQueued bounds the batch requests waiting (default 100,000).
	MaxBatchQueued int
	// MaxWait bounds the wait of an interactive (default 5s) and a
	// standard (default 30s) request: past it the request goes to the
	// least loaded replica although every replica is saturated.
	MaxWait [2]time.Duration
	// BatchMargin: a batch request whose deadline is this close is
	// promoted to the standard class (default 1h).
	BatchMargin time.Duration
	// A batch request goes out only to a replica whose engine queue is
	// empty, whose KV cache is under BatchMaxKV (default 0.7), whose
	// uncached prefill in flight is under BatchMaxPrefill tokens (default
	// 8192), with fewer than BatchMaxDecoding requests generating (default
	// 0: no limit) and whose online requests recently reached their first
	// token within BatchMaxTTFT on average (default 400 ms, a fifth of a
	// 2 s TTFT target), and only while no online request waits. The TTFT
	// bound is what keeps batch work off a replica that online traffic
	// nearly saturates: its first tokens slow down before anything else.
	BatchMaxKV       float64
	BatchMaxPrefill  int64
	BatchMaxDecoding int64
	BatchMaxTTFT     time.Duration
	// BatchMaxTPOT keeps batch work off a replica whose online streams
	// recently saw this time between tokens or more on average (0: no
	// limit). A replica's step time grows with its load, so this measures
	// how busy the replica is, as the streams the gateway relays show it,
	// with every token.
	BatchMaxTPOT time.Duration
	// BatchMaxInFlight bounds the batch requests one replica has in flight
	// (0: no limit), so the gate's signals, which move only as tokens
	// arrive, cannot be outrun by a burst of dispatches.
	BatchMaxInFlight int64
	// BatchMaxOnline keeps batch work off a replica with this many online
	// requests in flight (0: no limit). Online traffic near a replica's
	// capacity fills its batch slots, so this bound, set to about half of
	// the engine's max_num_seqs, stops batch work before it takes the
	// capacity the online requests are about to need.
	BatchMaxOnline int64
	// Overflow sends interactive and standard requests that find every
	// replica saturated to vendor channels instead of queueing them.
	Overflow bool
	// RetryAfter is what a shed request is told (default 1s).
	RetryAfter time.Duration
}

func (c *QueueConfig) defaults() {
	if c.MaxQueued <= 0 {
		c.MaxQueued = 1024
	}
	if c.MaxPerTenant <= 0 {
		c.MaxPerTenant = 256
	}
	if c.MaxBatchQueued <= 0 {
		c.MaxBatchQueued = 100_000
	}
	if c.MaxWait[Interactive] <= 0 {
		c.MaxWait[Interactive] = 5 * time.Second
	}
	if c.MaxWait[Standard] <= 0 {
		c.MaxWait[Standard] = 30 * time.Second
	}
	if c.BatchMargin <= 0 {
		c.BatchMargin = time.Hour
	}
	if c.BatchMaxKV <= 0 {
		c.BatchMaxKV = 0.7
	}
	if c.BatchMaxPrefill <= 0 {
		c.BatchMaxPrefill = 8192
	}
	if c.BatchMaxTTFT <= 0 {
		c.BatchMaxTTFT = 400 * time.Millisecond
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
}

// ClassStats are one traffic class's counters.
type ClassStats struct {
	Dispatched, Queued, Overflow, Shed, FailOpen, Promoted int64
	Waiting                                                int
	WaitCount                                              int64
	WaitSum, WaitMax                                       time.Duration
}

// Scheduler admits requests to a pool: it asks the policy for a replica,
// dispatches when the pool has room, and otherwise queues (by class, fair
// between tenants, with bounded waits), overflows to vendors or sheds. It
// is safe for concurrent use.
type Scheduler struct {
	pool   *Pool
	policy Policy
	cfg    QueueConfig

	mu        sync.Mutex
	q         [numClasses]classQueue
	deadlines deadlineHeap // batch waiters by deadline
	online    map[string]int
	stats     [numClasses]ClassStats
	kick      chan struct{}
}

// NewScheduler returns a scheduler placing requests on pool with policy.
func NewScheduler(pool *Pool, policy Policy, cfg QueueConfig) *Scheduler {
	cfg.defaults()
	return &Scheduler{pool: pool, policy: policy, cfg: cfg, online: map[string]int{}, kick: make(chan struct{}, 1)}
}

// Pool returns the scheduler's pool.
func (s *Scheduler) Pool() *Pool { return s.pool }

// Policy returns the scheduler's policy.
func (s *Scheduler) Policy() Policy { return s.policy }

// RetryAfter is what shed requests are told.
func (s *Scheduler) RetryAfter() time.Duration { return s.cfg.RetryAfter }

// Stats returns the per-class counters.
func (s *Scheduler) Stats() [numClasses]ClassStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for c := range st {
		st[c].Waiting = s.q[c].n
	}
	return st
}

// Kick asks a running Run loop to pump now (load went down somewhere).
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// batchRoom reports whether replica load l leaves room for batch work.
func (s *Scheduler) batchRoom(l Load) bool {
	return !s.pool.Saturated(l) && l.Waiting == 0 && l.KVUsage < s.cfg.BatchMaxKV &&
		l.Prefill < s.cfg.BatchMaxPrefill && (s.cfg.BatchMaxDecoding <= 0 || l.Decoding < s.cfg.BatchMaxDecoding) &&
		l.OnlineTTFT < s.cfg.BatchMaxTTFT && (s.cfg.BatchMaxOnline <= 0 || l.Online < s.cfg.BatchMaxOnline) &&
		(s.cfg.BatchMaxTPOT <= 0 || l.OnlineTPOT < s.cfg.BatchMaxTPOT) &&
		(s.cfg.BatchMaxInFlight <= 0 || l.InFlight-l.Online < s.cfg.BatchMaxInFlight)
}

// pickBatch places a batch request if some replica has room for it: the
// policy's choice if it does, else the lowest-scored replica that does.
func (s *Scheduler) pickBatch(req *Request, now time.Time) (Decision, bool) {
	if s.q[Interactive].n+s.q[Standard].n > 0 {
		return Decision{}, false
	}
	d := s.policy.Pick(s.pool, req, now)
	if !d.Saturated && s.batchRoom(s.pool.Load(d.Replica, now)) {
		return d, true
	}
	bi, bs := -1, int64(0)
	for i := range s.pool.Len() {
		l := s.pool.Load(i, now)
		if !s.batchRoom(l) {
			continue
		}
		if sc := s.pool.score(&l, int64(req.PromptTokens)); bi < 0 || sc < bs {
			bi, bs = i, sc
		}
	}
	if bi < 0 {
		return Decision{}, false
	}
	return Decision{Replica: bi, Reason: ReasonScore}, true
}

// Submit decides what happens to w.Req now: Dispatched (w.Ticket is set and
// the request must go out), Queued (Pump will dispatch it), Overflow or
// Shed.
func (s *Scheduler) Submit(w *Waiter, now time.Time) Outcome {
	req := w.Req
	s.mu.Lock()
	defer s.mu.Unlock()
	w.class = req.Class
	if req.Class >= numClasses {
		w.class = Standard
	}
	st := &s.stats[w.class]
	if w.class == Batch {
		if d, ok := s.pickBatch(req, now); ok && s.q[Batch].n == 0 {
			s.dispatch(w, d, now)
			return w.Outcome
		}
		if s.q[Batch].n >= s.cfg.MaxBatchQueued {
			st.Shed++
			w.Outcome = Shed
			return Shed
		}
		s.enqueue(w, now)
		return Queued
	}
	// Online requests queue behind earlier ones of their class and above.
	ahead := s.q[Interactive].n
	if w.class == Standard {
		ahead += s.q[Standard].n
	}
	d := s.policy.Pick(s.pool, req, now)
	if !d.Saturated && ahead == 0 {
		s.dispatch(w, d, now)
		return Dispatched
	}
	switch {
	case req.Free:
		st.Shed++
		w.Outcome = Shed
	case s.cfg.Overflow:
		st.Overflow++
		w.Outcome = Overflow
	case s.q[Interactive].n+s.q[Standard].n >= s.cfg.MaxQueued || s.online[req.Tenant] >= s.cfg.MaxPerTenant:
		st.Shed++
		w.Outcome = Shed
	default:
		s.enqueue(w, now)
		return Queued
	}
	return w.Outcome
}

func (s *Scheduler) enqueue(w *Waiter, now time.Time) {
	w.Enqueued = now
	w.Outcome = Queued
	s.q[w.class].push(w)
	s.stats[w.class].Queued++
	if w.class == Batch {
		heap.Push(&s.deadlines, w)
	} else {
		s.online[w.Req.Tenant]++
	}
}

// remove takes w out of its queue; served says it leaves to be dispatched
// (its tenant's turn is then over).
func (s *Scheduler) remove(w *Waiter, served bool) {
	if served {
		s.q[w.class].take(w)
	} else {
		s.q[w.class].unlinkWaiter(w)
	}
	if w.class == Batch {
		heap.Remove(&s.deadlines, w.heapIdx)
	} else if s.online[w.Req.Tenant]--; s.online[w.Req.Tenant] <= 0 {
		delete(s.online, w.Req.Tenant)
	}
}

func (s *Scheduler) dispatch(w *Waiter, d Decision, now time.Time) {
	w.Decision = d
	w.Outcome = Dispatched
	w.Ticket = s.pool.Dispatch(w.Req, d, now)
	st := &s.stats[w.class]
	st.Dispatched++
	if d.Saturated {
		st.FailOpen++
	}
	if !w.Enqueued.IsZero() {
		wait := now.Sub(w.Enqueued)
		st.WaitCount++
		st.WaitSum += wait
		st.WaitMax = max(st.WaitMax, wait)
	}
}

// Pump dispatches waiting requests while the pool has room, sends those
// that waited past their bound to the least loaded replica, and promotes
// batch requests near their deadline. It appends the waiters that left the
// queue to out and returns it; each is Dispatched with its Ticket set.
func (s *Scheduler) Pump(now time.Time, out []*Waiter) []*Waiter {
	s.mu.Lock()
	start := len(out)
	// Promote batch requests whose deadline is near.
	for len(s.deadlines) > 0 {
		w := s.deadlines[0]
		if w.Req.Deadline.IsZero() || w.Req.Deadline.Sub(now) > s.cfg.BatchMargin {
			break
		}
		s.remove(w, false)
		s.stats[Batch].Promoted++
		w.class = Standard
		s.enqueue(w, now)
	}
	for c := Interactive; c <= Standard; c++ {
		q := &s.q[c]
		for q.n > 0 {
			w := q.peek()
			d := s.policy.Pick(s.pool, w.Req, now)
			if d.Saturated {
				o := q.oldest()
				if now.Sub(o.Enqueued) < s.cfg.MaxWait[c] {
					break
				}
				w = o
				d = s.policy.Pick(s.pool, w.Req, now)
			}
			s.remove(w, true)
			s.dispatch(w, d, now)
			out = append(out, w)
		}
	}
	for s.q[Batch].n > 0 {
		w := s.q[Batch].peek()
		d, ok := s.pickBatch(w.Req, now)
		if !ok {
			break
		}
		s.remove(w, true)
		s.dispatch(w, d, now)
		out = append(out, w)
	}
	s.mu.Unlock()
	for _, w := range out[start:] {
		if w.ready != nil {
			close(w.ready)
		}
	}
	return out
}

// Cancel takes a waiting request out of the queue (its client left). It
// returns false if the request already left the queue: then whoever holds
// it must End its Ticket.
func (s *Scheduler) Cancel(w *Waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.Outcome != Queued {
		return false
	}
	s.remove(w, false)
	w.Outcome = 0
	return true
}

// Waiting returns the number of requests waiting in class c.
func (s *Scheduler) Waiting(c Class) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q[c].n
}

// Acquire submits req and, if it is queued, waits until Pump dispatches it
// or ctx ends. It returns the waiter: Dispatched with a Ticket the caller
// must End, Overflow, or Shed (with ErrShed). Something must call Pump (Run
// does) for queued requests to leave.
func (s *Scheduler) Acquire(ctx context.Context, req *Request, now func() time.Time) (*Waiter, error) {
	w := &Waiter{Req: req, ready: make(chan struct{})}
	switch s.Submit(w, now()) {
	case Shed:
		return w, ErrShed
	case Queued:
	default:
		return w, nil
	}
	s.Kick()
	select {
	case <-w.ready:
		return w, nil
	case <-ctx.Done():
		if s.Cancel(w) {
			return w, ctx.Err()
		}
		<-w.ready // dispatched as we gave up: release it
		w.Ticket.End()
		return w, ctx.Err()
	}
}

// Run pumps the queue every interval and whenever Kick is called, until ctx
// ends; after returns the timer channel of an injected clock's timer (use
// time.After with a real clock).
func (s *Scheduler) Run(ctx context.Context, interval time.Duration, now func() time.Time, after func(time.Duration) <-chan time.Time) {
	var buf []*Waiter
	for {
		buf = s.Pump(now(), buf[:0])
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-after(interval):
		}
	}
}

// deadlineHeap orders batch waiters by deadline (none last).
type deadlineHeap []*Waiter

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	a, b := h[i].Req.Deadline, h[j].Req.Deadline
	if a.IsZero() != b.IsZero() {
		return b.IsZero()
	}
	return a.Before(b)
}
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *deadlineHeap) Push(x any) {
	w := x.(*Waiter)
	w.heapIdx = len(*h)
	*h = append(*h, w)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.heapIdx = -1
	return w
}
