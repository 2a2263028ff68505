// Package engine is a step model of a continuous-batching inference engine
// (vLLM-like): a batch of at most MaxNumSeqs sequences, a per-step token
// budget that prefills prompts in chunks beside the decoding sequences, a
// paged KV cache of 16-token blocks with a prefix cache and LRU eviction, and
// preemption by recomputation when the cache runs out. Each Step decides one
// batch and returns how long it takes (Coefficients) and which tokens it
// produced.
//
// The engine keeps no clock: the caller advances time by each step's
// duration. The discrete-event simulator (internal/simulate) adds it to a
// virtual clock; the simulated replica server (internal/provider/sim) waits
// it out in real time. Both therefore run the same model. An Engine is not
// safe for concurrent use.
package engine

import (
	"fmt"
	"time"
)

// Request is one generation request as the engine sees it.
type Request struct {
	ID           uint64
	PromptTokens int
	// OutputTokens is how many tokens the request generates (the engine
	// stops there, as with ignore_eos).
	OutputTokens int
	// BlockHashes names the prompt's full blocks (BlockSize tokens each), in
	// order; each hash covers the block's tokens and every token before it,
	// so equal hashes mean an equal prefix. It may be shorter than the
	// prompt's block count (the rest is then never shared) and is ignored
	// without prefix caching.
	BlockHashes []uint64
	// Priority orders requests when Config.Priority is set: lower first.
	Priority int
	// Tag is the caller's (the engine never looks at it): the simulator
	// keeps its request record here, the replica server its stream.
	Tag any
}

// Seq is a request inside the engine, the handle Add returns.
type Seq struct {
	Req *Request

	computed  int     // tokens whose KV is computed
	generated int     // output tokens produced so far
	blocks    []int32 // KV blocks, in token order
	hashed    int     // leading blocks registered in (or taken from) the prefix cache
	order     uint64  // arrival number
	state     seqState
	schedN    int // tokens scheduled in the current step; 0 if none
	cached    int // prompt tokens found in the prefix cache at first admission
	admitted  bool
	preempted int
}

type seqState uint8

const (
	stateWaiting seqState = iota
	stateRunning
	stateDone
)

// Generated is the number of output tokens produced so far.
func (s *Seq) Generated() int { return s.generated }

// CachedTokens is the number of prompt tokens the prefix cache supplied when
// the sequence was first scheduled.
func (s *Seq) CachedTokens() int { return s.cached }

// Preemptions counts how often the sequence was preempted.
func (s *Seq) Preemptions() int { return s.preempted }

// Done reports whether the sequence finished or was aborted.
func (s *Seq) Done() bool { return s.state == stateDone }

// target is the number of tokens whose KV must exist before the next token
// can be sampled: the prompt plus every token generated so far.
func (s *Seq) target() int { return s.Req.PromptTokens + s.generated }

// EventKind says what a step produced for a sequence.
type EventKind uint8

const (
	// Token is an output token; Event.Index is its number from 1 (1 is the
	// first token).
	Token EventKind = iota + 1
	// Finished follows the last token; the sequence has left the engine.
	Finished
)

// Event is one thing a step produced.
type Event struct {
	Seq   *Seq
	Kind  EventKind
	Index int
}

// StepResult describes one step. Its Events slice is reused by the next
// Step.
type StepResult struct {
	Duration      time.Duration
	PrefillTokens int // prompt tokens computed
	ContextTokens int // KV tokens read by the decoding sequences
	DecodeSeqs    int
	Seqs          int // sequences in the batch
	Preempted     int // sequences preempted to make room
	Events        []Event
}

// Stats are the engine's gauges and counters, named after vLLM's metrics.
type Stats struct {
	Running, Waiting      int
	UsedBlocks, NumBlocks int
	// PrefixQueries and PrefixHits count prompt tokens looked up in and
	// found in the prefix cache (vllm:prefix_cache_queries/hits).
	PrefixQueries, PrefixHits int64
	Preemptions               int64
	PromptTokens              int64 // prompt tokens computed (cache hits excluded)
	GenerationTokens          int64
	Steps                     int64
	BusyTime                  time.Duration // sum of step durations
	Finished                  int64
}

// KVUsage is the fraction of KV blocks in use (vllm:kv_cache_usage_perc).
func (s Stats) KVUsage() float64 {
	if s.NumBlocks == 0 {
		return 0
	}
	return float64(s.UsedBlocks) / float64(s.NumBlocks)
}

// Engine is one replica's scheduler and KV cache.
type Engine struct {
	cfg     Config
	pool    *blockPool
	running []*Seq
	waiting waitQueue
	nextOrd uint64
	stats   Stats

	sched  []*Seq // scheduled in the current step
	events []Event
	hits   []int32 // scratch for prefix lookups
}

