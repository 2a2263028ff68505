package billing

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// settleBooks is a ledger whose settlements answer as settle says.
type settleBooks struct {
	*fakeBooks
	settle func(ss []ledger.Settlement) ([]ledger.SettleResult, error)
}

func (s *settleBooks) SettleBatch(ctx context.Context, ss []ledger.Settlement) ([]ledger.SettleResult, error) {
	if s.settle != nil {
		return s.settle(ss)
	}
	return s.fakeBooks.SettleBatch(ctx, ss)
}

// TestSettlementRetriedUntilItCommits: a settlement the ledger could not
// commit is tried again (on the real clock when none is given) and the
// request's waiter released only once it committed: a failed write never
// drops a record.
func TestSettlementRetriedUntilItCommits(t *testing.T) {
	fb := &fakeBooks{available: 1 << 60, kind: ledger.Postpaid}
	var mu sync.Mutex
	tries := 0
	books := &settleBooks{fakeBooks: fb, settle: func(ss []ledger.Settlement) ([]ledger.SettleResult, error) {
		mu.Lock()
		tries++
		n := tries
		mu.Unlock()
		if n < 3 {
			return nil, errors.New("database is locked")
		}
		return fb.SettleBatch(context.Background(), ss)
	}}
	b := New(Options{Rater: testRater(t), Books: books, Log: quiet()}) // no clock: the real one
	done, err := b.Finish(&Ticket{Held: 100}, usage.Record{RequestID: "r", Model: "m", Channel: "c", UpstreamModel: "cheap", Start: t0,
		Usage: usage.Usage{Input: 10, Output: 5, Source: usage.SourceVendor}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter was never released")
	}
	fb.mu.Lock()
	settled := len(fb.settled)
	fb.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if settled != 1 || tries != 3 {
		t.Fatalf("settled %d records after %d tries, want 1 after 3", settled, tries)
	}
	// The waiter is released when its batch committed; the queue's count
	// drops just after, so it is read once the recorder is closed.
	if st := b.RecorderStats(); st.Written != 1 || st.Batches != 1 {
		t.Errorf("recorder stats %+v, want one record in one batch", st)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.RecorderStats(); st.Written != 1 || st.Batches != 1 || st.Queued != 0 {
		t.Errorf("recorder stats after close %+v, want one record in one batch, none queued", st)
	}
}

// TestSettlementProblemsLogged: a settlement the ledger refused, and a cost
// the balance could not cover (recorded as debt), are logged with the
// request id for an operator; a clean settlement logs nothing.
func TestSettlementProblemsLogged(t *testing.T) {
	for _, tt := range []struct {
		name string
		res  ledger.SettleResult
		want []string // in the log; none: the log is empty
	}{
		{"clean", ledger.SettleResult{Posted: 10}, nil},
		{"refused", ledger.SettleResult{Err: ledger.ErrInvalid}, []string{"settlement refused", "request_id=r", "invalid"}},
		{"debt", ledger.SettleResult{Posted: 10, Debt: 1}, []string{"recorded as debt", "request_id=r", "debt=0.000000001"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			books := &settleBooks{fakeBooks: &fakeBooks{}, settle: func(ss []ledger.Settlement) ([]ledger.SettleResult, error) {
				out := make([]ledger.SettleResult, len(ss))
				for i, s := range ss {
					out[i] = tt.res
					out[i].RequestID = s.Record.RequestID
				}
				return out, nil
			}}
			var logs bytes.Buffer
			b := New(Options{Rater: testRater(t), Books: books, Log: logTo(&logs)})
			done, err := b.Finish(&Ticket{Held: 100}, usage.Record{RequestID: "r", Model: "m", Channel: "c", UpstreamModel: "cheap",
				Start: t0, Usage: usage.Usage{Input: 10, Output: 5, Source: usage.SourceVendor}})
			if err != nil {
				t.Fatal(err)
			}
			<-done
			if err := b.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if tt.want == nil && out != "" {
				t.Errorf("logged %s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("log %q lacks %q", out, w)
				}
			}
		})
	}
}

// recordSink is a usage store's write side.
type recordSink struct {
	mu   sync.Mutex
	recs []usage.Record
}

func (s *recordSink) WriteRecords(_ context.Context, recs []usage.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

// TestMeteringOnlyWritesRatedRecords: without books (billing.ledger off)
// every record is rated and written to the record store; one that cannot
// be rated is written at 0, marked Unrated, since nothing was held.
func TestMeteringOnlyWritesRatedRecords(t *testing.T) {
	r := testRater(t)
	sink := &recordSink{}
	b := New(Options{Rater: r, Records: sink, Log: quiet()})
	u := usage.Usage{Input: 1000, Output: 100, Source: usage.SourceVendor}
	for _, up := range []string{"cheap", "vanished"} {
		tk, err := b.Admit(context.Background(), &Request{ID: up, Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 100, Start: t0})
		if err != nil || tk.Held != 0 {
			t.Fatalf("Admit = %+v, %v; want nothing held", tk, err)
		}
		done, err := b.Finish(tk, usage.Record{RequestID: up, Model: "m", Channel: "c", UpstreamModel: up, Start: t0, Usage: u})
		if err != nil {
			t.Fatal(err)
		}
		<-done
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 2 {
		t.Fatalf("wrote %d records", len(sink.recs))
	}
	if got := sink.recs[0]; got.CostNanos != rate(t, r, "cheap", u) || got.PriceVersion == Unrated || got.Currency != "CNY" {
		t.Errorf("rated record written as %+v", got)
	}
	if got := sink.recs[1]; got.CostNanos != 0 || got.PriceVersion != Unrated || got.Currency != "CNY" {
		t.Errorf("unratable record written as %+v, want 0 marked %q", got, Unrated)
	}
}

// TestSweepLogged: each sweep that resolved expired holds is logged (an
// operator sees nodes dying); a sweep that found none logs nothing; a
// sweep interval of 0 turns the sweeper off.
func TestSweepLogged(t *testing.T) {
	for _, tt := range []struct {
		res    ledger.SweepResult
		logged bool
	}{
		{ledger.SweepResult{}, false},
		{ledger.SweepResult{Voided: 1}, true},
		{ledger.SweepResult{Settled: 1}, true},
		{ledger.SweepResult{Settled: 2, Voided: 2}, true},
	} {
		clk := clock.NewFake(t0)
		books := &sweepBooks{sweeps: make(chan struct{}, 1), res: tt.res}
		var logs bytes.Buffer
		b := New(Options{Rater: testRater(t), Books: books, Clock: clk, Log: logTo(&logs)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { b.Run(ctx, nil, time.Minute); close(done) }()
		for clk.Waiters() < 1 {
			time.Sleep(time.Millisecond)
		}
		clk.Advance(time.Minute)
		<-books.sweeps
		cancel()
		<-done
		if got := strings.Contains(logs.String(), "swept expired holds"); got != tt.logged {
			t.Errorf("sweep %+v: logged %v (%s), want %v", tt.res, got, logs.String(), tt.logged)
		}
		_ = b.Close(context.Background())
	}
	books := &sweepBooks{sweeps: make(chan struct{}, 1)}
	b := New(Options{Rater: testRater(t), Books: books, Clock: clock.NewFake(t0), Log: quiet()})
	defer b.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.Run(ctx, nil, 0) // no sweeper: returns when ctx ends
	if len(books.sweeps) != 0 {
		t.Error("a sweep interval of 0 swept")
	}
}
