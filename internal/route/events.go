package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
)

// Routing events. Several gateway nodes sharing one store each keep their
// own routing state; a key parked on one node, or an operator's unpark or
// channel reset through one node's admin API, would otherwise stay on that
// node. A Replicator appends such changes to a log in the shared store and
// applies, every second, the ones other nodes appended. The log is the only
// channel between nodes, so it works with the database alone.
//
// Only changes that are facts about the outside world or an operator's
// decision are replicated: a key that a vendor refused is refused by every
// node, and an operator means every node. Breakers, cooldowns, in-flight
// counts and latency stay per node: they measure the path from that node.

// EventKind names a change of routing state that nodes replicate.
type EventKind string

// The event kinds.
const (
	EventPark   EventKind = "park"   // a key was taken out of rotation (Router.Park)
	EventUnpark EventKind = "unpark" // an operator brought a key back (Router.Unpark)
	EventReset  EventKind = "reset"  // an operator reset a channel (Router.ResetChannel)
)

// Bounds on routing events.
const (
	MaxEventText  = 512  // bytes of an event's reason or node
	MaxEventBatch = 1000 // events one EventStore.RoutingEventsAfter returns at most
)

// Event is one change of routing state made on one node, for the others.
type Event struct {
	// Seq is assigned by the store when the event is added; it increases in
	// the order events become visible to readers. Zero when adding.
	Seq     int64
	Kind    EventKind
	Channel string
	Key     string // empty for EventReset
	Reason  string
	Node    string // the node where the change was made
	At      time.Time
}

// Validate reports whether e can be stored.
func (e Event) Validate() error {
	switch e.Kind {
	case EventPark, EventUnpark:
		if err := checkID(e.Key); err != nil {
			return fmt.Errorf("routing event %s: key: %w", e.Kind, err)
		}
	case EventReset:
		if e.Key != "" {
			return fmt.Errorf("routing event reset: names key %q, want none", e.Key)
		}
	default:
		return fmt.Errorf("routing event: unknown kind %q", e.Kind)
	}
	if err := checkID(e.Channel); err != nil {
		return fmt.Errorf("routing event %s: channel: %w", e.Kind, err)
	}
	if e.Node == "" || len(e.Node) > MaxEventText || len(e.Reason) > MaxEventText {
		return fmt.Errorf("routing event %s: node must be 1 to %d bytes and reason at most %d", e.Kind, MaxEventText, MaxEventText)
	}
	if e.At.IsZero() {
		return fmt.Errorf("routing event %s: no time", e.Kind)
	}
	return nil
}

// EventStore is the append-only log of routing events that the nodes
// sharing a store read and write.
type EventStore interface {
	// AddRoutingEvent appends e (its Seq is ignored) after validating it.
	AddRoutingEvent(ctx context.Context, e Event) error
	// RoutingEventsAfter returns, in Seq order, at most limit events
	// (clamped to 1..MaxEventBatch) whose Seq is above seq. A reader that
	// passes the last Seq it saw never misses an event: the store makes an
	// event visible only after every event with a lower Seq.
	RoutingEventsAfter(ctx context.Context, seq int64, limit int) ([]Event, error)
	// LastRoutingEventSeq returns the highest Seq ever assigned that is
	// still in the log, or 0 if it is empty.
	LastRoutingEventSeq(ctx context.Context) (int64, error)
	// PruneRoutingEvents deletes the events that happened before t and
	// returns how many. Seqs are never reused.
	PruneRoutingEvents(ctx context.Context, before time.Time) (int64, error)
}

// EventTarget is what a Replicator applies other nodes' events to; *Router
// is one. Its Park must not call Options.OnPark, so that applied parks are
// not appended again.
type EventTarget interface {
	Park(channelID, keyID, reason string) error
	Unpark(channelID, keyID string) error
	ResetChannel(channelID string) error
}

var _ EventTarget = (*Router)(nil)

