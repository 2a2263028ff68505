package billing_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// batchCatalog prices "half" at 2/4 CNY per million input/output tokens,
// half that through a batch, with a long-context tier and reasoning priced
// apart, "full" without a batch rule, and "later" with no price before 2030.
const batchCatalog = `
vendor: test
title: test
models:
  - name: half
    kind: chat
    max_output: 1000
    versions:
      - effective_from: "2024-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        prices: {input: "2", output: "4", cached_input: "0.5", reasoning: "8"}
        batch: "0.5"
        tiers:
          - above: 100000
            prices: {input: "4", output: "8", cached_input: "1", reasoning: "16"}
  - name: full
    kind: chat
    versions:
      - effective_from: "2024-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        prices: {input: "2", output: "4"}
  - name: later
    kind: chat
    versions:
      - effective_from: "2030-01-01T00:00:00Z"
        currency: CNY
        unit: per_1m
        source: test
        checked: "2026-01-01"
        prices: {input: "2", output: "4"}
`

var bt0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type tokens int64

func (n tokens) PromptTokens() (int64, bool) { return int64(n), true }

func batchBiller(t *testing.T) (*billing.Biller, *ledger.Ledger, *sqlite.DB) {
	t.Helper()
	cat, err := price.LoadFiles([]string{"t.yaml"}, map[string][]byte{"t.yaml": []byte(batchCatalog)})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := clock.NewFake(bt0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	books := ledger.New(db, ledger.Options{Clock: clk, Logger: log})
	t.Cleanup(func() { books.Close() })
	b := billing.New(billing.Options{Rater: &billing.Rater{Catalog: cat, Currency: money.CNY}, Books: books, Clock: clk, Log: log})
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if _, err := books.CreateTenant(context.Background(), ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	return b, books, db
}

// TestBatchQuoteIsTheCatalogsBatchRule: a batch's line is held at its
// price version's batch rule, worst case included (reasoning priced apart,
// the long-context tier its prompt selects), and a model without a batch
// rule at its full price: never a hard-coded half.
func TestBatchQuoteIsTheCatalogsBatchRule(t *testing.T) {
	b, _, _ := batchBiller(t)
	for _, tt := range []struct {
		model  string
		prompt int64
		batch  bool
		want   int64
	}{
		// 1000 input at 2, 100 output all reasoning at 8 (the dearer way): 0.0028 yuan.
		{"half", 1000, false, 2_000_000 + 800_000},
		{"half", 1000, true, 1_000_000 + 400_000},
		// The long-context tier: 200,000 at 4, 100 at 16, halved.
		{"half", 200_000, true, (800_000_000 + 1_600_000) / 2},
		{"full", 1000, true, 2_000_000 + 400_000},
	} {
		q, err := b.Quote(&billing.Request{ID: "q", TenantID: "acme", Model: tt.model, Upstreams: []string{tt.model},
			MaxOutput: 100, Prompt: tokens(tt.prompt), Start: bt0, Batch: tt.batch})
		if err != nil {
			t.Fatal(err)
		}
		if q.Amount != tt.want || !q.Held || q.Output != 100 {
			t.Errorf("Quote(%s, %d, batch %v) = %+v, want %d", tt.model, tt.prompt, tt.batch, q, tt.want)
		}
	}
	if _, err := b.Quote(&billing.Request{Model: "nope", Upstreams: []string{"nope"}, Prompt: tokens(1), Start: bt0}); !errors.As(err, new(*billing.NotPricedError)) {
		t.Errorf("Quote of an unpriced model err = %v, want *NotPricedError", err)
	}
	if _, err := b.Quote(&billing.Request{Model: "half", Upstreams: []string{"half"}, MaxOutput: 5000, Prompt: tokens(1), Start: bt0}); !errors.As(err, new(*billing.LimitError)) {
		t.Errorf("Quote past the model's maximum output err = %v, want *LimitError", err)
	}
	// A line is priced at the model its channel serves: a priced public name
	// does not let through a channel whose model has no price yet (the batch
	// would reserve nothing for it).
	if q, err := b.Quote(&billing.Request{Model: "half", Upstreams: []string{"later"}, MaxOutput: 100, Prompt: tokens(1), Start: bt0}); !errors.As(err, new(*billing.NotPricedError)) {
		t.Errorf("Quote of a channel serving an unpriced model = %+v, %v; want *NotPricedError", q, err)
	}
	if q, err := b.Quote(&billing.Request{Model: "nope", Prompt: tokens(1), Start: bt0}); !errors.As(err, new(*billing.NotPricedError)) {
		t.Errorf("Quote of an unpriced model with no channel = %+v, %v; want *NotPricedError", q, err)
	}
}

// TestBatchLineHeldAheadSettledAtBatchPrice: an exchange moves the
// reservation to a line's hold; the line's Admit places none; its record,
// a batch endpoint's, is rated at the batch rule and settled once.
func TestBatchLineHeldAheadSettledAtBatchPrice(t *testing.T) {
	ctx := context.Background()
	b, books, db := batchBiller(t)
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: money.Scale / 100}); err != nil {
		t.Fatal(err)
	}
	res := ledger.ReservationID("batch_x")
	var ie *billing.InsufficientError
	err := b.Exchange(ctx, billing.Exchange{TenantID: "acme", KeyID: "k", Holds: []billing.Hold{{ID: res, Amount: money.Scale}}})
	if !errors.As(err, &ie) || ie.Need != money.Scale {
		t.Fatalf("reservation past the balance err = %v, want *InsufficientError of 1 yuan", err)
	}
	if err := b.Exchange(ctx, billing.Exchange{TenantID: "acme", KeyID: "k", Holds: []billing.Hold{{ID: res, Amount: 5_000_000, TTL: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	res2 := ledger.ReservationID("batch_x")
	if err := b.Exchange(ctx, billing.Exchange{TenantID: "acme", KeyID: "k", Release: res,
		Holds: []billing.Hold{{ID: "batch_x:1", Amount: 1_400_000, TTL: time.Hour}, {ID: res2, Amount: 3_600_000, TTL: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	bal, _ := books.Balance(ctx, "acme")
	if bal.Pending != 5_000_000 {
		t.Fatalf("pending %d after the exchange, want the reservation's 5,000,000", bal.Pending)
	}
	tk, err := b.Admit(ctx, &billing.Request{ID: "batch_x:1", TenantID: "acme", KeyID: "k", Model: "half", Upstreams: []string{"half"},
		MaxOutput: 100, Prompt: tokens(1000), Start: bt0, Batch: true, HeldAhead: 1_400_000})
	if err != nil || tk.Held != 1_400_000 {
		t.Fatalf("Admit held ahead = %+v, %v", tk, err)
	}
	if bal, _ := books.Balance(ctx, "acme"); bal.Pending != 5_000_000 {
		t.Fatalf("pending %d after Admit, want no new hold", bal.Pending)
	}
	rec := usage.Record{RequestID: "batch_x:1", TenantID: "acme", KeyID: "k", Endpoint: usage.BatchEndpoint("chat"),
		Model: "half", Channel: "c", UpstreamModel: "half", Status: 200, Complete: true, Start: bt0,
		Usage: usage.Usage{Input: 1000, CachedInput: 400, Output: 60, Reasoning: 20, Source: usage.SourceVendor}}
	for i := 0; i < 2; i++ { // a line finished twice (a restart) is settled once
		done, err := b.Finish(tk, rec)
		if err != nil {
			t.Fatal(err)
		}
		<-done
	}
	// 600 input at 2, 400 cached at 0.5, 40 output at 4, 20 reasoning at 8; halved.
	const want = (1_200_000 + 200_000 + 160_000 + 160_000) / 2
	p, err := db.ListRecords(ctx, usage.Filter{RequestID: "batch_x:1"})
	if err != nil || len(p.Records) != 1 || p.Records[0].CostNanos != want {
		t.Fatalf("records %+v (%v), want one costing %d", p.Records, err, want)
	}
	bal, _ = books.Balance(ctx, "acme")
	if bal.Posted != money.Scale/100-want || bal.Pending != 3_600_000 {
		t.Fatalf("balance %+v, want posted %d and the reservation's 3,600,000 pending", bal, money.Scale/100-want)
	}
	if err := b.Exchange(ctx, billing.Exchange{TenantID: "acme", KeyID: "k", Release: res2}); err != nil {
		t.Fatal(err)
	}
	if bal, _ := books.Balance(ctx, "acme"); bal.Pending != 0 {
		t.Fatalf("pending %d after the release", bal.Pending)
	}
}

// TestBatchExchangeInTheBillingCurrency: a batch's holds are in the billing
// currency: a tenant whose account is in another currency is refused, never
// held the same number of nanos in its own currency. A tenant without an
// account and a store gone give the errors Admit gives.
func TestBatchExchangeInTheBillingCurrency(t *testing.T) {
	ctx := context.Background()
	b, books, db := batchBiller(t) // bills in CNY
	if _, err := books.CreateTenant(ctx, ledger.Tenant{ID: "usd", Kind: ledger.Prepaid, Currency: money.USD}); err != nil {
		t.Fatal(err)
	}
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "usd", Amount: money.Scale}); err != nil {
		t.Fatal(err)
	}
	err := b.Exchange(ctx, billing.Exchange{TenantID: "usd", KeyID: "k",
		Holds: []billing.Hold{{ID: ledger.ReservationID("batch_u"), Amount: 5_000_000, TTL: time.Hour}}})
	if !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("a CNY reservation on a USD account err = %v, want ledger.ErrInvalid", err)
	}
	if bal, _ := books.Balance(ctx, "usd"); bal.Pending != 0 || bal.Posted != money.Scale {
		t.Errorf("USD balance %+v after the refused exchange, want nothing held", bal)
	}
	hold := []billing.Hold{{ID: ledger.ReservationID("batch_g"), Amount: 5_000_000, TTL: time.Hour}}
	if err := b.Exchange(ctx, billing.Exchange{TenantID: "ghost", KeyID: "k", Holds: hold}); !errors.Is(err, billing.ErrNoAccount) {
		t.Errorf("an exchange for a tenant without an account err = %v, want ErrNoAccount", err)
	}
	db.Close()
	if err := b.Exchange(ctx, billing.Exchange{TenantID: "usd", KeyID: "k", Holds: hold}); !errors.As(err, new(*billing.UnavailableError)) {
		t.Errorf("an exchange with the store closed err = %v, want *UnavailableError", err)
	}
}

// TestAdmitRefusals: what the ledger says about a hold becomes the error the
// gateway maps to a client error, and a request is never served unpaid.
func TestAdmitRefusals(t *testing.T) {
	ctx := context.Background()
	b, books, db := batchBiller(t) // bills in CNY
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: money.Scale}); err != nil {
		t.Fatal(err)
	}
	if _, err := books.CreateTenant(ctx, ledger.Tenant{ID: "usd", Kind: ledger.Prepaid, Currency: money.USD}); err != nil {
		t.Fatal(err)
	}
	req := func(id, tenant string) *billing.Request {
		return &billing.Request{ID: id, TenantID: tenant, KeyID: "k", Model: "half", Upstreams: []string{"half"},
			MaxOutput: 100, Prompt: tokens(1000), Start: bt0}
	}
	if _, err := b.Admit(ctx, req("r-ghost", "ghost")); !errors.Is(err, billing.ErrNoAccount) {
		t.Errorf("Admit for a tenant without an account err = %v, want ErrNoAccount", err)
	}
	var ce *billing.CurrencyError
	if _, err := b.Admit(ctx, req("r-usd", "usd")); !errors.As(err, &ce) || ce.Tenant != money.USD || ce.Billing != money.CNY {
		t.Errorf("Admit for a USD account on a CNY gateway err = %v, want *CurrencyError USD/CNY", err)
	}
	// A request id whose hold was settled is not held again, and not served.
	tk, err := b.Admit(ctx, req("r1", "acme"))
	if err != nil {
		t.Fatal(err)
	}
	done, err := b.Finish(tk, usage.Record{RequestID: "r1", TenantID: "acme", KeyID: "k", Endpoint: "chat", Model: "half",
		Channel: "c", UpstreamModel: "half", Status: 200, Complete: true, Start: bt0,
		Usage: usage.Usage{Input: 1000, Output: 10, Source: usage.SourceVendor}})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if tk, err := b.Admit(ctx, req("r1", "acme")); err == nil || errors.As(err, new(*billing.UnavailableError)) {
		t.Errorf("Admit of a settled request id again = %+v, %v; want a refusal", tk, err)
	}
	// The store gone: the request may be retried.
	db.Close()
	if _, err := b.Admit(ctx, req("r2", "acme")); !errors.As(err, new(*billing.UnavailableError)) {
		t.Errorf("Admit with the store closed err = %v, want *UnavailableError", err)
	}
}

// TestAuditAddsTheRecordsChecks: the books' audit is the ledger's checks
// and, with a rater and a record store, the re-rating of the recent
// records; one record charged other than its rating fails the whole audit.
func TestAuditAddsTheRecordsChecks(t *testing.T) {
	ctx := context.Background()
	b, books, db := batchBiller(t)
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: money.Scale}); err != nil {
		t.Fatal(err)
	}
	rec := func(id string) usage.Record {
		return usage.Record{RequestID: id, TenantID: "acme", KeyID: "k", Endpoint: "chat", Model: "half", Channel: "c",
			UpstreamModel: "half", Status: 200, Complete: true, Start: bt0,
			Usage: usage.Usage{Input: 1000, Output: 10, Source: usage.SourceVendor}}
	}
	tk, err := b.Admit(ctx, &billing.Request{ID: "right", TenantID: "acme", KeyID: "k", Model: "half", Upstreams: []string{"half"},
		MaxOutput: 100, Prompt: tokens(1000), Start: bt0})
	if err != nil {
		t.Fatal(err)
	}
	done, err := b.Finish(tk, rec("right")) // rated and settled
	if err != nil {
		t.Fatal(err)
	}
	<-done
	now := bt0.Add(time.Hour)
	ledgerOnly, err := billing.Audit(ctx, db, db, nil, now, time.Minute)
	if err != nil || !ledgerOnly.OK {
		t.Fatalf("the ledger's audit alone = %+v, %v; want OK", ledgerOnly, err)
	}
	rated := func(rep ledger.Report) (names []string, ok bool) {
		ok = true
		for _, c := range rep.Checks {
			if c.Name == billing.CheckRatedInForce || c.Name == billing.CheckRatedCost {
				names, ok = append(names, c.Name), ok && c.OK
			}
		}
		return names, ok
	}
	if names, _ := rated(ledgerOnly); len(names) != 0 {
		t.Errorf("without a rater the audit re-rated records: %v", names)
	}
	if rep, err := billing.Audit(ctx, db, nil, b.Rater(), now, time.Minute); err != nil || len(rep.Checks) != len(ledgerOnly.Checks) {
		t.Errorf("without a record store: %d checks, %v; want the ledger's %d", len(rep.Checks), err, len(ledgerOnly.Checks))
	}
	rep, err := billing.Audit(ctx, db, db, b.Rater(), now, time.Minute)
	if names, ok := rated(rep); err != nil || !rep.OK || len(names) != 2 || !ok || len(rep.Checks) != len(ledgerOnly.Checks)+2 {
		t.Fatalf("audit with the records = %+v, %v; want the ledger's checks and both record checks, all OK", rep, err)
	}
	wrong := rec("wrong")
	if err := b.Rater().RateRecord(&wrong); err != nil {
		t.Fatal(err)
	}
	wrong.CostNanos = 0 // stored charged 0, not its rating
	if err := db.WriteRecords(ctx, []usage.Record{wrong}); err != nil {
		t.Fatal(err)
	}
	rep, err = billing.Audit(ctx, db, db, b.Rater(), now, time.Minute)
	if _, ok := rated(rep); err != nil || rep.OK || ok {
		t.Errorf("audit with a record charged 0 = OK %v (records OK %v), %v; want it failed", rep.OK, ok, err)
	}
}
