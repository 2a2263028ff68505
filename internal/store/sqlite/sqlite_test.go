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
