package simulate

import (
	"fmt"
	"io"
	"time"
)

// BatchStudy measures a batch backlog sharing a pool with online traffic:
// how much of the capacity online traffic leaves idle the batch fills, what
// it costs online requests (their SLO per one-minute window, their
// goodput), and whether every batch request meets its deadline.
type BatchStudy struct {
	// Base has the online trace's pool and the batch backlog (Base.Batch);
	// Trace, Rate and Seed are set per run.
	Base   Config
	Traces []*Trace
	Seeds  []uint64
	Policy string
	// Rates and Refine search each seed's online goodput, alone and shared.
	Rates  []float64
	Refine int
	// At is the operating point as a fraction of the seed's goodput alone
	// (default 0.7): there the fill, the windows and the deadlines are
	// measured, on Operating[seed] if set (a longer slice, so that there are
	// enough one-minute windows) or on the seed's trace.
	At        float64
	Operating []*Trace
	SLO       SLO
	Costs     Costs
	Workers   int
}

// BatchFigures are one seed's results.
type BatchFigures struct {
	Seed                        uint64
	GoodputAlone, GoodputShared float64 // online requests/s
	Rate                        float64 // the operating multiplier
	ReqPerS                     float64
	Alone, Shared               Summary
	// BatchRate is the batch requests/s completed while online traffic
	// flowed (the shared run's window); Ungated is the same run with every
	// batch request sent to the replicas at once, where the engines'
	// priority scheduling gives online requests precedence and batch
	// takes whatever is left: the capacity online traffic leaves idle.
	BatchRate float64
	Ungated   Summary
	// UngatedRate is Ungated's batch requests/s within its window.
	UngatedRate float64
	// Fill is BatchRate / UngatedRate: the share of the idle capacity the
	// gated batch took.
	Fill float64
}

// Run performs the study.
func (st *BatchStudy) Run(progress io.Writer) ([]BatchFigures, error) {
	if st.Base.Batch == nil {
		return nil, fmt.Errorf("simulate: a batch study needs a batch backlog")
	}
	if st.At <= 0 {
		st.At = 0.7
	}
	if st.SLO.TTFT == 0 {
		st.SLO = DefaultSLO
	}
	search := func(withBatch bool) ([]Goodput, error) {
		base := st.Base
		if withBatch {
			base.StopAfterOnline = true
		} else {
			base.Batch = nil
		}
		sw := Sweep{Base: base, Traces: st.Traces, Seeds: st.Seeds, Policies: []string{st.Policy}, Rates: st.Rates,
			SLO: st.SLO, Costs: st.Costs, Refine: st.Refine, Workers: st.Workers}
		rep, err := sw.Run(progress)
		if err != nil {
			return nil, err
		}
		return rep.Goodput, nil
	}
	alone, err := search(false)
	if err != nil {
		return nil, err
	}
	shared, err := search(true)
	if err != nil {
		return nil, err
	}
	out := make([]BatchFigures, len(st.Seeds))
	for i, seed := range st.Seeds {
		f := &out[i]
		f.Seed, f.GoodputAlone, f.GoodputShared = seed, alone[i].ReqPerS, shared[i].ReqPerS
		f.Rate = st.At * alone[i].Rate
		if f.Rate == 0 {
			f.Rate = st.At * st.Rates[0]
		}
		optrace := st.Traces[i]
		if i < len(st.Operating) && st.Operating[i] != nil {
			optrace = st.Operating[i]
		}
		for _, withBatch := range []bool{false, true} {
			cfg := st.Base
			cfg.Trace, cfg.Policy, cfg.Rate, cfg.Seed = optrace, st.Policy, f.Rate, seed
			if !withBatch {
				cfg.Batch = nil
			}
			start := time.Now()
			res, err := Run(cfg)
			if err != nil {
				return nil, err
			}
			s := Summarize(res, st.SLO, st.Costs)
			if withBatch {
				f.Shared = s
			} else {
				f.Alone = s
			}
			if progress != nil {
				fmt.Fprintf(progress, "batch study seed %d at ×%.3g (%s): batch %v, busy %.1f%%, SLO met %.1f%%, windows met %.1f%%, batch done %d/%d, in %s\n",
					seed, f.Rate, st.Policy, withBatch, 100*s.Utilisation, 100*s.Attainment, 100*s.WindowsMet, s.BatchMetDeadline, s.Batch, time.Since(start).Round(time.Millisecond))
			}
		}
		f.ReqPerS = f.Alone.ReqPerS
		cfg := st.Base
		cfg.Trace, cfg.Policy, cfg.Rate, cfg.Seed, cfg.Queue = optrace, st.Policy, f.Rate, seed, nil
		res, err := Run(cfg)
		if err != nil {
			return nil, err
		}
		f.Ungated = Summarize(res, st.SLO, st.Costs)
		if w := f.Shared.Window.Seconds(); w > 0 {
			f.BatchRate = float64(f.Shared.BatchDoneWindow) / w
		}
		if w := f.Ungated.Window.Seconds(); w > 0 {
			f.UngatedRate = float64(f.Ungated.BatchDoneWindow) / w
		}
		if f.UngatedRate > 0 {
			f.Fill = f.BatchRate / f.UngatedRate
		}
	}
	return out, nil
}
