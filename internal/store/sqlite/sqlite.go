// Package sqlite stores baimo's data in an embedded SQLite database (pure Go,
// WAL mode). It is the default store; package postgres is the other one. Both
// run the SQL of package sqlcore and pass the same conformance suite in
// package storetest; this package adds only what SQLite needs: one writer,
// transactions that start with BEGIN IMMEDIATE, and prepared statements.
//
// Writes go through one connection and start with BEGIN IMMEDIATE, so two
// writers never deadlock on a lock upgrade; reads use a pool of their own.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"baimo/internal/store/sqlcore"
)

// core is the SQL this store shares with package postgres.
type core = sqlcore.Store

// DB is a baimo store in one SQLite file.
type DB struct {
	*core
	write *sql.DB // one connection: SQLite has one writer
	read  *sql.DB
	stmts *stmtCache // statements of write transactions, prepared once
	path  string
}

// Open opens (creating if needed) the database file at path and applies the
// migrations it has not seen.
func Open(ctx context.Context, path string) (*DB, error) {
	// A checkpoint every 10,000 WAL pages (about 40 MB) rather than SQLite's
	// 1,000: each checkpoint syncs the database file and stalls the writer,
	// which shows in the gateway's p99 latency.
	pragmas := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(1)",
		"cache_size(-8192)", "temp_store(MEMORY)", "wal_autocheckpoint(10000)"} {
		pragmas.Add("_pragma", p)
	}
	// Escape the path: a '#' or '?' in it would otherwise end the file name.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	db := &DB{core: sqlcore.New(querier{r}, querier{w}), write: w, read: r, stmts: newStmtCache(w), path: path}
	err = sqlcore.Migrate(ctx, sqlcore.SQLite, time.Now().UnixNano(), func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return db.Tx(ctx, func(tx *sql.Tx) error { return fn(querier{tx}) })
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.close()
	return errors.Join(db.read.Close(), db.write.Close())
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.read.PingContext(ctx) }

// Tx runs fn in one write transaction (BEGIN IMMEDIATE), committing if fn
// returns nil and rolling back otherwise.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// tx runs fn in one write transaction whose statements are prepared once
// per database.
func (db *DB) tx(ctx context.Context, fn func(sqlcore.Querier) error) error {
	db.stmts.prepare(ctx)
	return db.Tx(ctx, func(tx *sql.Tx) error { return fn(preparedTx{tx: tx, stmts: db.stmts}) })
}
