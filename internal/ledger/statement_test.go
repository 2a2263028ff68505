package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// TestStatementLines: a model's requests make one statement line whatever
// their currency ("" for a refused request that cost nothing, the
// tenant's for the rest), counted by outcome; a line's kinds come in
// name order with their quantities and amounts summed over its records,
// and the exchange rates its prices were converted at are listed once
// each, ordered by price currency, rate and source.
func TestStatementLines(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	l := ledger.New(db, ledger.Options{Clock: clock.NewFake(t0)})
	t.Cleanup(func() { l.Close() })
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Postpaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	line := func(kind string, q int64, amount, from, rate, source string) string {
		s := fmt.Sprintf(`{"kind":%q,"quantity":%d,"price":"1","per":1000000,"amount":%q,"currency":"CNY","version":"v"`, kind, q, amount)
		if rate == "" {
			s += `,"multiplier":"1"`
		} else {
			s += fmt.Sprintf(`,"price_currency":%q,"multiplier":%q,"exchange_rate":%q,"rate_source":%q`, from, rate, rate, source)
		}
		return s + "}"
	}
	n := 0
	settle := func(model string, status int, channel string, in, out, cost int64, lines ...string) {
		t.Helper()
		n++
		r := usage.Record{RequestID: fmt.Sprint("r", n), TenantID: "acme", Model: model, Status: status, Channel: channel,
			Start: t0, CostNanos: cost, Usage: usage.Usage{Input: in, Output: out}}
		if status >= 400 && cost == 0 {
			// Refused or failed before any price: written as such, with no
			// currency, not settled.
			if err := db.WriteRecords(ctx, []usage.Record{r}); err != nil {
				t.Fatal(err)
			}
			return
		}
		r.Currency = "CNY"
		if len(lines) > 0 {
			r.Lines = []byte("[" + lines[0])
			for _, s := range lines[1:] {
				r.Lines = append(r.Lines, ","+s...)
			}
			r.Lines = append(r.Lines, ']')
		}
		if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	// m-a: served twice (output before input in the records), refused
	// once before any price and failed once upstream before any output
	// (no currency), failed once more after some output (charged).
	settle("m-a", 200, "c", 100, 20, 3_000_000, line("output", 20, "0.002", "", "", ""), line("input", 100, "0.001", "", "", ""))
	settle("m-a", 200, "c", 200, 30, 5_000_000, line("output", 30, "0.003", "", "", ""), line("input", 200, "0.002", "", "", ""))
	settle("m-a", 429, "", 0, 0, 0)
	settle("m-a", 502, "c", 9, 0, 0)
	settle("m-a", 502, "c", 1000, 4, 1_000_000, line("input", 1000, "0.001", "", "", ""))
	// m-c: USD and EUR prices converted at several rates.
	settle("m-c", 200, "c", 4, 0, 4_000_000,
		line("input", 1, "0.001", "USD", "7.1", "PBOC"),
		line("input", 1, "0.001", "USD", "6.9858", "PBOC"),
		line("input", 1, "0.001", "USD", "6.9858", "ECB"),
		line("input", 1, "0.001", "EUR", "7.8", "PBOC"))
	settle("m-c", 200, "c", 1, 0, 1_000_000, line("input", 1, "0.001", "USD", "7.1", "PBOC"))

	st, err := l.Statement(ctx, "acme", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Lines) != 2 {
		t.Fatalf("lines %+v; want m-a and m-c", st.Lines)
	}
	a := st.Lines[0]
	if a.Model != "m-a" || a.Requests != 5 || a.Served != 2 || a.Refused != 1 || a.Failed != 2 || a.InputTokens != 1309 ||
		a.OutputTokens != 54 || a.ExactNanos != 9_000_000 || a.Rounded != "0.01" {
		t.Errorf("m-a line %+v; want 5 requests (2 served, 1 refused, 2 failed), 1309 in, 54 out, 0.009 exact, 0.01", a)
	}
	if got := fmt.Sprint(a.Kinds); got != "[{input 1300 4000000} {output 50 5000000}]" {
		t.Errorf("m-a kinds %s; want input 1300 then output 50", got)
	}
	c := st.Lines[1]
	want := []ledger.RateUsed{{"EUR", "7.8", "PBOC"}, {"USD", "6.9858", "ECB"}, {"USD", "6.9858", "PBOC"}, {"USD", "7.1", "PBOC"}}
	if fmt.Sprint(c.ExchangeRates) != fmt.Sprint(want) {
		t.Errorf("m-c exchange rates %+v; want %+v", c.ExchangeRates, want)
	}
	if st.ExactNanos != 14_000_000 || st.Total != "0.01" {
		t.Errorf("total %d exact, %s; want 14000000, 0.01", st.ExactNanos, st.Total)
	}
}
