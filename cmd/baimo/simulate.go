package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"baimo/internal/engine"
	"baimo/internal/schedule"
	"baimo/internal/simulate"
)

func init() {
	register(command{name: "simulate", summary: "replay a trace against simulated replicas in virtual time, per scheduling policy", run: runSimulate})
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, x)
	}
	return out, nil
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", stderr)
	tracePath := fs.String("trace", "", "trace file: Mooncake JSONL (.jsonl) or Azure LLM CSV (.csv)")
	from := fs.Duration("from", 0, "start of the slice of the trace to replay")
	length := fs.Duration("length", 0, "length of the slice (0: to the end)")
	seeds := fs.Int("seeds", 3, "seeds per point")
	stride := fs.Duration("seed-stride", 0, "seed k replays the slice starting at from + k×stride (0: the same slice)")
	replicas := fs.Int("replicas", 16, "replicas in the pool")
	preset := fs.String("engine", engine.H100Llama31_8B.Name, "step-model preset ("+strings.Join(engine.PresetNames(), ", ")+")")
	maxSeqs := fs.Int("max-num-seqs", 0, "replica batch limit (0: the preset's)")
	kvBlocks := fs.Int("kv-blocks", 0, "replica KV cache in 16-token blocks (0: the preset's)")
	priority := fs.Bool("priority-scheduling", false, "replicas order and preempt by priority (batch requests have the lower)")
	policies := fs.String("policies", strings.Join(schedule.PolicyNames, ","), "policies to compare")
	rates := fs.String("rates", "1", "arrival-rate multipliers of the trace, comma-separated")
	refine := fs.Int("refine", 0, "bisection steps that refine each policy's goodput between grid rates")
	scrape := fs.Duration("scrape", 50*time.Millisecond, "metrics scrape interval")
	nodes := fs.Int("nodes", 1, "gateway nodes (each request reaches one at random)")
	share := fs.Bool("share-index", false, "gateway nodes share their prefix records (as through Redis)")
	shareDelay := fs.Duration("share-delay", 5*time.Millisecond, "how long a shared record takes to reach the other nodes")
	queue := fs.Bool("queue", false, "put the gateway-side queue (classes, bounded waits, batch gate) in front of the pool")
	batchPath := fs.String("batch", "", "trace whose requests form a batch backlog submitted at time zero (implies --queue)")
	batchCount := fs.Int("batch-count", 0, "batch requests to take from --batch, cycling through it if it holds fewer (0: all)")
	batchDeadline := fs.Duration("batch-deadline", 24*time.Hour, "deadline of the batch requests")
	batchKV := fs.Float64("batch-max-kv", 0, "batch gate: KV usage a replica must be under (0: the default)")
	batchDecoding := fs.Int64("batch-max-decoding", 0, "batch gate: requests a replica may be generating (0: no limit)")
	batchPrefill := fs.Int64("batch-max-prefill", 0, "batch gate: uncached prompt tokens a replica may have in flight (0: the default)")
	batchOnline := fs.Int64("batch-max-online", 0, "batch gate: online requests a replica may have in flight (0: no limit)")
	batchInFlight := fs.Int64("batch-max-in-flight", 0, "batch gate: batch requests a replica may have in flight (0: no limit)")
	batchTTFT := fs.Duration("batch-max-ttft", 0, "batch gate: recent average online TTFT of a replica (0: the default)")
	batchTPOT := fs.Duration("batch-max-tpot", 0, "batch gate: recent average online time per output token of a replica (0: no limit)")
	batchStudy := fs.Bool("batch-study", false, "with --batch: measure the batch's fill of idle capacity, the online SLO per minute, online goodput alone and shared, and batch deadlines (first policy only)")
	batchAt := fs.Float64("batch-at", 0.7, "batch study: operating point as a fraction of the online goodput alone")
	batchOpLength := fs.Duration("batch-operating-length", 0, "batch study: replay this much of the trace (from --from) at the operating point (0: the seed's slice)")
	batchOpRepeat := fs.Int("batch-operating-repeat", 1, "batch study: play that slice this many times in a row (for more one-minute windows)")
	sloTTFT := fs.Duration("slo-ttft", simulate.DefaultSLO.TTFT, "SLO: time to first token")
	sloTPOT := fs.Duration("slo-tpot", simulate.DefaultSLO.TPOT, "SLO: time per output token")
	sloAttain := fs.Float64("slo-attain", simulate.DefaultSLO.Attain, "SLO: fraction of requests that must meet it")
	gpuHour := fs.Float64("gpu-hour", 2.0, "price of one replica-hour (USD; an assumption for the cost column)")
	vendorIn := fs.Float64("vendor-input", 0.27, "overflow vendor price per million input tokens (USD)")
	vendorOut := fs.Float64("vendor-output", 1.10, "overflow vendor price per million output tokens (USD)")
	out := fs.String("out", "", "directory for runs.csv, goodput.csv and the SVG plots")
	title := fs.String("title", "", "title of the plots (default: the trace's name)")
	workers := fs.Int("workers", 0, "simulations run in parallel (0: GOMAXPROCS)")
	quiet := fs.Bool("quiet", false, "no line per run")
	replot := fs.String("replot", "", "redraw the SVG plots of a results directory from its runs.csv and goodput.csv, and stop")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	slo := simulate.SLO{TTFT: *sloTTFT, TPOT: *sloTPOT, Attain: *sloAttain}
	if *replot != "" {
		return replotDir(*replot, *title, slo, stdout)
	}
	if *tracePath == "" {
		return fmt.Errorf("%w: --trace is required", errUsage)
	}
	cfg, ok := engine.Preset(*preset)
	if !ok {
		return fmt.Errorf("%w: unknown engine preset %q", errUsage, *preset)
	}
	if *maxSeqs > 0 {
		cfg.MaxNumSeqs = *maxSeqs
	}
	if *kvBlocks > 0 {
		cfg.NumBlocks = *kvBlocks
	}
	cfg.Priority = *priority
	rs, err := parseFloats(*rates)
	if err != nil {
		return fmt.Errorf("%w: --rates: %v", errUsage, err)
	}
	if *seeds < 1 || *seeds > 100 {
		return fmt.Errorf("%w: --seeds %d out of [1, 100]", errUsage, *seeds)
	}
	full, err := simulate.LoadTrace(*tracePath)
	if err != nil {
		return err
	}
	sw := simulate.Sweep{
		Base: simulate.Config{Replicas: *replicas, Engine: cfg, ScrapeInterval: *scrape, Nodes: *nodes,
			ShareIndex: *share, ShareDelay: *shareDelay},
		Policies: strings.Split(*policies, ","),
		Rates:    rs,
		SLO:      slo,
		Costs:    simulate.Costs{GPUHour: *gpuHour, VendorInput: *vendorIn, VendorOutput: *vendorOut},
		Refine:   *refine,
		Workers:  *workers,
	}
	for _, p := range sw.Policies {
		if _, err := schedule.NewPolicy(p); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if *queue || *batchPath != "" {
		sw.Base.Queue = &schedule.QueueConfig{BatchMaxKV: *batchKV, BatchMaxDecoding: *batchDecoding, BatchMaxPrefill: *batchPrefill,
			BatchMaxOnline: *batchOnline, BatchMaxTTFT: *batchTTFT, BatchMaxTPOT: *batchTPOT, BatchMaxInFlight: *batchInFlight}
	}
	if *batchPath != "" {
		bt, err := simulate.LoadTrace(*batchPath)
		if err != nil {
			return err
		}
		reqs := bt.Requests
		if n := *batchCount; n > 0 {
			if n > simulate.MaxTraceRequests {
				return fmt.Errorf("%w: --batch-count over %d", errUsage, simulate.MaxTraceRequests)
			}
			reqs = make([]simulate.Request, n)
			for i := range reqs {
				reqs[i] = bt.Requests[i%len(bt.Requests)]
			}
		}
		sw.Base.Batch = &simulate.BatchLoad{Requests: reqs, Deadline: *batchDeadline}
	}
	for k := range *seeds {
		t := full.Slice(*from+time.Duration(k)*(*stride), *length)
		if len(t.Requests) == 0 {
			return fmt.Errorf("%w: the slice for seed %d holds no request", errUsage, k+1)
		}
		sw.Traces = append(sw.Traces, t)
		sw.Seeds = append(sw.Seeds, uint64(k+1))
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	start := time.Now()
	if *batchStudy {
		if sw.Base.Batch == nil {
			return fmt.Errorf("%w: --batch-study needs --batch", errUsage)
		}
		var operating []*simulate.Trace
		if *batchOpLength > 0 {
			for k := range *seeds {
				operating = append(operating, full.Slice(*from+time.Duration(k)*(*stride), *batchOpLength).Repeat(*batchOpRepeat))
			}
		}
		return runBatchStudy(&sw, *batchAt, operating, *out, progress, stdout, start)
	}
	rep, err := sw.Run(progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d requests a slice, %d replicas (%s), %d seeds, %d runs in %s (simulator figures)\n",
		full.Name, len(sw.Traces[0].Requests), *replicas, cfg.Name, *seeds, len(rep.Runs), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "SLO: TTFT <= %s and TPOT <= %s for >= %.0f%% of requests\n", *sloTTFT, *sloTPOT, 100**sloAttain)
	fmt.Fprintf(stdout, "%-14s %12s %12s %12s\n", "policy", "goodput mean", "min", "max")
	for _, g := range simulate.GoodputByPolicy(rep.Goodput) {
		fmt.Fprintf(stdout, "%-14s %10.2f/s %10.2f/s %10.2f/s\n", g.Policy, g.Mean, g.Min, g.Max)
	}
	if *out == "" {
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	name := *title
	if name == "" {
		name = full.Name
	}
	files := map[string]func(io.Writer) error{
		"runs.csv":    func(w io.Writer) error { return simulate.WriteRunsCSV(w, rep.Runs) },
		"goodput.csv": func(w io.Writer) error { return simulate.WriteGoodputCSV(w, rep.Goodput) },
	}
	for f, write := range plots(name, rep.Runs, rep.Goodput, slo) {
		files[f] = write
	}
	if err := writeFiles(*out, files); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s/{runs.csv,goodput.csv,attainment.svg,ttft.svg,goodput.svg}\n", *out)
	return nil
}

// runBatchStudy runs simulate.BatchStudy for the sweep's first policy and
// prints (and with out, writes batch.csv) its figures.
func runBatchStudy(sw *simulate.Sweep, at float64, operating []*simulate.Trace, out string, progress, stdout io.Writer, start time.Time) error {
	st := simulate.BatchStudy{Base: sw.Base, Traces: sw.Traces, Seeds: sw.Seeds, Policy: sw.Policies[0], Rates: sw.Rates,
		Refine: sw.Refine, At: at, Operating: operating, SLO: sw.SLO, Costs: sw.Costs, Workers: sw.Workers}
	figs, err := st.Run(progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "batch study (%s, %d batch requests, deadline %s) in %s (simulator figures)\n", st.Policy,
		len(sw.Base.Batch.Requests), sw.Base.Batch.Deadline, time.Since(start).Round(time.Millisecond))
	head := []string{"seed", "goodput_alone_req_s", "goodput_shared_req_s", "goodput_drop", "rate", "req_per_s", "busy_alone", "busy_shared",
		"batch_req_s_gated", "batch_req_s_ungated", "fill", "slo_ungated", "windows_met_ungated", "windows_met_alone", "windows_met_shared", "slo_alone", "slo_shared", "ttft_p90_alone_s", "ttft_p90_shared_s",
		"tpot_p90_alone_ms", "tpot_p90_shared_ms", "batch", "batch_met_deadline", "batch_last_finish_s", "batch_tokens_window", "online_tokens_window"}
	var rows [][]string
	for _, f := range figs {
		drop := 0.0
		if f.GoodputAlone > 0 {
			drop = 1 - f.GoodputShared/f.GoodputAlone
		}
		rows = append(rows, []string{strconv.FormatUint(f.Seed, 10), fmt.Sprintf("%.3f", f.GoodputAlone), fmt.Sprintf("%.3f", f.GoodputShared),
			fmt.Sprintf("%.4f", drop), fmt.Sprintf("%.4f", f.Rate), fmt.Sprintf("%.3f", f.ReqPerS),
			fmt.Sprintf("%.4f", f.Alone.Utilisation), fmt.Sprintf("%.4f", f.Shared.Utilisation),
			fmt.Sprintf("%.3f", f.BatchRate), fmt.Sprintf("%.3f", f.UngatedRate), fmt.Sprintf("%.4f", f.Fill),
			fmt.Sprintf("%.4f", f.Ungated.Attainment), fmt.Sprintf("%.4f", f.Ungated.WindowsMet),
			fmt.Sprintf("%.4f", f.Alone.WindowsMet), fmt.Sprintf("%.4f", f.Shared.WindowsMet),
			fmt.Sprintf("%.4f", f.Alone.Attainment), fmt.Sprintf("%.4f", f.Shared.Attainment),
			fmt.Sprintf("%.3f", f.Alone.TTFT[1].Seconds()), fmt.Sprintf("%.3f", f.Shared.TTFT[1].Seconds()),
			fmt.Sprintf("%.2f", float64(f.Alone.TPOT[1].Microseconds())/1000), fmt.Sprintf("%.2f", float64(f.Shared.TPOT[1].Microseconds())/1000),
			strconv.Itoa(f.Shared.Batch), strconv.Itoa(f.Shared.BatchMetDeadline), fmt.Sprintf("%.1f", f.Shared.BatchLastFinish.Seconds()),
			strconv.FormatInt(f.Shared.BatchTokensWindow, 10), strconv.FormatInt(f.Shared.OnlineTokensWindow, 10)})
		fmt.Fprintf(stdout, "seed %d: online goodput alone %.2f/s, shared %.2f/s (%+.1f%%); at %.2f req/s batch ran %.2f/s gated, %.2f/s ungated (fill %.1f%%); minutes meeting the SLO: alone %.1f%%, gated %.1f%%, ungated %.1f%%; batch %d/%d by the deadline (last at %s)\n",
			f.Seed, f.GoodputAlone, f.GoodputShared, -100*drop, f.ReqPerS, f.BatchRate, f.UngatedRate, 100*f.Fill,
			100*f.Alone.WindowsMet, 100*f.Shared.WindowsMet, 100*f.Ungated.WindowsMet, f.Shared.BatchMetDeadline, f.Shared.Batch, f.Shared.BatchLastFinish.Round(time.Second))
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	fh, err := os.Create(filepath.Join(out, "batch.csv"))
	if err != nil {
		return err
	}
	cw := csv.NewWriter(fh)
	_ = cw.Write(head)
	_ = cw.WriteAll(rows)
	if err := fh.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s/batch.csv\n", out)
	return cw.Error()
}

// plots are the SVG charts of a sweep.
func plots(name string, runs []simulate.Summary, goodput []simulate.Goodput, slo simulate.SLO) map[string]func(io.Writer) error {
	svg := func(text string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, text); return err }
	}
	return map[string]func(io.Writer) error{
		"attainment.svg": svg(simulate.AttainmentSVG(name+": requests meeting the SLO (simulator)", runs, slo)),
		"ttft.svg":       svg(simulate.TTFTSVG(name+": TTFT p90 (simulator)", runs, slo)),
		"goodput.svg":    svg(simulate.GoodputSVG(name+": SLO goodput, mean and range over seeds (simulator)", simulate.GoodputByPolicy(goodput))),
	}
}

func writeFiles(dir string, files map[string]func(io.Writer) error) error {
	for f, write := range files {
		fh, err := os.Create(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		err = write(fh)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	return nil
}

// replotDir redraws a results directory's plots from its CSV files.
func replotDir(dir, title string, slo simulate.SLO, stdout io.Writer) error {
	read := func(name string) (*os.File, error) { return os.Open(filepath.Join(dir, name)) }
	rf, err := read("runs.csv")
	if err != nil {
		return err
	}
	defer rf.Close()
	runs, err := simulate.ReadRunsCSV(rf)
	if err != nil {
		return fmt.Errorf("runs.csv: %w", err)
	}
	gf, err := read("goodput.csv")
	if err != nil {
		return err
	}
	defer gf.Close()
	goodput, err := simulate.ReadGoodputCSV(gf)
	if err != nil {
		return fmt.Errorf("goodput.csv: %w", err)
	}
	if title == "" && len(runs) > 0 {
		title = runs[0].Trace
	}
	if err := writeFiles(dir, plots(title, runs, goodput, slo)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "redrew %s/{attainment,ttft,goodput}.svg\n", dir)
	return nil
}
