// Package postgres stores baimo's data in PostgreSQL, for several gateway
// nodes sharing one database. It runs the SQL of package sqlcore, as package
// sqlite does, and passes the same conformance suite (package storetest);
// this package adds only what PostgreSQL needs: transactions retried on
// serialization failures and deadlocks, a lock that orders routing events,
// and pipelined multi-row statements for a batch's holds and settlements.
package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"baimo/internal/store/sqlcore"
)

// core is the SQL this store shares with package sqlite.
type core = sqlcore.Store

// Connection timing defaults (see Open).
const (
	defaultConnectTimeout = 5 * time.Second
	healthCheckPeriod     = 5 * time.Second
	idleInTxTimeout       = time.Second
)

// DB is a baimo store in a PostgreSQL database.
type DB struct {
	*core
	pool *pgxpool.Pool
}

// Open connects to the database at dsn and applies the migrations it has not
// seen. A dsn may set search_path (options=-csearch_path=...) to keep several
// stores apart in one database, as the tests do.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	// A connection attempt to a database that does not answer (a
	// partition drops the packets) must not hang a caller without a
	// deadline: the pool's own dials, the migrations at start. The DSN's
	// connect_timeout wins when set.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// Find idle connections that died in an outage within seconds, not a
	// minute, so the pool is fresh when the database is back.
	cfg.HealthCheckPeriod = healthCheckPeriod
	// A node cut off in the middle of a transaction holds its row locks
	// (a tenant's account, the revenue account every batch updates) until
	// the server ends its session: every other node's holds and
	// settlements wait meanwhile. Our transactions never sit idle between
	// statements for long, so the server ends one that does within a
	// second. The DSN's own setting wins.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(idleInTxTimeout.Milliseconds()))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := &DB{core: sqlcore.New(querier{pool}, querier{pool}), pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Pool returns the connection pool, for LISTEN/NOTIFY and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Tx runs fn in one transaction, committing if fn returns nil.
func (db *DB) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, fn)
}

// migrate applies the migrations not yet recorded, each in a transaction
// that first takes an advisory lock, so that two nodes starting at once do
// not race.
func (db *DB) migrate(ctx context.Context) error {
	return sqlcore.Migrate(ctx, sqlcore.Postgres, time.Now().UnixNano(), func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return db.Tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7165429)`); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			return fn(querier{tx})
		})
	})
}

// pgRunner is what pgx's pool, connection and transaction have in common.
type pgRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier adapts pgx to sqlcore.Querier.
type querier struct{ r pgRunner }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.r.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	return q.r.Query(ctx, query, args...)
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return q.r.QueryRow(ctx, query, args...)
}
