package simulate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"baimo/internal/engine"
	"baimo/internal/schedule"
)

func loadTestTrace(t *testing.T, name string) *Trace {
	t.Helper()
	tr, err := LoadTrace("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReadTraces(t *testing.T) {
	m := loadTestTrace(t, "mooncake_conversation_head300.jsonl")
	if len(m.Requests) != 300 || m.IDTokens != 512 || len(m.Requests[0].IDs) == 0 || m.Requests[0].Prompt != 6758 {
		t.Fatalf("mooncake: %d requests, first %+v", len(m.Requests), m.Requests[0])
	}
	a := loadTestTrace(t, "azure_llm_2023_conv_head300.csv")
	if len(a.Requests) != 300 || a.Requests[0].Prompt != 374 || a.Requests[0].Output != 44 || a.Requests[1].At != 4314579*time.Microsecond {
		t.Fatalf("azure: %d requests, first two %+v %+v", len(a.Requests), a.Requests[0], a.Requests[1])
	}
	if s := a.Slice(10*time.Second, 20*time.Second); len(s.Requests) == 0 || s.Requests[0].At < 0 || s.Duration() >= 20*time.Second {
		t.Fatalf("slice: %d requests, duration %v", len(s.Requests), s.Duration())
	}
	for _, bad := range []string{`{"timestamp":0,"input_length":0,"output_length":5}`, `{"timestamp":-1,"input_length":5,"output_length":5}`, `not json`} {
		if _, err := ReadMooncake(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := ReadAzure(strings.NewReader("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,x,4\n")); err == nil {
		t.Error("accepted a non-numeric token count")
	}
}

// conversations is a synthetic prefix-heavy trace: sessions whose turns
// extend the previous prompt, interleaved.
func conversations(sessions, turns int, gap time.Duration, seed uint64) *Trace {
	rng := rand.New(rand.NewPCG(seed, 1))
	tr := &Trace{Name: "synthetic", IDTokens: 512}
	var next uint64 = 1
	for s := range sessions {
		ids := []uint64{0} // a shared system prompt
		at := time.Duration(rng.Int64N(int64(gap)))
		for range turns {
			for range 2 + rng.IntN(3) {
				ids = append(ids, next)
				next++
			}
			tr.Requests = append(tr.Requests, Request{At: at, Prompt: len(ids)*512 - 100, Output: 50 + rng.IntN(200), IDs: append([]uint64(nil), ids...)})
			at += gap/4 + time.Duration(rng.Int64N(int64(gap/2)))
		}
		_ = s
	}
	f, _ := finish(tr)
	return f
}

func run(t *testing.T, cfg Config) Summary {
	t.Helper()
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range res.Outcomes {
		if !o.Shed && o.Finish == 0 {
			t.Fatalf("request %d never finished: %+v", i, o)
		}
	}
	return Summarize(res, DefaultSLO, Costs{GPUHour: 2})
}

func TestPrefixAwarePlacementReusesCaches(t *testing.T) {
	tr := conversations(120, 6, 20*time.Second, 1)
	eng := engine.H100Llama31_8B
	eng.NumBlocks = 12000 // 192k tokens: a replica caches its share of the conversations, not all
	base := Config{Trace: tr, Replicas: 8, Engine: eng, Rate: 4, Seed: 1}
	hits := map[string]float64{}
	for _, p := range []string{"round_robin", "least_request", "prefix", "score"} {
		cfg := base
		cfg.Policy = p
		s := run(t, cfg)
		hits[p] = s.PrefixHitRate
		if s.Served != len(tr.Requests) {
			t.Fatalf("%s served %d of %d", p, s.Served, len(tr.Requests))
		}
	}
	t.Logf("prefix cache hit rates %v", hits)
	for _, p := range []string{"prefix", "score"} {
		if hits[p] < hits["round_robin"]+0.2 || hits[p] < hits["least_request"]+0.2 {
			t.Fatalf("prefix hit rates %v: %s should reuse far more cache than the baselines", hits, p)
		}
	}
}

func TestSameSeedSameResult(t *testing.T) {
	tr := loadTestTrace(t, "mooncake_conversation_head300.jsonl")
	for _, p := range []string{"random", "prefix"} {
		cfg := Config{Trace: tr, Replicas: 4, Engine: engine.H100Llama31_8B, Policy: p, Rate: 2, Seed: 7}
		a, b := run(t, cfg), run(t, cfg)
		if a != b {
			t.Fatalf("%s: two runs with one seed differ:\n%+v\n%+v", p, a, b)
		}
	}
}

func TestStaleMetricsStillServeEverything(t *testing.T) {
	tr := loadTestTrace(t, "azure_llm_2023_conv_head300.csv")
	// Scrapes every 5 s against a 2 s staleness bound: every replica counts
	// as saturated most of the time, so the policy fails open.
	s := run(t, Config{Trace: tr, Replicas: 4, Engine: engine.H100Llama31_8B, Policy: "prefix", Seed: 1, ScrapeInterval: 5 * time.Second})
	if s.Served != 300 {
		t.Fatalf("served %d of 300", s.Served)
	}
}

func TestNodesSharingTheIndex(t *testing.T) {
	tr := conversations(150, 6, 20*time.Second, 2)
	one := run(t, Config{Trace: tr, Replicas: 8, Engine: engine.H100Llama31_8B, Policy: "prefix", Rate: 4, Seed: 1})
	apart := run(t, Config{Trace: tr, Replicas: 8, Engine: engine.H100Llama31_8B, Policy: "prefix", Rate: 4, Seed: 1, Nodes: 3})
	shared := run(t, Config{Trace: tr, Replicas: 8, Engine: engine.H100Llama31_8B, Policy: "prefix", Rate: 4, Seed: 1, Nodes: 3, ShareIndex: true})
	t.Logf("prefix hit rate: one node %.3f, three apart %.3f, three sharing %.3f", one.PrefixHitRate, apart.PrefixHitRate, shared.PrefixHitRate)
	if shared.PrefixHitRate < 0.9*one.PrefixHitRate || apart.PrefixHitRate > shared.PrefixHitRate-0.1 {
		t.Fatalf("sharing the index should keep one node's hit rate (%.3f vs %.3f) and beat nodes apart (%.3f)",
			shared.PrefixHitRate, one.PrefixHitRate, apart.PrefixHitRate)
	}
}

func TestBatchBacklogMeetsItsDeadline(t *testing.T) {
	online := loadTestTrace(t, "azure_llm_2023_conv_head300.csv")
	var batch []Request
	for i := range 400 {
		batch = append(batch, Request{Prompt: 500 + i%700, Output: 100 + i%300})
	}
	eng := engine.H100Llama31_8B
	eng.Priority = true
	s := run(t, Config{Trace: online, Replicas: 2, Engine: eng, Policy: "prefix", Seed: 1,
		Queue: &schedule.QueueConfig{}, Batch: &BatchLoad{Requests: batch, Deadline: time.Hour}})
	if s.Batch != 400 || s.BatchDone != 400 || s.BatchMetDeadline != 400 {
		t.Fatalf("batch %d, done %d, met deadline %d", s.Batch, s.BatchDone, s.BatchMetDeadline)
	}
	if s.Served != 300 || s.Attainment < 0.9 {
		t.Fatalf("online: served %d, SLO attainment %.3f", s.Served, s.Attainment)
	}
	if s.BatchTokensWindow == 0 {
		t.Fatal("no batch work ran while online traffic flowed")
	}
}

func TestSweepFindsGoodput(t *testing.T) {
	tr := loadTestTrace(t, "azure_llm_2023_conv_head300.csv")
	sw := Sweep{Base: Config{Replicas: 1, Engine: engine.H100Llama31_8B}, Traces: []*Trace{tr, tr}, Seeds: []uint64{1, 2},
		Policies: []string{"least_request", "score"}, Rates: []float64{1, 4, 16, 64}, Refine: 2}
	rep, err := sw.Run(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2*2*4+2*2*2 || len(rep.Goodput) != 4 {
		t.Fatalf("%d runs, %d goodput rows", len(rep.Runs), len(rep.Goodput))
	}
	for _, g := range rep.Goodput {
		if g.ReqPerS <= 0 || g.Summary.Attainment < 0.9 || g.Rate >= 64 {
			t.Fatalf("goodput %+v", g)
		}
	}
	var b strings.Builder
	if err := WriteRunsCSV(&b, rep.Runs); err != nil || strings.Count(b.String(), "\n") != len(rep.Runs)+1 {
		t.Fatalf("runs.csv: %v, %d lines", err, strings.Count(b.String(), "\n"))
	}
	for _, svg := range []string{AttainmentSVG("t", rep.Runs, DefaultSLO), TTFTSVG("t", rep.Runs, DefaultSLO), GoodputSVG("t", GoodputByPolicy(rep.Goodput))} {
		if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "score") || strings.Contains(svg, "NaN") {
			t.Fatalf("bad svg: %.200s", svg)
		}
	}
	_ = fmt.Sprint
}
