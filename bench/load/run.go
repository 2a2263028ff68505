package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"
)

// Limits on what one run may be asked to do, so a typo cannot start an
// unbounded load.
const (
	maxSequential  = 100000
	maxConcurrency = 1024
	maxDuration    = 2 * time.Minute
	maxStreams     = 10000
)

// config is what the run subcommand was asked to do.
type config struct {
	Direct, Proxy, Baimo          string
	DirectPID, ProxyPID, BaimoPID int
	Floor                         string
	FloorPID                      int
	BaimoKey, BaimoAdminKey       string
	BaimoTenant                   string
	Model                         string
	Tokens                        int
	N1, Rounds                    int
	C                             int
	Dur                           time.Duration
	Max                           int64
	Streams                       int
	StreamTPOT, StreamTokens      int
}

// parseRunFlags reads and checks the run subcommand's flags.
func parseRunFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Direct, "direct", "", "base URL of the upstream called directly (required), e.g. http://127.0.0.1:18090")
	fs.IntVar(&c.DirectPID, "direct-pid", 0, "pid of the upstream, for its CPU and RSS")
	fs.StringVar(&c.Proxy, "proxy", "", "base URL of the bare ReverseProxy in front of the upstream (optional)")
	fs.IntVar(&c.ProxyPID, "proxy-pid", 0, "pid of the bare ReverseProxy")
	fs.StringVar(&c.Floor, "floor", "", "base URL of the reference floor gateway (../shared/bench/floor) in front of the upstream (optional)")
	fs.IntVar(&c.FloorPID, "floor-pid", 0, "pid of the floor gateway")
	fs.StringVar(&c.Baimo, "baimo", "", "base URL of baimo in front of the upstream (optional)")
	fs.IntVar(&c.BaimoPID, "baimo-pid", 0, "pid of baimo")
	fs.StringVar(&c.BaimoKey, "baimo-key", "", "API key for baimo; if empty, one is created with -baimo-admin-key")
	fs.StringVar(&c.BaimoAdminKey, "baimo-admin-key", "", "baimo's admin key, to create an API key and read usage totals")
	fs.StringVar(&c.BaimoTenant, "baimo-tenant", "", "tenant of the API key created with -baimo-admin-key (e.g. a prefilled database's prepaid tenant); default the default tenant")
	fs.StringVar(&c.Model, "model", "sim-chat", "model to ask for")
	fs.IntVar(&c.Tokens, "tokens", 16, "output tokens per answer, sent as sim.output_tokens (0: the upstream's default)")
	fs.IntVar(&c.N1, "n1", 2000, "requests per target and kind at concurrency 1")
	fs.IntVar(&c.Rounds, "rounds", 5, "rounds the concurrency-1 requests are split into, interleaving the targets")
	fs.IntVar(&c.C, "c", 64, "concurrency of the throughput phase")
	fs.DurationVar(&c.Dur, "dur", 5*time.Second, "duration of each throughput phase")
	fs.Int64Var(&c.Max, "max", 200000, "most requests in one throughput phase")
	fs.IntVar(&c.Streams, "streams", 1000, "concurrent streams held open against each proxy (0 skips)")
	fs.IntVar(&c.StreamTPOT, "stream-tpot-ms", 100, "time per output token of the held streams")
	fs.IntVar(&c.StreamTokens, "stream-tokens", 50, "output tokens of each held stream")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if c.Direct == "" {
		return c, fmt.Errorf("%w: -direct is required", errUsage)
	}
	for _, u := range []string{c.Direct, c.Proxy, c.Floor, c.Baimo} {
		if u == "" {
			continue
		}
		if err := checkTargetURL(u); err != nil {
			return c, err
		}
	}
	switch {
	case c.N1 < 1 || c.N1 > maxSequential:
		return c, fmt.Errorf("%w: -n1 %d outside 1..%d", errUsage, c.N1, maxSequential)
	case c.Rounds < 1 || c.Rounds > c.N1:
		return c, fmt.Errorf("%w: -rounds %d outside 1..n1", errUsage, c.Rounds)
	case c.C < 1 || c.C > maxConcurrency:
		return c, fmt.Errorf("%w: -c %d outside 1..%d", errUsage, c.C, maxConcurrency)
	case c.Dur <= 0 || c.Dur > maxDuration:
		return c, fmt.Errorf("%w: -dur %s outside (0, %s]", errUsage, c.Dur, maxDuration)
	case c.Max < 1:
		return c, fmt.Errorf("%w: -max must be positive", errUsage)
	case c.Streams < 0 || c.Streams > maxStreams:
		return c, fmt.Errorf("%w: -streams %d outside 0..%d", errUsage, c.Streams, maxStreams)
	case c.StreamTPOT < 0 || c.StreamTokens < 1 || time.Duration(c.StreamTPOT*c.StreamTokens)*time.Millisecond > maxDuration:
		return c, fmt.Errorf("%w: held streams must last at most %s", errUsage, maxDuration)
	case c.Tokens < 0 || c.Tokens > maxOutputTokens:
		return c, fmt.Errorf("%w: -tokens %d outside 0..%d", errUsage, c.Tokens, maxOutputTokens)
	}
	return c, nil
}

