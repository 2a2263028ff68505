package schedule

import (
	"fmt"
	"testing"
	"time"

	"baimo/bench/internal/cputime"
	"baimo/internal/schedule"
)

const replicas = 64

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func promptTokens(family, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(family*1_000_003 + i)
	}
	return t
}

// warmPool builds 64 replicas with fresh metrics, some load, and an index
// holding 64 conversations of 4096 tokens per replica.
func warmPool(b *testing.B) (*schedule.Pool, [][]uint64) {
	names := make([]string, replicas)
	for i := range names {
		names[i] = fmt.Sprintf("replica-%02d", i)
	}
	p, err := schedule.NewPool(names, schedule.PoolConfig{StaleAfter: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	seed := schedule.ModelSeed("llama")
	var prompts [][]uint64
	for i := range replicas {
		p.Replica(i).SetMetrics(&schedule.Metrics{At: now, Healthy: true, Running: i % 7, KVUsage: 0.3})
		for c := range 64 {
			blocks := schedule.AppendTokenBlocks(nil, seed, promptTokens(i*64+c, 4096))
			prompts = append(prompts, blocks)
			p.Index().Record(blocks, i, now)
		}
		for range i % 5 {
			p.Dispatch(&schedule.Request{PromptTokens: 500}, schedule.Decision{Replica: i}, now)
		}
	}
	return p, prompts
}

// BenchmarkDecision is one Pick at 64 replicas: "hit" is a 4,096-token
// prompt a replica holds (256 blocks) plus 200 new tokens, "miss" a
// 4,096-token prompt no replica holds.
func BenchmarkDecision(b *testing.B) {
	p, prompts := warmPool(b)
	seed := schedule.ModelSeed("llama")
	miss := &schedule.Request{Model: "llama", PromptTokens: 4096, Blocks: schedule.AppendTokenBlocks(nil, seed, promptTokens(9_999_999, 4096))}
	for _, name := range schedule.PolicyNames {
		pol, _ := schedule.NewPolicy(name)
		for _, kind := range []string{"hit", "miss"} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				reqs := make([]*schedule.Request, 256)
				for i := range reqs {
					if kind == "miss" {
						reqs[i] = miss
						continue
					}
					blocks := append(append([]uint64(nil), prompts[(i*37)%len(prompts)]...), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
					reqs[i] = &schedule.Request{Model: "llama", PromptTokens: 4096 + 200, Blocks: blocks}
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cputime.Start()
				for i := 0; i < b.N; i++ {
					d := pol.Pick(p, reqs[i&255], now)
					if d.Replica < 0 {
						b.Fatal("no replica")
					}
				}
				cpu.Stop(b)
			})
		}
	}
}

// BenchmarkRecord is the index update after a decision: a 4,096-token
// prompt's 256 blocks recorded for one replica.
func BenchmarkRecord(b *testing.B) {
	p, prompts := warmPool(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for i := 0; i < b.N; i++ {
		p.Index().Record(prompts[i%len(prompts)], i%replicas, now)
	}
	cpu.Stop(b)
}

// BenchmarkHashPrompt is hashing a 4,096-token prompt into its 256 blocks.
func BenchmarkHashPrompt(b *testing.B) {
	toks := promptTokens(1, 4096)
	seed := schedule.ModelSeed("llama")
	buf := make([]uint64, 0, 256)
	b.SetBytes(4096 * 4)
	b.ReportAllocs()
	cpu := cputime.Start()
	for i := 0; i < b.N; i++ {
		buf = schedule.AppendTokenBlocks(buf[:0], seed, toks)
	}
	cpu.Stop(b)
}
