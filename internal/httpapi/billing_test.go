package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/sim"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

type billingEnv struct {
	env
	db    *sqlite.DB
	books *ledger.Ledger
	bill  *billing.Biller
	gw    *gateway.Gateway
}

// newBillingEnv wires the whole request path as serve does on SQLite: the
// simulator upstream, rating, holds in memory, and settlement with the
// records in one batch.
func newBillingEnv(t *testing.T, mutate ...func(*gateway.Options, *billing.Options)) *billingEnv {
	t.Helper()
	return newBillingEnvHolds(t, true, mutate...)
}

// newBillingEnvHolds is newBillingEnv with holds in memory (as serve on
// SQLite) or, exclusive false, in the store (as serve on PostgreSQL).
func newBillingEnvHolds(t *testing.T, exclusive bool, mutate ...func(*gateway.Options, *billing.Options)) *billingEnv {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	opt := sim.DefaultOptions()
	opt.TTFT, opt.TPOT = 0, 0
	up := httptest.NewServer(sim.New(opt))
	t.Cleanup(up.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := clock.Real{}
	books := ledger.New(db, ledger.Options{Clock: clk, Logger: log, Node: "test", Exclusive: exclusive})
	rater := &billing.Rater{Catalog: cat, Currency: "CNY"}
	bopt := billing.Options{Rater: rater, Books: books, Records: db, Clock: clk, Log: log,
		Holds:    billing.HoldRules{DefaultOutput: 1000},
		Recorder: billing.RecorderOptions{BatchSize: 32, QueueSize: 1024}}
	opts := gateway.Options{Keys: db, Log: log, Limits: config.Default().Limits, Clock: clk, Counter: gateway.Tokenizer{},
		Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{Name: "sim", Kind: "openai", BaseURL: up.URL + "/v1",
			Models: config.ModelMap{"sim-chat": "sim-chat", "sim-free": "sim-chat"}})}}
	for _, m := range mutate {
		m(&opts, &bopt)
	}
	bill := billing.New(bopt)
	opts.Billing = bill
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash("adm"), Clock: clk, Log: log,
		Billing: &httpapi.Billing{Ledger: books, Store: db, AuditGrace: time.Minute},
		Prices: &httpapi.Prices{Catalog: cat, Store: db, Currency: "CNY", Lists: db, Rater: rater,
			CountPrompt: func(model string, body []byte) (int64, bool) {
				n, src := gateway.Tokenizer{}.CountBody(ir.FormatOpenAI, model, body)
				return n, src == usage.SourceCounted
			}}}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = gw.Drain(context.Background())
		_ = bill.Close(context.Background())
		_ = books.Close()
		db.Close()
	})
	return &billingEnv{env: env{url: srv.URL}, db: db, books: books, bill: bill, gw: gw}
}

func (e *billingEnv) doH(t *testing.T, method, path, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer adm")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = jsonUnmarshal(b, &m)
	return resp.StatusCode, m
}