// ReplicatorOptions configure a Replicator. Zero fields get the defaults.
type ReplicatorOptions struct {
	// Node names this node in the events it appends (required); events
	// with this name are not applied. It must differ between live nodes.
	Node   string
	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default slog.Default()
	// Interval is the time between polls of the log (default 1 s).
	Interval time.Duration
	// Batch is how many events one read returns at most (default 256,
	// at most MaxEventBatch); a poll reads up to maxPollBatches of them.
	Batch int
	// Queue is how many parks may wait to be appended (default 256); parks
	// beyond it are dropped with a warning rather than block a request.
	Queue int
	// Retention is how long events stay in the log (default 24 h); they
	// are pruned every PruneEvery (default 1 h).
	Retention  time.Duration
	PruneEvery time.Duration
	// Timeout bounds each call to the store (default 5 s).
	Timeout time.Duration
}

// maxPollBatches bounds the reads of one poll, so a node that fell far
// behind catches up over several polls instead of one unbounded one.
const maxPollBatches = 16

// Replicator appends this node's routing changes to an EventStore and
// applies those of other nodes. Create it before the Router (its OnPark goes
// in Options.OnPark), call Start, then Run.
type Replicator struct {
	st    EventStore
	opt   ReplicatorOptions
	clk   clock.Clock
	log   *slog.Logger
	queue chan Event

	mu        sync.Mutex // serialises Poll; guards the fields below
	last      int64      // highest Seq seen
	lastPrune time.Time

	dropped atomic.Int64
}

// NewReplicator returns a replicator over st.
func NewReplicator(st EventStore, opt ReplicatorOptions) (*Replicator, error) {
	if st == nil {
		return nil, errors.New("routing events: no store")
	}
	if opt.Node == "" || len(opt.Node) > MaxEventText {
		return nil, fmt.Errorf("routing events: node name must be 1 to %d bytes", MaxEventText)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	opt.Batch = min(opt.Batch, MaxEventBatch)
	if opt.Queue <= 0 {
		opt.Queue = 256
	}
	if opt.Retention <= 0 {
		opt.Retention = 24 * time.Hour
	}
	if opt.PruneEvery <= 0 {
		opt.PruneEvery = time.Hour
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	return &Replicator{st: st, opt: opt, clk: opt.Clock, log: opt.Logger, queue: make(chan Event, opt.Queue)}, nil
}

// OnPark queues a park made by this node for appending, for
// Options.OnPark. It never blocks: when the queue is full the park is
// dropped with a warning (other nodes then find the key's fault themselves,
// at the cost of one failed attempt each).
func (p *Replicator) OnPark(k ParkedKey) {
	e := Event{Kind: EventPark, Channel: k.Channel, Key: k.Key, Reason: truncate(k.Reason, MaxEventText),
		Node: p.opt.Node, At: k.Since}
	if e.At.IsZero() {
		e.At = p.clk.Now().UTC()
	}
	select {
	case p.queue <- e:
	default:
		p.dropped.Add(1)
		p.log.Warn("route: park not replicated: queue full", "channel", k.Channel, "key", k.Key, "queue", cap(p.queue))
	}
}

// Dropped returns how many parks OnPark dropped because the queue was full.
func (p *Replicator) Dropped() int64 { return p.dropped.Load() }

// Record appends a change an operator made on this node (EventUnpark or
// EventReset), after it was applied locally; it sets Node and, if zero, At.
func (p *Replicator) Record(ctx context.Context, e Event) error {
	e.Node = p.opt.Node
	if e.At.IsZero() {
		e.At = p.clk.Now().UTC()
	}
	e.Reason = truncate(e.Reason, MaxEventText)
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	if err := p.st.AddRoutingEvent(ctx, e); err != nil {
		return fmt.Errorf("record routing %s of %s/%s: %w", e.Kind, e.Channel, e.Key, err)
	}
	return nil
}

// Start makes the replicator apply only events appended from now on: a
// node starting has no state to bring up to date with history (parks made
// before it started expire or are found again by its own traffic), and
// replaying old parks would restart their park timers.
func (p *Replicator) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	seq, err := p.st.LastRoutingEventSeq(ctx)
	if err != nil {
		return fmt.Errorf("routing events: last seq: %w", err)
	}
	p.mu.Lock()
	p.last = max(p.last, seq)
	p.mu.Unlock()
	return nil
}

// Run appends queued parks and polls the log every Interval, applying other
// nodes' events to t, until ctx ends.
func (p *Replicator) Run(ctx context.Context, t EventTarget) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.writeLoop(ctx) }()
	defer wg.Wait()
	tick := p.clk.NewTicker(p.opt.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		if _, err := p.Poll(ctx, t); err != nil && ctx.Err() == nil {
			p.log.Warn("route: poll routing events", "err", err)
		}
		p.maybePrune(ctx)
	}
}

