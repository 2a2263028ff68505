package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/engine"
	"baimo/internal/provider/sim"
	"baimo/internal/schedule"
)

const vllmText = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3
vllm:num_requests_running{model_name="b"} 2
vllm:num_requests_waiting{model_name="a"} 1
vllm:gpu_cache_usage_perc{model_name="a"} 0.25
vllm:prefix_cache_queries_total{model_name="a"} 1000
vllm:prefix_cache_hits_total{model_name="a"} 400
vllm:cache_config_info{block_size="16",num_gpu_blocks="29205",enable_prefix_caching="True"} 1.0
`

const sglangText = `sglang:num_running_reqs{model_name="m"} 7
sglang:num_queue_reqs{model_name="m"} 0
sglang:token_usage{model_name="m"} 0.5
sglang:cache_hit_rate{model_name="m"} 0.75
`

func TestParseMetrics(t *testing.T) {
	var m schedule.Metrics
	if err := parseMetrics(strings.NewReader(vllmText), VLLM, &m); err != nil {
		t.Fatal(err)
	}
	if m.Running != 5 || m.Waiting != 1 || m.KVUsage != 0.25 || m.Hits != 400 || m.Queries != 1000 || m.Blocks != 29205 {
		t.Fatalf("vllm: %+v", m)
	}
	m = schedule.Metrics{}
	if err := parseMetrics(strings.NewReader(sglangText), SGLang, &m); err != nil {
		t.Fatal(err)
	}
	if m.Running != 7 || m.KVUsage != 0.5 || m.Hits != 0.75 || m.Queries != 1 {
		t.Fatalf("sglang: %+v", m)
	}
	if err := parseMetrics(strings.NewReader("go_goroutines 12\n"), VLLM, &m); err == nil {
		t.Fatal("a server without vLLM metrics parsed")
	}
}

// startReplicas runs n simulated replicas (fast) and returns their URLs.
func startReplicas(t *testing.T, n int) ([]string, []*httptest.Server) {
	t.Helper()
	var urls []string
	var srvs []*httptest.Server
	for range n {
		r, err := sim.NewReplica(sim.ReplicaOptions{Engine: engine.Tiny, Speed: 50, OutputTokens: 4})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go r.Run(ctx)
		srv := httptest.NewServer(r)
		t.Cleanup(func() { srv.Close(); cancel() })
		urls = append(urls, srv.URL+"/v1")
		srvs = append(srvs, srv)
	}
	return urls, srvs
}

func startPool(t *testing.T, urls []string, opt Options) *Pool {
	t.Helper()
	opt.URLs, opt.Engine = urls, Sim
	if opt.Name == "" {
		opt.Name = "p"
	}
	opt.ScrapeInterval = 20 * time.Millisecond
	opt.Pool.StaleAfter = 300 * time.Millisecond
	p, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	waitFresh(t, p)
	return p
}

// waitFresh waits until every replica has a fresh, healthy scrape.
func waitFresh(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok := true
		for _, r := range p.Stats().Replicas {
			ok = ok && !r.Load.Stale
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas never scraped: %+v", p.Stats().Replicas)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func conversation(turn int) []byte {
	var b strings.Builder
	b.WriteString(`system: you are a careful assistant who answers in full sentences and cites sources.`)
	for i := range turn {
		fmt.Fprintf(&b, "\nuser: question number %d about the weather in a city far away\nassistant: an answer %d that is long enough to fill a block or two of text", i, i)
	}
	return []byte(b.String())
}

func TestAcquireIsStickyAndReleases(t *testing.T) {
	urls, _ := startReplicas(t, 3)
	p := startPool(t, urls, Options{})
	first, err := p.Acquire(context.Background(), Request{Model: "sim-chat", PromptTokens: 300, Prompt: conversation(3)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(first.BaseURL, "/v1") || first.Decision.Reason != schedule.ReasonMiss {
		t.Fatalf("first lease %+v", first)
	}
	first.FirstToken(time.Now())
	first.End()
	first.End()
	for turn := 4; turn < 8; turn++ {
		l, err := p.Acquire(context.Background(), Request{Model: "sim-chat", PromptTokens: 100 * turn, Prompt: conversation(turn)})
		if err != nil {
			t.Fatal(err)
		}
		if l.Replica != first.Replica || l.Decision.Reason != schedule.ReasonSticky {
			t.Fatalf("turn %d went to replica %d (%v), not %d", turn, l.Replica, l.Decision.Reason, first.Replica)
		}
		l.End()
	}
	for _, r := range p.Stats().Replicas {
		if r.Load.InFlight != 0 || r.Load.Prefill != 0 {
			t.Fatalf("load left after every lease ended: %+v", r.Load)
		}
	}
}

func TestDeadReplicaCountsAsSaturated(t *testing.T) {
	urls, srvs := startReplicas(t, 2)
	p := startPool(t, urls, Options{})
	srvs[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Stats().Replicas[0].Load.Stale {
		if time.Now().After(deadline) {
			t.Fatal("a closed replica still looks fresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 10 {
		l, err := p.Acquire(context.Background(), Request{Model: "sim-chat", PromptTokens: 50, Prompt: conversation(i)})
		if err != nil {
			t.Fatal(err)
		}
		if l.Replica != 1 {
			t.Fatalf("request %d went to the dead replica", i)
		}
		l.End()
	}
	if p.Stats().Replicas[0].ScrapeErrors == 0 {
		t.Fatal("no scrape error counted")
	}
}

func TestFreeTierShedWhenSaturated(t *testing.T) {
	urls, srvs := startReplicas(t, 1)
	p := startPool(t, urls, Options{Queue: schedule.QueueConfig{RetryAfter: 3 * time.Second}})
	srvs[0].Close() // its metrics go stale: saturated
	deadline := time.Now().Add(5 * time.Second)
	for !p.Stats().Replicas[0].Load.Stale {
		if time.Now().After(deadline) {
			t.Fatal("never stale")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err := p.Acquire(context.Background(), Request{Model: "sim-chat", PromptTokens: 10, Free: true})
	var shed *ShedError
	if !errors.As(err, &shed) || shed.RetryAfter != 3*time.Second {
		t.Fatalf("free-tier request on a saturated pool: %v", err)
	}
	q, _ := New(Options{Name: "q", URLs: urls, Engine: Sim, Queue: schedule.QueueConfig{Overflow: true}})
	if _, err := q.Acquire(context.Background(), Request{Model: "sim-chat", PromptTokens: 10}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("paid request on a saturated pool with overflow: %v", err)
	}
	// A queued request whose client leaves returns the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx, Request{Model: "sim-chat", PromptTokens: 10}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued request after its client left: %v", err)
	}
	if p.Scheduler().Waiting(schedule.Interactive) != 0 {
		t.Fatal("the abandoned request is still queued")
	}
}

// TestSharedIndexThroughRedis runs two gateway nodes' pools over the same
// replicas: a conversation placed by one node is found by the other.
func TestSharedIndexThroughRedis(t *testing.T) {
	addr := os.Getenv("BAIMO_TEST_REDIS")
	if addr == "" {
		t.Skip("BAIMO_TEST_REDIS is not set: the prefix index sharing test needs a Redis")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	prefix := fmt.Sprintf("baimo-test-%d:", time.Now().UnixNano())
	urls, _ := startReplicas(t, 4)
	a := startPool(t, urls, Options{})
	b := startPool(t, urls, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.Share(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Share(ctx, rdb, prefix); err != nil {
		t.Fatal(err)
	}
	la, err := a.Acquire(ctx, Request{Model: "sim-chat", PromptTokens: 400, Prompt: conversation(5)})
	if err != nil {
		t.Fatal(err)
	}
	la.End()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, applied := b.shared.Load().Counts(); applied > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node b never applied node a's record")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lb, err := b.Acquire(ctx, Request{Model: "sim-chat", PromptTokens: 500, Prompt: conversation(6)})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.End()
	if lb.Replica != la.Replica || lb.Decision.Reason != schedule.ReasonSticky {
		t.Fatalf("node b placed the next turn on replica %d (%v); node a used %d", lb.Replica, lb.Decision.Reason, la.Replica)
	}
	// A node ignores its own messages and malformed ones.
	s := a.shared.Load()
	for _, bad := range [][]byte{nil, []byte("BPX1"), append([]byte("BPX1"), make([]byte, 8)...), []byte("junk junk junk junk")} {
		if err := s.decode(bad, func(record) { t.Fatal("applied a malformed message") }); err == nil {
			t.Fatalf("accepted malformed message %q", bad)
		}
	}
	if err := s.decode(s.encode([]record{{replica: 0, blocks: []uint64{1}}}), func(record) { t.Fatal("applied its own message") }); err != nil {
		t.Fatal(err)
	}
}
