package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"baimo/internal/engine"
	"baimo/internal/provider/sim"
)

func init() {
	register(command{name: "sim", summary: "run the simulated upstream alone, or (--replica) a simulated inference replica", run: runSim})
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", stderr)
	opt := sim.DefaultOptions()
	addr := fs.String("addr", "127.0.0.1:9090", "address to listen on")
	fs.DurationVar(&opt.TTFT, "ttft", opt.TTFT, "time to first token")
	fs.DurationVar(&opt.TPOT, "tpot", opt.TPOT, "time per output token")
	fs.IntVar(&opt.OutputTokens, "output-tokens", opt.OutputTokens, "tokens generated per request by default")
	replica := fs.Bool("replica", false, "serve as an inference replica: timing from a continuous-batching step model, vLLM metrics on /metrics")
	preset := fs.String("engine", engine.H100Llama31_8B.Name, "replica: step-model preset ("+strings.Join(engine.PresetNames(), ", ")+")")
	speed := fs.Float64("speed", 1, "replica: run the modelled GPU this many times faster than real time")
	models := fs.String("models", "sim-chat", "replica: comma-separated model names served")
	maxSeqs := fs.Int("max-num-seqs", 0, "replica: batch limit (0: the preset's)")
	kvBlocks := fs.Int("kv-blocks", 0, "replica: KV cache size in 16-token blocks (0: the preset's)")
	priority := fs.Bool("priority-scheduling", false, "replica: order and preempt by the request's priority field (vLLM --scheduling-policy priority)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var handler http.Handler = sim.New(opt)
	var run func(context.Context)
	what := "sim"
	if *replica {
		cfg, ok := engine.Preset(*preset)
		if !ok {
			return fmt.Errorf("%w: unknown engine preset %q (%s)", errUsage, *preset, strings.Join(engine.PresetNames(), ", "))
		}
		if *maxSeqs > 0 {
			cfg.MaxNumSeqs = *maxSeqs
		}
		if *kvBlocks > 0 {
			cfg.NumBlocks = *kvBlocks
		}
		cfg.Priority = *priority
		r, err := sim.NewReplica(sim.ReplicaOptions{Engine: cfg, Models: strings.Split(*models, ","), Speed: *speed, OutputTokens: opt.OutputTokens})
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		handler, run, what = r, r.Run, "sim replica ("+cfg.Name+")"
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "baimo %s listening on http://%s/v1\n", what, ln.Addr())
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	if run != nil {
		go run(rctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