// New returns an idle engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, pool: newBlockPool(cfg.NumBlocks, cfg.PrefixCaching)}
	e.waiting.priority = cfg.Priority
	e.stats.NumBlocks = cfg.NumBlocks
	return e, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// blocksFor is the number of blocks that hold n tokens.
func (e *Engine) blocksFor(n int) int { return (n + e.cfg.BlockSize - 1) / e.cfg.BlockSize }

// Add queues a request. It fails if the request is empty or could not fit
// the KV cache even alone.
func (e *Engine) Add(r *Request) (*Seq, error) {
	if r.PromptTokens < 1 || r.OutputTokens < 1 {
		return nil, ErrBadRequest
	}
	if e.blocksFor(r.PromptTokens+r.OutputTokens) > e.cfg.NumBlocks {
		return nil, fmt.Errorf("%w: %d tokens, %d blocks of %d", ErrTooLong, r.PromptTokens+r.OutputTokens, e.cfg.NumBlocks, e.cfg.BlockSize)
	}
	s := &Seq{Req: r, order: e.nextOrd}
	e.nextOrd++
	e.waiting.push(s)
	return s, nil
}

// Abort removes a sequence (a client that left) and frees its blocks. It
// does nothing for a sequence already done.
func (e *Engine) Abort(s *Seq) {
	switch s.state {
	case stateWaiting:
		if e.waiting.remove(s) {
			e.freeBlocks(s)
			s.state = stateDone
		}
	case stateRunning:
		for i, x := range e.running {
			if x == s {
				e.running = append(e.running[:i], e.running[i+1:]...)
				break
			}
		}
		e.freeBlocks(s)
		s.state = stateDone
	}
}

// Idle reports whether nothing is running or waiting.
func (e *Engine) Idle() bool { return len(e.running) == 0 && e.waiting.len() == 0 }

// Stats returns the current gauges and counters.
func (e *Engine) Stats() Stats {
	st := e.stats
	st.Running, st.Waiting = len(e.running), e.waiting.len()
	st.UsedBlocks = e.cfg.NumBlocks - e.pool.free
	return st
}

func (e *Engine) freeBlocks(s *Seq) {
	// Release the tail first, so the free list evicts a prompt's last
	// blocks before its prefix, which other prompts are likelier to share.
	for i := len(s.blocks) - 1; i >= 0; i-- {
		e.pool.release(s.blocks[i])
	}
	s.blocks = s.blocks[:0]
	s.hashed = 0
}

// reserve makes s hold blocks for its first tokens tokens.
func (e *Engine) reserve(s *Seq, tokens int) bool {
	need := e.blocksFor(tokens) - len(s.blocks)
	if need <= 0 {
		return true
	}
	if need > e.pool.free {
		return false
	}
	for range need {
		s.blocks = append(s.blocks, e.pool.alloc())
	}
	return true
}

// victim is the running sequence to preempt: the newest, or with priority
// scheduling the lowest-priority (then newest) one.
func (e *Engine) victim() int {
	v := len(e.running) - 1
	if !e.cfg.Priority {
		return v
	}
	for i := v - 1; i >= 0; i-- {
		a, b := e.running[i], e.running[v]
		if a.Req.Priority > b.Req.Priority || (a.Req.Priority == b.Req.Priority && a.order > b.order) {
			v = i
		}
	}
	return v
}

// preempt sends running[i] back to the waiting queue, dropping its KV cache
// (it will be recomputed, prompt and generated tokens alike).
func (e *Engine) preempt(i int) *Seq {
	s := e.running[i]
	e.running = append(e.running[:i], e.running[i+1:]...)
	e.freeBlocks(s)
	s.computed = 0
	s.schedN = 0
	s.state = stateWaiting
	s.preempted++
	e.stats.Preemptions++
	e.waiting.push(s)
	return s
}

// Step runs one engine iteration: it schedules the running sequences (one
// token each, or the next chunk of a prompt), then admits waiting ones while
// the token budget, the batch size and the KV cache allow, and applies the
// result. An idle engine returns a zero StepResult.
func (e *Engine) Step() StepResult {
	res := StepResult{Events: e.events[:0]}
	e.sched = e.sched[:0]
	budget := e.cfg.MaxBatchedTokens
	displaced := 0
	if e.cfg.Priority {
		displaced = e.displace(budget)
	}
	preempted := 0

	for i := 0; i < len(e.running) && budget > 0; i++ {
		s := e.running[i]
		n := min(s.target()-s.computed, budget)
		ok := true
		for !e.reserve(s, s.computed+n) {
			v := e.victim()
			vs := e.running[v]
			if vs.schedN > 0 {
				budget += vs.schedN
			}
			e.preempt(v)
			preempted++
			if vs == s {
				ok = false
				i--
				break
			}
			if v < i {
				i--
			}
		}
		if !ok {
			continue
		}
		s.schedN = n
		budget -= n
		e.sched = append(e.sched, s)
	}

	if preempted == 0 {
		for e.waiting.len() > 0 && budget > 0 && len(e.running) < e.cfg.MaxNumSeqs {
			s := e.waiting.peek()
			if !e.admit(s, budget) {
				break
			}
			e.waiting.pop()
			s.state = stateRunning
			e.running = append(e.running, s)
			e.sched = append(e.sched, s)
			budget -= s.schedN
		}
	}

	res.Preempted = preempted + displaced
	return e.apply(res)
}

