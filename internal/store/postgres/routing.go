package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"baimo/internal/route"
)

var _ route.EventStore = (*DB)(nil)

// AddRoutingEvent appends a routing event.
//
// Readers poll with "seq > the last seq I saw", which is only sound if seqs
// become visible in order. A plain BIGSERIAL does not give that: two
// transactions may draw 5 and 6 and commit 6 first, and a poll between the
// two commits would move past 5 for good. So each append takes a table lock
// that conflicts with itself (SHARE ROW EXCLUSIVE; readers' ACCESS SHARE is
// not blocked) before it draws its seq, and holds it to commit. PostgreSQL
// makes a commit visible before it releases the transaction's locks, so the
// next writer draws a higher seq only once the lower one is visible: seq
// order is commit order. (An append that rolls back leaves a gap, which a
// reader simply never sees.) Appends are rare — a key refused by a vendor, an
// operator's action — so serialising them costs nothing that matters.
func (db *DB) AddRoutingEvent(ctx context.Context, e route.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	err := db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE routing_events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO routing_events (kind, channel, key_id, reason, node, at_ns)
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
func (db *DB) RoutingEventsAfter(ctx context.Context, seq int64, limit int) ([]route.Event, error) {
	limit = max(1, min(limit, route.MaxEventBatch))
	rows, err := db.pool.Query(ctx, `SELECT seq, kind, channel, key_id, reason, node, at_ns
		FROM routing_events WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
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
	if err := db.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM routing_events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last routing event: %w", err)
	}
	return seq, nil
}

// PruneRoutingEvents deletes the events that happened before t.
func (db *DB) PruneRoutingEvents(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM routing_events WHERE at_ns < $1`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune routing events: %w", err)
	}
	return tag.RowsAffected(), nil
}
