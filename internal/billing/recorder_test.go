package billing

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/usage"
)

// TestRecorderCommitsBeforeRelease: every submitter's channel closes only
// after a write that contained its record returned; batches never exceed
// BatchSize; nothing is lost or written twice.
func TestRecorderCommitsBeforeRelease(t *testing.T) {
	var mu sync.Mutex
	committed := map[string]int{}
	maxBatch := 0
	write := func(_ context.Context, batch []finished) error {
		time.Sleep(200 * time.Microsecond) // let submitters pile up behind a commit
		mu.Lock()
		defer mu.Unlock()
		maxBatch = max(maxBatch, len(batch))
		for _, f := range batch {
			committed[f.rec.RequestID]++
		}
		return nil
	}
	r := NewRecorder(write, RecorderOptions{BatchSize: 8, QueueSize: 64}, clock.Real{}, quiet())
	const n = 400
	var wg sync.WaitGroup
	var early atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("r", i)
			done, err := r.Submit(finished{rec: usage.Record{RequestID: id}})
			if err != nil {
				t.Error(err)
				return
			}
			<-done
			mu.Lock()
			if committed[id] != 1 {
				early.Add(1)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if early.Load() != 0 {
		t.Fatalf("%d submitters released before their record was committed", early.Load())
	}
	if len(committed) != n || maxBatch > 8 {
		t.Fatalf("committed %d distinct records (want %d), largest batch %d (limit 8)", len(committed), n, maxBatch)
	}
	for id, c := range committed {
		if c != 1 {
			t.Fatalf("%s written %d times", id, c)
		}
	}
	if st := r.Stats(); st.Written != n || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := r.Submit(finished{}); !errors.Is(err, ErrRecorderClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}

// TestRecorderRetries: a failing write is retried until it succeeds, and the
// waiter is released only then.
func TestRecorderRetries(t *testing.T) {
	clk := clock.NewFake(t0)
	var calls atomic.Int32
	write := func(context.Context, []finished) error {
		if calls.Add(1) < 3 {
			return errors.New("store down")
		}
		return nil
	}
	r := NewRecorder(write, RecorderOptions{}, clk, quiet())
	done, err := r.Submit(finished{rec: usage.Record{RequestID: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ { // step the backoff timers as the writer arms them
		select {
		case <-done:
			if calls.Load() != 3 {
				t.Fatalf("released after %d writes", calls.Load())
			}
			_ = r.Close(context.Background())
			return
		default:
		}
		for clk.Waiters() == 0 && calls.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		clk.Advance(5 * time.Second)
	}
	t.Fatal("never released")
}

// TestRecorderBounded: when the store falls behind, Submit waits instead of
// queueing without bound.
func TestRecorderBounded(t *testing.T) {
	release := make(chan struct{})
	write := func(context.Context, []finished) error { <-release; return nil }
	r := NewRecorder(write, RecorderOptions{BatchSize: 2, QueueSize: 2}, clock.Real{}, quiet())
	for i := range 2 {
		if _, err := r.Submit(finished{rec: usage.Record{RequestID: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan struct{})
	go func() {
		_, _ = r.Submit(finished{rec: usage.Record{RequestID: "third"}})
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("a third record was queued past the bound of 2")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-blocked
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 3 {
		t.Fatalf("wrote %d", st.Written)
	}
}

// TestRecorderGathersRunnableSubmitters: with one processor, requests that
// are ready to submit when the first one wakes the writer are committed in
// its batch, not each in a batch of its own behind it (the woken writer
// runs first; it must yield to them before cutting the batch).
func TestRecorderGathersRunnableSubmitters(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector randomises which runnable goroutine runs next, which this test is about")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var sizes []int // written by the writer goroutine alone, read after Close
	write := func(_ context.Context, batch []finished) error {
		sizes = append(sizes, len(batch))
		return nil
	}
	r := NewRecorder(write, RecorderOptions{}, clock.Real{}, quiet())
	const n = 16
	start := make(chan struct{})
	var ready, wg sync.WaitGroup
	for i := range n {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			done, err := r.Submit(finished{rec: usage.Record{RequestID: fmt.Sprint("r", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			<-done
		}()
	}
	ready.Wait()
	close(start) // all n become runnable at once
	wg.Wait()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Almost always one batch of n; the scheduler's periodic turn of its
	// global queue may hand the writer back before all have run, but never
	// twice in a row before the first of them has.
	if sizes[0] < 2 {
		t.Fatalf("batches %v: the first holds only the record that woke the writer", sizes)
	}
}

// TestRecorderGatherRounds: before cutting a batch the writer yields while
// records keep arriving, stops after two yields in a row that brought
// nothing, after eight in all, once the batch is full, or at once when
// closed. Each case's yield plays the submitters: it queues the records
// that arrive during that yield.
func TestRecorderGatherRounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		queued   int   // records queued when the writer wakes
		batch    int   // BatchSize
		closed   bool  // the recorder is closing
		arrivals []int // records queued during each yield; then 0
		always   bool  // one record during every yield, without end
		want     int   // yields
	}{
		{name: "a lone record waits two yields", queued: 1, batch: 256, want: 2},
		{name: "arrivals then quiet", queued: 1, batch: 256, arrivals: []int{3, 1}, want: 4},
		{name: "a quiet yield between arrivals starts the count again", queued: 1, batch: 256,
			arrivals: []int{0, 2, 0, 1}, want: 6},
		{name: "a steady stream stops after eight yields", queued: 1, batch: 256, always: true, want: gatherRounds},
		{name: "a full batch stops it", queued: 1, batch: 3, always: true, want: 2},
		{name: "a batch full on waking is cut at once", queued: 3, batch: 3, want: 0},
		{name: "a closing recorder does not wait", queued: 1, batch: 256, closed: true, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Recorder{opt: RecorderOptions{BatchSize: tc.batch}, closed: tc.closed, cur: &generation{}}
			r.cur.items = make([]finished, tc.queued)
			yields := 0
			r.yield = func() {
				if yields++; yields > 3*gatherRounds {
					t.Fatalf("gather yielded %d times", yields)
				}
				n := 0
				if tc.always {
					n = 1
				} else if yields <= len(tc.arrivals) {
					n = tc.arrivals[yields-1]
				}
				r.mu.Lock() // a submitter queues under the lock gather released
				r.cur.items = append(r.cur.items, make([]finished, n)...)
				r.mu.Unlock()
			}
			r.mu.Lock()
			r.gather()
			r.mu.Unlock()
			if yields != tc.want {
				t.Errorf("gather yielded %d times, want %d", yields, tc.want)
			}
		})
	}
}
