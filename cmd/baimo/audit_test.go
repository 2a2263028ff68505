package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"baimo/internal/ledger"
	"baimo/internal/store/sqlite"
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
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !rep.OK || len(rep.Checks) != 6 {
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
