package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlcore"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// schemaSeq keeps the schemas of one test process apart.
var schemaSeq atomic.Int64

// openTest returns a store in a fresh schema of the database named by
// BAIMO_TEST_POSTGRES, dropped when the test ends; it skips the test when
// the variable is unset.
func openTest(t testing.TB) *DB {
	t.Helper()
	return openDSN(t, testDSN(t))
}

func openDSN(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testDSN creates a fresh schema and returns a DSN whose search_path is it.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("BAIMO_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("BAIMO_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the PostgreSQL store tests")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("baimo_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000, schemaSeq.Add(1))
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(dsn), err)
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
	return withSearchPath(t, dsn, schema)
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Fatalf("BAIMO_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(dsn)"
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTest(t) })
}

func TestMigrateTwice(t *testing.T) {
	db := openTest(t)
	if err := db.migrate(context.Background()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
}

// TestSharedDatabase runs three ledgers, each with its own connection pool as
// three gateway processes would have, against one prepaid account in one
// database: together they must never overspend it.
func TestSharedDatabase(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	var ls []*ledger.Ledger
	var first *DB
	for i := 0; i < 3; i++ {
		db := openDSN(t, dsn)
		if first == nil {
			first = db
		}
		l := ledger.New(db, ledger.Options{Node: fmt.Sprintf("node%d", i), MaxBatch: 16})
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l)
	}
	if _, err := ls[0].CreateTenant(ctx, ledger.Tenant{ID: "shared", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	const balance = 30 * money.Scale
	if _, err := ls[1].TopUp(ctx, ledger.MoneyRequest{TenantID: "shared", Amount: balance}); err != nil {
		t.Fatal(err)
	}
	// First every request holds at once: the balance covers exactly 60.
	var wg sync.WaitGroup
	var spent, held atomic.Int64
	granted := make([]bool, 200)
	for g := range granted {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			id := fmt.Sprintf("r%03d", g)
			_, err := ls[g%3].Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "shared", Amount: money.New(money.Scale/2, money.CNY)})
			if errors.Is(err, ledger.ErrInsufficientFunds) {
				return
			}
			if err != nil {
				t.Errorf("hold %s: %v", id, err)
				return
			}
			granted[g] = true
			held.Add(1)
		}(g)
	}
	wg.Wait()
	// Then they settle, each through another node than the one that held.
	for g, ok := range granted {
		if !ok {
			continue
		}
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			id := fmt.Sprintf("r%03d", g)
			cost := int64(g%5) * money.Scale / 8 // never above the hold
			r, err := ls[(g+1)%3].Settle(ctx, ledger.Settlement{Record: usage.Record{RequestID: id, TenantID: "shared",
				Currency: "CNY", CostNanos: cost, Model: "m", Status: 200}})
			if err != nil {
				t.Errorf("settle %s: %v", id, err)
				return
			}
			spent.Add(r.Posted + r.Overage)
		}(g)
	}
	wg.Wait()
	if held.Load() != 60 {
		t.Errorf("%d holds of 0.5 granted on a balance of 30, want exactly 60", held.Load())
	}
	b, err := ls[2].Balance(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if b.Posted != balance-spent.Load() || b.Pending != 0 || b.Available < 0 || b.Debt != 0 {
		t.Errorf("balance = %+v, want posted %d", b, balance-spent.Load())
	}
	storetest.AuditClean(t, first, time.Now())
}

// TestUpgrade copies a database the release before the compact records wrote
// (storetest's fixture, from SQLite) into a PostgreSQL schema at the same
// migration, then opens the store on it: it must read, audit and bill as
// before.
func TestUpgrade(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	inTx := func(ctx context.Context, fn func(sqlcore.Querier) error) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(querier{tx}) })
	}
	if err := sqlcore.MigrateTo(ctx, sqlcore.Postgres, time.Now().UnixNano(), inTx, storetest.FixtureMigration); err != nil {
		t.Fatal(err)
	}
	for _, tb := range storetest.FixtureTables(t) {
		types := map[string]string{}
		rows, err := pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, tb.Name)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c, ty string
			if err := rows.Scan(&c, &ty); err != nil {
				t.Fatal(err)
			}
			types[c] = ty
		}
		rows.Close()
		if _, err := pool.Exec(ctx, `DELETE FROM `+tb.Name); err != nil { // the migrations' own rows
			t.Fatal(err)
		}
		text := `INSERT INTO ` + tb.Name + ` (` + strings.Join(tb.Columns, ", ") + `) VALUES (` +
			sqlcore.Placeholders(1, len(tb.Columns)) + `)`
		for _, r := range tb.Rows {
			for i, v := range r {
				if n, ok := v.(int64); ok && types[tb.Columns[i]] == "boolean" {
					r[i] = n != 0
				}
			}
			if _, err := pool.Exec(ctx, text, r...); err != nil {
				t.Fatalf("copy into %s: %v", tb.Name, err)
			}
		}
		if slices.Contains(tb.Columns, "seq") {
			if _, err := pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'seq'),
				(SELECT coalesce(max(seq), 0) + 1 FROM `+tb.Name+`), false)`, tb.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	db := openDSN(t, dsn)
	storetest.CheckUpgraded(t, db)
}
