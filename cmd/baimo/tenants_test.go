package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// cli runs one baimo command in-process.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// startBilling runs `baimo serve` on a fresh SQLite store and points the
// admin commands at it through BAIMO_URL and BAIMO_ADMIN_KEY.
func startBilling(t *testing.T) string {
	t.Helper()
	return startBillingArgs(t, "--data", t.TempDir())
}

// startBillingArgs is startBilling with serve's arguments.
func startBillingArgs(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	ctx, stop := context.WithCancel(context.Background())
	base, done := startServe(t, ctx, args...)
	t.Cleanup(func() {
		stop()
		<-done
	})
	t.Setenv("BAIMO_URL", base)
	return base
}

// available reads a tenant's available balance through the CLI's JSON.
func available(t *testing.T, tenant string) string {
	t.Helper()
	code, out, errb := cli(t, "tenants", "balance", tenant, "--json")
	if code != 0 {
		t.Fatalf("balance %s: exit %d: %s", tenant, code, errb)
	}
	var b struct {
		Available string `json:"available"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("balance JSON %q: %v", out, err)
	}
	return b.Available
}

func TestTenantsCommands(t *testing.T) {
	startBilling(t)
	steps := []struct {
		name      string
		args      []string
		code      int
		contains  []string // in stdout, or in stderr when code != 0
		available string   // acme's available balance after the step ("" = not checked)
	}{
		{"create prepaid", []string{"tenants", "create", "--id", "acme", "--kind", "prepaid", "--name", "Acme"}, 0,
			[]string{"Created tenant acme: prepaid, CNY."}, "0"},
		{"create twice", []string{"tenants", "create", "--id", "acme", "--kind", "prepaid"}, 1, []string{"409"}, ""},
		{"create postpaid", []string{"tenants", "create", "--id", "big", "--kind", "postpaid", "--credit-limit", "1000"}, 0,
			[]string{"postpaid, CNY, credit limit 1000."}, ""},
		{"list", []string{"tenants", "list"}, 0, []string{"ID", "acme", "Acme", "prepaid", "big", "postpaid", "1000", "default"}, ""},
		{"postpaid balance", []string{"tenants", "balance", "big"}, 0, []string{"credit limit  1000", "available     0"}, ""},
		{"topup", []string{"tenants", "topup", "acme", "12.50", "--note", "order 1", "--idempotency-key", "order-1"}, 0,
			[]string{"topup of 12.5 CNY on acme", "available  12.5"}, "12.5"},
		{"same key again applies once", []string{"tenants", "topup", "--idempotency-key", "order-1", "acme", "12.50", "--note", "order 1"}, 0,
			[]string{"topup of 12.5 CNY on acme"}, "12.5"},
		{"same key, other amount", []string{"tenants", "topup", "acme", "99", "--idempotency-key", "order-1"}, 1,
			[]string{"409", "different request body"}, "12.5"},
		{"nanos exactly", []string{"tenants", "topup", "acme", "0.000000001"}, 0, []string{"0.000000001 CNY"}, "12.500000001"},
		{"adjust beyond the balance", []string{"tenants", "adjust", "acme", "-20"}, 1, []string{"422", "insufficient funds"}, "12.500000001"},
		{"adjust down", []string{"tenants", "adjust", "acme", "-2.250000001", "--note", "fix"}, 0, []string{"adjust of -2.250000001 CNY"}, "10.25"},
		{"refund of an unknown request", []string{"tenants", "refund", "acme", "1", "--request", "no-such-request"}, 1, []string{"400", "charged 0"}, "10.25"},
		{"refund", []string{"tenants", "refund", "acme", "0.75", "--json"}, 0, []string{`"kind":"refund"`, `"amount":"0.75"`}, "11"},
		{"statement csv", []string{"tenants", "statement", "acme", "--csv", "--from", "2026-01-01"}, 0,
			[]string{"model,kind,quantity,requests,input_tokens,output_tokens,exact,amount,currency,served,refused,failed\n", "total,"}, ""},
		{"statement table", []string{"tenants", "statement", "acme"}, 0,
			[]string{"Statement of acme in CNY", "MODEL", "total", "topup 12.500000001", "adjust -2.250000001", "refund 0.75"}, ""},
		{"statement json", []string{"tenants", "statement", "acme", "--json"}, 0, []string{`"credits_nanos":{`, `"topup":12500000001`}, ""},
		{"budget set", []string{"budgets", "set", "tenant", "acme", "--period", "day", "--limit", "100", "--alerts", "80,50,100"}, 0,
			[]string{"tenant  acme", "day", "100", "50%,80%,100%"}, ""},
		{"budget of a missing tenant", []string{"budgets", "get", "tenant", "nobody"}, 1, []string{"404"}, ""},
		{"unknown tenant", []string{"tenants", "topup", "nobody", "1"}, 1, []string{"404"}, ""},
		{"wrong admin key", []string{"tenants", "list", "--admin-key", "wrong"}, 1, []string{"401"}, ""},

		// Usage errors: exit 2, nothing sent.
		{"amount 1.2.3", []string{"tenants", "topup", "acme", "1.2.3"}, 2, []string{`AMOUNT "1.2.3" is not an exact decimal`}, "11"},
		{"amount abc", []string{"tenants", "adjust", "acme", "abc"}, 2, []string{`AMOUNT "abc" is not an exact decimal`}, ""},
		{"ten decimals", []string{"tenants", "topup", "acme", "1.0000000001"}, 2, []string{"more than 9 decimal places"}, ""},
		{"float syntax", []string{"tenants", "topup", "acme", "1e3"}, 2, []string{"not an exact decimal"}, ""},
		{"zero top-up", []string{"tenants", "topup", "acme", "0"}, 2, []string{"must be positive"}, ""},
		{"negative top-up", []string{"tenants", "topup", "acme", "-5"}, 2, []string{"must be positive"}, ""},
		{"zero adjustment", []string{"tenants", "adjust", "acme", "0.000"}, 2, []string{"zero"}, ""},
		{"missing amount", []string{"tenants", "topup", "acme"}, 2, []string{"want baimo tenants topup TENANT AMOUNT"}, ""},
		{"extra argument", []string{"tenants", "balance", "acme", "big"}, 2, []string{"want baimo tenants balance TENANT"}, ""},
		{"unknown flag", []string{"tenants", "topup", "acme", "1", "--notes", "x"}, 2, []string{"-notes"}, ""},
		{"key too long", []string{"tenants", "topup", "acme", "1", "--idempotency-key", strings.Repeat("k", 201)}, 2, []string{"longer than 200"}, ""},
		{"bad kind", []string{"tenants", "create", "--id", "x", "--kind", "gold"}, 2, []string{"--kind"}, ""},
		{"credit limit on prepaid", []string{"tenants", "create", "--id", "x", "--kind", "prepaid", "--credit-limit", "5"}, 2, []string{"postpaid"}, ""},
		{"csv and json", []string{"tenants", "statement", "acme", "--csv", "--json"}, 2, []string{"exclude"}, ""},
		{"bad from", []string{"tenants", "statement", "acme", "--from", "last week"}, 2, []string{"--from"}, ""},
		{"empty period", []string{"tenants", "statement", "acme", "--from", "2026-12-01", "--to", "2026-11-01"}, 2, []string{"not before"}, ""},
		{"code of nothing", []string{"codes", "create", "0"}, 2, []string{"more than zero"}, ""},
		{"budget scope", []string{"budgets", "get", "team", "acme"}, 2, []string{"key or tenant"}, ""},
		{"budget period", []string{"budgets", "set", "tenant", "acme", "--period", "fortnight", "--limit", "1"}, 2, []string{"--period"}, ""},
		{"budget alerts", []string{"budgets", "set", "tenant", "acme", "--period", "day", "--limit", "1", "--alerts", "50,lots"}, 2, []string{"--alerts"}, ""},
		{"budget limit", []string{"budgets", "set", "tenant", "acme", "--period", "day", "--limit", "1,5"}, 2, []string{"--limit"}, ""},
		{"no subcommand", []string{"tenants"}, 2, []string{"usage:", "--idempotency-key"}, ""},
		{"unknown subcommand", []string{"codes", "delete"}, 2, []string{"unknown codes subcommand"}, "11"},
	}
	for _, s := range steps {
		code, out, errb := cli(t, s.args...)
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", s.name, code, s.code, out, errb)
		}
		text := out
		if code != 0 {
			text = errb
		}
		for _, want := range s.contains {
			if !strings.Contains(text, want) {
				t.Errorf("%s: output lacks %q:\n%s", s.name, want, text)
			}
		}
		if s.available != "" {
			if got := available(t, "acme"); got != s.available {
				t.Fatalf("after %s: available %s, want %s", s.name, got, s.available)
			}
		}
	}

	if _, out, _ := cli(t, "tenants", "statement", "acme", "--csv"); !strings.HasPrefix(out, "model,kind,quantity,") {
		t.Errorf("statement csv does not start with its header line:\n%s", out)
	}

	// A code redeems once: the second redemption is refused and moves nothing.
	code, out, errb := cli(t, "codes", "create", "5", "--json")
	if code != 0 {
		t.Fatalf("codes create: exit %d: %s", code, errb)
	}
	var c struct{ Code, Amount string }
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Code == "" || c.Amount != "5" {
		t.Fatalf("code = %q (%v)", out, err)
	}
	if code, out, errb := cli(t, "tenants", "redeem", "acme", c.Code); code != 0 || !strings.Contains(out, "redeem of 5 CNY on acme") {
		t.Fatalf("redeem: exit %d\n%s%s", code, out, errb)
	}
	if code, _, errb := cli(t, "tenants", "redeem", "acme", c.Code); code != 1 || !strings.Contains(errb, "already redeemed") {
		t.Errorf("second redeem: exit %d: %s", code, errb)
	}
	if got := available(t, "acme"); got != "16" {
		t.Errorf("available after one redemption of 5: %s, want 16", got)
	}
	code, out, _ = cli(t, "codes", "create", "2.5", "--currency", "usd", "--expires", "2030-01-01")
	if code != 0 || !strings.Contains(out, "worth 2.5 USD (expires 2030-01-01T00:00:00Z)") || !strings.Contains(out, "shown once") {
		t.Errorf("codes create: exit %d\n%s", code, out)
	}

	// Budgets round-trip.
	code, out, errb = cli(t, "budgets", "get", "tenant", "acme", "--json")
	if code != 0 {
		t.Fatalf("budgets get: exit %d: %s", code, errb)
	}
	var b budgetJSON
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Limit != "100" || b.Period != "day" || b.Scope != "tenant" ||
		!slices.Equal(b.Alerts, []int{50, 80, 100}) || b.Spent != "0" {
		t.Errorf("budget = %+v (%v) from %s", b, err, out)
	}
}

// TestTopupRetriedAppliesOnce loses the gateway's answer to the first try of
// a top-up: the command retries with the same Idempotency-Key and the money
// moves once.
func TestTopupRetriedAppliesOnce(t *testing.T) {
	base := startBilling(t)
	if code, _, errb := cli(t, "tenants", "create", "--id", "acme", "--kind", "prepaid"); code != 0 {
		t.Fatalf("create: %s", errb)
	}
	var tries atomic.Int32
	var mu sync.Mutex
	var keys []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if strings.HasSuffix(r.URL.Path, "/topup") {
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			mu.Unlock()
			if tries.Add(1) == 1 {
				// Applied, but the answer never reaches the client.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	code, out, errb := cli(t, "tenants", "topup", "acme", "7", "--url", proxy.URL)
	if code != 0 {
		t.Fatalf("topup through a lossy proxy: exit %d: %s", code, errb)
	}
	mu.Lock()
	defer mu.Unlock()
	if tries.Load() != 2 || len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("tries %d with keys %q: want 2 with one key", tries.Load(), keys)
	}
	if !strings.Contains(out, "available  7") {
		t.Errorf("output:\n%s", out)
	}
	if got := available(t, "acme"); got != "7" {
		t.Errorf("available %s after one top-up of 7 retried once, want 7", got)
	}
	// A new invocation is a new key: it applies again.
	if code, _, errb := cli(t, "tenants", "topup", "acme", "7"); code != 0 {
		t.Fatalf("second topup: %s", errb)
	}
	if got := available(t, "acme"); got != "14" {
		t.Errorf("available %s after two invocations, want 14", got)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		note    string
		json    bool
		wantErr string
	}{
		{[]string{"acme", "5"}, []string{"acme", "5"}, "", false, ""},
		{[]string{"acme", "-5", "--note", "x"}, []string{"acme", "-5"}, "x", false, ""},
		{[]string{"--note", "-5", "acme", "-.5"}, []string{"acme", "-.5"}, "-5", false, ""},
		{[]string{"acme", "--json", "-0.25", "-note=a b"}, []string{"acme", "-0.25"}, "a b", true, ""},
		{[]string{"--json=false", "acme", "--", "--note"}, []string{"acme", "--note"}, "", false, ""},
		{[]string{"acme", "5", "--note"}, nil, "", false, "needs an argument"},
		{[]string{"acme", "-x"}, nil, "", false, "not defined: -x"},
		{[]string{"acme"}, nil, "", false, "want baimo t ID AMOUNT"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		note := fs.String("note", "", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, tt.args, 2, "t ID AMOUNT")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, tt.pos) || *note != tt.note || *asJSON != tt.json {
			t.Errorf("%q: pos %q note %q json %v err %v; want %q %q %v", tt.args, pos, *note, *asJSON, err, tt.pos, tt.note, tt.json)
		}
	}
}

func TestPrintStatementShowsExchangeRates(t *testing.T) {
	var st statementJSON
	if err := json.Unmarshal([]byte(`{"tenant_id":"acme","currency":"CNY","lines":[{"model":"gpt-4o-mini","requests":1,"exact_nanos":1052061480,"amount":"1.05",
		"exchange_rates":[{"from":"USD","rate":"6.9858","source":"MENAFN, menafn.com/1110654245 (2026-01-27)"}]}],"exact_total_nanos":1052061480,"total":"1.05"}`), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printStatement(&b, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "gpt-4o-mini: priced in USD, converted at 6.9858 CNY per USD (MENAFN, menafn.com/1110654245 (2026-01-27))") {
		t.Errorf("statement:\n%s", b.String())
	}
}

// TestCLINoZeroDates: the CLI never prints 0001-01-01: the default tenant
// of a fresh store was created at the first start, and a statement with no
// --from runs from "the beginning".
func TestCLINoZeroDates(t *testing.T) {
	startBilling(t)
	for _, args := range [][]string{{"tenants", "list"}, {"keys", "list"}, {"tenants", "statement", "default"}} {
		code, out, errb := cli(t, args...)
		if code != 0 || strings.Contains(out, "0001-01-01") {
			t.Errorf("%v: exit %d, %s %s", args, code, out, errb)
		}
	}
	if _, out, _ := cli(t, "tenants", "statement", "default"); !strings.Contains(out, "the beginning to ") {
		t.Errorf("statement: %s", out)
	}
}

// TestPrintBalanceSaysWhyBelowZero: `tenants balance` prints the API's
// reason under a negative available balance, and a postpaid tenant's
// spendable credit.
func TestPrintBalanceSaysWhyBelowZero(t *testing.T) {
	for _, c := range []struct {
		json string
		want []string
		not  string
	}{
		{`{"tenant_id":"b","kind":"postpaid","currency":"CNY","credit_limit":"100","posted":"-12","pending":"0","available":"-12","debt":"0","spendable":"88",` +
			`"available_note":"Below zero because a postpaid tenant spends on credit: 12 of its 100 CNY credit limit is spent or held; 88 is left to spend."}`,
			[]string{"-12\n", "(Below zero because a postpaid tenant spends on credit", "spendable     88\n"}, ""},
		{`{"tenant_id":"a","kind":"prepaid","currency":"CNY","credit_limit":"0","posted":"5","pending":"0","available":"5","debt":"0","spendable":"5","available_note":null}`,
			[]string{"available  5\n"}, "Below zero"},
	} {
		var b balanceJSON
		if err := json.Unmarshal([]byte(c.json), &b); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := printBalance(&out, b); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("balance lacks %q:\n%s", w, out.String())
			}
		}
		if c.not != "" && strings.Contains(out.String(), c.not) {
			t.Errorf("balance has %q:\n%s", c.not, out.String())
		}
	}
}