// checkTargetURL accepts only http URLs on the loopback.
func checkTargetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%w: target %q is not an http:// URL", errUsage, raw)
	}
	if u.Port() == "" {
		return fmt.Errorf("%w: target %q has no port", errUsage, raw)
	}
	return checkLoopback(u.Host)
}

// chatBody returns the JSON body of a chat request. Its pacing is said two
// ways: the "sim" field (baimo's simulator) and a marker in the message
// (the shared stub: "[stub delay=Dms chunks=N]").
func chatBody(model string, stream bool, tokens, tpotMS int) []byte {
	content := "Say something short."
	if tpotMS > 0 {
		content += fmt.Sprintf(" [stub delay=%dms chunks=%d]", tpotMS, max(tokens, 1))
	}
	m := map[string]any{
		"model":    model,
		"messages": []map[string]string{{"role": "user", "content": content}},
	}
	if stream {
		m["stream"] = true
		m["stream_options"] = map[string]bool{"include_usage": true}
	}
	sim := map[string]int{}
	if tokens > 0 {
		sim["output_tokens"] = tokens
	}
	if tpotMS > 0 {
		sim["tpot_ms"] = tpotMS
	}
	if len(sim) > 0 {
		m["sim"] = sim
	}
	b, _ := json.Marshal(m) // maps of strings and ints always marshal
	return b
}

// floorKey is the one API key the reference floor gateway knows.
const floorKey = "sk-floor-bench"