func TestBillingAdmin(t *testing.T) {
	e := newBillingEnv(t)
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"acme","name":"Acme","kind":"prepaid","currency":"CNY"}`); st != 201 {
		t.Fatalf("create tenant = %d %v", st, m)
	}
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"acme","name":"Acme","kind":"prepaid","currency":"CNY"}`); st != 409 {
		t.Errorf("create twice = %d %v", st, m)
	}
	if st, m := e.doH(t, "POST", "/admin/tenants/acme/topup", `{"amount":"ten"}`); st != 400 || !strings.Contains(mustJSON(m), "amount") {
		t.Errorf("bad amount = %d %v", st, m)
	}
	st, first := e.doH(t, "POST", "/admin/tenants/acme/topup", `{"amount":"10.5"}`, "Idempotency-Key", "k1")
	if st != 200 {
		t.Fatalf("top-up = %d %v", st, first)
	}
	st, again := e.doH(t, "POST", "/admin/tenants/acme/topup", `{"amount":"10.5"}`, "Idempotency-Key", "k1")
	if st != 200 || again["transfer_id"] != first["transfer_id"] {
		t.Errorf("replayed top-up = %d %v, want the first result %v", st, again, first["transfer_id"])
	}
	if st, m := e.doH(t, "POST", "/admin/tenants/acme/topup", `{"amount":"99"}`, "Idempotency-Key", "k1"); st != 409 {
		t.Errorf("same key, other body = %d %v", st, m)
	}
	if _, m := e.doH(t, "GET", "/admin/tenants/acme/balance", ""); m["available"] != "10.5" {
		t.Errorf("balance = %v, want 10.5 available (one top-up, not two)", m)
	}
	_, c := e.doH(t, "POST", "/admin/codes", `{"amount":"5","currency":"CNY"}`)
	code, _ := c["code"].(string)
	if code == "" {
		t.Fatalf("code = %v", c)
	}
	// Many concurrent redemptions of one code: exactly one succeeds.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, _ := e.doH(t, "POST", "/admin/tenants/acme/redeem", `{"code":"`+code+`"}`); st == 200 {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("code redeemed %d times, want once", wins)
	}
	if _, m := e.doH(t, "GET", "/admin/tenants/acme/balance", ""); m["available"] != "15.5" {
		t.Errorf("balance after redeem = %v", m)
	}
	if st, m := e.doH(t, "GET", "/admin/audit", ""); st != 200 || m["ok"] != true {
		t.Errorf("audit = %d %v", st, m)
	}
}

// TestPrepaidRunsOut drives real requests against a prepaid balance that
// covers only some of them: those beyond it get 429 insufficient_quota before
// any upstream call, the balance is charged exactly the rated cost of the
// requests served, and the audit is clean.
func TestPrepaidRunsOut(t *testing.T) {
	for _, held := range []struct {
		name      string
		exclusive bool
	}{{"holds in memory", true}, {"holds in the store", false}} {
		t.Run(held.name, func(t *testing.T) { testPrepaidRunsOut(t, newBillingEnvHolds(t, held.exclusive)) })
	}
}

