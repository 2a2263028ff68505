package schedule

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func tokens(family, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(family*100000 + i)
	}
	return t
}

func TestTokenBlocksNameSharedPrefixes(t *testing.T) {
	seed := ModelSeed("m")
	a := AppendTokenBlocks(nil, seed, tokens(1, 100)) // 6 full blocks
	if len(a) != 6 {
		t.Fatalf("%d blocks for 100 tokens, want 6", len(a))
	}
	long := append(tokens(1, 96), tokens(2, 40)...)
	b := AppendTokenBlocks(nil, seed, long)
	if !slices.Equal(a, b[:6]) {
		t.Fatal("prompts sharing 96 tokens do not share their first 6 blocks")
	}
	c := AppendTokenBlocks(nil, seed, append(tokens(9, 16), tokens(1, 84)...))
	for i := range c {
		if c[i] == a[i] {
			t.Fatalf("block %d equal although the first block differs (not chained)", i)
		}
	}
	if d := AppendTokenBlocks(nil, ModelSeed("other"), tokens(1, 100)); d[0] == a[0] {
		t.Fatal("the same prompt to another model shares a block")
	}
	// Text blocks: 64 bytes each, shared by shared prefixes.
	ta := AppendTextBlocks(nil, seed, []byte(strings.Repeat("system prompt. ", 20)+"question one"))
	tb := AppendTextBlocks(nil, seed, []byte(strings.Repeat("system prompt. ", 20)+"another question entirely"))
	if len(ta) != 4 || len(tb) != 5 || !slices.Equal(ta[:4], tb[:4]) {
		t.Fatalf("text blocks %d and %d, shared prefix not shared", len(ta), len(tb))
	}
	// Mooncake-style ids: a follow-up turn shares the leading ids.
	x := AppendTraceBlocks(nil, seed, []uint64{0, 5, 6}, 512, 3*512)
	y := AppendTraceBlocks(nil, seed, []uint64{0, 5, 6, 7}, 512, 3*512+300)
	if len(x) != 96 || len(y) != 96+18 || !slices.Equal(x, y[:96]) || x[32] == AppendTraceBlocks(nil, seed, []uint64{0, 6}, 512, 1024)[32] {
		t.Fatalf("trace blocks: %d and %d blocks, or not chained", len(x), len(y))
	}
}

// matchBrute is the definition Match implements.
func matchBrute(x *Index, blocks []uint64, now time.Time, r int) int {
	n := 0
	for _, h := range blocks {
		if x.mask(h, now.UnixNano())&(1<<r) == 0 {
			break
		}
		n++
	}
	return n
}

func TestIndexMatchAgreesWithAScan(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		n := 1 + rng.IntN(MaxReplicas)
		x := NewIndex(n, nil, time.Hour)
		s := ModelSeed("m")
		var prompts [][]uint64
		for range 200 {
			fam := rng.IntN(8)
			p := AppendTokenBlocks(nil, s, append(tokens(fam, 16*rng.IntN(40)), tokens(100+rng.IntN(1000), 16*rng.IntN(20))...))
			prompts = append(prompts, p)
			x.Record(p, rng.IntN(n), t0)
		}
		out := make([]int, n)
		for _, p := range prompts {
			q := p[:rng.IntN(len(p)+1)]
			best := x.Match(q, t0, out)
			want := 0
			for r := range n {
				w := matchBrute(x, q, t0, r)
				if out[r] != w {
					t.Fatalf("seed %d replica %d: match %d, scan %d", seed, r, out[r], w)
				}
				want = max(want, w)
			}
			if best != want {
				t.Fatalf("seed %d: best %d, want %d", seed, best, want)
			}
		}
	}
}

func TestIndexCapacityAndTTL(t *testing.T) {
	x := NewIndex(2, []int{10, 10}, time.Minute)
	s := ModelSeed("m")
	a := AppendTokenBlocks(nil, s, tokens(1, 16*8))
	b := AppendTokenBlocks(nil, s, tokens(2, 16*8))
	out := make([]int, 2)
	x.Record(a, 0, t0)
	x.Record(b, 0, t0.Add(time.Second)) // 16 blocks > 10: a's oldest go
	if x.Blocks(0) != 10 {
		t.Fatalf("replica 0 holds %d blocks, capacity 10", x.Blocks(0))
	}
	if x.Match(a, t0.Add(2*time.Second), out); out[0] != 0 {
		t.Fatalf("evicted prefix still matches %d blocks", out[0])
	}
	if x.Match(b, t0.Add(2*time.Second), out); out[0] != 8 {
		t.Fatalf("recent prefix matches %d blocks, want 8", out[0])
	}
	// The same blocks on replica 1 are not affected by replica 0's LRU.
	x.Record(a, 1, t0.Add(3*time.Second))
	if x.Match(a, t0.Add(3*time.Second), out); out[1] != 8 || out[0] != 0 {
		t.Fatalf("per-replica matches %v, want [0 8]", out)
	}
	// A minute later everything has expired.
	if x.Match(a, t0.Add(3*time.Second+time.Minute+time.Millisecond), out); out[1] != 0 {
		t.Fatalf("expired prefix matches %d blocks", out[1])
	}
	x.Expire(t0.Add(2 * time.Minute))
	if x.Blocks(0)+x.Blocks(1) != 0 || x.ids.Len() != 0 {
		t.Fatalf("after Expire: %d + %d blocks, %d hashes", x.Blocks(0), x.Blocks(1), x.ids.Len())
	}
}
