package schedule

import (
	"context"
	"errors"
	"testing"
	"time"
)

// saturate makes every replica report a long engine queue at now.
func saturate(p *Pool, now time.Time) {
	for i := range p.Len() {
		p.Replica(i).SetMetrics(&Metrics{At: now, Healthy: true, Waiting: 100})
	}
}

func req(class Class, tenant string) *Request {
	r := prompt(int(class)*1000+len(tenant), 64)
	r.Class, r.Tenant = class, tenant
	return r
}

func TestQueueOrdersByClassThenTenantsInTurn(t *testing.T) {
	p := newPool(t, 2, PoolConfig{})
	s := NewScheduler(p, LeastRequest{}, QueueConfig{})
	saturate(p, t0)
	type sub struct {
		class  Class
		tenant string
	}
	var ws []*Waiter
	// Tenant a floods the standard class; b and c send one each; one
	// interactive request arrives last; a batch request is there too.
	subs := []sub{{Batch, "a"}, {Standard, "a"}, {Standard, "a"}, {Standard, "a"}, {Standard, "b"}, {Standard, "a"}, {Standard, "c"}, {Interactive, "z"}}
	for i, x := range subs {
		w := &Waiter{Req: req(x.class, x.tenant)}
		w.Req.Deadline = t0.Add(24 * time.Hour)
		if o := s.Submit(w, t0.Add(time.Duration(i)*time.Millisecond)); o != Queued {
			t.Fatalf("submission %d: %v, want queued", i, o)
		}
		ws = append(ws, w)
	}
	if s.Waiting(Standard) != 6 || s.Waiting(Interactive) != 1 || s.Waiting(Batch) != 1 {
		t.Fatalf("waiting %d/%d/%d", s.Waiting(Interactive), s.Waiting(Standard), s.Waiting(Batch))
	}
	// Room appears: everything leaves in order.
	fresh(p, t0.Add(time.Second))
	out := s.Pump(t0.Add(time.Second), nil)
	var order []string
	for _, w := range out {
		order = append(order, w.Req.Class.String()[:1]+w.Req.Tenant)
		if w.Outcome != Dispatched || w.Ticket == nil {
			t.Fatalf("pumped waiter %+v not dispatched", w)
		}
	}
	// The batch request stays: standard work was still waiting when the
	// pump looked, and after it the replicas carry online load... unless
	// there is room; either way it must come after every online request.
	want := []string{"iz", "sa", "sb", "sc", "sa", "sa", "sa"}
	for i, w := range want {
		if i >= len(order) || order[i] != w {
			t.Fatalf("dispatch order %v, want %v first", order, want)
		}
	}
	for _, w := range out {
		if w.Req.Class != Batch && w.Ticket.Replica < 0 {
			t.Fatal("no replica")
		}
	}
}

func TestBoundedWaitFailsOpen(t *testing.T) {
	p := newPool(t, 3, PoolConfig{})
	s := NewScheduler(p, Prefix{}, QueueConfig{MaxWait: [2]time.Duration{2 * time.Second, 10 * time.Second}})
	saturate(p, t0)
	p.Dispatch(prompt(1, 500), Decision{Replica: 0}, t0)
	p.Dispatch(prompt(1, 500), Decision{Replica: 2}, t0)
	w := &Waiter{Req: req(Interactive, "a")}
	if s.Submit(w, t0) != Queued {
		t.Fatal("not queued on a saturated pool")
	}
	saturate(p, t0.Add(time.Second))
	if out := s.Pump(t0.Add(time.Second), nil); len(out) != 0 {
		t.Fatal("left the queue before its wait bound while the pool is saturated")
	}
	saturate(p, t0.Add(2*time.Second))
	out := s.Pump(t0.Add(2*time.Second), nil)
	if len(out) != 1 || !out[0].Decision.Saturated || out[0].Decision.Replica != 1 {
		t.Fatalf("after 2 s: %d left; decision %+v, want fail open to idle replica 1", len(out), out)
	}
	st := s.Stats()[Interactive]
	if st.FailOpen != 1 || st.WaitMax != 2*time.Second {
		t.Fatalf("stats %+v", st)
	}
}

