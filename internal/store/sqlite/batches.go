package sqlite

import "baimo/internal/batch"

// BatchStore returns the store of batches, their lines and files.
func (db *DB) BatchStore() batch.Store { return db.Batches(db.tx) }

// BatchBlobs returns the store of files' content in the database (a single
// node keeps them under its data directory instead: batch.DiskBlobs).
func (db *DB) BatchBlobs() batch.Blobs { return db.Blobs() }
