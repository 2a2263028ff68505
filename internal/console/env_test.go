package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/batch"
	"baimo/internal/billing"
	"baimo/internal/channels"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/console"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

const adminKey = "sk-baimo-admin-test"

// Secrets of the fixture's keys.
const (
	acmeSecret   = "sk-baimo-acme-secret-000000000001"
	globexSecret = "sk-baimo-globex-secret-00000000001"
)

// testNow is the fake clock's time: 2026-12-07 12:00 in Shanghai.
var testNow = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

type env struct {
	url   string
	db    *sqlite.DB
	books *ledger.Ledger
	con   *console.Console
	clk   *clock.Fake
	gw    *gateway.Gateway
}

// newEnv serves the admin API and the console over a fresh SQLite store with
// two tenants (acme, prepaid; globex, postpaid), a key each, and requests of
// both, on a fake clock, so pages render the same every run.
func newEnv(t *testing.T, extra ...*gateway.Channel) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(testNow)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	books := ledger.New(db, ledger.Options{Clock: clk, Logger: log, Node: "test"})
	rater := &billing.Rater{Catalog: cat, Currency: "CNY"}
	bill := billing.New(billing.Options{Rater: rater, Books: books, Records: db, Clock: clk, Log: log,
		Holds: billing.HoldRules{DefaultOutput: 1000}, Recorder: billing.RecorderOptions{BatchSize: 8, QueueSize: 64}})
	simCh := config.Channel{Name: "sim", Kind: "openai", BaseURL: "http://127.0.0.1:9/v1", Models: config.ModelMap{"sim-chat": "sim-chat"}}
	if err := config.CheckChannel(&simCh, ""); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Keys: db, Log: log, Limits: config.Default().Limits, Clock: clk, Billing: bill,
		Channels: append([]*gateway.Channel{gateway.NewChannel(simCh)}, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	chans := channels.New(db, []config.Channel{simCh}, gw, channels.Options{Clock: clk, Log: log})
	if err := chans.Load(ctx); err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	con, err := console.New(console.Options{Clock: clk, Log: log, Zone: zone, AdminKeyHash: keys.Hash(adminKey), Keys: db, Logins: db,
		Reports: db, Catalog: cat, Currency: "CNY", Billing: true, MaxTenantKeys: 3, Channels: chans})
	if err != nil {
		t.Fatal(err)
	}
	// The batch service without its runner: batches are created and listed,
	// never run.
	batches := batch.New(batch.Options{Store: db.BatchStore(), Blobs: batch.DiskBlobs{Dir: t.TempDir()}, Gateway: gw, Money: bill,
		Keys: db, Clock: clk, Log: log, Node: "test"})
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash(adminKey), Clock: clk, Log: log, Batches: batches,
		Billing: &httpapi.Billing{Ledger: books, Store: db, AuditGrace: time.Minute},
		Prices:  &httpapi.Prices{Catalog: cat, Store: db, Currency: "CNY", Lists: db, Rater: rater}, Console: con}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = bill.Close(context.Background())
		_ = books.Close()
		db.Close()
	})
	e := &env{url: srv.URL, db: db, books: books, con: con, clk: clk, gw: gw}
	e.seed(t)
	return e
}

// seed creates the tenants, keys, money and records of the fixture.
func (e *env) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, tn := range []ledger.Tenant{
		{ID: "acme", Name: "Acme Ltd", Kind: ledger.Prepaid, Currency: "CNY"},
		{ID: "globex", Name: "Globex", Kind: ledger.Postpaid, Currency: "CNY", CreditLimit: 500 * money.Scale},
	} {
		if _, err := e.books.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 100 * money.Scale, IdempotencyKey: "seed"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ id, name, tenant, secret string }{
		{"key_acme1", "acme-prod", "acme", acmeSecret},
		{"key_globex1", "globex-prod", "globex", globexSecret},
	} {
		err := e.db.CreateKey(ctx, keys.Key{ID: k.id, Name: k.name, Prefix: k.secret[:15], Hash: keys.Hash(k.secret),
			TenantID: k.tenant, CreatedAt: testNow.Add(-72 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	var recs []usage.Record
	for i := 0; i < 24; i++ {
		tenant, key, model := "acme", "key_acme1", "deepseek-chat"
		if i%3 == 0 {
			tenant, key, model = "globex", "key_globex1", "qwen-max"
		}
		status := 200
		if i%7 == 6 {
			status = 502
		}
		r := usage.Record{RequestID: fmt.Sprintf("req_%s_%02d", tenant, i), KeyID: key, TenantID: tenant, Endpoint: "chat",
			Model: model, Channel: "sim", UpstreamModel: model, Status: status, Complete: status == 200,
			Usage: usage.Usage{Input: int64(1000 + 10*i), CachedInput: int64(i * 5), Output: int64(200 + i), Source: usage.SourceVendor},
			Start: testNow.Add(-time.Duration(i)*37*time.Minute - time.Minute),
			TTFT:  time.Duration(150+20*i) * time.Millisecond, Duration: time.Second,
			Attempts: []usage.Attempt{{Channel: "sim", Key: "k0", Status: status, Duration: 900 * time.Millisecond}},
			Currency: "CNY", CostNanos: int64(1_234_567 * (i + 1)), PriceVersion: model + "@2025-01",
			Lines: []byte(`[{"kind":"input","quantity":1000,"price":"2","price_currency":"CNY","per":1000000,"multiplier":"1","amount":"0.002","currency":"CNY","version":"` + model + `@2025-01"}]`)}
		if status != 200 {
			r.Usage, r.TTFT, r.CostNanos, r.Lines, r.Currency, r.PriceVersion = usage.Usage{}, 0, 0, nil, "", ""
			r.ErrorClass = usage.ErrUpstream
		}
		recs = append(recs, r)
	}
	if err := e.db.WriteRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
}

// client is a browser: a cookie jar, and the language it asks for.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
	lang string
	// csrf is the token of the last page fetched.
	csrf string
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (e *env) client(t *testing.T, lang string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, e: e, lang: lang, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches a path and returns the status and body.
func (c *client) get(path string, hdr ...string) (int, string) {
	c.t.Helper()
	return c.do("GET", path, nil, hdr...)
}

func (c *client) do(method, path string, form url.Values, hdr ...string) (int, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.url+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept-Language", c.lang)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	if res.StatusCode == http.StatusSeeOther || res.StatusCode == http.StatusFound {
		return res.StatusCode, res.Header.Get("Location")
	}
	return res.StatusCode, string(b)
}

// post submits a form with the page's CSRF token.
func (c *client) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("_csrf") == "" {
		form.Set("_csrf", c.csrf)
	}
	return c.do("POST", path, form)
}

// signIn signs in with a key through the login form.
func (c *client) signIn(key string) {
	c.t.Helper()
	if st, _ := c.get("/ui/login"); st != http.StatusOK {
		c.t.Fatalf("GET /ui/login = %d", st)
	}
	st, loc := c.post("/ui/login", url.Values{"key": {key}})
	if st != http.StatusSeeOther {
		c.t.Fatalf("sign in = %d %s", st, loc)
	}
}
