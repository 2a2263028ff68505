// Command load measures what the baimo gateway adds on top of its upstream.
//
// It has three subcommands:
//
//	load run       drive the targets and print a markdown report
//	load memory    one gateway's RSS at rest, after its first request and with many long streams open
//	load proxy     a bare net/http/httputil.ReverseProxy, the floor for any Go gateway
//	load upstream  a minimal zero-latency OpenAI-compatible upstream, for testing this tool
//	               when `baimo sim` is not at hand
//
// A run compares, side by side, the upstream called directly, the bare
// ReverseProxy in front of it and baimo in front of it: added latency at
// concurrency 1, requests per second at concurrency 64 (streaming and not),
// CPU seconds per 1,000 requests and peak RSS of the process under test, and
// the RSS of each proxy while 1,000 streams are open. bench/load/run.sh starts
// the processes pinned to cores and runs it. Traffic goes to 127.0.0.1 only,
// and every phase is bounded in time and request count.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: load run|memory|proxy|upstream [flags]  (load CMD -h for flags)")
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCmd(ctx, args[1:], stdout, stderr)
	case "memory":
		err = memoryCmd(ctx, args[1:], stdout, stderr)
	case "proxy":
		err = proxyCmd(ctx, args[1:], stderr)
	case "upstream":
		err = upstreamCmd(ctx, args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "load: unknown command %q (want run, memory, proxy or upstream)\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "load %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "load %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage marks a mistake in how the tool was called.
var errUsage = errors.New("usage")