func TestBatchWaitsForRoomAndItsDeadline(t *testing.T) {
	p := newPool(t, 1, PoolConfig{})
	s := NewScheduler(p, Prefix{}, QueueConfig{BatchMaxKV: 0.5, BatchMargin: time.Hour})
	p.Replica(0).SetMetrics(&Metrics{At: t0, Healthy: true, KVUsage: 0.6}) // room for online, not for batch
	b := &Waiter{Req: req(Batch, "a")}
	b.Req.Deadline = t0.Add(3 * time.Hour)
	if s.Submit(b, t0) != Queued {
		t.Fatal("batch dispatched onto a replica above its KV gate")
	}
	on := &Waiter{Req: req(Interactive, "a")}
	if s.Submit(on, t0) != Dispatched {
		t.Fatal("interactive request not dispatched to a replica with room")
	}
	on.Ticket.End()
	if out := s.Pump(t0.Add(time.Minute), nil); len(out) != 0 {
		t.Fatal("batch went out although the replica is above its gate")
	}
	// The KV cache drains: batch goes.
	p.Replica(0).SetMetrics(&Metrics{At: t0.Add(2 * time.Minute), Healthy: true, KVUsage: 0.2})
	if out := s.Pump(t0.Add(2*time.Minute), nil); len(out) != 1 || out[0] != b {
		t.Fatal("batch did not go out when the replica had room")
	}
	// A batch request whose deadline nears is promoted and fails open like
	// standard work.
	late := &Waiter{Req: req(Batch, "b")}
	late.Req.Deadline = t0.Add(5 * time.Hour)
	saturate(p, t0)
	s.Submit(late, t0)
	now := t0.Add(4*time.Hour + time.Minute)
	saturate(p, now)
	s.Pump(now, nil)
	if st := s.Stats(); st[Batch].Promoted != 1 || s.Waiting(Standard) != 1 {
		t.Fatalf("promotion: %+v, %d standard waiting", st[Batch], s.Waiting(Standard))
	}
	now = now.Add(31 * time.Second)
	saturate(p, now)
	if out := s.Pump(now, nil); len(out) != 1 || out[0] != late || !out[0].Decision.Saturated {
		t.Fatal("promoted batch request did not fail open after the standard wait bound")
	}
}

func TestFreeTierShedFirst(t *testing.T) {
	p := newPool(t, 2, PoolConfig{})
	s := NewScheduler(p, Prefix{}, QueueConfig{MaxQueued: 1})
	saturate(p, t0)
	free := req(Interactive, "f")
	free.Free = true
	if o := s.Submit(&Waiter{Req: free}, t0); o != Shed {
		t.Fatalf("free tier on a saturated pool: %v, want shed", o)
	}
	if o := s.Submit(&Waiter{Req: req(Interactive, "p")}, t0); o != Queued {
		t.Fatalf("paid request: %v, want queued", o)
	}
	if o := s.Submit(&Waiter{Req: req(Interactive, "p")}, t0); o != Shed {
		t.Fatalf("beyond MaxQueued: %v, want shed", o)
	}
	if _, err := s.Acquire(context.Background(), free, func() time.Time { return t0 }); !errors.Is(err, ErrShed) {
		t.Fatalf("Acquire of a shed request: %v", err)
	}
	// With overflow on, saturated paid traffic goes to vendors instead.
	s2 := NewScheduler(p, Prefix{}, QueueConfig{Overflow: true})
	if o := s2.Submit(&Waiter{Req: req(Interactive, "p")}, t0); o != Overflow {
		t.Fatalf("with overflow: %v", o)
	}
	if o := s2.Submit(&Waiter{Req: free}, t0); o != Shed {
		t.Fatalf("free tier with overflow: %v, want shed", o)
	}
}

func TestAcquireCancelledWhileQueuedLeavesNoLoad(t *testing.T) {
	p := newPool(t, 1, PoolConfig{})
	s := NewScheduler(p, Prefix{}, QueueConfig{})
	saturate(p, t0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, req(Interactive, "a"), func() time.Time { return t0 })
		done <- err
	}()
	for s.Waiting(Interactive) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire returned %v", err)
	}
	if s.Waiting(Interactive) != 0 {
		t.Fatal("cancelled request still queued")
	}
	// A request dispatched by Pump reaches its caller with a ticket.
	fresh(p, t0)
	go func() {
		w, err := s.Acquire(context.Background(), req(Interactive, "a"), func() time.Time { return t0 })
		if err == nil {
			w.Ticket.End()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l := p.Load(0, t0); l.InFlight != 0 {
		t.Fatalf("load after end: %+v", l)
	}
}

func TestBatchWaitsWhileOnlineFirstTokensAreSlow(t *testing.T) {
	p := newPool(t, 1, PoolConfig{})
	s := NewScheduler(p, Prefix{}, QueueConfig{BatchMaxTTFT: 400 * time.Millisecond})
	fresh(p, t0)
	// An online request took 1.5 s to its first token.
	on := &Waiter{Req: req(Interactive, "a")}
	if s.Submit(on, t0) != Dispatched {
		t.Fatal("online request not dispatched")
	}
	on.Ticket.FirstToken(t0.Add(1500 * time.Millisecond))
	on.Ticket.End()
	now := t0.Add(2 * time.Second)
	fresh(p, now)
	if l := p.Load(0, now); l.OnlineTTFT != 1500*time.Millisecond {
		t.Fatalf("online TTFT %v, want 1.5s", l.OnlineTTFT)
	}
	b := &Waiter{Req: req(Batch, "b")}
	if s.Submit(b, now) != Queued {
		t.Fatal("batch dispatched to a replica whose online first tokens take 1.5 s")
	}
	// Five seconds without online first tokens: the replica is free for batch.
	later := now.Add(6 * time.Second)
	fresh(p, later)
	if out := s.Pump(later, nil); len(out) != 1 {
		t.Fatal("batch still waits once online traffic has gone quiet")
	}
}
