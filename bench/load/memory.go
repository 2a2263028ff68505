package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// memoryConfig is what the memory subcommand was asked to do.
type memoryConfig struct {
	URL, Key, AdminKey, Tenant, Model string
	PID                               int
	Settle                            time.Duration
	Streams                           []int
	StreamTPOT, StreamTokens          int
	OpenRate                          int
}

// parseMemoryFlags reads and checks the memory subcommand's flags.
func parseMemoryFlags(args []string, stderr io.Writer) (memoryConfig, error) {
	var c memoryConfig
	var streams string
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "", "base URL of the gateway under test (required)")
	fs.IntVar(&c.PID, "pid", 0, "pid of the gateway under test (required)")
	fs.StringVar(&c.Key, "key", "", "API key; if empty, one is created with -admin-key (baimo)")
	fs.StringVar(&c.AdminKey, "admin-key", "", "baimo's admin key, to create an API key")
	fs.StringVar(&c.Tenant, "tenant", "", "tenant of the API key created with -admin-key")
	fs.StringVar(&c.Model, "model", "sim-chat", "model to ask for")
	fs.DurationVar(&c.Settle, "settle", 5*time.Second, "wait before each reading of RSS at rest")
	fs.StringVar(&streams, "streams", "1000", "comma-separated counts of concurrent streams to hold open, in order")
	fs.IntVar(&c.StreamTPOT, "stream-tpot-ms", 100, "time per output token of the held streams")
	fs.IntVar(&c.OpenRate, "open-rate", 500, "streams opened per second (a gateway accepts them on one core)")
	fs.IntVar(&c.StreamTokens, "stream-tokens", 300, "output tokens of each held stream (long enough to outlast the opening of all)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if c.URL == "" || c.PID <= 0 {
		return c, fmt.Errorf("%w: -url and -pid are required", errUsage)
	}
	if err := checkTargetURL(c.URL); err != nil {
		return c, err
	}
	if c.Key == "" && c.AdminKey == "" {
		return c, fmt.Errorf("%w: -key or -admin-key is required", errUsage)
	}
	if c.Settle < 0 || c.Settle > time.Minute {
		return c, fmt.Errorf("%w: -settle %s outside [0, 1m]", errUsage, c.Settle)
	}
	for _, s := range strings.Split(streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxStreams {
			return c, fmt.Errorf("%w: -streams %q: each count in 1..%d", errUsage, s, maxStreams)
		}
		c.Streams = append(c.Streams, n)
	}
	if c.OpenRate < 10 || c.OpenRate > 10000 {
		return c, fmt.Errorf("%w: -open-rate %d outside 10..10000", errUsage, c.OpenRate)
	}
	if c.StreamTPOT < 0 || c.StreamTokens < 1 || time.Duration(c.StreamTPOT*c.StreamTokens)*time.Millisecond > maxDuration {
		return c, fmt.Errorf("%w: held streams must last at most %s", errUsage, maxDuration)
	}
	return c, nil
}

// memoryCmd measures one gateway's resident memory: at rest, after its
// first request (which loads what a request needs, such as a tokenizer), and
// while each count of long streams is held open at once. It prints one
// markdown table row per reading; the memory taken per stream is the RSS
// with all open less the RSS after the first request, divided by the count.
func memoryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseMemoryFlags(args, stderr)
	if err != nil {
		return err
	}
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		case <-time.After(d):
			return nil
		}
	}
	if err := sleep(cfg.Settle); err != nil {
		return err
	}
	idle, err := procMemory(cfg.PID)
	if err != nil {
		return err
	}
	key := cfg.Key
	if key == "" {
		if key, _, err = createKey(ctx, cfg.URL, cfg.AdminKey, cfg.Model, cfg.Tenant); err != nil {
			return err
		}
	}
	maxConns := 0
	for _, n := range cfg.Streams {
		maxConns = max(maxConns, n)
	}
	t := newTarget("target", cfg.URL, cfg.PID, key, maxConns+8)
	var buf bytes.Buffer
	if _, err := t.do(ctx, request{Body: chatBody(cfg.Model, false, 16, 0)}, &buf); err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	if err := sleep(cfg.Settle); err != nil {
		return err
	}
	first, err := procMemory(cfg.PID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "| %s | at rest | %s |  |\n", cfg.URL, fmtMB(idle.RSS))
	fmt.Fprintf(stdout, "| %s | after the first request | %s |  |\n", cfg.URL, fmtMB(first.RSS))
	slow := request{Stream: true, Body: chatBody(cfg.Model, true, cfg.StreamTokens, cfg.StreamTPOT)}
	for _, n := range cfg.Streams {
		// The last stream opens n/OpenRate seconds after the first and is
		// then held as long as every other.
		limit := time.Duration(n)*time.Second/time.Duration(cfg.OpenRate) +
			time.Duration(cfg.StreamTPOT*cfg.StreamTokens)*time.Millisecond + time.Minute
		r, err := holdStreams(ctx, t, slow, n, limit, 100*time.Second/time.Duration(cfg.OpenRate))
		if err != nil {
			return fmt.Errorf("%d streams: %w", n, err)
		}
		// A stream that failed (a 502 when the gateway could not reach the
		// stub, a 503 when baimo could not check the key in time) ended at
		// once, before RSS was sampled: it is not counted as held, and the
		// row says how many.
		held := r.Opened - r.FailEarly
		if held < int64(n)*95/100 {
			return fmt.Errorf("%d streams: %d opened, %d failed: %s", n, r.Opened, r.Fail, r.FirstErr)
		}
		reading := fmt.Sprintf("%d streams open", n)
		if r.Fail > 0 {
			reading = fmt.Sprintf("%d streams open (%d failed before the reading, %d after; first: %.80s)",
				held, r.FailEarly, r.Fail-r.FailEarly, r.FirstErr)
		}
		perStream := float64(r.RSSOpen-first.RSS) / float64(held) / 1e3
		fmt.Fprintf(stdout, "| %s | %s | %s | %.1f kB |\n", cfg.URL, reading, fmtMB(r.RSSOpen), perStream)
	}
	return nil
}
