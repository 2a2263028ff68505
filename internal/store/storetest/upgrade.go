package storetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the fixture

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/store/sqlcore"
	"baimo/internal/usage"
)

// fixture is a SQLite database as the release before migration 0800 (the
// compact records) wrote it: bench/prefill's mkdb at commit 819378a,
//
//	go run ./bench/prefill/mkdb -db before-0800.db -records 150 -tenants 3 -keys 6 -days 30 -batch 32 -seed 2
//
// 150 records of three prepaid tenants (served, refused and failed ones),
// settled with holds in memory, one transfer each.
//
//go:embed testdata/before-0800.db.gz
var fixture []byte

// FixtureMigration is the last migration the fixture has.
const FixtureMigration = "0700_usage_rollups.sql"

// FixtureFile writes the fixture database to a temporary file and returns
// its path.
func FixtureFile(t testing.TB) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "before-0800.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Table is the rows of one table of the fixture, to copy into another
// database.
type Table struct {
	Name    string
	Columns []string
	Rows    [][]any
}

// FixtureTables returns the rows of every table of the fixture but
// SQLite's own and the migrations', parents before children.
func FixtureTables(t testing.TB) []Table {
	t.Helper()
	db := openFixture(t)
	names := []string{"api_keys", "ledger_tenants", "ledger_accounts", "ledger_transfers", "ledger_holds",
		"ledger_idempotency", "ledger_codes", "ledger_budgets", "ledger_budget_usage", "ledger_budget_version",
		"price_versions", "tenant_price_lists", "routing_events", "usage_records", "usage_rollup_hour",
		"usage_rollup_day", "usage_rollup_zones"}
	var out []Table
	for _, n := range names {
		rows, err := db.Query(`SELECT * FROM ` + n)
		if err != nil {
			t.Fatalf("fixture table %s: %v", n, err)
		}
		cols, _ := rows.Columns()
		tb := Table{Name: n, Columns: cols}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			tb.Rows = append(tb.Rows, vals)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		out = append(out, tb)
	}
	return out
}

func openFixture(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+FixtureFile(t)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixtureRecords reads the fixture's usage records in their old form.
func fixtureRecords(t testing.TB) []usage.Record {
	t.Helper()
	db := openFixture(t)
	rows, err := db.Query(`SELECT seq, request_id, key_id, tenant_id, endpoint, model, channel, upstream_model, stream,
		status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens, images,
		audio_seconds, characters, search_calls, source, complete, error_class, start_ns, ttft_ns, duration_ns, attempts,
		currency, cost_nanos, price_version, lines, counted_input FROM usage_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []usage.Record
	for rows.Next() {
		var r usage.Record
		var source, class, attempts, lines string
		var start, ttft, dur int64
		u := &r.Usage
		if err := rows.Scan(&r.Seq, &r.RequestID, &r.KeyID, &r.TenantID, &r.Endpoint, &r.Model, &r.Channel, &r.UpstreamModel,
			&r.Stream, &r.Status, &u.Input, &u.CachedInput, &u.CacheWrite5m, &u.CacheWrite1h, &u.Output, &u.Reasoning,
			&u.Images, &u.AudioSeconds, &u.Characters, &u.SearchCalls, &source, &r.Complete, &class, &start, &ttft, &dur,
			&attempts, &r.Currency, &r.CostNanos, &r.PriceVersion, &lines, &r.CountedInput); err != nil {
			t.Fatal(err)
		}
		u.Source, r.ErrorClass = usage.ParseSource(source), usage.ErrorClass(class)
		r.Start, r.TTFT, r.Duration = sqlcore.FromUnixNanos(start), time.Duration(ttft), time.Duration(dur)
		if attempts != "[]" {
			if err := json.Unmarshal([]byte(attempts), &r.Attempts); err != nil {
				t.Fatal(err)
			}
		}
		if lines != "[]" {
			r.Lines = []byte(lines)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 150 {
		t.Fatalf("the fixture holds %d records, want 150", len(out))
	}
	return out
}

// CheckUpgraded checks a store opened on the fixture's data (and so
// migrated past it): every record reads as the old release wrote it, the
// books audit clean, statements show what the records cost, and the ledger
// settles new requests on it.
func CheckUpgraded(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	want := fixtureRecords(t)
	page, err := s.ListRecords(ctx, usage.Filter{Limit: usage.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]usage.Record{}
	var maxSeq int64
	for _, r := range page.Records {
		got[r.RequestID] = r
		maxSeq = max(maxSeq, r.Seq)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records after the upgrade, want %d", len(got), len(want))
	}
	costs := map[string]int64{}
	var first, last time.Time
	for _, w := range want {
		g := got[w.RequestID]
		wl, err := price.ParseLines(w.Lines, money.Currency(w.Currency), w.PriceVersion)
		if err != nil {
			t.Fatal(err)
		}
		gl, err := price.ParseLines(g.Lines, money.Currency(g.Currency), g.PriceVersion)
		if err != nil {
			t.Errorf("record %s: lines %q: %v", w.RequestID, g.Lines, err)
		}
		if !reflect.DeepEqual(gl, wl) {
			t.Errorf("record %s: lines %+v, want %+v", w.RequestID, gl, wl)
		}
		g.Lines, w.Lines = nil, nil
		if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
			t.Errorf("record after the upgrade:\n got %+v\nwant %+v", g, w)
		}
		costs[ledger.TenantFor(w.TenantID)] += w.CostNanos
		if first.IsZero() || w.Start.Before(first) {
			first = w.Start
		}
		if w.Start.After(last) {
			last = w.Start
		}
	}
	AuditClean(t, s, time.Now())
	l := ledger.New(s, ledger.Options{Node: "upgraded", HoldTTL: holdTTL})
	defer l.Close()
	for tenant, cost := range costs {
		st, err := l.Statement(ctx, tenant, first, last.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var kinds int64
		for _, line := range st.Lines {
			for _, k := range line.Kinds {
				kinds += k.ExactNanos
			}
		}
		if st.ExactNanos != cost || kinds != cost {
			t.Errorf("statement of %s: %d exact, %d by kind; the records cost %d", tenant, st.ExactNanos, kinds, cost)
		}
	}
	if _, err := s.VendorDrift(ctx, time.Time{}, time.Time{}); err != nil {
		t.Errorf("VendorDrift: %v", err)
	}
	// New requests bill on the upgraded books, their records after the old.
	now := time.Now()
	for i := range 3 {
		r := want[i]
		r.RequestID, r.Start, r.Seq = fmt.Sprintf("after-upgrade-%d", i), now, 0
		if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: r.RequestID, TenantID: r.TenantID, KeyID: r.KeyID,
			Amount: money.New(r.CostNanos+1, money.Currency(r.Currency))}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.ListRecords(ctx, usage.Filter{From: now.Add(-time.Second)})
	if err != nil || len(after.Records) != 3 || after.Records[2].Seq <= maxSeq {
		t.Errorf("records after the upgrade: %d, %v (seq %d, old ones up to %d)", len(after.Records), err,
			after.Records[min(2, len(after.Records)-1)].Seq, maxSeq)
	}
	AuditClean(t, s, time.Now())
}
