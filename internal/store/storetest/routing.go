package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"baimo/internal/route"
)

// testRouting checks the log of routing events (route.EventStore): append,
// read after a seq with a limit, the last seq, pruning without reuse of
// seqs, and that a poller reading concurrently with several writers sees
// every event exactly once.
func testRouting(t *testing.T, st Store) {
	s, ok := st.(route.EventStore)
	if !ok {
		t.Fatalf("%T does not implement route.EventStore", st)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)

	if seq, err := s.LastRoutingEventSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("LastRoutingEventSeq of an empty log = %d, %v; want 0, nil", seq, err)
	}
	if evs, err := s.RoutingEventsAfter(ctx, 0, 10); err != nil || len(evs) != 0 {
		t.Fatalf("RoutingEventsAfter of an empty log = %v, %v; want none", evs, err)
	}

	for _, bad := range []route.Event{
		{Kind: "explode", Channel: "a", Key: "k", Node: "n", At: at},
		{Kind: route.EventPark, Channel: "", Key: "k", Node: "n", At: at},
		{Kind: route.EventPark, Channel: "a", Key: "", Node: "n", At: at},
		{Kind: route.EventReset, Channel: "a", Key: "k", Node: "n", At: at},
		{Kind: route.EventUnpark, Channel: "a", Key: "k", Node: "", At: at},
		{Kind: route.EventUnpark, Channel: "a", Key: "k", Node: "n"},
	} {
		if err := s.AddRoutingEvent(ctx, bad); err == nil {
			t.Errorf("AddRoutingEvent(%+v) succeeded; want a validation error", bad)
		}
	}

	want := []route.Event{
		{Kind: route.EventPark, Channel: "deepseek", Key: "k0", Reason: "key:http_401", Node: "host-a/127.0.0.1:8080", At: at},
		{Kind: route.EventUnpark, Channel: "deepseek", Key: "k0", Reason: "operator", Node: "host-b/127.0.0.1:8081", At: at.Add(time.Minute)},
		{Kind: route.EventReset, Channel: "openai", Node: "host-a/127.0.0.1:8080", At: at.Add(2 * time.Minute)},
	}
	for _, e := range want {
		e.Seq = 999 // ignored: the store assigns it
		if err := s.AddRoutingEvent(ctx, e); err != nil {
			t.Fatalf("AddRoutingEvent(%+v): %v", e, err)
		}
	}
	got, err := s.RoutingEventsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("RoutingEventsAfter(0) = %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("event %d has seq %d after %d; want increasing", i, got[i].Seq, got[i-1].Seq)
		}
		w := want[i]
		w.Seq = got[i].Seq
		if got[i] != w || got[i].At.Location() != time.UTC {
			t.Errorf("event %d = %+v, want %+v", i, got[i], w)
		}
	}
	if got[0].Seq <= 0 {
		t.Errorf("first seq %d, want positive (0 means before the first event)", got[0].Seq)
	}
	if after, err := s.RoutingEventsAfter(ctx, got[0].Seq, 10); err != nil || len(after) != 2 || after[0].Seq != got[1].Seq {
		t.Errorf("RoutingEventsAfter(first seq) = %+v, %v; want the second and third", after, err)
	}
	if one, err := s.RoutingEventsAfter(ctx, 0, 1); err != nil || len(one) != 1 || one[0].Seq != got[0].Seq {
		t.Errorf("RoutingEventsAfter(0, limit 1) = %+v, %v; want the first only", one, err)
	}
	if none, err := s.RoutingEventsAfter(ctx, got[2].Seq, 10); err != nil || len(none) != 0 {
		t.Errorf("RoutingEventsAfter(last seq) = %+v, %v; want none", none, err)
	}
	if seq, err := s.LastRoutingEventSeq(ctx); err != nil || seq != got[2].Seq {
		t.Errorf("LastRoutingEventSeq = %d, %v; want %d", seq, err, got[2].Seq)
	}

	// Pruning deletes by time, strictly before.
	if n, err := s.PruneRoutingEvents(ctx, want[1].At); err != nil || n != 1 {
		t.Errorf("PruneRoutingEvents(second's time) = %d, %v; want 1 deleted", n, err)
	}
	if left, err := s.RoutingEventsAfter(ctx, 0, 10); err != nil || len(left) != 2 || left[0].Seq != got[1].Seq {
		t.Errorf("after pruning the first: %+v, %v; want the second and third", left, err)
	}
	if n, err := s.PruneRoutingEvents(ctx, at.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneRoutingEvents(all) = %d, %v; want 2 deleted", n, err)
	}
	// A seq is never reused, even once the events that held it are gone:
	// a node that saw it would otherwise skip the new event.
	next := route.Event{Kind: route.EventPark, Channel: "c", Key: "k", Node: "n", At: at.Add(2 * time.Hour)}
	if err := s.AddRoutingEvent(ctx, next); err != nil {
		t.Fatal(err)
	}
	after, err := s.RoutingEventsAfter(ctx, got[2].Seq, 10)
	if err != nil || len(after) != 1 || after[0].Seq <= got[2].Seq {
		t.Fatalf("after pruning everything, a new event = %+v, %v; want one with a seq above %d", after, err, got[2].Seq)
	}
	last := after[0].Seq
	if seq, err := s.LastRoutingEventSeq(ctx); err != nil || seq != last {
		t.Errorf("LastRoutingEventSeq = %d, %v; want %d", seq, err, last)
	}

	testRoutingConcurrent(t, s, last)
}

// testRoutingConcurrent appends from several goroutines while a poller reads
// "after the last seq I saw" in small batches, as route.Replicator does: it
// must see every event exactly once, in increasing seq order. On PostgreSQL
// this fails if seqs can become visible out of order.
func testRoutingConcurrent(t *testing.T, s route.EventStore, from int64) {
	const writers, each, batch = 6, 40, 7
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := route.Event{Kind: route.EventPark, Channel: fmt.Sprintf("w%d", w), Key: fmt.Sprintf("k%d", i),
					Node: "node", At: at}
				if err := s.AddRoutingEvent(ctx, e); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int{}
	lastSeq := from
	poll := func() {
		evs, err := s.RoutingEventsAfter(ctx, lastSeq, batch)
		if err != nil {
			t.Fatalf("RoutingEventsAfter(%d): %v", lastSeq, err)
		}
		for _, e := range evs {
			if e.Seq <= lastSeq {
				t.Fatalf("seq %d read after %d", e.Seq, lastSeq)
			}
			lastSeq = e.Seq
			seen[e.Channel+"/"+e.Key]++
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		poll() // also once after the writers are done
	}
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AddRoutingEvent: %v", err)
	}
	for { // drain what the last batches left
		n := len(seen)
		before := lastSeq
		poll()
		if lastSeq == before && len(seen) == n {
			break
		}
	}
	missing := 0
	for w := range writers {
		for i := range each {
			switch n := seen[fmt.Sprintf("w%d/k%d", w, i)]; {
			case n == 0:
				missing++
			case n > 1:
				t.Errorf("event w%d/k%d read %d times", w, i, n)
			}
		}
	}
	if missing > 0 || len(seen) != writers*each {
		t.Errorf("the poller missed %d of %d events appended concurrently (read %d distinct)", missing, writers*each, len(seen))
	}
}
