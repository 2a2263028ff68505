package tokenize

import (
	"sync"
	"testing"
)

// TestConcurrentCount loads and counts from many goroutines at once (run
// with -race); every goroutine must get the same counts.
func TestConcurrentCount(t *testing.T) {
	texts := []string{"hello world, 你好世界 12345", "<|im_start|>user\nhi<|im_end|>", "func main() {}\n", "Ünïcödé ✓ 😀"}
	encs := []*Encoding{}
	for _, name := range Names() {
		if e, ok := NewEncoding(name); ok {
			encs = append(encs, e)
		}
	}
	want := make([][]int, len(encs))
	for i, e := range encs {
		ref, _ := NewEncoding(e.Name())
		for _, s := range texts {
			want[i] = append(want[i], ref.Count(s))
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, e := range encs {
				for j, s := range texts {
					if n := e.Count(s); n != want[i][j] {
						t.Errorf("%s %q: %d, want %d", e.Name(), s, n, want[i][j])
					}
				}
			}
		}()
	}
	wg.Wait()
}
