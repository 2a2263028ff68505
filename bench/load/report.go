package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Budgets from issue 2, reported against.
const (
	budgetAddedP50   = 100 * time.Microsecond
	budgetAddedP99   = time.Millisecond
	budgetRPS        = 5000
	budgetStreamsRSS = 200_000_000 // bytes; the budget is in decimal MB
)

// report gathers everything one run measured.
type report struct {
	Command            string
	Started, Finished  time.Time
	LoadStart, LoadEnd string
	CPU, GoVersion     string
	Procs              int
	Config             config
	Targets            []*target

	Seq       map[string]map[bool]*result // target → stream? → concurrency-1 result
	Conc      map[string]map[bool]*result // target → stream? → concurrency-c result
	Peaks     []peakRow
	Held      []heldRow
	Recorded  string // baimo's usage totals for the run's key
	baimoSent int64  // requests sent to baimo, to compare with Recorded
}

// peakRow is the VmHWM of one target after its throughput phases.
type peakRow struct {
	Target string
	Peak   int64
}

// heldRow is the result of holding many streams against one target.
type heldRow struct {
	Target string
	Result streamsResult
}

// setPeak records the peak RSS of the target called name.
func (r *report) setPeak(name string, peak int64) {
	r.Peaks = append(r.Peaks, peakRow{Target: name, Peak: peak})
}

// peak returns the recorded peak RSS of the target called name, or 0.
func (r *report) peak(name string) int64 {
	for _, p := range r.Peaks {
		if p.Target == name {
			return p.Peak
		}
	}
	return 0
}

// percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method; ds need not be sorted and is not changed.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// fmtDur prints a latency in microseconds, the unit the budgets use.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// fmtAdded prints a latency difference with its sign.
func fmtAdded(d time.Duration) string {
	return fmt.Sprintf("%+.0f µs", float64(d)/float64(time.Microsecond))
}

