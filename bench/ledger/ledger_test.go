// Package ledger_test benchmarks the ledger's request path: hold + settle
// pairs per second with group commit, on SQLite and PostgreSQL.
//
//	go test -run '^$' -bench . -cpu 1 -benchtime 20000x ./bench/ledger/
//
// Set BAIMO_TEST_POSTGRES for the PostgreSQL figures. Results: RESULTS.md.
package ledger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/postgres"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// concurrency is how many requests are in flight at once (goroutines per
// GOMAXPROCS), as in a busy gateway.
const concurrency = 256

func BenchmarkHoldSettleSQLite(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "baimo.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchHoldSettle(b, db, ledger.Options{Node: "bench"})
}

// BenchmarkHoldSettleSQLiteInMemory is the SQLite benchmark as `baimo
// serve` runs it: one process, holds in memory (ledger.Options.Exclusive),
// so the one write of a request is its settlement with its record.
func BenchmarkHoldSettleSQLiteInMemory(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "baimo.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchHoldSettle(b, db, ledger.Options{Node: "bench", Exclusive: true})
}

// BenchmarkHoldInMemory is the cost of one admission with holds in memory:
// what billing adds before a request's upstream call (settlements come
// later, off the request's path).
func BenchmarkHoldInMemory(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "baimo.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := ledger.New(db, ledger.Options{Node: "bench", Exclusive: true})
	defer l.Close()
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "t", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "t", Amount: 10_000_000 * money.Scale}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("req_%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: ids[i], TenantID: "t", KeyID: "key_1",
			Amount: money.New(2_000_000, money.CNY)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHoldSettlePostgres(b *testing.B) {
	db, size := openPostgres(b)
	before := size()
	benchHoldSettle(b, db, ledger.Options{Node: "bench"})
	b.ReportMetric(float64(size()-before)/float64(b.N), "bytes/pair")
}

// openPostgres opens a store in a fresh schema of BAIMO_TEST_POSTGRES
// (skipping without it), dropped at the end, and returns it with a function
// that measures the schema's tables, their indexes and TOAST included, with
// PostgreSQL's free space in them (an updated hold leaves a dead row until
// vacuumed).
func openPostgres(b *testing.B) (*postgres.DB, func() int64) {
	dsn := os.Getenv("BAIMO_TEST_POSTGRES")
	if dsn == "" {
		b.Skip("BAIMO_TEST_POSTGRES is unset; skipping the PostgreSQL benchmark")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("baimo_bench_%d", time.Now().UnixNano())
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(ctx) })
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") }) //nolint:errcheck // best effort
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := postgres.Open(ctx, dsn+sep+"search_path="+schema)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, func() int64 {
		var n int64
		if err := db.Pool().QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
			JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
}

// settleBatcher stands in for the spine's usage writer: settlements go
// through Ledger.Settle, which group-commits them with their records.
func benchHoldSettle(b *testing.B, s ledger.Store, o ledger.Options) {
	ctx := context.Background()
	l := ledger.New(s, o)
	defer l.Close()
	const tenants = 16
	for i := 0; i < tenants; i++ {
		id := fmt.Sprintf("t%02d", i)
		if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: id, Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: id, Amount: 1_000_000 * money.Scale}); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.SetParallelism(concurrency)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			req := fmt.Sprintf("req_%d", n)
			tenant := fmt.Sprintf("t%02d", n%tenants)
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: req, TenantID: tenant, KeyID: "key_1",
				Amount: money.New(2_000_000, money.CNY)}); err != nil {
				b.Error(err)
				return
			}
			rec := usage.Record{RequestID: req, KeyID: "key_1", TenantID: tenant, Endpoint: "chat", Model: "sim-chat",
				Channel: "sim", UpstreamModel: "sim-chat", Status: 200, Complete: true, Start: start,
				Usage: usage.Usage{Input: 100, Output: 50, Source: usage.SourceVendor}, Currency: "CNY", CostNanos: 1_500_000}
			if _, err := l.Settle(ctx, ledger.Settlement{Record: rec}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
	if st := l.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Ops)/float64(st.Batches), "ops/batch")
	}
	rep, err := ledger.Audit(ctx, s, time.Now(), time.Minute)
	if err != nil || !rep.OK {
		b.Fatalf("audit after the benchmark: %+v, %v", rep.Failed(), err)
	}
}
