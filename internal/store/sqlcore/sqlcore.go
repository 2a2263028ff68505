// Package sqlcore is the SQL that baimo's two stores share, written once: the
// schema (migrations), the row shapes of usage records and of the ledger, the
// ledger's primitives and reports, and the read side of keys, prices, routing
// events and usage. Package sqlite and package postgres keep only what truly
// differs: opening the database, transaction control and retries, SQLite's
// locking and prepared statements, PostgreSQL's pipelined fast paths.
//
// One query text serves both databases:
//   - placeholders are PostgreSQL's $1, $2, ...; the SQLite driver
//     (modernc.org/sqlite) binds a parameter named $N to the N-th argument, so
//     a number may repeat or come out of order in both (package sqlite turns
//     $1 ... $n in order into anonymous ?s, which SQLite binds faster);
//   - casts are standard SQL, CAST(x AS BIGINT) (PostgreSQL's sum of bigints
//     is numeric; SQLite's is an integer and the cast changes nothing);
//   - booleans are Go bools: PostgreSQL columns are BOOLEAN, SQLite's are
//     INTEGER 0/1, and both drivers convert either way.
//
// Each store adapts its driver to Querier (database/sql for SQLite, pgx for
// PostgreSQL); Dialect holds what the schema spells differently.
package sqlcore

import (
	"context"
	"database/sql"
	"errors"
)

// Querier runs one statement: on a pool, or inside a transaction.
type Querier interface {
	// Exec runs a statement and returns how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a query for one row; its Scan reports a missing row as
	// an error that errors.Is matches to sql.ErrNoRows (pgx's ErrNoRows
	// does).
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is the result of Query (database/sql's and pgx's rows, adapted).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is one row of QueryRow, or a row of Rows.
type Row interface{ Scan(dest ...any) error }

// noRows reports whether err is a missing row.
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q Querier, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// Store is the part of a store that runs outside the ledger's transactions:
// keys, prices, routing events and usage records. Package sqlite and package
// postgres embed it.
type Store struct {
	read  Querier // reads
	write Querier // one-statement writes, each its own transaction
	zones rollupZones
	names *names // the dictionary of records' repeated strings
}

// New returns a Store that reads with read and writes with write.
func New(read, write Querier) *Store { return &Store{read: read, write: write, names: newNames()} }
