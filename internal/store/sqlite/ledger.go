package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"baimo/internal/ledger"
	"baimo/internal/store/sqlcore"
)

var _ ledger.Store = (*DB)(nil)

// LedgerUpdate runs fn in one write transaction (BEGIN IMMEDIATE: SQLite has
// one writer, so the conditional updates in it can never race).
func (db *DB) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	return db.tx(ctx, func(q sqlcore.Querier) error {
		l := db.Ledger(q)
		if err := fn(l); err != nil {
			return err
		}
		return l.FlushRollups(ctx)
	})
}

// LedgerView runs fn in one read transaction on the read pool (a WAL
// snapshot taken at its first read).
func (db *DB) LedgerView(ctx context.Context, fn func(ledger.Snapshot) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(db.Ledger(querier{tx}))
}
