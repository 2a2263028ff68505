// Package sqlite stores baimo's data in an embedded SQLite database (pure Go,
// WAL mode). It is the default store; package postgres is the other one, and
// both pass the same conformance suite in package storetest.
//
// Writes go through one connection and start with BEGIN IMMEDIATE, so two
// writers never deadlock on a lock upgrade; reads use a pool of their own.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"baimo/internal/store/ledgerrows"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a baimo store in one SQLite file.
type DB struct {
	write *sql.DB // one connection: SQLite has one writer
	read  *sql.DB
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
	db := &DB{write: w, read: r, path: path}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
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

// migrate applies, in name order, each embedded migration not yet recorded.
// Migrations are numbered by area (0001 spine, 0100 ledger, 0200 prices, ...)
// so that areas can add theirs independently.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		base := strings.TrimPrefix(name, "migrations/")
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, base).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, base, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Times are stored as Unix nanoseconds, 0 for none, as the ledger's rows.
var (
	unixNanos     = ledgerrows.UnixNanos
	fromUnixNanos = ledgerrows.FromUnixNanos
)
