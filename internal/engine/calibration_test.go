package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The ML.ENERGY Leaderboard's measurements of Llama-3.1-8B-Instruct on one
// H100 with vLLM (github.com/ml-energy/leaderboard,
// public/data/models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json):
// for each max_num_seqs, the average batch, the median inter-token latency
// and the output throughput of a saturated server.
var mlEnergyH100 = []struct {
	maxSeqs    int
	avgBatch   float64
	itlMs      float64
	throughput float64 // output tokens/s
}{
	{8, 7.978, 7.316, 1069.57},
	{16, 15.95, 7.912, 1953.57},
	{32, 31.91, 8.907, 3391.07},
	{64, 63.92, 11.500, 5147.15},
	{96, 95.70, 14.078, 6260.15},
	{128, 127.62, 16.482, 7036.53},
	{192, 191.66, 20.908, 8223.35},
	{256, 255.19, 26.126, 9009.61},
	{384, 383.01, 37.701, 9248.01},
	{512, 510.87, 47.408, 9805.59},
	{768, 690.87, 62.931, 9602.77},
}

// The published output-length histogram of the max_num_seqs=256 run: 50
// equal bins from 2 to 4096 tokens (the last bin holds the 4096-token cap).
var mlEnergyOutputCounts = []int{
	434, 229, 176, 182, 187, 197, 151, 125, 96, 66, 42, 33, 25, 18, 18, 6, 10, 9, 7, 9,
	3, 2, 5, 2, 1, 4, 0, 0, 0, 0, 2, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
}

// sampleOutput draws an output length from the published histogram,
// uniformly within a bin.
func sampleOutput(rng *rand.Rand) int {
	total := 0
	for _, c := range mlEnergyOutputCounts {
		total += c
	}
	x := rng.IntN(total)
	const lo, hi = 2.0, 4096.0
	w := (hi - lo) / float64(len(mlEnergyOutputCounts))
	for i, c := range mlEnergyOutputCounts {
		if x < c {
			return int(lo + w*(float64(i)+rng.Float64()))
		}
		x -= c
	}
	return 4096
}

// saturated runs the published setup: every request queued at once, the
// engine limited to maxSeqs, and measures while the queue still holds work
// (the steady state the published average batch shows). It returns output
// tokens/s, the median step time of steps without prompt tokens (what a
// client sees as its median inter-token latency) and the average batch.
func saturated(t *testing.T, cfg Config, maxSeqs, prompt int, seed uint64) (tput float64, itl time.Duration, batch float64) {
	t.Helper()
	cfg.MaxNumSeqs = maxSeqs
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 14))
	n := 10*maxSeqs + 400
	for i := range n {
		if _, err := e.Add(&Request{ID: uint64(i), PromptTokens: prompt, OutputTokens: sampleOutput(rng)}); err != nil {
			t.Fatal(err)
		}
	}
	var elapsed time.Duration
	var tokens, seqSteps, steps int
	var decodeSteps []time.Duration
	warm := false
	for e.Stats().Waiting > 0 {
		r := e.Step()
		if !warm { // skip the initial burst of prefills
			warm = e.Stats().Running >= min(maxSeqs, e.Stats().Running+e.Stats().Waiting) && r.PrefillTokens < cfg.MaxBatchedTokens
			continue
		}
		elapsed += r.Duration
		seqSteps += r.Seqs
		steps++
		for _, ev := range r.Events {
			if ev.Kind == Token {
				tokens++
			}
		}
		if r.PrefillTokens == 0 {
			decodeSteps = append(decodeSteps, r.Duration)
		}
	}
	slices.Sort(decodeSteps)
	return float64(tokens) / elapsed.Seconds(), decodeSteps[len(decodeSteps)/2], float64(seqSteps) / float64(steps)
}

// TestCalibration checks the H100 Llama-3.1-8B preset against the
// measurements its coefficients came from: output throughput within 15%
// and median inter-token latency within 15% at every published batch size.
// The published file does not give the prompt lengths; 250 tokens is the
// preset's assumption, and 400 is checked too. (At 100 tokens the largest
// batches come out 17-26% fast: the context term then undercounts.)
func TestCalibration(t *testing.T) {
	prompts := []int{250, 400}
	if raceBuild {
		prompts = prompts[:1]
	}
	for _, prompt := range prompts {
		var worstT, worstI float64
		for _, p := range mlEnergyH100 {
			tput, itl, batch := saturated(t, H100Llama31_8B, p.maxSeqs, prompt, 1)
			errT := (tput - p.throughput) / p.throughput
			errI := (float64(itl)/1e6 - p.itlMs) / p.itlMs
			if prompt == 250 {
				t.Logf("max_num_seqs %4d: batch %5.1f (published %5.1f), throughput %7.0f tok/s (published %7.0f, %+5.1f%%), median ITL %6.2f ms (published %6.2f, %+5.1f%%)",
					p.maxSeqs, batch, p.avgBatch, tput, p.throughput, 100*errT, float64(itl)/1e6, p.itlMs, 100*errI)
			}
			if math.Abs(errT) > 0.15 {
				t.Errorf("prompt %d, max_num_seqs %d: throughput %.0f tok/s, published %.0f: off by %+.1f%% (> 15%%)", prompt, p.maxSeqs, tput, p.throughput, 100*errT)
			}
			if math.Abs(errI) > 0.15 {
				t.Errorf("prompt %d, max_num_seqs %d: median ITL %.2f ms, published %.2f: off by %+.1f%% (> 15%%)", prompt, p.maxSeqs, float64(itl)/1e6, p.itlMs, 100*errI)
			}
			worstT = max(worstT, math.Abs(errT))
			worstI = max(worstI, math.Abs(errI))
		}
		t.Logf("prompt %d tokens: worst throughput error %.1f%%, worst median-ITL error %.1f%%", prompt, 100*worstT, 100*worstI)
	}
}