// runCmd runs every phase and prints the report.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	conns := max(cfg.C, cfg.Streams) + 8
	targets := []*target{newTarget("direct", cfg.Direct, cfg.DirectPID, "", conns)}
	if cfg.Proxy != "" {
		targets = append(targets, newTarget("proxy", cfg.Proxy, cfg.ProxyPID, "", conns))
	}
	if cfg.Floor != "" {
		targets = append(targets, newTarget("floor", cfg.Floor, cfg.FloorPID, floorKey, conns))
	}
	var baimoKeyID string
	if cfg.Baimo != "" {
		key := cfg.BaimoKey
		if key == "" {
			if cfg.BaimoAdminKey == "" {
				return fmt.Errorf("%w: -baimo needs -baimo-key or -baimo-admin-key", errUsage)
			}
			key, baimoKeyID, err = createKey(ctx, cfg.Baimo, cfg.BaimoAdminKey, cfg.Model, cfg.BaimoTenant)
			if err != nil {
				return err
			}
		}
		targets = append(targets, newTarget("baimo", cfg.Baimo, cfg.BaimoPID, key, conns))
	}
	rep := report{
		Command:   "load run " + strings.Join(redactArgs(args), " "),
		Started:   time.Now().UTC(),
		LoadStart: loadAverage(),
		CPU:       cpuModel(),
		GoVersion: runtime.Version(),
		Procs:     runtime.GOMAXPROCS(0),
		Config:    cfg,
		Targets:   targets,
	}
	kinds := []request{
		{Stream: false, Body: chatBody(cfg.Model, false, cfg.Tokens, 0)},
		{Stream: true, Body: chatBody(cfg.Model, true, cfg.Tokens, 0)},
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "load: "+format+"\n", a...) }

	// Warm up every target: connections, code paths, the upstream.
	for _, t := range targets {
		for _, k := range kinds {
			if r := sequential(ctx, t, k, 100); r.Fail > 0 {
				return fmt.Errorf("warm-up against %s failed %d of 100: %s", t.Name, r.Fail, r.FirstErr)
			}
		}
	}

	// Concurrency 1, interleaved so drift on a shared machine hits all targets alike.
	rep.Seq = make(map[string]map[bool]*result)
	for _, t := range targets {
		rep.Seq[t.Name] = map[bool]*result{false: {}, true: {}}
	}
	per := cfg.N1 / cfg.Rounds
	for round := range cfg.Rounds {
		logf("concurrency 1, round %d of %d", round+1, cfg.Rounds)
		for _, t := range targets {
			for _, k := range kinds {
				rep.Seq[t.Name][k.Stream].add(sequential(ctx, t, k, per))
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}

	// Concurrency c, one target at a time.
	rep.Conc = make(map[string]map[bool]*result)
	for _, t := range targets {
		rep.Conc[t.Name] = map[bool]*result{}
		for _, k := range kinds {
			logf("concurrency %d against %s (stream=%v) for %s", cfg.C, t.Name, k.Stream, cfg.Dur)
			if _, err := concurrent(ctx, t, k, cfg.C, min(time.Second, cfg.Dur), cfg.Max); err != nil { // warm the pools
				return err
			}
			r, err := concurrent(ctx, t, k, cfg.C, cfg.Dur, cfg.Max)
			if err != nil {
				return err
			}
			rep.Conc[t.Name][k.Stream] = &r
		}
		if t.PID > 0 {
			m, err := procMemory(t.PID)
			if err != nil {
				return err
			}
			rep.setPeak(t.Name, m.Peak)
		}
	}

	// Many concurrent slow streams against each proxy.
	if cfg.Streams > 0 {
		slow := request{Stream: true, Body: chatBody(cfg.Model, true, cfg.StreamTokens, cfg.StreamTPOT)}
		limit := time.Duration(cfg.StreamTPOT*cfg.StreamTokens)*time.Millisecond + time.Minute
		for _, t := range targets[1:] {
			logf("%d concurrent streams against %s", cfg.Streams, t.Name)
			r, err := holdStreams(ctx, t, slow, cfg.Streams, limit, 10*time.Millisecond)
			if err != nil {
				return fmt.Errorf("%d streams against %s: %w", cfg.Streams, t.Name, err)
			}
			rep.Held = append(rep.Held, heldRow{Target: t.Name, Result: r})
		}
	}

	if baimoKeyID != "" {
		rep.Recorded = usageTotals(ctx, cfg.Baimo, cfg.BaimoAdminKey, baimoKeyID)
		rep.baimoSent = targets[len(targets)-1].sent.Load()
	}
	rep.LoadEnd = loadAverage()
	rep.Finished = time.Now().UTC()
	rep.write(stdout)
	return nil
}

// redactArgs replaces the values of flags that carry secrets.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		for _, f := range []string{"-baimo-key", "-baimo-admin-key"} {
			for _, p := range []string{f, "-" + f} {
				if a == p && i+1 < len(out) {
					out[i+1] = "$KEY"
				}
				if strings.HasPrefix(a, p+"=") {
					out[i] = p + "=$KEY"
				}
			}
		}
	}
	return out
}

// createKey creates an API key of tenant ("": the default tenant) allowed
// model through baimo's admin API and returns its secret and id.
func createKey(ctx context.Context, base, adminKey, model, tenant string) (key, id string, err error) {
	body, _ := json.Marshal(map[string]any{"name": "bench-load", "models": []string{model}, "tenant_id": tenant})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/keys", bytes.NewReader(body))
	if err != nil {
		return "", "", fmt.Errorf("create key: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("create key: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("create key: status %d: %.300s", resp.StatusCode, b)
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.Key == "" {
		return "", "", fmt.Errorf("create key: no key in %.300s", b)
	}
	return k.Key, k.ID, nil
}

// usageTotals returns baimo's usage totals for keyID as compact JSON, or a
// note saying why they could not be read. Records are written in batches, so
// it waits briefly for the count to settle.
func usageTotals(ctx context.Context, base, adminKey, keyID string) string {
	var last string
	for range 10 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin/usage?limit=1&key_id="+url.QueryEscape(keyID), nil)
		if err != nil {
			return "unreadable: " + err.Error()
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "unreadable: " + err.Error()
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("unreadable: status %d", resp.StatusCode)
		}
		var u struct {
			Totals json.RawMessage `json:"totals"`
		}
		if err := json.Unmarshal(b, &u); err != nil || len(u.Totals) == 0 {
			return "unreadable: no totals"
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, u.Totals); err != nil {
			return "unreadable: " + err.Error()
		}
		if compact.String() == last {
			break
		}
		last = compact.String()
		time.Sleep(500 * time.Millisecond)
	}
	return last
}
