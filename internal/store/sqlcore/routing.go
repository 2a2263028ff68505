package sqlcore

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/route"
)

// AddRoutingEvent appends e with the Querier that run passes: each store
// runs the insert as its seq order needs (see route.EventStore: readers
// must see seqs become visible in order).
func AddRoutingEvent(ctx context.Context, e route.Event, run func(ctx context.Context, fn func(Querier) error) error) error {
	if err := e.Validate(); err != nil {
		return err
	}
	err := run(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO routing_events (kind, channel, key_id, reason, node, at_ns)
			VALUES ($1, $2, $3, $4, $5, $6)`, string(e.Kind), e.Channel, e.Key, e.Reason, e.Node, e.At.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("add routing event %s %s/%s: %w", e.Kind, e.Channel, e.Key, err)
	}
	return nil
}

// RoutingEventsAfter returns at most limit events with a seq above seq, in
// seq order.
func (s *Store) RoutingEventsAfter(ctx context.Context, seq int64, limit int) ([]route.Event, error) {
	limit = max(1, min(limit, route.MaxEventBatch))
	out, err := queryAll(ctx, s.read, func(r Row) (route.Event, error) {
		var e route.Event
		var kind string
		var at int64
		err := r.Scan(&e.Seq, &kind, &e.Channel, &e.Key, &e.Reason, &e.Node, &at)
		e.Kind, e.At = route.EventKind(kind), time.Unix(0, at).UTC()
		return e, err
	}, `SELECT seq, kind, channel, key_id, reason, node, at_ns FROM routing_events WHERE seq > $1 ORDER BY seq LIMIT $2`,
		seq, limit)
	if err != nil {
		return nil, fmt.Errorf("routing events after %d: %w", seq, err)
	}
	return out, nil
}

// LastRoutingEventSeq returns the highest seq in the log, or 0.
func (s *Store) LastRoutingEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.read.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM routing_events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last routing event: %w", err)
	}
	return seq, nil
}

// PruneRoutingEvents deletes the events that happened before t.
func (s *Store) PruneRoutingEvents(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.write.Exec(ctx, `DELETE FROM routing_events WHERE at_ns < $1`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune routing events: %w", err)
	}
	return n, nil
}
