package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"baimo/internal/route"
	"baimo/internal/store/sqlcore"
	"baimo/internal/usage"
)

var (
	_ usage.Store      = (*DB)(nil)
	_ usage.Auditor    = (*DB)(nil)
	_ route.EventStore = (*DB)(nil)
)

// WriteRecords stores recs in one transaction; a request id already stored
// is left as it was.
func (db *DB) WriteRecords(ctx context.Context, recs []usage.Record) error {
	if len(recs) > 0 {
		return db.Tx(ctx, func(tx pgx.Tx) error { return db.WriteRecordsTx(ctx, tx, recs) })
	}
	return nil
}

// WriteRecordsTx stores recs inside tx (a few multi-row statements) and adds
// those it stored to the rollups, so that callers can commit them with other
// writes atomically.
func (db *DB) WriteRecordsTx(ctx context.Context, tx pgx.Tx, recs []usage.Record) error {
	return db.InsertRecords(ctx, querier{tx}, recs)
}

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
	return sqlcore.AddRoutingEvent(ctx, e, func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return db.Tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `LOCK TABLE routing_events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			return fn(querier{tx})
		})
	})
}