// testPrepaidRunsOut: concurrent requests against a balance that covers only
// some of them are served or refused with insufficient_quota, and the books
// end exact.
func testPrepaidRunsOut(t *testing.T, e *billingEnv) {
	e.doH(t, "POST", "/admin/tenants", `{"id":"small","name":"Small","kind":"prepaid","currency":"CNY"}`)
	// sim-chat: ¥2 in / ¥8 out per 1M. A hold for max_tokens 1000 is about ¥0.008.
	e.doH(t, "POST", "/admin/tenants/small/topup", `{"amount":"0.05"}`)
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"s","tenant_id":"small"}`)
	secret := k["key"].(string)
	served, refused := 0, 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(
				`{"model":"sim-chat","max_tokens":1000,"messages":[{"role":"user","content":"hello there"}],"sim":{"output_tokens":900}}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == 200:
				served++
			case resp.StatusCode == 429 && strings.Contains(string(b), `"code":"insufficient_quota"`):
				refused++
			default:
				t.Errorf("unexpected %d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if served == 0 || refused == 0 {
		t.Fatalf("served %d, refused %d: the balance should cover some but not all", served, refused)
	}
	_ = e.gw.Drain(context.Background())
	_ = e.bill.Close(context.Background())
	page, err := e.db.ListRecords(context.Background(), usage.Filter{TenantID: "small", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	recs := page.Records
	var cost int64
	n := 0
	for _, r := range recs {
		if r.Status == 200 {
			n++
			cost += r.CostNanos
		}
	}
	b, err := e.books.Balance(context.Background(), "small")
	if err != nil {
		t.Fatal(err)
	}
	if n != served || b.Pending != 0 || b.Posted != 50_000_000-cost || b.Posted < 0 {
		t.Errorf("served %d (records %d), cost %d, balance %+v: want posted = 0.05 CNY - cost, nothing pending", served, n, cost, b)
	}
	rep, err := ledger.Audit(context.Background(), e.db, time.Now(), time.Minute)
	if err != nil || !rep.OK {
		t.Errorf("audit: %v %+v", err, rep.Failed())
	}
}

func TestTenantPriceList(t *testing.T) {
	e := newBillingEnv(t)
	for _, id := range []string{"plain", "resold"} {
		e.doH(t, "POST", "/admin/tenants", `{"id":"`+id+`","name":"x","kind":"postpaid","currency":"CNY","credit_limit":"10"}`)
	}
	if st, m := e.doH(t, "PUT", "/admin/tenants/resold/price_list", `{"markup_bp":-20000}`); st != 400 {
		t.Errorf("a markup below -100%% = %d %v", st, m)
	}
	if st, m := e.doH(t, "PUT", "/admin/tenants/resold/price_list", `{"markup_bp":5000}`); st != 200 {
		t.Fatalf("set price list = %d %v", st, m)
	}
	cost := map[string]int64{}
	for _, id := range []string{"plain", "resold"} {
		_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"`+id+`"}`)
		req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(
			`{"model":"sim-chat","messages":[{"role":"user","content":"same words"}],"sim":{"output_tokens":50}}`))
		req.Header.Set("Authorization", "Bearer "+k["key"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", id, resp.StatusCode)
		}
	}
	_ = e.gw.Drain(context.Background())
	_ = e.bill.Close(context.Background())
	for _, id := range []string{"plain", "resold"} {
		page, err := e.db.ListRecords(context.Background(), usage.Filter{TenantID: id})
		if err != nil || len(page.Records) != 1 {
			t.Fatalf("%s records: %v %d", id, err, len(page.Records))
		}
		cost[id] = page.Records[0].CostNanos
	}
	// +50%: exactly one and a half times the catalog price of the same usage.
	if cost["plain"] <= 0 || 2*cost["resold"] != 3*cost["plain"] {
		t.Errorf("costs %v: want resold = 1.5 × plain", cost)
	}
	// The statement breaks each model's line down by rule kind, exactly.
	st, m := e.doH(t, "GET", "/admin/tenants/resold/statement", "")
	lines, _ := m["lines"].([]any)
	if st != 200 || len(lines) != 1 {
		t.Fatalf("statement = %d %v", st, m)
	}
	line := lines[0].(map[string]any)
	var sum float64 // JSON numbers of nanos: exact below 2^53
	kinds := map[string]bool{}
	for _, k := range line["kinds"].([]any) {
		km := k.(map[string]any)
		kinds[km["kind"].(string)] = true
		sum += km["exact_nanos"].(float64)
	}
	if !kinds["input"] || !kinds["output"] || sum != line["exact_nanos"].(float64) || int64(sum) != cost["resold"] {
		t.Errorf("statement line %v: kinds must add up to the line (%d)", line, cost["resold"])
	}
	req, _ := http.NewRequest("GET", e.url+"/admin/tenants/resold/statement?format=csv", nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(csvBody), "sim-chat,output,50,") || !strings.HasPrefix(string(csvBody), "model,kind,quantity,") {
		t.Errorf("statement csv = %s", csvBody)
	}
}

func TestBudgets(t *testing.T) {
	e := newBillingEnv(t)
	e.doH(t, "POST", "/admin/tenants", `{"id":"b","name":"b","kind":"postpaid","currency":"CNY","credit_limit":"100"}`)
	if st, m := e.doH(t, "PUT", "/admin/budgets/tenant/b", `{"period":"fortnight","limit":"0.001"}`); st != 400 {
		t.Errorf("bad period = %d %v", st, m)
	}
	if st, m := e.doH(t, "PUT", "/admin/budgets/tenant/b", `{"period":"day","limit":"0.001","alerts":[50,100]}`); st != 200 || m["limit"] != "0.001" {
		t.Fatalf("set budget = %d %v", st, m)
	}
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"b"}`)
	ask := func(maxTokens string) (int, string) {
		req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(
			`{"model":"sim-chat","max_tokens":`+maxTokens+`,"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":20}}`))
		req.Header.Set("Authorization", "Bearer "+k["key"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// 1000 output tokens at ¥8/M could cost ¥0.008: more than the ¥0.001 budget.
	if st, body := ask("1000"); st != 429 || !strings.Contains(body, `"code":"budget_exceeded"`) {
		t.Errorf("over budget = %d %s", st, body)
	}
	if st, body := ask("50"); st != 200 {
		t.Errorf("within budget = %d %s", st, body)
	}
	_ = e.gw.Drain(context.Background())
	_ = e.bill.Close(context.Background())
	if st, m := e.doH(t, "GET", "/admin/budgets/tenant/b", ""); st != 200 || m["spent"] == "0" || m["pending"] != "0" {
		t.Errorf("budget usage = %d %v", st, m)
	}
}

func TestFreeTier(t *testing.T) {
	e := newBillingEnv(t, func(o *gateway.Options, b *billing.Options) {
		b.Rater.Free = map[string]bool{"sim-free": true}
		b.FreeTier = &billing.FreeTier{DailyRequests: 3, DailyTokens: 100000, Zone: time.UTC, Clock: clock.Real{},
			Tenants: b.Books.(*ledger.Ledger), Totals: o.Keys.(*sqlite.DB)}
	})
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"c-end","name":"a consumer","kind":"free","currency":"CNY"}`); st != 201 {
		t.Fatalf("create free tenant = %d %v", st, m)
	}
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"c-end"}`)
	ask := func(model string) (int, string) {
		req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(
			`{"model":"`+model+`","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":5}}`))
		req.Header.Set("Authorization", "Bearer "+k["key"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if st, body := ask("sim-chat"); st != 403 || !strings.Contains(body, `"code":"model_not_free"`) {
		t.Errorf("a paid model on the free tier = %d %s", st, body)
	}
	for i := 0; i < 3; i++ {
		if st, body := ask("sim-free"); st != 200 {
			t.Fatalf("free request %d = %d %s", i, st, body)
		}
	}
	st, body := ask("sim-free")
	if st != 429 || !strings.Contains(body, `"code":"free_quota_exceeded"`) || !strings.Contains(body, "3 requests") {
		t.Errorf("over the daily quota = %d %s", st, body)
	}
	_ = e.gw.Drain(context.Background())
	_ = e.bill.Close(context.Background())
	if b, err := e.books.Balance(context.Background(), "c-end"); err != nil || b.Posted != 0 || b.Pending != 0 {
		t.Errorf("a free account moved money: %+v %v", b, err)
	}
}

// askChat posts a chat request with a key and returns the response and body.
func askChat(t *testing.T, url, secret, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// prepaidKey creates a prepaid tenant topped up with amount and a key of it.
func (e *billingEnv) prepaidKey(t *testing.T, id, amount string) string {
	t.Helper()
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"`+id+`","name":"`+id+`","kind":"prepaid","currency":"CNY"}`); st != 201 {
		t.Fatalf("create tenant: %d %v", st, m)
	}
	if st, m := e.doH(t, "POST", "/admin/tenants/"+id+"/topup", `{"amount":"`+amount+`"}`); st != 200 {
		t.Fatalf("top up: %d %v", st, m)
	}
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"`+id+`"}`)
	return k["key"].(string)
}

// settled waits for the records to be written and returns the tenant's
// balance, checking the audit.
func (e *billingEnv) settled(t *testing.T, tenant string) ledger.Balance {
	t.Helper()
	_ = e.gw.Drain(context.Background())
	_ = e.bill.Close(context.Background())
	b, err := e.books.Balance(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Audit(context.Background(), e.db, time.Now(), time.Minute)
	if err != nil || !rep.OK {
		t.Errorf("audit: %v %+v", err, rep.Failed())
	}
	return b
}

// TestPrepaidOutputLowered: a prepaid tenant that sets no output limit and
// cannot pay for the model's maximum gets its output lowered to what its
// balance pays for: sent upstream, reported in X-Baimo-Output-Limit, and
// the tenant never goes into debt.
func TestPrepaidOutputLowered(t *testing.T) {
	e := newBillingEnv(t)
	// sim-chat: ¥2 in / ¥8 out per 1M, at most 16,384 output tokens (about
	// ¥0.13 held when the client sets no limit): ¥0.003 pays for about 370.
	secret := e.prepaidKey(t, "lean", "0.003")
	resp, body := askChat(t, e.url, secret, `{"model":"sim-chat","messages":[{"role":"user","content":"hello"}],"sim":{"output_tokens":900}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	limit, err := strconv.ParseInt(resp.Header.Get("X-Baimo-Output-Limit"), 10, 64)
	if err != nil || limit < 64 || limit >= 16384 {
		t.Fatalf("X-Baimo-Output-Limit = %q, want a lowered limit", resp.Header.Get("X-Baimo-Output-Limit"))
	}
	var r struct {
		Usage struct {
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	if r.Usage.CompletionTokens != limit {
		t.Errorf("the upstream produced %d tokens: the limit %d was not sent to it", r.Usage.CompletionTokens, limit)
	}
	if b := e.settled(t, "lean"); b.Debt != 0 || b.Posted < 0 || b.Pending != 0 {
		t.Errorf("balance %+v: want no debt", b)
	}
}

// TestPrepaidNeverInDebt: concurrent requests of a small prepaid tenant,
// with and without output limits, large ones included: some are served,
// some refused, none runs the tenant into debt (the old hold capped output
// at 4,096 tokens whatever max_tokens said).
func TestPrepaidNeverInDebt(t *testing.T) {
	for _, held := range []struct {
		name      string
		exclusive bool
	}{{"holds in memory", true}, {"holds in the store", false}} {
		for round := range 3 {
			t.Run(fmt.Sprintf("%s/%d", held.name, round), func(t *testing.T) {
				e := newBillingEnvHolds(t, held.exclusive)
				secret := e.prepaidKey(t, "thin", "0.20")
				bodies := []string{
					`{"model":"sim-chat","max_tokens":16000,"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":16000}}`,
					`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":20000}}`,
					`{"model":"sim-chat","max_tokens":5000,"n":3,"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":5000}}`,
				}
				var wg sync.WaitGroup
				var served atomic.Int32
				for i := 0; i < 12; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, body := askChat(t, e.url, secret, bodies[i%len(bodies)])
						switch {
						case resp.StatusCode == 200:
							served.Add(1)
						case resp.StatusCode == 429 && strings.Contains(body, "insufficient_quota"):
						default:
							t.Errorf("unexpected %d %s", resp.StatusCode, body)
						}
					}()
				}
				wg.Wait()
				b := e.settled(t, "thin")
				if served.Load() == 0 || b.Debt != 0 || b.Posted < 0 {
					t.Errorf("served %d, balance %+v: want some served and no debt", served.Load(), b)
				}
			})
		}
	}
}