// fmtMB prints bytes in decimal megabytes, the unit of the budget.
func fmtMB(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

// rps returns the requests per second of r.
func rps(r *result) float64 {
	if r == nil || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// cpuPer1000 prints CPU seconds per 1,000 successful requests.
func cpuPer1000(r *result) string {
	if r == nil || r.CPU < 0 || r.OK == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f s", r.CPU.Seconds()*1000/float64(r.OK))
}

// ceiling prints the requests per second one core could serve at the CPU
// cost per request measured in r.
func ceiling(r *result) string {
	if r == nil || r.CPU <= 0 || r.OK == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f req/s", float64(r.OK)/r.CPU.Seconds())
}

// verdict prints whether a measured value meets its budget.
func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "**misses**"
}

// write prints the report as markdown.
func (r *report) write(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "## Load run %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "- Command: `%s`\n", r.Command)
	fmt.Fprintf(w, "- Machine: %s, load generator GOMAXPROCS=%d, %s\n", r.CPU, r.Procs, r.GoVersion)
	fmt.Fprintf(w, "- Load average (1/5/15 min) at start: %s; at end: %s\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "- Model `%s`, %d output tokens per answer; concurrency 1: %d requests per target and kind in %d interleaved rounds; concurrency %d: %s per phase (at most %d requests)\n",
		c.Model, c.Tokens, c.N1, c.Rounds, c.C, c.Dur, c.Max)
	fmt.Fprintf(w, "- Latency is send to last byte (a stream is read to `data: [DONE]`); added = target − direct at the same percentile.\n\n")

	fmt.Fprintf(w, "### Concurrency 1\n\n")
	fmt.Fprintf(w, "| target | kind | p50 | p99 | added p50 | added p99 | errors |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Targets {
		for _, stream := range []bool{false, true} {
			s := r.Seq[t.Name][stream]
			d := r.Seq["direct"][stream]
			p50, p99 := percentile(s.Latencies, 50), percentile(s.Latencies, 99)
			a50, a99 := "—", "—"
			if t.Name != "direct" {
				a50 = fmtAdded(p50 - percentile(d.Latencies, 50))
				a99 = fmtAdded(p99 - percentile(d.Latencies, 99))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", t.Name, kindName(stream), fmtDur(p50), fmtDur(p99), a50, a99, errCell(s))
		}
	}

	fmt.Fprintf(w, "\n### Concurrency %d\n\n", c.C)
	fmt.Fprintf(w, "| target | kind | requests/s | p50 | p99 | CPU of process under test per 1,000 requests | its one-core ceiling | errors |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Targets {
		for _, stream := range []bool{false, true} {
			s := r.Conc[t.Name][stream]
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n", t.Name, kindName(stream), rps(s),
				fmtDur(percentile(s.Latencies, 50)), fmtDur(percentile(s.Latencies, 99)), cpuPer1000(s), ceiling(s), errCell(s))
		}
	}
	fmt.Fprintf(w, "\nThe one-core ceiling is 1 / (CPU per request): the requests/s the process could serve with a core to itself. It is steadier than requests/s when other work shares the machine.\n")
	fmt.Fprintf(w, "\nPeak RSS (VmHWM) of each process under test after its throughput phases:")
	for _, t := range r.Targets {
		fmt.Fprintf(w, " %s %s;", t.Name, fmtMB(r.peak(t.Name)))
	}
	fmt.Fprintf(w, "\n")

	if len(r.Held) > 0 {
		fmt.Fprintf(w, "\n### %d concurrent streams (each %d tokens, %d ms per token)\n\n", c.Streams, c.StreamTokens, c.StreamTPOT)
		fmt.Fprintf(w, "| target | opened | completed | failed | RSS with all open | peak RSS (VmHWM) |\n|---|---:|---:|---:|---:|---:|\n")
		for _, h := range r.Held {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s |\n", h.Target, h.Result.Opened, h.Result.Completed, h.Result.Fail, fmtMB(h.Result.RSSOpen), fmtMB(h.Result.Peak))
			if h.Result.FirstErr != "" {
				fmt.Fprintf(w, "\nFirst stream error against %s: `%s`\n", h.Target, h.Result.FirstErr)
			}
		}
	}
	if r.Recorded != "" {
		fmt.Fprintf(w, "\nbaimo's usage totals for the run's key (GET /admin/usage): `%s`; requests the tool sent to baimo, warm-up included: %d\n", r.Recorded, r.baimoSent)
	}
	r.writeBudget(w)
	for _, t := range r.Targets {
		for _, m := range []map[string]map[bool]*result{r.Seq, r.Conc} {
			for _, stream := range []bool{false, true} {
				if s := m[t.Name][stream]; s != nil && s.FirstErr != "" {
					fmt.Fprintf(w, "\nFirst error against %s (%s): `%s`\n", t.Name, kindName(stream), s.FirstErr)
				}
			}
		}
	}
	fmt.Fprintf(w, "\nFinished %s.\n", r.Finished.Format(time.RFC3339))
}

// writeBudget prints baimo's figures against the budgets of issue 2.
func (r *report) writeBudget(w io.Writer) {
	if r.Seq["baimo"] == nil {
		fmt.Fprintf(w, "\n(No baimo target in this run, so no budget check.)\n")
		return
	}
	fmt.Fprintf(w, "\n### baimo against the budget\n\n| budget | kind | measured | verdict |\n|---|---|---:|---|\n")
	for _, stream := range []bool{false, true} {
		b, d := r.Seq["baimo"][stream], r.Seq["direct"][stream]
		a50 := percentile(b.Latencies, 50) - percentile(d.Latencies, 50)
		a99 := percentile(b.Latencies, 99) - percentile(d.Latencies, 99)
		fmt.Fprintf(w, "| added p50 ≤ 100 µs at c=1 | %s | %s | %s |\n", kindName(stream), fmtAdded(a50), verdict(a50 <= budgetAddedP50))
		fmt.Fprintf(w, "| added p99 ≤ 1 ms at c=1 | %s | %s | %s |\n", kindName(stream), fmtAdded(a99), verdict(a99 <= budgetAddedP99))
	}
	for _, stream := range []bool{false, true} {
		v := rps(r.Conc["baimo"][stream])
		fmt.Fprintf(w, "| ≥ 5,000 req/s at c=%d, usage records on | %s | %.0f | %s |\n", r.Config.C, kindName(stream), v, verdict(v >= budgetRPS))
	}
	for _, h := range r.Held {
		if h.Target == "baimo" {
			ok := h.Result.RSSOpen > 0 && h.Result.RSSOpen < budgetStreamsRSS && h.Result.Opened == int64(h.Result.Wanted)
			fmt.Fprintf(w, "| %d concurrent streams < 200 MB RSS | stream | %s | %s |\n", h.Result.Wanted, fmtMB(h.Result.RSSOpen), verdict(ok))
		}
	}
	if r.Seq["floor"] == nil {
		return
	}
	// Issue 18's targets are relative to the reference floor, in the same run.
	for _, stream := range []bool{false, true} {
		b, f := r.Conc["baimo"][stream], r.Conc["floor"][stream]
		ratio := 0.0
		if rps(f) > 0 {
			ratio = rps(b) / rps(f)
		}
		target := 0.75
		if stream {
			target = 0.97 // streams keep their figures: near the floor
		}
		fmt.Fprintf(w, "| requests/s ≥ %.0f%% of the floor's at c=%d | %s | %.0f%% (%.0f / %.0f) | %s |\n", target*100, r.Config.C,
			kindName(stream), ratio*100, rps(b), rps(f), verdict(ratio >= target))
	}
	for _, stream := range []bool{false, true} {
		b, f := r.Seq["baimo"][stream], r.Seq["floor"][stream]
		d := percentile(b.Latencies, 50) - percentile(f.Latencies, 50)
		fmt.Fprintf(w, "| added p50 at c=1 within 60 µs of the floor's | %s | %s | %s |\n", kindName(stream), fmtAdded(d), verdict(d <= 60*time.Microsecond))
	}
}

// kindName names a kind of request in the report.
func kindName(stream bool) string {
	if stream {
		return "stream"
	}
	return "non-stream"
}

// errCell prints the failure count of r.
func errCell(r *result) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%d", r.Fail)
}
