package engine

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// small is a configuration with round numbers: 1 ms a step, 10 µs a prompt
// token, 1 µs a context token, 100 µs a sequence.
func small() Config {
	return Config{
		Name:       "test",
		Coeff:      Coefficients{BaseNs: 1e6, PrefillNs: 1e4, ContextNs: 1e3, SeqNs: 1e5},
		MaxNumSeqs: 4, MaxBatchedTokens: 64, BlockSize: 16, NumBlocks: 64, PrefixCaching: true,
	}
}

func mustNew(t *testing.T, c Config) *Engine {
	t.Helper()
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustAdd(t *testing.T, e *Engine, r *Request) *Seq {
	t.Helper()
	s, err := e.Add(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chain makes n chained block hashes for a prompt family.
func chain(family uint64, n int) []uint64 {
	h := make([]uint64, n)
	x := family
	for i := range h {
		x = x*0x9E3779B97F4A7C15 + uint64(i) + 1
		h[i] = x
	}
	return h
}

// run steps until idle and returns the total time and every event.
func run(t *testing.T, e *Engine) (time.Duration, []Event) {
	t.Helper()
	var total time.Duration
	var evs []Event
	for i := 0; !e.Idle(); i++ {
		if i > 1e6 {
			t.Fatal("engine never went idle")
		}
		r := e.Step()
		total += r.Duration
		evs = append(evs, r.Events...)
		checkInvariants(t, e)
	}
	return total, evs
}

func checkInvariants(t *testing.T, e *Engine) {
	t.Helper()
	free := 0
	for b := range e.pool.ref {
		if e.pool.ref[b] < 0 {
			t.Fatalf("block %d has negative refcount", b)
		}
		if e.pool.ref[b] == 0 {
			free++
		}
	}
	if free != e.pool.free {
		t.Fatalf("free list says %d free blocks, refcounts say %d", e.pool.free, free)
	}
	if len(e.running) > e.cfg.MaxNumSeqs {
		t.Fatalf("%d running > max %d", len(e.running), e.cfg.MaxNumSeqs)
	}
	for _, s := range e.running {
		if len(s.blocks) < e.blocksFor(s.computed) {
			t.Fatalf("seq %d computed %d tokens in %d blocks", s.Req.ID, s.computed, len(s.blocks))
		}
	}
	if e.pool.cache != nil {
		n := 0
		for b := range e.pool.hashed {
			if !e.pool.hashed[b] {
				continue
			}
			n++
			if got, ok := e.pool.cache.Get(e.pool.hash[b]); !ok || got != int32(b) {
				t.Fatalf("block %d holds %x, which the cache maps to %d (%v)", b, e.pool.hash[b], got, ok)
			}
		}
		if n != e.pool.cache.Len() {
			t.Fatalf("%d hashed blocks, %d cache entries", n, e.pool.cache.Len())
		}
	}
}

func TestStepTimesOfOneRequest(t *testing.T) {
	e := mustNew(t, small())
	s := mustAdd(t, e, &Request{ID: 1, PromptTokens: 40, OutputTokens: 3})
	// Step 1 prefills 40 tokens and samples token 1.
	r := e.Step()
	if want := 1*time.Millisecond + 40*10*time.Microsecond + 100*time.Microsecond; r.Duration != want || r.PrefillTokens != 40 {
		t.Fatalf("prefill step: %v, %d prompt tokens; want %v, 40", r.Duration, r.PrefillTokens, want)
	}
	if len(r.Events) != 1 || r.Events[0].Kind != Token || r.Events[0].Index != 1 {
		t.Fatalf("prefill step events %+v, want the first token", r.Events)
	}
	// Step 2 decodes with 41 tokens of context: 40 prompt + the first token.
	r = e.Step()
	if want := 1*time.Millisecond + 41*time.Microsecond + 100*time.Microsecond; r.Duration != want || r.DecodeSeqs != 1 || r.ContextTokens != 41 {
		t.Fatalf("decode step: %v, %d decoding, context %d; want %v, 1, 41", r.Duration, r.DecodeSeqs, r.ContextTokens, want)
	}
	r = e.Step()
	if len(r.Events) != 2 || r.Events[1].Kind != Finished || !s.Done() || s.Generated() != 3 {
		t.Fatalf("last step events %+v, done %v, generated %d", r.Events, s.Done(), s.Generated())
	}
	if !e.Idle() || e.Stats().UsedBlocks != 0 {
		t.Fatalf("after finishing: idle %v, %d blocks used", e.Idle(), e.Stats().UsedBlocks)
	}
	if r := e.Step(); r.Duration != 0 || r.Seqs != 0 {
		t.Fatalf("idle step %+v, want zero", r)
	}
}

func TestChunkedPrefillSharesTheBudget(t *testing.T) {
	e := mustNew(t, small()) // 64-token budget
	a := mustAdd(t, e, &Request{ID: 1, PromptTokens: 10, OutputTokens: 5})
	r := e.Step()
	if r.PrefillTokens != 10 || a.Generated() != 1 {
		t.Fatalf("first step prefilled %d, a generated %d", r.PrefillTokens, a.Generated())
	}
	b := mustAdd(t, e, &Request{ID: 2, PromptTokens: 150, OutputTokens: 1})
	// a decodes one token; b gets the remaining 63 of the budget, then 63, then 24.
	var chunks []int
	for !b.Done() {
		r := e.Step()
		chunks = append(chunks, r.PrefillTokens)
		if r.Seqs > 0 && r.DecodeSeqs == 0 && !a.Done() {
			t.Fatalf("a step left the decoding request out: %+v", r)
		}
	}
	if len(chunks) != 3 || chunks[0] != 63 || chunks[1] != 63 || chunks[2] != 24 {
		t.Fatalf("prefill chunks %v, want [63 63 24]", chunks)
	}
}

func TestPrefixCacheHitsSkipPrefill(t *testing.T) {
	e := mustNew(t, small())
	hs := chain(7, 4) // 4 full blocks = 64 tokens
	mustAdd(t, e, &Request{ID: 1, PromptTokens: 64 + 5, OutputTokens: 1, BlockHashes: hs})
	run(t, e)
	s := mustAdd(t, e, &Request{ID: 2, PromptTokens: 64 + 20, OutputTokens: 1, BlockHashes: hs})
	r := e.Step()
	if s.CachedTokens() != 64 || r.PrefillTokens != 20 {
		t.Fatalf("second prompt: %d cached, %d prefilled; want 64, 20", s.CachedTokens(), r.PrefillTokens)
	}
	st := e.Stats()
	if st.PrefixQueries != 69+84 || st.PrefixHits != 64 {
		t.Fatalf("prefix counters queries %d hits %d, want 153, 64", st.PrefixQueries, st.PrefixHits)
	}
	// A prompt of exactly the cached blocks still computes its last block.
	u := mustAdd(t, e, &Request{ID: 3, PromptTokens: 64, OutputTokens: 1, BlockHashes: hs})
	r = e.Step()
	if u.CachedTokens() != 48 || r.PrefillTokens != 16 {
		t.Fatalf("fully cached prompt: %d cached, %d prefilled; want 48, 16", u.CachedTokens(), r.PrefillTokens)
	}
}

func TestPrefixCacheEvictsLeastRecentlyFreed(t *testing.T) {
	c := small()
	c.NumBlocks = 8 // room for two 4-block prompts' worth of cache
	e := mustNew(t, c)
	old, mid := chain(1, 3), chain(2, 3)
	mustAdd(t, e, &Request{ID: 1, PromptTokens: 48 + 1, OutputTokens: 1, BlockHashes: old})
	run(t, e)
	mustAdd(t, e, &Request{ID: 2, PromptTokens: 48 + 1, OutputTokens: 1, BlockHashes: mid})
	run(t, e)
	// A new 4-block prompt needs 4 blocks; 8 are free, of which "old" was
	// freed first, so its blocks go.
	mustAdd(t, e, &Request{ID: 3, PromptTokens: 64, OutputTokens: 1, BlockHashes: chain(3, 4)})
	run(t, e)
	a := mustAdd(t, e, &Request{ID: 4, PromptTokens: 48 + 1, OutputTokens: 1, BlockHashes: mid})
	e.Step()
	if a.CachedTokens() != 48 {
		t.Fatalf("the recently freed prefix: %d tokens cached, want 48", a.CachedTokens())
	}
	run(t, e)
	b := mustAdd(t, e, &Request{ID: 5, PromptTokens: 48 + 1, OutputTokens: 1, BlockHashes: old})
	e.Step()
	if b.CachedTokens() != 0 {
		t.Fatalf("the least recently freed prefix survived: %d tokens cached", b.CachedTokens())
	}
}

func TestPreemptionRecomputesAndEverythingFinishes(t *testing.T) {
	c := small()
	c.NumBlocks = 12 // 192 tokens: four 60-token sequences cannot all grow
	e := mustNew(t, c)
	var seqs []*Seq
	for i := range 4 {
		seqs = append(seqs, mustAdd(t, e, &Request{ID: uint64(i), PromptTokens: 30, OutputTokens: 60}))
	}
	_, evs := run(t, e)
	st := e.Stats()
	if st.Preemptions == 0 {
		t.Fatal("no preemption although the cache cannot hold every sequence")
	}
	tokens := map[uint64]int{}
	for _, ev := range evs {
		if ev.Kind == Token {
			if ev.Index != tokens[ev.Seq.Req.ID]+1 {
				t.Fatalf("seq %d: token %d after %d (a token repeated or skipped)", ev.Seq.Req.ID, ev.Index, tokens[ev.Seq.Req.ID])
			}
			tokens[ev.Seq.Req.ID] = ev.Index
		}
	}
	for _, s := range seqs {
		if !s.Done() || tokens[s.Req.ID] != 60 {
			t.Fatalf("seq %d: done %v, %d tokens, want 60", s.Req.ID, s.Done(), tokens[s.Req.ID])
		}
	}
	if st.UsedBlocks != 0 || st.GenerationTokens != 240 {
		t.Fatalf("%d blocks leaked, %d tokens generated", st.UsedBlocks, st.GenerationTokens)
	}
	if seqs[3].Preemptions() == 0 {
		t.Fatal("the newest sequence was never preempted (FCFS preempts the newest first)")
	}
}

func TestPriorityPreemptsTheLowestPriority(t *testing.T) {
	c := small()
	c.NumBlocks = 12
	c.Priority = true
	e := mustNew(t, c)
	// The batch-class request arrives first but has the lower priority.
	low := mustAdd(t, e, &Request{ID: 1, PromptTokens: 30, OutputTokens: 100, Priority: 2})
	high := mustAdd(t, e, &Request{ID: 2, PromptTokens: 30, OutputTokens: 100, Priority: 0})
	run(t, e)
	if high.Preemptions() != 0 || low.Preemptions() == 0 {
		t.Fatalf("preemptions: high %d, low %d; want 0 and some", high.Preemptions(), low.Preemptions())
	}
	// A waiting request of higher priority displaces a running one of
	// lower priority that holds the only batch slot.
	c.MaxNumSeqs = 1
	e = mustNew(t, c)
	batch := mustAdd(t, e, &Request{ID: 1, PromptTokens: 10, OutputTokens: 50, Priority: 2})
	e.Step()
	online := mustAdd(t, e, &Request{ID: 2, PromptTokens: 10, OutputTokens: 5, Priority: 0})
	r := e.Step()
	if batch.Preemptions() != 1 || online.Generated() != 1 || r.Preempted != 1 {
		t.Fatalf("after the online request arrived: batch preempted %d times, online generated %d", batch.Preemptions(), online.Generated())
	}
	run(t, e)
	if batch.Generated() != 50 || online.Generated() != 5 {
		t.Fatalf("generated %d and %d", batch.Generated(), online.Generated())
	}
	// Waiting requests are admitted by priority.
	e = mustNew(t, c)
	mustAdd(t, e, &Request{ID: 1, PromptTokens: 10, OutputTokens: 1, Priority: 1})
	mustAdd(t, e, &Request{ID: 2, PromptTokens: 10, OutputTokens: 1, Priority: 0})
	r = e.Step()
	if r.Events[0].Seq.Req.ID != 2 {
		t.Fatalf("admitted request %d first, want the priority-0 request 2", r.Events[0].Seq.Req.ID)
	}
}

func TestAbortFreesBlocks(t *testing.T) {
	e := mustNew(t, small())
	a := mustAdd(t, e, &Request{ID: 1, PromptTokens: 40, OutputTokens: 50})
	b := mustAdd(t, e, &Request{ID: 2, PromptTokens: 40, OutputTokens: 50})
	e.Step()
	e.Abort(a)
	e.Abort(a) // twice is harmless
	if !a.Done() || e.Stats().Running != 1 {
		t.Fatalf("after abort: done %v, running %d", a.Done(), e.Stats().Running)
	}
	w := mustAdd(t, e, &Request{ID: 3, PromptTokens: 40, OutputTokens: 50})
	e.Abort(w)
	if e.Stats().Waiting != 0 {
		t.Fatal("aborted waiting request still queued")
	}
	e.Abort(b)
	if !e.Idle() || e.Stats().UsedBlocks != 0 {
		t.Fatalf("after aborting everything: idle %v, %d blocks used", e.Idle(), e.Stats().UsedBlocks)
	}
}

func TestAddRejects(t *testing.T) {
	e := mustNew(t, small()) // 64 blocks of 16 = 1024 tokens
	if _, err := e.Add(&Request{PromptTokens: 1000, OutputTokens: 100}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("too long: %v", err)
	}
	if _, err := e.Add(&Request{PromptTokens: 0, OutputTokens: 1}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("empty prompt: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("zero config accepted")
	}
}

// TestRandomWorkloadKeepsInvariants drives random prompts, shared prefixes
// and aborts through a small cache and checks, after every step, refcounts,
// the free list, the cache table and the batch limit, and at the end that
// every request produced exactly its tokens or was aborted.
func TestRandomWorkloadKeepsInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		c := small()
		c.NumBlocks = 24 + rng.IntN(40)
		c.Priority = seed%2 == 0
		e := mustNew(t, c)
		var all []*Seq
		aborted := map[*Seq]bool{}
		for step := 0; step < 3000; step++ {
			if rng.IntN(3) == 0 && len(all) < 300 {
				p := 1 + rng.IntN(200)
				fam := uint64(rng.IntN(4))
				s, err := e.Add(&Request{ID: uint64(len(all)), PromptTokens: p, OutputTokens: 1 + rng.IntN(60),
					BlockHashes: chain(fam, p/16), Priority: rng.IntN(3)})
				if err == nil {
					all = append(all, s)
				} else if !errors.Is(err, ErrTooLong) {
					t.Fatal(err)
				}
			}
			if rng.IntN(40) == 0 && len(all) > 0 {
				s := all[rng.IntN(len(all))]
				if !s.Done() {
					e.Abort(s)
					aborted[s] = true
				}
			}
			e.Step()
			checkInvariants(t, e)
		}
		run(t, e)
		for _, s := range all {
			if !aborted[s] && s.Generated() != s.Req.OutputTokens {
				t.Fatalf("seed %d: seq %d generated %d of %d", seed, s.Req.ID, s.Generated(), s.Req.OutputTokens)
			}
		}
		if e.Stats().UsedBlocks != 0 {
			t.Fatalf("seed %d: %d blocks leaked", seed, e.Stats().UsedBlocks)
		}
	}
}
