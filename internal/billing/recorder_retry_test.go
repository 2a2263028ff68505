package billing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/usage"
)

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeLog is a write function that records each batch it was given and
// fails while fail says so.
type writeLog struct {
	mu        sync.Mutex
	batches   [][]string
	deadlines []time.Duration // left of each write's context when it began
	fail      func(call int) bool
}

func (w *writeLog) write(ctx context.Context, batch []finished) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, len(batch))
	for i, f := range batch {
		ids[i] = f.rec.RequestID
	}
	w.batches = append(w.batches, ids)
	if dl, ok := ctx.Deadline(); ok {
		w.deadlines = append(w.deadlines, time.Until(dl))
	}
	if w.fail != nil && w.fail(len(w.batches)) {
		return errors.New("store down")
	}
	return nil
}

func (w *writeLog) calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.batches)
}

// TestRecorderBacksOff: a store that keeps failing is retried after 10 ms,
// then twice as long each time up to 2 s, so a struggling database is not
// hammered; each write has 30 s to commit.
func TestRecorderBacksOff(t *testing.T) {
	clk := clock.NewFake(t0)
	w := &writeLog{fail: func(call int) bool { return call <= 10 }}
	r := NewRecorder(w.write, RecorderOptions{}, clk, quiet())
	done, err := r.Submit(finished{rec: usage.Record{RequestID: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1280, 2000, 2000} // ms
	for i, d := range want {
		d *= time.Millisecond
		waitFor(t, fmt.Sprintf("failure %d", i+1), func() bool { return w.calls() == i+1 && clk.Waiters() == 1 })
		clk.Advance(d - time.Nanosecond)
		if w.calls() != i+1 || clk.Waiters() != 1 {
			t.Fatalf("after failure %d: retried before %v", i+1, d)
		}
		clk.Advance(time.Nanosecond)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("never released")
	}
	if n := w.calls(); n != 11 {
		t.Fatalf("%d writes, want 11", n)
	}
	for _, left := range w.deadlines {
		if left < 25*time.Second || left > 30*time.Second {
			t.Errorf("a write had %v to commit, want 30 s", left)
		}
	}
	if len(w.deadlines) != 11 {
		t.Errorf("%d of 11 writes had a deadline", len(w.deadlines))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRecorderGivesUpAtClose: once closed, a batch the store refuses 20
// times in a row is given up: its request ids are logged for the holds to
// be reconciled, its waiters released, and Close says records were lost.
// Until then Close waits, or returns when its context ends.
func TestRecorderGivesUpAtClose(t *testing.T) {
	clk := clock.NewFake(t0)
	w := &writeLog{fail: func(int) bool { return true }}
	var logs bytes.Buffer
	var logMu sync.Mutex
	r := NewRecorder(w.write, RecorderOptions{}, clk, slog.New(slog.NewTextHandler(&lockedBuffer{mu: &logMu, b: &logs}, nil)))
	done, err := r.Submit(finished{rec: usage.Record{RequestID: "lost-1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with its context ended = %v, want context.Canceled", err)
	}
	for i := 0; ; i++ {
		select {
		case <-r.done:
		default:
			if i > 100 {
				t.Fatalf("still writing after %d failures", w.calls())
			}
			waitFor(t, "a retry timer", func() bool {
				select {
				case <-r.done:
					return true
				default:
					return clk.Waiters() == 1
				}
			})
			clk.Advance(2 * time.Second)
			continue
		}
		break
	}
	if n := w.calls(); n != 20 {
		t.Errorf("gave up after %d writes, want 20", n)
	}
	select {
	case <-done:
	default:
		t.Error("the waiter of a record given up was not released")
	}
	if err := r.Close(context.Background()); err == nil || !strings.Contains(err.Error(), "not written") {
		t.Errorf("Close after records were lost = %v", err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if out := logs.String(); !strings.Contains(out, "NOT written") || !strings.Contains(out, "lost-1") {
		t.Errorf("log %s does not name the request given up", out)
	}
}

// lockedBuffer is a buffer that a logger and the test share.
type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestRecorderDelay: with a Delay, a batch that is not full waits that long
// for more records before it is written; a full one is written at once;
// no write is ever of nothing.
func TestRecorderDelay(t *testing.T) {
	clk := clock.NewFake(t0)
	release := make(chan struct{})
	w := &writeLog{}
	write := func(ctx context.Context, batch []finished) error {
		err := w.write(ctx, batch)
		if w.calls() == 1 {
			<-release // hold the first commit while more records queue
		}
		return err
	}
	r := NewRecorder(write, RecorderOptions{BatchSize: 4, Delay: time.Second}, clk, quiet())
	submit := func(id string) <-chan struct{} {
		done, err := r.Submit(finished{rec: usage.Record{RequestID: id}})
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	submit("a")
	waitFor(t, "the writer to wait its delay", func() bool { return clk.Waiters() == 1 })
	submit("b")
	submit("c")
	clk.Advance(time.Second - time.Nanosecond)
	if n := w.calls(); n != 0 || clk.Waiters() != 1 {
		t.Fatalf("%d writes before the delay passed", n)
	}
	clk.Advance(time.Nanosecond)
	waitFor(t, "the first write", func() bool { return w.calls() == 1 })
	var last <-chan struct{}
	for _, id := range []string{"d", "e", "f", "g"} {
		last = submit(id)
	}
	close(release)
	select { // a full batch: no delay, so no clock step
	case <-last:
	case <-time.After(10 * time.Second):
		t.Fatal("a full batch waited")
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := fmt.Sprint(w.batches); got != "[[a b c] [d e f g]]" {
		t.Errorf("batches %s, want [[a b c] [d e f g]]", got)
	}
}
