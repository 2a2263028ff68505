package simulate

import (
	"os"
	"path/filepath"
	"testing"

	"baimo/bench/internal/cputime"
	"baimo/internal/engine"
	"baimo/internal/simulate"
)

// BenchmarkHourOn16Replicas simulates the whole Mooncake conversation trace
// (one hour, 12,031 requests, 12k-token prompts on average) on 16 replicas
// with prefix-aware placement, at the recorded rate. TRACES names the
// directory of the public traces (it skips without them). Run it alone and
// pinned for a figure: taskset -c 1 go test -run '^$' -bench Hour -benchtime 3x ./bench/simulate
func BenchmarkHourOn16Replicas(b *testing.B) {
	path := filepath.Join(os.Getenv("TRACES"), "mooncake_conversation.jsonl")
	tr, err := simulate.LoadTrace(path)
	if err != nil {
		b.Skipf("no trace (set TRACES to the traces' directory): %v", err)
	}
	b.ResetTimer()
	cpu := cputime.Start()
	for i := 0; i < b.N; i++ {
		res, err := simulate.Run(simulate.Config{Trace: tr, Replicas: 16, Engine: engine.H100Llama31_8B, Policy: "prefix", Seed: uint64(i)})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Steps), "steps/op")
	}
	cpu.Stop(b)
}
