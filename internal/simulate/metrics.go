package simulate

import (
	"math"
	"slices"
	"time"

	"baimo/internal/schedule"
)

// SLO is the service level a request must meet to count toward goodput.
type SLO struct {
	TTFT time.Duration // default 2s
	TPOT time.Duration // default 200ms
	// Attain is the fraction of requests that must meet it (default 0.9).
	Attain float64
}

// DefaultSLO is the SLO: TTFT ≤ 2 s and TPOT ≤ 200 ms for at least
// 90% of requests.
var DefaultSLO = SLO{TTFT: 2 * time.Second, TPOT: 200 * time.Millisecond, Attain: 0.9}

// Met reports whether o meets the SLO.
func (s SLO) Met(o *Outcome) bool {
	return !o.Shed && o.TTFT > 0 && o.TTFT <= s.TTFT && o.TPOT <= s.TPOT
}

// Costs prices a run. These are report figures for comparing policies,
// not charges: float64 is fine here.
type Costs struct {
	GPUHour float64 // price of one replica-hour
	// VendorInput and VendorOutput are per million tokens.
	VendorInput, VendorOutput float64
}

// Summary is one run's figures.
type Summary struct {
	Trace    string
	Policy   string
	Replicas int
	Nodes    int
	Seed     uint64
	Rate     float64 // arrival-rate multiplier
	ReqPerS  float64 // online requests per second offered

	Online, Served, Shed, Vendor int
	Attainment                   float64          // online requests meeting the SLO
	TTFT                         [3]time.Duration // p50, p90, p99 of served online requests
	TPOT                         [3]time.Duration
	Throughput                   float64 // online output tokens per second over the run
	PrefixHitRate                float64 // prompt tokens the replicas' caches supplied / looked up
	IndexHitRate                 float64 // prompt tokens the gateway's index expected cached / prompt tokens
	Utilisation                  float64 // replica-time spent stepping within the online window
	CostPerMSLO                  float64 // cost per million output tokens of SLO-meeting online requests
	WindowsMet                   float64 // one-minute windows (by arrival) whose online attainment meets SLO.Attain
	Preemptions                  int64

	Batch, BatchDone, BatchMetDeadline int
	BatchDoneWindow                    int // batch requests finished within Window
	BatchLastFinish                    time.Duration
	LastOnlineFinish                   time.Duration
	OnlineTokensWindow                 int64
	BatchTokensWindow                  int64
	Window                             time.Duration
}

func percentiles(ds []time.Duration) [3]time.Duration {
	if len(ds) == 0 {
		return [3]time.Duration{}
	}
	slices.Sort(ds)
	p := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return [3]time.Duration{p(0.5), p(0.9), p(0.99)}
}

// Summarize computes a run's figures.
func Summarize(r *Result, slo SLO, costs Costs) Summary {
	cfg := r.Config
	s := Summary{Trace: cfg.Trace.Name, Policy: cfg.Policy, Replicas: cfg.Replicas, Nodes: cfg.Nodes, Seed: cfg.Seed,
		Rate: cfg.Rate, Preemptions: r.Preemptions, Window: r.Window,
		OnlineTokensWindow: r.OnlineTokensWindow, BatchTokensWindow: r.BatchTokensWindow}
	var ttft, tpot []time.Duration
	var met, outTokens, metTokens, prompt int64
	var vendorIn, vendorOut int64
	type window struct{ n, met int }
	windows := map[int64]*window{}
	for i := range r.Outcomes {
		o := &r.Outcomes[i]
		if o.Class == schedule.Batch {
			s.Batch++
			if !o.Shed && o.Finish > 0 {
				s.BatchDone++
				if o.Finish <= r.Window {
					s.BatchDoneWindow++
				}
				s.BatchLastFinish = max(s.BatchLastFinish, o.Finish)
				if o.Finish <= o.Deadline {
					s.BatchMetDeadline++
				}
			}
			continue
		}
		s.Online++
		prompt += int64(o.Prompt)
		w := windows[int64(o.Arrival/time.Minute)]
		if w == nil {
			w = &window{}
			windows[int64(o.Arrival/time.Minute)] = w
		}
		w.n++
		switch {
		case o.Shed:
			s.Shed++
			continue
		case o.Vendor:
			s.Vendor++
			vendorIn += int64(o.Prompt)
			vendorOut += int64(o.Output)
		}
		s.Served++
		s.LastOnlineFinish = max(s.LastOnlineFinish, o.Finish)
		ttft = append(ttft, o.TTFT)
		if o.Output > 1 {
			tpot = append(tpot, o.TPOT)
		}
		outTokens += int64(o.Output)
		if slo.Met(o) {
			met++
			w.met++
			metTokens += int64(o.Output)
		}
	}
	if s.Online > 0 {
		s.Attainment = float64(met) / float64(s.Online)
		if d := cfg.Trace.Duration(); d > 0 {
			s.ReqPerS = float64(s.Online) / (d.Seconds() / cfg.Rate)
		}
	}
	s.TTFT, s.TPOT = percentiles(ttft), percentiles(tpot)
	if r.End > 0 {
		s.Throughput = float64(outTokens) / r.End.Seconds()
	}
	if r.PrefixQueries > 0 {
		s.PrefixHitRate = float64(r.PrefixHits) / float64(r.PrefixQueries)
	}
	if prompt > 0 {
		s.IndexHitRate = float64(r.IndexMatched) / float64(prompt)
	}
	if r.Window > 0 {
		s.Utilisation = r.BusyWindow.Seconds() / (float64(cfg.Replicas) * r.Window.Seconds())
	}
	if metTokens > 0 {
		gpu := float64(cfg.Replicas) * r.End.Hours() * costs.GPUHour
		vendor := float64(vendorIn)/1e6*costs.VendorInput + float64(vendorOut)/1e6*costs.VendorOutput
		s.CostPerMSLO = (gpu + vendor) / (float64(metTokens) / 1e6)
	}
	if len(windows) > 0 {
		ok := 0
		for _, w := range windows {
			if float64(w.met) >= slo.Attain*float64(w.n) {
				ok++
			}
		}
		s.WindowsMet = float64(ok) / float64(len(windows))
	}
	return s
}
