package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"baimo/internal/usage"
)

// ErrRecorderClosed is returned by Submit after Close.
var ErrRecorderClosed = errors.New("usage recorder closed")

// WriteFunc stores one batch of records atomically.
type WriteFunc func(ctx context.Context, recs []usage.Record) error

// Recorder writes usage records in batches (group commit): records submitted
// by concurrent requests are collected for up to a delay or a batch size and
// written in one transaction, so the request path never waits for a write of
// its own. A failed write is retried until it succeeds or the recorder is
// closed with a deadline; no record is dropped silently. The queue is bounded:
// when the store falls behind, Submit waits.
type Recorder struct {
	write     WriteFunc
	batchSize int
	delay     time.Duration
	log       *slog.Logger

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan usage.Record
	done   chan struct{}
	lost   int // records given up at a forced close
}

// NewRecorder starts a recorder.
func NewRecorder(write WriteFunc, batchSize, queueSize int, delay time.Duration, log *slog.Logger) *Recorder {
	r := &Recorder{write: write, batchSize: batchSize, delay: delay, log: log,
		queue: make(chan usage.Record, queueSize), done: make(chan struct{})}
	go r.loop()
	return r
}

// Submit queues rec for writing.
func (r *Recorder) Submit(rec usage.Record) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrRecorderClosed
	}
	r.queue <- rec
	return nil
}

// Close stops taking records and writes all queued ones. If ctx ends first,
// the records still unwritten are logged (request ids) and counted as lost.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		if r.lost > 0 {
			return errors.New("usage recorder: records were not written")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	batch := make([]usage.Record, 0, r.batchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		rec, ok := <-r.queue
		if !ok {
			return
		}
		batch = append(batch[:0], rec)
		// Collect more until the batch is full or the delay has passed.
		timer.Reset(r.delay)
	collect:
		for len(batch) < r.batchSize {
			select {
			case rec, ok := <-r.queue:
				if !ok {
					break collect
				}
				batch = append(batch, rec)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		r.flush(batch)
	}
}

func (r *Recorder) flush(batch []usage.Record) {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.write(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		r.log.Error("write usage records", "records", len(batch), "attempt", attempt, "err", err)
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
		r.mu.RLock()
		closing := r.closed
		r.mu.RUnlock()
		if closing && attempt >= 20 {
			ids := make([]string, len(batch))
			for i := range batch {
				ids[i] = batch[i].RequestID
			}
			r.log.Error("usage records NOT written; holds for them will be reconciled", "request_ids", ids)
			r.lost += len(batch)
			return
		}
	}
}
