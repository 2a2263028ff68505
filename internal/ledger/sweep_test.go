package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// TestSweepResolvesEveryPage: one sweep resolves every expired hold, more
// than fit in one of its pages, in the store and in memory alike, and says
// once a page that it voided holds with nothing known of their requests; a
// sweep that lost nothing (it settled a hold from its record) says nothing.
func TestSweepResolvesEveryPage(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprint("exclusive=", exclusive), func(t *testing.T) {
			ctx := context.Background()
			logs := &lockedLog{}
			clk := clock.NewFake(t0)
			db := openStore(t)
			l := ledger.New(db, ledger.Options{Clock: clk, Exclusive: exclusive, HoldTTL: time.Minute,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			t.Cleanup(func() { l.Close() })
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 1000 * yuan}); err != nil {
				t.Fatal(err)
			}
			const n = 257 // a page of 256 and one more
			holds := make([]ledger.HoldRequest, n)
			for i := range holds {
				holds[i] = ledger.HoldRequest{RequestID: fmt.Sprint("r", i), TenantID: "acme", Amount: money.New(yuan, money.CNY)}
			}
			for start := 0; start < n; start += 100 {
				if _, err := l.Exchange(ctx, "", holds[start:min(start+100, n)]); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(time.Minute)
			res, err := l.Sweep(ctx)
			if err != nil || res.Voided != n || res.Lost != n {
				t.Fatalf("Sweep = %+v, %v; want all %d voided as lost", res, err, n)
			}
			if b := balance(t, l); b.Pending != 0 || b.Posted != 1000*yuan {
				t.Errorf("balance after the sweep %+v; want nothing pending", b)
			}
			defer func() {
				if b := balance(t, l); b.Pending != 0 || b.Posted != 1000*yuan-yuan/2 {
					t.Errorf("balance after the second sweep %+v; want 0.5 charged, nothing pending", b)
				}
			}()
			if got := strings.Count(logs.String(), "holds voided with nothing known"); got != 2 {
				t.Errorf("the sweep logged the lost holds %d times, want once a page (2)", got)
			}
			// An expired hold whose record was written is settled from it:
			// nothing lost, nothing said.
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "rec", TenantID: "acme", Amount: money.New(yuan, money.CNY)}); err != nil {
				t.Fatal(err)
			}
			if err := db.WriteRecords(ctx, []usage.Record{record("rec", yuan/2)}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Minute)
			if res, err := l.Sweep(ctx); err != nil || res != (ledger.SweepResult{Settled: 1}) {
				t.Errorf("second Sweep = %+v, %v; want the recorded hold settled", res, err)
			}
			if got := strings.Count(logs.String(), "holds voided with nothing known"); got != 2 {
				t.Errorf("a sweep that lost nothing logged lost holds (%d lines in all)", got)
			}
		})
	}
}

// TestVoidSettlesFromItsRecord: voiding the hold of a request whose usage
// record was written settles it from that record instead (State posted),
// in the store and in memory alike.
func TestVoidSettlesFromItsRecord(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprint("exclusive=", exclusive), func(t *testing.T) {
			ctx := context.Background()
			db := openStore(t)
			l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0), Exclusive: exclusive})
			t.Cleanup(func() { l.Close() })
			if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(3*yuan, money.CNY)}); err != nil {
				t.Fatal(err)
			}
			// The record was written (by a path that stores records apart)
			// before the request's settlement.
			if err := db.WriteRecords(ctx, []usage.Record{record("r1", 2*yuan)}); err != nil {
				t.Fatal(err)
			}
			v, err := l.Void(ctx, "r1")
			if err != nil || v.Hold.State != ledger.HoldPosted || v.Hold.RequestID != "r1" || v.Duplicate {
				t.Fatalf("Void of a recorded request = %+v, %v; want its hold posted", v, err)
			}
			if b := balance(t, l); b.Posted != 8*yuan || b.Pending != 0 {
				t.Errorf("balance %+v; want 2 charged from the record, nothing pending", b)
			}
		})
	}
}
