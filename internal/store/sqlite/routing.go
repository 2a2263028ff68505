package sqlite

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/route"
)

var _ route.EventStore = (*DB)(nil)

// AddRoutingEvent appends a routing event. SQLite has one writer and the
// seq is assigned inside its transaction, so seqs become visible in order.
func (db *DB) AddRoutingEvent(ctx context.Context, e route.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := db.write.ExecContext(ctx, `INSERT INTO routing_events (kind, channel, key_id, reason, node, at_ns)
		VALUES (?, ?, ?, ?, ?, ?)`, string(e.Kind), e.Channel, e.Key, e.Reason, e.Node, e.At.UnixNano())
	if err != nil {
		return fmt.Errorf("add routing event %s %s/%s: %w", e.Kind, e.Channel, e.Key, err)
	}
	return nil
}

// RoutingEventsAfter returns at most limit events with a seq above seq, in
// seq order.
func (db *DB) RoutingEventsAfter(ctx context.Context, seq int64, limit int) ([]route.Event, error) {
	limit = max(1, min(limit, route.MaxEventBatch))
	rows, err := db.read.QueryContext(ctx, `SELECT seq, kind, channel, key_id, reason, node, at_ns
		FROM routing_events WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("routing events after %d: %w", seq, err)
	}
	defer rows.Close()
	var out []route.Event
	for rows.Next() {
		var e route.Event
		var kind string
		var at int64
		if err := rows.Scan(&e.Seq, &kind, &e.Channel, &e.Key, &e.Reason, &e.Node, &at); err != nil {
			return nil, fmt.Errorf("routing events after %d: %w", seq, err)
		}
		e.Kind, e.At = route.EventKind(kind), time.Unix(0, at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("routing events after %d: %w", seq, err)
	}
	return out, nil
}

// LastRoutingEventSeq returns the highest seq in the log, or 0.
func (db *DB) LastRoutingEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.read.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM routing_events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last routing event: %w", err)
	}
	return seq, nil
}

// PruneRoutingEvents deletes the events that happened before t.
func (db *DB) PruneRoutingEvents(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM routing_events WHERE at_ns < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune routing events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune routing events: %w", err)
	}
	return n, nil
}
