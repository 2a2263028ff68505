package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/clock"
)

// fakeEvents is an EventStore with one function field per method; newLog
// fills them with an in-memory log.
type fakeEvents struct {
	add   func(ctx context.Context, e Event) error
	after func(ctx context.Context, seq int64, limit int) ([]Event, error)
	last  func(ctx context.Context) (int64, error)
	prune func(ctx context.Context, before time.Time) (int64, error)
}

func (f *fakeEvents) AddRoutingEvent(ctx context.Context, e Event) error { return f.add(ctx, e) }
func (f *fakeEvents) RoutingEventsAfter(ctx context.Context, seq int64, limit int) ([]Event, error) {
	return f.after(ctx, seq, limit)
}
func (f *fakeEvents) LastRoutingEventSeq(ctx context.Context) (int64, error) { return f.last(ctx) }
func (f *fakeEvents) PruneRoutingEvents(ctx context.Context, before time.Time) (int64, error) {
	return f.prune(ctx, before)
}

// memLog is the in-memory log behind newLog.
type memLog struct {
	mu     sync.Mutex
	seq    int64
	events []Event
	reads  int
}

func newLog() (*fakeEvents, *memLog) {
	l := &memLog{}
	return &fakeEvents{
		add: func(_ context.Context, e Event) error {
			if err := e.Validate(); err != nil {
				return err
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			l.seq++
			e.Seq = l.seq
			l.events = append(l.events, e)
			return nil
		},
		after: func(_ context.Context, seq int64, limit int) ([]Event, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.reads++
			var out []Event
			for _, e := range l.events {
				if e.Seq > seq && len(out) < limit {
					out = append(out, e)
				}
			}
			return out, nil
		},
		last: func(context.Context) (int64, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.seq, nil
		},
		prune: func(_ context.Context, before time.Time) (int64, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			n := len(l.events)
			l.events = slices.DeleteFunc(l.events, func(e Event) bool { return e.At.Before(before) })
			return int64(n - len(l.events)), nil
		},
	}, l
}

func (l *memLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// recorder is an EventTarget that records the calls it gets.
type recorder struct {
	calls   []string
	unknown map[string]bool // channels it does not know
}

func (r *recorder) call(s, channel string) error {
	if r.unknown[channel] {
		return fmt.Errorf("%s: %w", channel, ErrUnknownKey)
	}
	r.calls = append(r.calls, s)
	return nil
}
func (r *recorder) Park(c, k, reason string) error { return r.call("park "+c+"/"+k+" "+reason, c) }
func (r *recorder) Unpark(c, k string) error       { return r.call("unpark "+c+"/"+k, c) }
func (r *recorder) ResetChannel(c string) error    { return r.call("reset "+c, c) }

func newReplicator(t *testing.T, st EventStore, node string, opt ReplicatorOptions) *Replicator {
	t.Helper()
	opt.Node = node
	if opt.Clock == nil {
		opt.Clock = clock.NewFake(t0)
	}
	p, err := NewReplicator(st, opt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAdd(t *testing.T, st EventStore, events ...Event) {
	t.Helper()
	for _, e := range events {
		if e.At.IsZero() {
			e.At = t0
		}
		if err := st.AddRoutingEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplicatorApply(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		events  []Event
		applied int
		calls   []string
	}{
		{"park", []Event{{Kind: EventPark, Channel: "a", Key: "k0", Reason: "key:http_401", Node: "B"}}, 1,
			[]string{"park a/k0 key:http_401 (on B)"}},
		{"park without a reason", []Event{{Kind: EventPark, Channel: "a", Key: "k0", Node: "B"}}, 1,
			[]string{"park a/k0 parked (on B)"}},
		{"unpark and reset in order", []Event{
			{Kind: EventUnpark, Channel: "a", Key: "k1", Node: "B"},
			{Kind: EventReset, Channel: "b", Node: "C"},
			{Kind: EventUnpark, Channel: "a", Key: "k0", Node: "C"},
		}, 3, []string{"unpark a/k1", "reset b", "unpark a/k0"}},
		{"own events skipped", []Event{
			{Kind: EventPark, Channel: "a", Key: "k0", Node: "A"},
			{Kind: EventReset, Channel: "a", Node: "A"},
			{Kind: EventReset, Channel: "b", Node: "B"},
		}, 1, []string{"reset b"}},
		{"unknown channel skipped", []Event{
			{Kind: EventPark, Channel: "gone", Key: "k0", Node: "B"},
			{Kind: EventReset, Channel: "b", Node: "B"},
		}, 1, []string{"reset b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newLog()
			p := newReplicator(t, st, "A", ReplicatorOptions{})
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			mustAdd(t, st, tc.events...)
			tgt := &recorder{unknown: map[string]bool{"gone": true}}
			n, err := p.Poll(ctx, tgt)
			if err != nil || n != tc.applied || !slices.Equal(tgt.calls, tc.calls) {
				t.Errorf("Poll = %d, %v, calls %q; want %d, calls %q", n, err, tgt.calls, tc.applied, tc.calls)
			}
			if n, err := p.Poll(ctx, tgt); err != nil || n != 0 || len(tgt.calls) != len(tc.calls) {
				t.Errorf("second Poll = %d, %v, calls %q; want nothing applied again", n, err, tgt.calls)
			}
		})
	}
}

// A store that re-reads events already seen (as one that reads a window
// behind the last seq would) does not get them applied twice; an unknown
// kind from a newer node is skipped.
func TestReplicatorSkipsRepeatsAndUnknownKinds(t *testing.T) {
	ctx := context.Background()
	evs := []Event{
		{Seq: 3, Kind: EventReset, Channel: "a", Node: "B"},
		{Seq: 5, Kind: "drain", Channel: "a", Node: "B"},
		{Seq: 6, Kind: EventReset, Channel: "b", Node: "B"},
	}
	st := &fakeEvents{
		last: func(context.Context) (int64, error) { return 0, nil },
		after: func(_ context.Context, seq int64, limit int) ([]Event, error) {
			return evs, nil // the whole window, whatever seq is asked for
		},
	}
	p := newReplicator(t, st, "A", ReplicatorOptions{})
	tgt := &recorder{}
	if n, err := p.Poll(ctx, tgt); err != nil || n != 2 {
		t.Fatalf("Poll = %d, %v; want 2", n, err)
	}
	evs = append(evs, Event{Seq: 7, Kind: EventReset, Channel: "c", Node: "B"})
	if n, err := p.Poll(ctx, tgt); err != nil || n != 1 {
		t.Fatalf("second Poll = %d, %v; want only the new event", n, err)
	}
	if want := []string{"reset a", "reset b", "reset c"}; !slices.Equal(tgt.calls, want) {
		t.Errorf("calls %q, want %q", tgt.calls, want)
	}
}

func TestReplicatorStartSkipsHistory(t *testing.T) {
	ctx := context.Background()
	st, _ := newLog()
	mustAdd(t, st,
		Event{Kind: EventPark, Channel: "a", Key: "k0", Node: "B"},
		Event{Kind: EventReset, Channel: "a", Node: "B"})
	p := newReplicator(t, st, "A", ReplicatorOptions{})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tgt := &recorder{}
	if n, err := p.Poll(ctx, tgt); err != nil || n != 0 {
		t.Fatalf("Poll after Start = %d, %v; want the history not applied", n, err)
	}
	mustAdd(t, st, Event{Kind: EventUnpark, Channel: "a", Key: "k0", Node: "B"})
	if n, err := p.Poll(ctx, tgt); err != nil || n != 1 || tgt.calls[0] != "unpark a/k0" {
		t.Fatalf("Poll = %d, %v, %q; want the new unpark", n, err, tgt.calls)
	}

	failing := &fakeEvents{last: func(context.Context) (int64, error) { return 0, errors.New("down") }}
	if err := newReplicator(t, failing, "A", ReplicatorOptions{}).Start(ctx); err == nil {
		t.Error("Start with a failing store succeeded")
	}
}

// A poll reads at most maxPollBatches batches: a node far behind catches up
// over several polls.
func TestReplicatorPollBatches(t *testing.T) {
	ctx := context.Background()
	st, l := newLog()
	p := newReplicator(t, st, "A", ReplicatorOptions{Batch: 2})
	total := 2*maxPollBatches + 3
	for i := range total {
		mustAdd(t, st, Event{Kind: EventReset, Channel: fmt.Sprintf("c%d", i), Node: "B"})
	}
	tgt := &recorder{}
	if n, err := p.Poll(ctx, tgt); err != nil || n != 2*maxPollBatches || l.reads != maxPollBatches {
		t.Fatalf("first Poll = %d, %v in %d reads; want %d in %d", n, err, l.reads, 2*maxPollBatches, maxPollBatches)
	}
	if n, err := p.Poll(ctx, tgt); err != nil || n != 3 {
		t.Fatalf("second Poll = %d, %v; want the 3 left", n, err)
	}
	if len(tgt.calls) != total || tgt.calls[total-1] != fmt.Sprintf("reset c%d", total-1) {
		t.Errorf("calls %q", tgt.calls)
	}

	broken := &fakeEvents{after: func(context.Context, int64, int) ([]Event, error) { return nil, errors.New("down") }}
	if _, err := newReplicator(t, broken, "A", ReplicatorOptions{}).Poll(ctx, tgt); err == nil {
		t.Error("Poll with a failing store succeeded")
	}
}

// Two routers, as on two nodes: a key parked by A's traffic is parked on B
// once B polls, with the reason and origin; A does not apply its own event
// and B does not append the park it applied; an unpark recorded on B reaches
// A. Unknown keys in B's config are skipped.
func TestReplicatorTwoNodes(t *testing.T) {
	ctx := context.Background()
	st, l := newLog()
	cfg := Config{Channels: []Channel{ch("a", 0, 1, "k0", "k1")}}
	repA := newReplicator(t, st, "A", ReplicatorOptions{})
	repB := newReplicator(t, st, "B", ReplicatorOptions{})
	clk := clock.NewFake(t0)
	rA, err := New(cfg, Options{Clock: clk, Rand: seeded(1), OnPark: repA.OnPark})
	if err != nil {
		t.Fatal(err)
	}
	rB, err := New(cfg, Options{Clock: clk, Rand: seeded(2), OnPark: repB.OnPark})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Replicator{repA, repB} {
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// A vendor refuses A's key.
	pl := plan(t, rA, Request{})
	a := next(t, &pl)
	if d := pl.Done(&a, Outcome{Status: 401}); d.Effect != EffectPark {
		t.Fatalf("decision %+v, want park", d)
	}
	repA.drain(ctx)
	if evs := l.all(); len(evs) != 1 || evs[0].Kind != EventPark || evs[0].Node != "A" || evs[0].Key != a.Key.ID ||
		evs[0].Channel != "a" || evs[0].Reason != "key:http_401" || !evs[0].At.Equal(t0) {
		t.Fatalf("log after A's park: %+v", evs)
	}
	if n, err := repA.Poll(ctx, rA); err != nil || n != 0 {
		t.Fatalf("A applied %d of its own events (%v)", n, err)
	}
	if n, err := repB.Poll(ctx, rB); err != nil || n != 1 {
		t.Fatalf("B applied %d events (%v), want 1", n, err)
	}
	ps := rB.Parked()
	if len(ps) != 1 || ps[0].Key != a.Key.ID || !strings.HasPrefix(ps[0].Reason, "key:http_401") || !strings.Contains(ps[0].Reason, "A") {
		t.Fatalf("B's parked keys %+v, want %s parked for key:http_401 on A", ps, a.Key.ID)
	}
	repB.drain(ctx)
	if n := len(l.all()); n != 1 {
		t.Fatalf("log has %d events after B applied A's park; an applied park must not be appended again", n)
	}

	// The operator unparks the key through B's admin API.
	if err := rB.Unpark("a", a.Key.ID); err != nil {
		t.Fatal(err)
	}
	if err := repB.Record(ctx, Event{Kind: EventUnpark, Channel: "a", Key: a.Key.ID, Reason: "operator"}); err != nil {
		t.Fatal(err)
	}
	if n, err := repA.Poll(ctx, rA); err != nil || n != 1 || len(rA.Parked()) != 0 {
		t.Fatalf("A applied %d (%v), parked %+v; want the unpark applied", n, err, rA.Parked())
	}

	// A key B's configuration lacks is skipped, not an error.
	mustAdd(t, st, Event{Kind: EventPark, Channel: "a", Key: "k9", Node: "C"}, Event{Kind: EventReset, Channel: "zz", Node: "C"})
	if n, err := repB.Poll(ctx, rB); err != nil || n != 0 {
		t.Fatalf("B applied %d (%v) events for unknown keys", n, err)
	}
	if err := repB.Record(ctx, Event{Kind: EventUnpark, Channel: "a"}); err == nil {
		t.Error("Record of an unpark without a key succeeded")
	}
}

// OnPark never blocks: beyond the queue, parks are dropped and counted.
func TestReplicatorOnParkQueueFull(t *testing.T) {
	ctx := context.Background()
	st, l := newLog()
	p := newReplicator(t, st, "A", ReplicatorOptions{Queue: 2})
	for i := range 3 {
		p.OnPark(ParkedKey{Channel: "a", Key: fmt.Sprintf("k%d", i), Reason: strings.Repeat("x", 2*MaxEventText), Since: t0})
	}
	if p.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", p.Dropped())
	}
	p.drain(ctx)
	evs := l.all()
	if len(evs) != 2 || evs[0].Key != "k0" || evs[1].Key != "k1" || len(evs[0].Reason) != MaxEventText {
		t.Errorf("log %+v, want k0 and k1 with reasons cut to %d bytes", evs, MaxEventText)
	}
}

func TestReplicatorPrune(t *testing.T) {
	ctx := context.Background()
	st, l := newLog()
	clk := clock.NewFake(t0)
	p := newReplicator(t, st, "A", ReplicatorOptions{Clock: clk, Retention: 24 * time.Hour, PruneEvery: time.Hour})
	mustAdd(t, st,
		Event{Kind: EventReset, Channel: "old", Node: "B", At: t0.Add(-25 * time.Hour)},
		Event{Kind: EventReset, Channel: "new", Node: "B", At: t0.Add(-23 * time.Hour)})
	p.maybePrune(ctx)
	if evs := l.all(); len(evs) != 1 || evs[0].Channel != "new" {
		t.Fatalf("after the first prune: %+v, want only the event within the retention", evs)
	}
	clk.Advance(2 * time.Hour) // "new" is now 25 h old
	p.lastPrune = t0.Add(90 * time.Minute)
	p.maybePrune(ctx)
	if len(l.all()) != 1 {
		t.Fatal("pruned again before PruneEvery passed")
	}
	clk.Advance(time.Hour)
	p.maybePrune(ctx)
	if len(l.all()) != 0 {
		t.Fatalf("not pruned after PruneEvery: %+v", l.all())
	}
}

func TestEventValidate(t *testing.T) {
	long := strings.Repeat("n", MaxEventText+1)
	for _, tc := range []struct {
		e  Event
		ok bool
	}{
		{Event{Kind: EventPark, Channel: "a", Key: "k", Node: "n", At: t0}, true},
		{Event{Kind: EventReset, Channel: "a", Node: "n", At: t0}, true},
		{Event{Kind: EventReset, Channel: "a", Key: "k", Node: "n", At: t0}, false},
		{Event{Kind: EventUnpark, Channel: "a", Node: "n", At: t0}, false},
		{Event{Kind: "x", Channel: "a", Key: "k", Node: "n", At: t0}, false},
		{Event{Kind: EventPark, Key: "k", Node: "n", At: t0}, false},
		{Event{Kind: EventPark, Channel: "a", Key: "k", At: t0}, false},
		{Event{Kind: EventPark, Channel: "a", Key: "k", Node: long, At: t0}, false},
		{Event{Kind: EventPark, Channel: "a", Key: "k", Node: "n", Reason: long, At: t0}, false},
		{Event{Kind: EventPark, Channel: "a", Key: "k", Node: "n"}, false},
	} {
		if err := tc.e.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tc.e, err, tc.ok)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"日本", 4, "日"}, {"日本", 2, ""},
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