// displace makes room for waiting requests of higher priority than some
// running one, as vLLM's priority policy forces (V0's
// _schedule_priority_preemption): while the best waiting request lacks a
// batch slot or the blocks of its first chunk, the lowest-priority running
// request (the newest among equals) is preempted, if its priority is lower.
func (e *Engine) displace(budget int) int {
	n := 0
	for e.waiting.len() > 0 && len(e.running) > 0 {
		w := e.waiting.peek()
		v := e.victim()
		if e.running[v].Req.Priority <= w.Req.Priority {
			break
		}
		needSlot := len(e.running) >= e.cfg.MaxNumSeqs
		needBlocks := e.blocksFor(min(w.target(), budget)) > e.pool.free
		if !needSlot && !needBlocks {
			break
		}
		e.preempt(v)
		n++
	}
	return n
}

// admit gives a waiting sequence its cached prefix and the blocks for its
// first chunk, if they fit; it sets s.schedN.
func (e *Engine) admit(s *Seq, budget int) bool {
	target := s.target()
	e.hits = e.hits[:0]
	if e.cfg.PrefixCaching && s.computed == 0 {
		// At least one token must be computed to sample the next one.
		maxHit := min(len(s.Req.BlockHashes), (target-1)/e.cfg.BlockSize)
		for i := 0; i < maxHit; i++ {
			b, ok := e.pool.lookup(s.Req.BlockHashes[i])
			if !ok {
				break
			}
			e.hits = append(e.hits, b)
		}
	}
	hitTokens := len(e.hits) * e.cfg.BlockSize
	n := min(target-hitTokens, budget)
	need := e.blocksFor(hitTokens+n) - len(e.hits)
	avail := e.pool.free
	for _, b := range e.hits {
		if e.pool.ref[b] == 0 {
			avail-- // taking a free cached block removes it from the free list
		}
	}
	if need > avail {
		return false
	}
	if e.cfg.PrefixCaching && s.computed == 0 {
		e.stats.PrefixQueries += int64(target)
		e.stats.PrefixHits += int64(hitTokens)
	}
	for _, b := range e.hits {
		e.pool.take(b)
		s.blocks = append(s.blocks, b)
	}
	s.hashed = len(e.hits)
	s.computed = hitTokens
	if !s.admitted {
		s.admitted = true
		s.cached = hitTokens
	}
	e.reserve(s, hitTokens+n)
	s.schedN = n
	return true
}

// apply advances every scheduled sequence, emits tokens, retires finished
// sequences and prices the step.
func (e *Engine) apply(res StepResult) StepResult {
	if len(e.sched) == 0 {
		return res
	}
	bs := e.cfg.BlockSize
	finished := false
	for _, s := range e.sched {
		n := s.schedN
		if n == 0 { // preempted after being scheduled
			continue
		}
		s.schedN = 0
		res.Seqs++
		if n == 1 && s.generated > 0 && s.computed == s.target()-1 {
			res.DecodeSeqs++
			res.ContextTokens += s.computed + 1
		} else {
			res.PrefillTokens += n
		}
		s.computed += n
		if e.pool.cache != nil {
			full := min(len(s.Req.BlockHashes), s.computed/bs, s.Req.PromptTokens/bs)
			for ; s.hashed < full; s.hashed++ {
				e.pool.register(s.blocks[s.hashed], s.Req.BlockHashes[s.hashed])
			}
		}
		if s.computed < s.target() {
			continue // a prompt chunk; more to prefill
		}
		s.generated++
		e.stats.GenerationTokens++
		res.Events = append(res.Events, Event{Seq: s, Kind: Token, Index: s.generated})
		if s.generated >= s.Req.OutputTokens {
			e.freeBlocks(s)
			s.state = stateDone
			finished = true
			e.stats.Finished++
			res.Events = append(res.Events, Event{Seq: s, Kind: Finished, Index: s.generated})
		}
	}
	if finished {
		kept := e.running[:0]
		for _, s := range e.running {
			if s.state == stateRunning {
				kept = append(kept, s)
			}
		}
		clear(e.running[len(kept):])
		e.running = kept
	}
	e.stats.PromptTokens += int64(res.PrefillTokens)
	res.Duration = e.cfg.Coeff.StepTime(res.PrefillTokens, res.ContextTokens, res.Seqs)
	e.stats.Steps++
	e.stats.BusyTime += res.Duration
	e.events = res.Events
	return res
}
