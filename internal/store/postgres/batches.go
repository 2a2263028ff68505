package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"baimo/internal/batch"
	"baimo/internal/store/sqlcore"
)

// BatchStore returns the store of batches, their lines and files.
func (db *DB) BatchStore() batch.Store {
	return db.Batches(func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return db.Tx(ctx, func(tx pgx.Tx) error { return fn(querier{tx}) })
	})
}

// BatchBlobs returns the store of files' content in the database, which
// the nodes sharing it read.
func (db *DB) BatchBlobs() batch.Blobs { return db.Blobs() }
