package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"baimo/internal/schedule"
)

// Engine names a kind of inference server, which decides the metric names
// a scrape reads.
type Engine string

// Engines.
const (
	VLLM   Engine = "vllm"
	SGLang Engine = "sglang"
	Sim    Engine = "sim" // baimo sim --replica, which speaks vLLM's names
)

// ParseEngine checks an engine name.
func ParseEngine(s string) (Engine, error) {
	switch e := Engine(s); e {
	case VLLM, SGLang, Sim:
		return e, nil
	}
	return "", fmt.Errorf("unknown engine %q (vllm, sglang or sim)", s)
}

// maxMetricsBytes bounds a scrape's body; a vLLM server's metrics are tens
// of kilobytes.
const maxMetricsBytes = 4 << 20

// metricNames are the series a scrape reads, per engine; where a server
// has used two names, both are listed and whichever it has counts.
type metricNames struct {
	running, waiting, kv []string
	hits, queries        []string // counters, in tokens
	hitRate              string   // a ratio, where the server exports no counters
	blocks               string   // the info metric carrying num_gpu_blocks
}

var names = map[Engine]metricNames{
	VLLM: {
		running: []string{"vllm:num_requests_running"},
		waiting: []string{"vllm:num_requests_waiting"},
		kv:      []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
		hits:    []string{"vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"},
		queries: []string{"vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"},
		blocks:  "vllm:cache_config_info",
	},
	SGLang: {
		running: []string{"sglang:num_running_reqs"},
		waiting: []string{"sglang:num_queue_reqs"},
		kv:      []string{"sglang:token_usage"},
		hitRate: "sglang:cache_hit_rate",
	},
}

func init() { names[Sim] = names[VLLM] }

// parseMetrics reads the Prometheus text format and fills m with the
// engine's series, summed over their label sets (one server may label by
// model).
func parseMetrics(r io.Reader, e Engine, m *schedule.Metrics) error {
	n := names[e]
	want := map[string]*float64{}
	var running, waiting, kv, hits, queries, hitRate float64
	seen := map[string]bool{}
	for _, k := range n.running {
		want[k] = &running
	}
	for _, k := range n.waiting {
		want[k] = &waiting
	}
	for _, k := range n.kv {
		want[k] = &kv
	}
	for _, k := range n.hits {
		want[k] = &hits
	}
	for _, k := range n.queries {
		want[k] = &queries
	}
	if n.hitRate != "" {
		want[n.hitRate] = &hitRate
	}
	sc := bufio.NewScanner(io.LimitReader(r, maxMetricsBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := splitSample(line)
		if !ok {
			continue
		}
		if name == n.blocks && n.blocks != "" {
			if v, ok := label(labels, "num_gpu_blocks"); ok {
				if b, err := strconv.Atoi(v); err == nil && b > 0 {
					m.Blocks = b
				}
			}
			continue
		}
		if p := want[name]; p != nil {
			*p += value
			seen[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !anySeen(seen, n.running) || !anySeen(seen, n.waiting) {
		return errors.New("no running/waiting series: is this a " + string(e) + " server?")
	}
	m.Running, m.Waiting, m.KVUsage = int(running), int(waiting), kv
	m.Hits, m.Queries = hits, queries
	if n.hitRate != "" && !anySeen(seen, n.hits) {
		// A ratio only: keep it as hits per one query.
		m.Hits, m.Queries = hitRate, 1
	}
	return nil
}

func anySeen(seen map[string]bool, ks []string) bool {
	for _, k := range ks {
		if seen[k] {
			return true
		}
	}
	return false
}

// splitSample splits `name{labels} value [timestamp]`.
func splitSample(line string) (name, labels string, value float64, ok bool) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", "", 0, false
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		j := strings.LastIndexByte(rest, '}')
		if j < 0 {
			return "", "", 0, false
		}
		labels, rest = rest[1:j], rest[j+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", "", 0, false
	}
	return name, labels, v, true
}

// label finds key="value" in a label list.
func label(labels, key string) (string, bool) {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == key {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// scrape fetches and reads one replica's metrics.
func (p *Pool) scrape(ctx context.Context, i int) {
	r := p.reps[i]
	ctx, cancel := context.WithTimeout(ctx, p.scrapeTimeout)
	defer cancel()
	m := &schedule.Metrics{}
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL, nil)
		if err != nil {
			return err
		}
		if p.secret != "" {
			req.Header.Set("Authorization", "Bearer "+p.secret)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return parseMetrics(resp.Body, p.engine, m)
	}()
	m.At = p.clk.Now()
	if err != nil {
		m.Healthy = false
		m.Err = err.Error()
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			r.scrapeErrors.Add(1)
		}
	} else {
		m.Healthy = true
	}
	p.sp.Replica(i).SetMetrics(m)
}

// scrapeLoop scrapes replica i every interval until ctx ends.
func (p *Pool) scrapeLoop(ctx context.Context, i int) {
	// Spread the replicas' scrapes over the interval.
	offset := p.scrapeEvery * time.Duration(i) / time.Duration(len(p.reps))
	t := p.clk.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		p.scrape(ctx, i)
		t.Reset(p.scrapeEvery)
	}
}
