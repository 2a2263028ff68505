package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"baimo/internal/provider/sim"
)

func init() {
	register(command{name: "sim", summary: "run the simulated upstream alone (for demos and load tests)", run: runSim})
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", stderr)
	opt := sim.DefaultOptions()
	addr := fs.String("addr", "127.0.0.1:9090", "address to listen on")
	fs.DurationVar(&opt.TTFT, "ttft", opt.TTFT, "time to first token")
	fs.DurationVar(&opt.TPOT, "tpot", opt.TPOT, "time per output token")
	fs.IntVar(&opt.OutputTokens, "output-tokens", opt.OutputTokens, "tokens generated per request by default")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sim.New(opt), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "baimo sim listening on http://%s/v1\n", ln.Addr())
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