// TestBilledAtMostTheHoldsOutput: an upstream that answers with more output
// than the max_tokens it was sent is billed at most that output (the
// operator's loss, logged), never the tenant's debt.
func TestBilledAtMostTheHoldsOutput(t *testing.T) {
	e := newBillingEnv(t)
	secret := e.prepaidKey(t, "over", "1")
	resp, body := askChat(t, e.url, secret, `{"model":"sim-chat","max_tokens":40,`+
		`"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":3000,"ignore_max_tokens":true}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	e.settled(t, "over")
	page, err := e.db.ListRecords(context.Background(), usage.Filter{TenantID: "over", Limit: 10})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("records %v %v", page.Records, err)
	}
	if rec := page.Records[0]; rec.Usage.Output != 40 || !rec.Complete {
		t.Errorf("record %+v: want output billed at the 40 the hold covers", rec)
	}
}

// TestStreamCutAtItsHold: an upstream that streams past the max_tokens it
// was sent is cut at the output the hold covers; the client is told, the
// record says so, and the charge stays within the hold.
func TestStreamCutAtItsHold(t *testing.T) {
	e := newBillingEnv(t)
	secret := e.prepaidKey(t, "cut", "1")
	resp, body := askChat(t, e.url, secret, `{"model":"sim-chat","max_tokens":40,"stream":true,`+
		`"messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":3000,"ignore_max_tokens":true}}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "output this request's hold covers") || strings.Contains(body, "[DONE]") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	b := e.settled(t, "cut")
	page, err := e.db.ListRecords(context.Background(), usage.Filter{TenantID: "cut", Limit: 10})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("records %v %v", page.Records, err)
	}
	rec := page.Records[0]
	if rec.ErrorClass != usage.ErrOutputLimit || rec.Usage.Output > 40 || rec.Complete {
		t.Errorf("record %+v", rec)
	}
	if spent := 1_000_000_000 - b.Posted; spent != rec.CostNanos || b.Debt != 0 {
		t.Errorf("spent %d, record cost %d, balance %+v", spent, rec.CostNanos, b)
	}
}

