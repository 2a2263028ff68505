package blockmap

import (
	"math/rand/v2"
	"testing"
)

// TestAgainstBuiltinMap drives random puts, gets and deletes through a Map
// and a Go map, keys drawn from a small range so that deletes, reinserts
// and long probe runs are common, and compares them after every operation.
func TestAgainstBuiltinMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		m := New(4)
		ref := map[uint64]int32{}
		keyRange := uint64(1 + rng.IntN(5000))
		for op := range 200_000 {
			k := rng.Uint64N(keyRange) * (1 + uint64(seed%3)*1024) // some seeds cluster keys
			switch rng.IntN(3) {
			case 0:
				v := int32(rng.Int32())
				m.Put(k, v)
				ref[k] = v
			case 1:
				_, want := ref[k]
				if got := m.Delete(k); got != want {
					t.Fatalf("seed %d op %d: Delete(%d) = %v, want %v", seed, op, k, got, want)
				}
				delete(ref, k)
			default:
				v, ok := m.Get(k)
				rv, rok := ref[k]
				if ok != rok || v != rv {
					t.Fatalf("seed %d op %d: Get(%d) = %d,%v, want %d,%v", seed, op, k, v, ok, rv, rok)
				}
			}
			if m.Len() != len(ref) {
				t.Fatalf("seed %d op %d: Len %d, want %d", seed, op, m.Len(), len(ref))
			}
		}
		for k, rv := range ref {
			if v, ok := m.Get(k); !ok || v != rv {
				t.Fatalf("seed %d: lost key %d", seed, k)
			}
		}
	}
}

func BenchmarkChurn(b *testing.B) {
	m := New(1 << 20)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]uint64, 1<<20)
	for i := range keys {
		keys[i] = rng.Uint64()
		m.Put(keys[i], int32(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i & (len(keys) - 1)
		m.Delete(keys[j])
		keys[j] = rng.Uint64()
		m.Put(keys[j], int32(j))
		m.Get(keys[(j*7)&(len(keys)-1)])
	}
}

func BenchmarkChurnBuiltin(b *testing.B) {
	m := make(map[uint64]int32, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]uint64, 1<<20)
	for i := range keys {
		keys[i] = rng.Uint64()
		m[keys[i]] = int32(i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i & (len(keys) - 1)
		delete(m, keys[j])
		keys[j] = rng.Uint64()
		m[keys[j]] = int32(j)
		_ = m[keys[(j*7)&(len(keys)-1)]]
	}
}
