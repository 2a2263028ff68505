package sqlite

import (
	"context"
	"database/sql"

	"baimo/internal/route"
	"baimo/internal/store/sqlcore"
	"baimo/internal/usage"
)

var _ interface {
	usage.Store
	usage.Auditor
	route.EventStore
} = (*DB)(nil)

// WriteRecords stores recs in one write transaction (nothing when there
// are none).
func (db *DB) WriteRecords(ctx context.Context, recs []usage.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return db.tx(ctx, func(q sqlcore.Querier) error { return db.InsertRecords(ctx, q, recs) })
}

// WriteRecordsTx stores recs (and their rollups) inside tx, so that callers
// can commit them with other writes atomically.
func (db *DB) WriteRecordsTx(ctx context.Context, tx *sql.Tx, recs []usage.Record) error {
	return db.InsertRecords(ctx, querier{tx}, recs)
}

// AddRoutingEvent appends a routing event. SQLite has one writer and the
// seq is assigned inside its transaction, so seqs become visible in order.
func (db *DB) AddRoutingEvent(ctx context.Context, e route.Event) error {
	return sqlcore.AddRoutingEvent(ctx, e, func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return fn(querier{db.write})
	})
}