// TestKeyNeedsExistingTenant: the admin API creates no key for a tenant
// that does not exist.
func TestKeyNeedsExistingTenant(t *testing.T) {
	e := newBillingEnv(t)
	st, m := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"ghost"}`)
	if p, _ := m["error"].(map[string]any)["param"].(string); st != 400 || p != "tenant_id" {
		t.Errorf("key for a missing tenant = %d %v", st, m)
	}
	if _, m := e.doH(t, "GET", "/admin/keys", ""); strings.Contains(mustJSON(m), "ghost") {
		t.Errorf("a key was created: %v", m)
	}
	if st, m := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"default"}`); st != 201 {
		t.Errorf("key for the default tenant = %d %v", st, m)
	}
	e.doH(t, "POST", "/admin/tenants", `{"id":"ghost","kind":"prepaid","currency":"CNY"}`)
	if st, m := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"ghost"}`); st != 201 || m["tenant_id"] != "ghost" {
		t.Errorf("key for an existing tenant = %d %v", st, m)
	}
}

// TestPostpaidBalanceSaysWhyBelowZero: a postpaid tenant's available
// balance goes below zero as it spends on credit; the balance then says
// why and how much is left (spendable = credit limit + available), and a
// balance at or above zero carries no note.
func TestPostpaidBalanceSaysWhyBelowZero(t *testing.T) {
	e := newBillingEnv(t)
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"post","name":"p","kind":"postpaid","currency":"CNY","credit_limit":"10"}`); st != 201 {
		t.Fatalf("create tenant: %d %v", st, m)
	}
	for _, id := range []string{"post", "default"} {
		if _, b := e.doH(t, "GET", "/admin/tenants/"+id+"/balance", ""); b["available_note"] != nil || b["available"] != "0" {
			t.Errorf("%s before any request: %v, want available 0 and no note", id, b)
		}
	}
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k","tenant_id":"post"}`)
	if resp, out := askChat(t, e.url, k["key"].(string), `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"sim":{"output_tokens":50}}`); resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, out)
	}
	bal := e.settled(t, "post")
	if bal.Available >= 0 {
		t.Fatalf("a postpaid request left available at %d, want below zero", bal.Available)
	}
	_, b := e.doH(t, "GET", "/admin/tenants/post/balance", "")
	note, _ := b["available_note"].(string)
	used, left := money.FormatNanos(-bal.Available), money.FormatNanos(10_000_000_000+bal.Available)
	if b["available"] != money.FormatNanos(bal.Available) || b["credit_used"] != used || b["spendable"] != left {
		t.Errorf("balance %v: want available %s, credit_used %s, spendable %s", b, money.FormatNanos(bal.Available), used, left)
	}
	for _, want := range []string{"postpaid", "on credit", used + " of its 10 CNY credit limit", left + " is left"} {
		if !strings.Contains(note, want) {
			t.Errorf("available_note %q lacks %q", note, want)
		}
	}
}
