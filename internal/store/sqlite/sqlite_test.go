package sqlite

import (
	"context"
	"path/filepath"
	"testing"

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
