package main

import (
	"context"
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
	batchCount := fs.Int("batch-count", 0, "batch requests to take from --batch (0: all)")
	batchDeadline := fs.Duration("batch-deadline", 24*time.Hour, "deadline of the batch requests")
	batchKV := fs.Float64("batch-max-kv", 0, "batch gate: KV usage a replica must be under (0: the default)")
	batchDecoding := fs.Int64("batch-max-decoding", 0, "batch gate: requests a replica may be generating (0: no limit)")
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
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
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
		SLO:      simulate.SLO{TTFT: *sloTTFT, TPOT: *sloTPOT, Attain: *sloAttain},
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
		sw.Base.Queue = &schedule.QueueConfig{BatchMaxKV: *batchKV, BatchMaxDecoding: *batchDecoding}
	}
	if *batchPath != "" {
		bt, err := simulate.LoadTrace(*batchPath)
		if err != nil {
			return err
		}
		reqs := bt.Requests
		if *batchCount > 0 && *batchCount < len(reqs) {
			reqs = reqs[:*batchCount]
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
		"attainment.svg": func(w io.Writer) error {
			_, err := io.WriteString(w, simulate.AttainmentSVG(name+": requests meeting the SLO (simulator)", rep.Runs, sw.SLO))
			return err
		},
		"ttft.svg": func(w io.Writer) error {
			_, err := io.WriteString(w, simulate.TTFTSVG(name+": TTFT p90 (simulator)", rep.Runs, sw.SLO))
			return err
		},
		"goodput.svg": func(w io.Writer) error {
			_, err := io.WriteString(w, simulate.GoodputSVG(name+": SLO goodput, mean and range over seeds (simulator)", simulate.GoodputByPolicy(rep.Goodput)))
			return err
		},
	}
	for f, write := range files {
		fh, err := os.Create(filepath.Join(*out, f))
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
	fmt.Fprintf(stdout, "wrote %s/{runs.csv,goodput.csv,attainment.svg,ttft.svg,goodput.svg}\n", *out)
	return nil
}
