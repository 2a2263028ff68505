package simulate

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"sync"
)

// Sweep runs a configuration over policies, arrival rates and seeds, and
// finds each policy's SLO goodput: the highest rate at which the SLO's
// attainment holds.
type Sweep struct {
	// Base is the run configuration; Trace, Policy, Rate and Seed are set
	// per run.
	Base Config
	// Traces holds one trace per seed (a seed may replay a different
	// slice of the same trace).
	Traces   []*Trace
	Seeds    []uint64
	Policies []string
	// Rates are the arrival-rate multipliers of the grid.
	Rates []float64
	SLO   SLO
	Costs Costs
	// Refine bisects between the last grid rate that meets the SLO and the
	// first that misses it this many times (0: the grid alone).
	Refine  int
	Workers int // parallel runs (default GOMAXPROCS)
}

// Goodput is one policy's SLO goodput on one seed.
type Goodput struct {
	Policy string
	Seed   uint64
	Rate   float64 // the multiplier
	// ReqPerS is the offered online request rate at Rate; 0 if even the
	// lowest rate missed the SLO.
	ReqPerS float64
	// Summary is the run at Rate.
	Summary Summary
}

// Report is a sweep's figures.
type Report struct {
	Runs    []Summary // every grid and refinement run
	Goodput []Goodput
}

type job struct {
	policy string
	seed   int
	rate   float64
}

// Run executes the sweep. progress, if not nil, gets a line per run.
func (sw *Sweep) Run(progress io.Writer) (*Report, error) {
	if len(sw.Traces) != len(sw.Seeds) {
		return nil, fmt.Errorf("simulate: %d traces for %d seeds", len(sw.Traces), len(sw.Seeds))
	}
	if sw.SLO.TTFT == 0 {
		sw.SLO = DefaultSLO
	}
	workers := sw.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var mu sync.Mutex
	rep := &Report{}
	run := func(jobs []job) (map[job]Summary, error) {
		out := make(map[job]Summary, len(jobs))
		var firstErr error
		ch := make(chan job)
		var wg sync.WaitGroup
		for range min(workers, len(jobs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range ch {
					cfg := sw.Base
					cfg.Trace, cfg.Policy, cfg.Rate, cfg.Seed = sw.Traces[j.seed], j.policy, j.rate, sw.Seeds[j.seed]
					res, err := Run(cfg)
					mu.Lock()
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						continue
					}
					s := Summarize(res, sw.SLO, sw.Costs)
					out[j] = s
					rep.Runs = append(rep.Runs, s)
					if progress != nil {
						fmt.Fprintf(progress, "%-14s seed %d  rate ×%-7.3g %7.2f req/s  SLO met %5.1f%%  TTFT p90 %8.3fs  TPOT p90 %6.1fms  prefix hits %5.1f%%\n",
							s.Policy, s.Seed, s.Rate, s.ReqPerS, 100*s.Attainment, s.TTFT[1].Seconds(), float64(s.TPOT[1].Microseconds())/1000, 100*s.PrefixHitRate)
					}
					mu.Unlock()
				}
			}()
		}
		for _, j := range jobs {
			ch <- j
		}
		close(ch)
		wg.Wait()
		return out, firstErr
	}
	var grid []job
	for _, p := range sw.Policies {
		for si := range sw.Seeds {
			for _, r := range sw.Rates {
				grid = append(grid, job{p, si, r})
			}
		}
	}
	got, err := run(grid)
	if err != nil {
		return nil, err
	}
	// Bracket each (policy, seed) between the highest passing rate below
	// the first failing one, then bisect (on a log scale), all pairs at
	// once.
	type bracket struct {
		lo, hi float64
		best   Summary
		ok     bool
	}
	rates := append([]float64(nil), sw.Rates...)
	sort.Float64s(rates)
	br := map[job]*bracket{}
	for _, p := range sw.Policies {
		for si := range sw.Seeds {
			b := &bracket{}
			for _, r := range rates {
				s := got[job{p, si, r}]
				if s.Attainment >= sw.SLO.Attain {
					b.lo, b.best, b.ok = r, s, true
					continue
				}
				b.hi = r
				break
			}
			br[job{p, si, 0}] = b
		}
	}
	for range sw.Refine {
		var jobs []job
		for k, b := range br {
			if b.ok && b.hi > 0 {
				jobs = append(jobs, job{k.policy, k.seed, math.Sqrt(b.lo * b.hi)})
			}
		}
		if len(jobs) == 0 {
			break
		}
		more, err := run(jobs)
		if err != nil {
			return nil, err
		}
		for j, s := range more {
			b := br[job{j.policy, j.seed, 0}]
			if s.Attainment >= sw.SLO.Attain {
				b.lo, b.best = j.rate, s
			} else {
				b.hi = j.rate
			}
		}
	}
	for _, p := range sw.Policies {
		for si, seed := range sw.Seeds {
			b := br[job{p, si, 0}]
			g := Goodput{Policy: p, Seed: seed}
			if b.ok {
				g.Rate, g.ReqPerS, g.Summary = b.lo, b.best.ReqPerS, b.best
			}
			rep.Goodput = append(rep.Goodput, g)
		}
	}
	sort.Slice(rep.Runs, func(i, j int) bool {
		a, b := rep.Runs[i], rep.Runs[j]
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		if a.Seed != b.Seed {
			return a.Seed < b.Seed
		}
		return a.Rate < b.Rate
	})
	return rep, nil
}
