package billing

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
	"baimo/internal/usage"
)

// ErrRecorderClosed is returned by Submit after Close.
var ErrRecorderClosed = errors.New("billing: usage recorder closed")

// RecorderOptions tunes the group commit of records and settlements.
type RecorderOptions struct {
	// BatchSize is the most records written in one transaction; default 256.
	BatchSize int
	// QueueSize is the most records waiting to be written; Submit waits
	// while it is full. Default 8192.
	QueueSize int
	// Delay is how long the writer waits for more records before writing a
	// batch that is not full; default 0: a batch is written at once, and the
	// next one fills while it commits.
	Delay time.Duration
}

// finished is a finished request waiting to be rated and settled.
type finished struct {
	rec  usage.Record
	held int64 // the hold placed at admission, in nanos; 0 when none
}

// writeFunc rates and stores one batch atomically.
type writeFunc func(ctx context.Context, batch []finished) error

// generation is the records submitted while the previous batch committed:
// they are written together and their waiters released together.
type generation struct {
	items []finished
	done  chan struct{}
}

// Recorder writes finished requests in batches (group commit): what
// concurrent requests submit while one batch commits is written in the next
// transaction, and each submitter can wait for its own commit. A failed
// write is retried until it succeeds or the recorder is closed with a
// deadline; no record is dropped silently. The queue is bounded: when the
// store falls behind, Submit waits.
type Recorder struct {
	write writeFunc
	opt   RecorderOptions
	clock clock.Clock
	log   *slog.Logger
	yield func() // runtime.Gosched; gather's tests count its calls

	mu      sync.Mutex
	notFull sync.Cond
	cur     *generation
	spare   []finished
	queued  int
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	lost    int

	batches, written atomic.Int64
}

// RecorderStats are a recorder's counters.
type RecorderStats struct {
	Batches int64 // transactions committed
	Written int64 // records committed
	Queued  int   // records waiting
}

// NewRecorder starts a recorder that writes with write.
func NewRecorder(write writeFunc, o RecorderOptions, clk clock.Clock, log *slog.Logger) *Recorder {
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.QueueSize < o.BatchSize {
		o.QueueSize = max(8192, o.BatchSize)
	}
	r := &Recorder{write: write, opt: o, clock: clk, log: log, yield: runtime.Gosched, wake: make(chan struct{}, 1),
		done: make(chan struct{}), cur: &generation{done: make(chan struct{})}}
	r.notFull.L = &r.mu
	go r.loop()
	return r
}

// Submit queues f and returns a channel closed when it is committed.
func (r *Recorder) Submit(f finished) (<-chan struct{}, error) {
	r.mu.Lock()
	for r.queued >= r.opt.QueueSize && !r.closed {
		r.notFull.Wait()
	}
	if r.closed {
		r.mu.Unlock()
		return nil, ErrRecorderClosed
	}
	r.cur.items = append(r.cur.items, f)
	r.queued++
	done := r.cur.done
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return done, nil
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	q := r.queued
	r.mu.Unlock()
	return RecorderStats{Batches: r.batches.Load(), Written: r.written.Load(), Queued: q}
}

// Close stops taking records and writes all queued ones. If ctx ends first,
// it returns ctx's error; the writer gives up a batch after repeated
// failures once closed, logging its request ids (their holds are reconciled).
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.notFull.Broadcast()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		if r.lost > 0 {
			return errors.New("billing: usage records were not written")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	for {
		r.mu.Lock()
		for len(r.cur.items) == 0 && !r.closed {
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		if len(r.cur.items) == 0 {
			r.mu.Unlock()
			return // closed and drained
		}
		if r.opt.Delay > 0 && len(r.cur.items) < r.opt.BatchSize && !r.closed {
			r.mu.Unlock()
			t := r.clock.NewTimer(r.opt.Delay)
			<-t.C()
			r.mu.Lock()
		}
		r.gather()
		g := r.cur
		r.cur = &generation{items: r.spare[:0], done: make(chan struct{})}
		r.mu.Unlock()

		for i := 0; i < len(g.items); i += r.opt.BatchSize {
			r.flush(g.items[i:min(i+r.opt.BatchSize, len(g.items))])
		}
		close(g.done)
		r.mu.Lock()
		r.queued -= len(g.items)
		clear(g.items) // drop the records' references before reuse
		r.spare = g.items[:0]
		r.notFull.Broadcast()
		r.mu.Unlock()
	}
}

// gatherRounds bounds the yields of gather.
const gatherRounds = 8

// gather lets the requests that are ready to run finish and queue their
// records before the batch is cut; r.mu is held on entry and on return.
// Whoever submits first wakes the writer and hands it the processor at
// once (Go runs a woken goroutine next), so with few cores the writer would
// otherwise commit that one record while the requests behind it, already
// runnable, wait for the whole commit: batches of one at any concurrency,
// and a commit's fixed cost (its statements, its WAL frames) paid by each
// request. Each round yields once; gather stops after two rounds in a row
// that brought nothing (one may be the scheduler's periodic turn of the
// global queue, which hands the writer back early), so a lone request
// (c=1) waits for two yields, well under a microsecond each.
func (r *Recorder) gather() {
	idle := 0
	for round := 0; round < gatherRounds && idle < 2 && len(r.cur.items) < r.opt.BatchSize && !r.closed; round++ {
		n := len(r.cur.items)
		r.mu.Unlock()
		r.yield()
		r.mu.Lock()
		if len(r.cur.items) == n {
			idle++
		} else {
			idle = 0
		}
	}
}

func (r *Recorder) flush(batch []finished) {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.write(ctx, batch)
		cancel()
		if err == nil {
			r.batches.Add(1)
			r.written.Add(int64(len(batch)))
			return
		}
		r.log.Error("write usage records", "records", len(batch), "attempt", attempt, "err", err)
		t := r.clock.NewTimer(backoff)
		<-t.C()
		backoff = min(backoff*2, 2*time.Second)
		r.mu.Lock()
		closing := r.closed
		r.mu.Unlock()
		if closing && attempt >= 20 {
			ids := make([]string, len(batch))
			for i := range batch {
				ids[i] = batch[i].rec.RequestID
			}
			r.log.Error("usage records NOT written; holds for them will be reconciled", "request_ids", ids)
			r.lost += len(batch)
			return
		}
	}
}
