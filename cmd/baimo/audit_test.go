package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/ledger"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"audit", "--json", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("audit of a fresh store exited %d: %s", code, errb.String())
	}
	var rep ledger.Report
	// The ledger's six checks, and the two of the usage records re-rated.
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !rep.OK || len(rep.Checks) != 8 {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	// Break the books: the audit must fail with exit status 1 and say why.
	db, err = sqlite.Open(ctx, filepath.Join(dir, "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE ledger_accounts SET posted_credits = 1 WHERE id = 'tenant:default'`)
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(ctx, []string{"audit", "--data", dir}, &out, &errb); code != 1 {
		t.Fatalf("audit of broken books exited %d, want 1", code)
	}
	if !strings.Contains(out.String(), "FAIL cached_balances_equal_transfers") || !strings.Contains(errb.String(), "audit failed") {
		t.Errorf("output:\n%s\nstderr: %s", out.String(), errb.String())
	}
	if code := run(ctx, []string{"audit", "--data", filepath.Join(dir, "missing")}, &out, &errb); code != 1 {
		t.Errorf("audit of a missing store exited %d, want 1", code)
	}

}

// TestAuditReratesRecords: `baimo audit` re-rates the last day's usage
// records: one that could not be rated (charged its hold, marked unrated)
// and one charged other than its usage costs fail the audit, each named.
func TestAuditReratesRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	rec := func(id, version string, cost int64) usage.Record {
		return usage.Record{RequestID: id, KeyID: "k", Endpoint: "chat", Model: "deepseek-chat", Channel: "c", UpstreamModel: "deepseek-chat",
			Status: 200, Complete: true, Start: start, Usage: usage.Usage{Input: 1_000_000, Output: 0, Source: usage.SourceVendor},
			Currency: "CNY", CostNanos: cost, PriceVersion: version}
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	right := rec("right", "", 0)
	if err := (&billing.Rater{Catalog: cat, Currency: "CNY"}).RateRecord(&right); err != nil {
		t.Fatal(err)
	}
	cheap := right
	cheap.RequestID, cheap.CostNanos = "cheap", right.CostNanos/2
	err = db.WriteRecords(ctx, []usage.Record{right, cheap, rec("lost-price", billing.Unrated, 7_000_000)})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"audit", "--data", dir}, &out, &errb); code != 1 {
		t.Fatalf("audit exited %d, want 1: %s %s", code, out.String(), errb.String())
	}
	o := out.String()
	if !strings.Contains(o, "ok   records_rated_at_version_in_force") || !strings.Contains(o, "FAIL records_charged_their_rated_cost") ||
		!strings.Contains(o, "request cheap ") || !strings.Contains(o, "request lost-price ") || strings.Contains(o, "request right ") {
		t.Errorf("output:\n%s", o)
	}
}
