package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"baimo/internal/ledger"
	"baimo/internal/store/storetest"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTest(t) })
}

// TestConformanceExclusive runs the ledger suite with holds in memory, as
// `baimo serve` does on SQLite.
func TestConformanceExclusive(t *testing.T) {
	storetest.RunExclusive(t, func(t *testing.T) storetest.Store { return openTest(t) })
}

func TestMigrateTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baimo.db")
	for i := 0; i < 2; i++ {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		db.Close()
	}
}

// TestPlaceholdersByNumber pins what package sqlcore's one query text for
// both databases rests on: the driver binds $N to the N-th argument, in any
// order and as often as it appears.
func TestPlaceholdersByNumber(t *testing.T) {
	db := openTest(t)
	var a, b string
	var n int64
	err := db.read.QueryRowContext(context.Background(), `SELECT $2 || $1, $1 || $1, CAST($3 AS BIGINT) + $3`, "x", "y", 20).
		Scan(&a, &b, &n)
	if err != nil || a != "yx" || b != "xx" || n != 40 {
		t.Fatalf("got %q %q %d, %v; want yx xx 40", a, b, n, err)
	}
}

// TestStatementsPrepared checks that the statements of write transactions
// are prepared once, after the transaction that first ran them.
func TestStatementsPrepared(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	write := func() {
		t.Helper()
		err := db.LedgerUpdate(ctx, func(tx ledger.Tx) error {
			_, err := tx.Account(ctx, "tenant:default")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write()
	if n := len(db.stmts.stmts); n != 0 {
		t.Fatalf("%d statements prepared before a second transaction, want 0", n)
	}
	write()
	write()
	if n := len(db.stmts.stmts); n != 1 {
		t.Fatalf("%d statements prepared, want 1", n)
	}
}

// TestUpgrade opens a database the release before the compact records
// wrote: it must read, audit and bill as before.
func TestUpgrade(t *testing.T) {
	db, err := Open(context.Background(), storetest.FixtureFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	storetest.CheckUpgraded(t, db)
}

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)`, `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)`},
		{`SELECT $2 || $1`, `SELECT $2 || $1`},               // out of order: left as it is
		{`SELECT $1 WHERE x = $1`, `SELECT $1 WHERE x = $1`}, // repeated
		{`SELECT '$1', $1`, `SELECT '$1', ?`},                // a literal is no parameter
		{`SELECT 1`, `SELECT 1`},
	} {
		if got := rebindText(tc.in); got != tc.want {
			t.Errorf("rebindText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