// writeLoop appends queued parks one by one until ctx ends.
func (p *Replicator) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-p.queue:
			p.write(ctx, e)
		}
	}
}

// drain appends the parks queued now; for tests.
func (p *Replicator) drain(ctx context.Context) {
	for {
		select {
		case e := <-p.queue:
			p.write(ctx, e)
		default:
			return
		}
	}
}

func (p *Replicator) write(ctx context.Context, e Event) {
	wctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	if err := p.st.AddRoutingEvent(wctx, e); err != nil && ctx.Err() == nil {
		p.log.Warn("route: park not replicated", "channel", e.Channel, "key", e.Key, "err", err)
	}
}

// Poll reads the events appended since the last poll and applies those of
// other nodes to t, in order; it returns how many it applied. Events naming
// a channel or key t does not know (the nodes' configurations differ) are
// skipped.
func (p *Replicator) Poll(ctx context.Context, t EventTarget) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	applied := 0
	for range maxPollBatches {
		rctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
		evs, err := p.st.RoutingEventsAfter(rctx, p.last, p.opt.Batch)
		cancel()
		if err != nil {
			return applied, fmt.Errorf("routing events after %d: %w", p.last, err)
		}
		for _, e := range evs {
			// A store returns Seq order; anything at or below the last Seq
			// seen is a repeat and is not applied twice.
			if e.Seq <= p.last {
				continue
			}
			p.last = e.Seq
			if e.Node == p.opt.Node {
				continue
			}
			if p.apply(t, e) {
				applied++
			}
		}
		if len(evs) < p.opt.Batch {
			break
		}
	}
	return applied, nil
}

// apply applies one event of another node to t and reports whether it did.
func (p *Replicator) apply(t EventTarget, e Event) bool {
	var err error
	switch e.Kind {
	case EventPark:
		reason := e.Reason
		if reason == "" {
			reason = "parked"
		}
		err = t.Park(e.Channel, e.Key, truncate(reason+" (on "+e.Node+")", 2*MaxEventText))
	case EventUnpark:
		err = t.Unpark(e.Channel, e.Key)
	case EventReset:
		err = t.ResetChannel(e.Channel)
	default:
		// A newer node's kind: skip it rather than stop the log.
		p.log.Warn("route: routing event of unknown kind skipped", "seq", e.Seq, "kind", e.Kind, "node", e.Node)
		return false
	}
	switch {
	case errors.Is(err, ErrUnknownKey):
		p.log.Debug("route: routing event for an unknown channel or key skipped", "seq", e.Seq, "kind", e.Kind,
			"channel", e.Channel, "key", e.Key, "node", e.Node)
		return false
	case err != nil:
		p.log.Warn("route: routing event not applied", "seq", e.Seq, "kind", e.Kind, "channel", e.Channel,
			"key", e.Key, "node", e.Node, "err", err)
		return false
	}
	p.log.Info("route: applied routing event of another node", "seq", e.Seq, "kind", e.Kind, "channel", e.Channel,
		"key", e.Key, "node", e.Node)
	return true
}

// maybePrune deletes events older than Retention, at most once every
// PruneEvery. Every node prunes; the deletes are idempotent.
func (p *Replicator) maybePrune(ctx context.Context) {
	now := p.clk.Now()
	p.mu.Lock()
	due := p.lastPrune.IsZero() || now.Sub(p.lastPrune) >= p.opt.PruneEvery
	if due {
		p.lastPrune = now
	}
	p.mu.Unlock()
	if !due {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	n, err := p.st.PruneRoutingEvents(pctx, now.Add(-p.opt.Retention))
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("route: prune routing events", "err", err)
	case n > 0:
		p.log.Debug("route: pruned routing events", "deleted", n)
	}
}

// truncate cuts s to at most n bytes, on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
