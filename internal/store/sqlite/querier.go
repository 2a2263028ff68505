package sqlite

import (
	"context"
	"database/sql"
	"sync"

	"baimo/internal/store/sqlcore"
)

// sqlRunner is what database/sql's DB, Conn and Tx have in common.
type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// querier adapts database/sql to sqlcore.Querier.
type querier struct{ r sqlRunner }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return rowsAffected(q.r.ExecContext(ctx, rebind(query), args...))
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	rows, err := q.r.QueryContext(ctx, rebind(query), args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return q.r.QueryRowContext(ctx, rebind(query), args...)
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sqlRows is database/sql's Rows with pgx's Close.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// preparedTx is a write transaction whose statements are prepared once per
// database on the write connection (parsing SQL costs more than running it
// in SQLite). Its statements ignore the cancellation of their context: the
// driver would otherwise start a watcher goroutine per statement. The
// transaction as a whole still ends with its context (database/sql rolls it
// back), and no statement of it waits for a lock: it holds the only one.
type preparedTx struct {
	tx    *sql.Tx
	stmts *stmtCache
}

func (t preparedTx) stmt(ctx context.Context, query string) sqlRunner {
	if st := t.stmts.get(query); st != nil {
		return stmtRunner{t.tx.StmtContext(ctx, st)}
	}
	return rebinding{t.tx}
}

// rebinding runs texts as rebind turns them.
type rebinding struct{ r sqlRunner }

func (b rebinding) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return b.r.ExecContext(ctx, rebind(query), args...)
}

func (b rebinding) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return b.r.QueryContext(ctx, rebind(query), args...)
}

func (b rebinding) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return b.r.QueryRowContext(ctx, rebind(query), args...)
}

func (t preparedTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return rowsAffected(t.stmt(ctx, query).ExecContext(context.WithoutCancel(ctx), query, args...))
}

func (t preparedTx) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	rows, err := t.stmt(ctx, query).QueryContext(context.WithoutCancel(ctx), query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t preparedTx) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return t.stmt(ctx, query).QueryRowContext(context.WithoutCancel(ctx), query, args...)
}

// stmtRunner runs a prepared statement as a sqlRunner (the query text is
// the statement's own).
type stmtRunner struct{ st *sql.Stmt }

func (s stmtRunner) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return s.st.ExecContext(ctx, args...)
}

func (s stmtRunner) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return s.st.QueryContext(ctx, args...)
}

func (s stmtRunner) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return s.st.QueryRowContext(ctx, args...)
}

// maxPrepared bounds the statements kept prepared; the ledger and the
// recorder use a few dozen texts, so past this one is run unprepared.
const maxPrepared = 256

// stmtCache holds the prepared statements of the write connection by text.
// A statement cannot be prepared inside a transaction on the one write
// connection (database/sql would wait for the connection the transaction
// holds), so a text first seen inside one runs unprepared and is prepared
// before the next transaction begins.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool // seen, not prepared yet
	failed map[string]bool // cannot be prepared (several statements)
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}, failed: map[string]bool{}}
}

// get returns query's prepared statement, or nil (and notes it for
// prepare) when it has none yet.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if !c.failed[query] && len(c.stmts)+len(c.wanted)+len(c.failed) < maxPrepared {
		c.wanted[query] = true
	}
	return nil
}

// prepare prepares the texts noted by get; call it outside a transaction.
func (c *stmtCache) prepare(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
	}
	c.wanted = map[string]bool{}
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, rebind(q))
		c.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				c.failed[q] = true
			}
		} else if c.stmts != nil {
			c.stmts[q] = st
		} else {
			_ = st.Close() // closed meanwhile
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}
