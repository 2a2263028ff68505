package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"baimo/bench/prefill"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// BenchmarkSettlePrefilled measures what the gateway's recorder does for
// each finished request, on a database that already holds a long history:
// settle it with its usage record, a batch (the recorder's group commit) per
// transaction, holds in memory as `baimo serve` keeps them. Records are
// generated and rated, and their holds placed, before the clock starts.
// It reports records/s and the bytes the database grew by per record
// (records, ledger rows and indexes).
//
// The database is BAIMO_BENCH_DB, a prefilled SQLite file the benchmark adds
// to (pass a copy):
//
//	go run ./bench/prefill/mkdb -db /tmp/baimo-5m.db -records 5000000
//	cp /tmp/baimo-5m.db /tmp/bench.db
//	BAIMO_BENCH_DB=/tmp/bench.db taskset -c 1 go test -run '^$' -bench SettlePrefilled -benchtime 200000x -cpu 1 ./bench/ledger/
//
// Without it, the benchmark prefills a small database of its own (20,000
// records), which shows the path works but not its speed at scale.
func BenchmarkSettlePrefilled(b *testing.B) {
	ctx := context.Background()
	path := os.Getenv("BAIMO_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "prefilled.db")
		if _, err := prefill.Fill(ctx, prefill.Options{Path: path, Records: 20_000}); err != nil {
			b.Fatal(err)
		}
	}
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchSettlePrefilled(b, path, batch) })
	}
}

func benchSettlePrefilled(b *testing.B, path string, batch int) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	g, err := prefill.NewGenerator(ctx, db, money.CNY, uint64(now.UnixNano()), now.Add(-time.Hour), now)
	if err != nil {
		b.Fatal(err)
	}
	l := ledger.New(db, ledger.Options{Node: "bench", Exclusive: true, HoldTTL: time.Hour})
	defer l.Close()
	ss := make([]ledger.Settlement, b.N)
	for i := range ss {
		rec, err := g.Record(now.Add(time.Duration(i) * time.Microsecond))
		if err != nil {
			b.Fatal(err)
		}
		if h := g.HoldFor(&rec); h > 0 {
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: rec.RequestID, TenantID: rec.TenantID, KeyID: rec.KeyID,
				Amount: money.New(h, money.CNY)}); err != nil {
				b.Fatal(err)
			}
		}
		ss[i] = ledger.Settlement{Record: rec}
	}
	before, err := fileBytes(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		res, err := l.SettleBatch(ctx, ss[i:min(i+batch, b.N)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatalf("settle %s: %v", r.RequestID, r.Err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	after, err := fileBytes(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "bytes/record")
	if os.Getenv("BAIMO_BENCH_DB") == "" {
		p, err := db.ListRecords(ctx, usage.Filter{RequestID: ss[b.N-1].Record.RequestID})
		if err != nil || len(p.Records) != 1 {
			b.Fatalf("the last record is not stored: %v", err)
		}
		rep, err := ledger.Audit(ctx, db, time.Now(), time.Hour)
		if err != nil || !rep.OK {
			b.Fatalf("audit after the benchmark: %+v, %v", rep.Failed(), err)
		}
	}
}

// fileBytes returns the size of the SQLite database at path, its write-ahead
// log checkpointed: pages in use, free pages left out.
func fileBytes(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	var pages, free, size int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())`).Scan(&pages, &free, &size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

// BenchmarkSettlePostgres is BenchmarkSettlePrefilled for a node of a
// three-node deployment on PostgreSQL: realistic records (package
// prefill's), each request's hold a row placed through the ledger before
// the clock starts, settlements in batches as the recorder sends them. It
// reports settlements per second and the bytes the schema grew by per
// request, hold included (records, holds, transfers, rollups, indexes). The schema is fresh: run it with
// enough records (-benchtime 100000x) for the per-table overhead to vanish.
func BenchmarkSettlePostgres(b *testing.B) {
	ctx := context.Background()
	db, size := openPostgres(b)
	l := ledger.New(db, ledger.Options{Node: "bench", HoldTTL: time.Hour})
	defer l.Close()
	if err := prefill.SetUp(ctx, db, l, prefill.Options{}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	g, err := prefill.NewGenerator(ctx, db, money.CNY, 1, now.Add(-time.Hour), now)
	if err != nil {
		b.Fatal(err)
	}
	before := size()
	ss := make([]ledger.Settlement, b.N)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // the holds of requests in flight, group-committed
	for i := range ss {
		rec, err := g.Record(now.Add(time.Duration(i) * time.Microsecond))
		if err != nil {
			b.Fatal(err)
		}
		ss[i] = ledger.Settlement{Record: rec}
		h := g.HoldFor(&rec)
		if h == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: rec.RequestID, TenantID: rec.TenantID, KeyID: rec.KeyID,
				Amount: money.New(h, money.CNY)}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		res, err := l.SettleBatch(ctx, ss[i:min(i+256, b.N)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatalf("settle %s: %v", r.RequestID, r.Err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(size()-before)/float64(b.N), "bytes/record")
	rows, err := db.Pool().Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			b.Fatal(err)
		}
		b.Logf("%-24s %8.1f bytes per request", name, float64(n)/float64(b.N))
	}
}
