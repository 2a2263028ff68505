package ledger

import "testing"

// TestCommitterGatherRounds: before cutting a batch the committer yields
// while operations keep arriving, stops at the first yield that brought
// nothing, after eight in all, or once the batch is full. Each case's
// yield plays the callers: it queues the operations that arrive during it.
func TestCommitterGatherRounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int   // MaxBatch
		arrivals []int // operations queued during each yield; then 0
		always   bool  // one during every yield, without end
		want     int   // yields
		size     int   // the batch cut
	}{
		{name: "nothing arrives", max: 256, want: 1, size: 1},
		{name: "arrivals then quiet", max: 256, arrivals: []int{2, 3}, want: 3, size: 6},
		{name: "a steady stream stops after eight yields", max: 256, always: true, want: 8, size: 9},
		{name: "a full batch stops it", max: 3, always: true, want: 2, size: 3},
		{name: "a batch full at once is cut at once", max: 1, always: true, want: 0, size: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Ledger{opts: Options{MaxBatch: tc.max}, queue: make(chan *op, 64)}
			yields := 0
			l.yield = func() {
				if yields++; yields > 24 {
					t.Fatalf("gather yielded %d times", yields)
				}
				n := 0
				if tc.always {
					n = 1
				} else if yields <= len(tc.arrivals) {
					n = tc.arrivals[yields-1]
				}
				for range n {
					l.queue <- &op{}
				}
			}
			batch := l.gather([]*op{{}})
			if yields != tc.want || len(batch) != tc.size {
				t.Errorf("gather yielded %d times and cut a batch of %d, want %d and %d", yields, len(batch), tc.want, tc.size)
			}
		})
	}
}
