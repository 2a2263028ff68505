package prefill

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/postgres"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// filled is a store a test fill wrote to, opened again to check it.
type filled interface {
	Store
	ListRecords(ctx context.Context, f usage.Filter) (usage.Page, error)
}

// TestFill fills each store as mkdb does (a SQLite file with holds in
// memory; PostgreSQL as a node of several, holds as rows), then adds to it,
// and checks that every record is stored and settled: the books audit
// clean, no hold is left pending, the prefilled tenant paid for its
// records, and the sizes name the records' table.
func TestFill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) target
	}{
		{"sqlite", sqliteTarget},
		{"postgres", postgresTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tg := tc.store(t)
			o := Options{Records: 300, Currency: money.USD, Tenants: 4, Keys: 12, Batch: 64}
			res, err := tg.fill(o)
			if err != nil {
				t.Fatalf("fill: %v", err)
			}
			if res.Records != 300 || res.Rejected != 0 {
				t.Fatalf("fill: %d records, %d refused; want 300, 0", res.Records, res.Rejected)
			}
			if _, err := tg.fill(o); err == nil {
				t.Fatal("a second fill without Append: no error")
			}
			o.Append, o.Records, o.Seed = true, 100, 2
			if res, err = tg.fill(o); err != nil || res.Records != 100 {
				t.Fatalf("append: %d records, %v; want 100", res.Records, err)
			}
			stop := make(chan struct{})
			close(stop)
			o.Stop = stop
			if res, err = tg.fill(o); err != nil || res.Records != 64 {
				t.Fatalf("stopped at once: %d records, %v; want one batch of 64", res.Records, err)
			}

			db := tg.db()
			recs, spent, charged := 0, int64(0), []string(nil)
			f := usage.Filter{Limit: usage.MaxListLimit}
			for {
				p, err := db.ListRecords(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Records {
					recs++
					if r.TenantID == "bench" {
						spent += r.CostNanos
					}
					if r.CostNanos > 0 {
						charged = append(charged, r.RequestID)
					}
				}
				if p.Next.IsZero() {
					break
				}
				f.After = p.Next
			}
			if recs != 464 {
				t.Errorf("%d records stored, want 464", recs)
			}
			rep, err := ledger.Audit(ctx, db, time.Now(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK {
				t.Errorf("audit failed: %+v", rep.Failed())
			}
			l := ledger.New(db, ledger.Options{Node: "check"})
			defer l.Close()
			b, err := l.Balance(ctx, "bench")
			if err != nil {
				t.Fatal(err)
			}
			if spent <= 0 || b.Kind != ledger.Prepaid || b.Pending != 0 || b.Posted != ledger.MaxAmount-spent {
				t.Errorf("bench: %+v after records costing %d; want prepaid, nothing pending, %d posted",
					b, spent, ledger.MaxAmount-spent)
			}
			var posted int
			if err := db.LedgerView(ctx, func(v ledger.Snapshot) error {
				for _, id := range charged {
					h, err := v.Hold(ctx, id)
					switch {
					case errors.Is(err, ledger.ErrNotFound):
					case err != nil:
						return err
					case h.State == ledger.HoldPosted:
						posted++
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: len(charged)}[tg.rows]; len(charged) == 0 || posted != want {
				t.Errorf("%d of %d charged requests have a posted hold row; want %d", posted, len(charged), want)
			}
			if sizes := tg.sizes(); sizes["usage_records"] <= 0 {
				t.Errorf("sizes: %v, no usage_records", sizes)
			}
		})
	}
}

// target is a store a test fills and checks.
type target struct {
	fill  func(o Options) (Result, error) // adds o's records
	db    func() filled                   // opens it to check it
	sizes func() map[string]int64
	// rows says whether holds are rows in the store (as on a node of
	// several) rather than kept in memory.
	rows bool
}

// sqliteTarget is a SQLite file, filled as mkdb -db fills one.
func sqliteTarget(t *testing.T) target {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bench.db")
	return target{
		fill: func(o Options) (Result, error) {
			o.Path = path
			return Fill(ctx, o)
		},
		db: func() filled {
			db, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		sizes: func() map[string]int64 {
			sizes, _, err := Sizes(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			return sizes
		},
	}
}

// postgresTarget is a fresh schema of the database BAIMO_TEST_POSTGRES
// names, filled as mkdb -postgres fills one and dropped when the test ends;
// it skips the test when the variable is unset.
func postgresTarget(t *testing.T) target {
	t.Helper()
	dsn := os.Getenv("BAIMO_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("BAIMO_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("baimo_prefill_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000_000)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("BAIMO_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return target{
		fill: func(o Options) (Result, error) {
			o.Shared = true
			return FillStore(ctx, db, o)
		},
		db: func() filled { return db },
		sizes: func() map[string]int64 {
			sizes, _, err := PostgresSizes(ctx, db.Pool())
			if err != nil {
				t.Fatal(err)
			}
			return sizes
		},
		rows: true,
	}
}
