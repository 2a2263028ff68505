// Command console measures the web console on a large SQLite database: it
// fills one with usage records spread over 30 days (through the store's own
// writes, so the rollups are built as the gateway builds them; resumable),
// then times the 30-day overview and pages of the request log as a browser
// asks for them, through the console and the admin API in-process.
//
//	go run ./bench/console -records 10000000 -db /tmp/baimo-console-bench.db
//
// The budgets (issue 16): 30-day overview p95 < 200 ms, any request-log
// page < 300 ms, with 10 million records.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/console"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

const adminKey = "sk-baimo-bench-admin"

func main() {
	n := flag.Int("records", 10_000_000, "usage records the database should hold")
	path := flag.String("db", "/tmp/baimo-console-bench.db", "SQLite database (reused if it holds the records)")
	rounds := flag.Int("rounds", 40, "timed requests per page")
	days := flag.Int("days", 30, "days the records span")
	flag.Parse()
	if err := run(*n, *path, *rounds, *days); err != nil {
		fmt.Fprintln(os.Stderr, "console bench:", err)
		os.Exit(1)
	}
}

// The shape of the traffic: tenants with a few keys each, each key using a
// few models, each model on two channels.
var (
	tenants  = 40
	perKey   = 5 // keys per tenant
	models   = []string{"deepseek-chat", "deepseek-reasoner", "qwen-max", "qwen-plus", "glm-4-plus", "moonshot-v1-8k", "doubao-pro-32k", "ernie-4.0-8k"}
	channels = []string{"primary", "backup"}
)

func run(n int, path string, rounds, days int) error {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	zone, _ := time.LoadLocation("Asia/Shanghai")
	tot, err := db.TotalRecords(ctx, usage.Filter{})
	if err != nil {
		return err
	}
	anchor := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if tot.Requests < int64(n) {
		if err := db.SetReportZone(ctx, zone, anchor.AddDate(0, 0, -days-2)); err != nil {
			return err
		}
		if err := fill(ctx, db, int(tot.Requests), n, anchor, days); err != nil {
			return err
		}
	}
	fmt.Printf("database %s: %d records over %d days\n", path, max(int64(n), tot.Requests), days)

	clk := clock.NewFake(anchor)
	h, err := handler(ctx, db, clk, zone)
	if err != nil {
		return err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) (time.Duration, string, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		t0 := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(t0)
		if res.StatusCode != http.StatusOK {
			return d, "", fmt.Errorf("GET %s: %d %.300s", path, res.StatusCode, b)
		}
		return d, string(b), nil
	}
	measure := func(name string, paths func(i int) string) error {
		var ds []time.Duration
		for i := 0; i < rounds; i++ {
			d, _, err := get(paths(i))
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		p := func(q int) time.Duration { return ds[min(len(ds)-1, len(ds)*q/100)] }
		fmt.Printf("%-46s p50 %7.1f ms  p95 %7.1f ms  max %7.1f ms\n", name, ms(p(50)), ms(p(95)), ms(ds[len(ds)-1]))
		return nil
	}
	// Warm up: the first page of each kind loads the SQLite pages it needs.
	for _, p := range []string{"/ui/overview?range=30d", "/ui/requests"} {
		if _, _, err := get(p); err != nil {
			return err
		}
	}
	fixed := func(p string) func(int) string { return func(int) string { return p } }
	if err := measure("overview, 30 days (page)", fixed("/ui/overview?range=30d")); err != nil {
		return err
	}
	if err := measure("overview, 24 hours (page)", fixed("/ui/overview?range=24h")); err != nil {
		return err
	}
	if err := measure("usage explorer, 30 days by tenant (page)", fixed("/ui/usage?range=30d&group_by=tenant&bucket=day")); err != nil {
		return err
	}
	if err := measure("report API, 30 days by model, by day", fixed("/admin/reports/usage?range=30d&group_by=model&bucket=day")); err != nil {
		return err
	}
	if err := measure("report API, 30 days by tenant, by day", fixed("/admin/reports/usage?range=30d&group_by=tenant&bucket=day&top=10")); err != nil {
		return err
	}
	if err := measure("report API, 30 days by key", fixed("/admin/reports/usage?range=30d&group_by=key")); err != nil {
		return err
	}
	if err := measure("request log, first page", fixed("/ui/requests")); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if err := measure("request log, one tenant", func(int) string {
		return "/ui/requests?tenant_id=" + tenantID(rng.IntN(tenants))
	}); err != nil {
		return err
	}
	if err := measure("request log, one key", func(int) string {
		t := rng.IntN(tenants)
		return "/ui/requests?key_id=" + keyID(t, rng.IntN(perKey))
	}); err != nil {
		return err
	}
	if err := measure("request log, one model and status 429", func(int) string {
		return "/ui/requests?status=429&model=" + models[rng.IntN(len(models))]
	}); err != nil {
		return err
	}
	if err := measure("request log, a day 20 days ago", func(int) string {
		from := anchor.AddDate(0, 0, -20).Add(time.Duration(rng.IntN(24)) * time.Hour)
		return "/ui/requests?" + url.Values{"from": {from.Format(time.RFC3339)}, "to": {from.Add(24 * time.Hour).Format(time.RFC3339)}}.Encode()
	}); err != nil {
		return err
	}
	// Deep pages: follow the "older" link 30 pages down, timing each.
	next := regexp.MustCompile(`href="(/ui/requests\?[^"]*cursor=[^"]*)"`)
	var deep []string
	p := "/ui/requests?tenant_id=" + tenantID(3)
	for i := 0; i < 30 && p != ""; i++ {
		_, body, err := get(p)
		if err != nil {
			return err
		}
		deep = append(deep, p)
		p = ""
		if m := next.FindStringSubmatch(body); m != nil {
			p = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	return measure(fmt.Sprintf("request log, pages 1-%d of one tenant", len(deep)), func(i int) string { return deep[i%len(deep)] })
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func tenantID(t int) string       { return fmt.Sprintf("tenant-%02d", t) }
func keyID(t, k int) string       { return fmt.Sprintf("key_%02d_%d", t, k) }
func reqID(i int) string          { return fmt.Sprintf("req_bench_%010d", i) }
func pick[T any](xs []T, i int) T { return xs[i%len(xs)] }

// fill writes records from..n-1, in time order over days ending at anchor,
// through the store's WriteRecords in batches (as the gateway's recorder
// does, rollups included).
func fill(ctx context.Context, db *sqlite.DB, from, n int, anchor time.Time, days int) error {
	span := time.Duration(days) * 24 * time.Hour
	step := span / time.Duration(n)
	start := anchor.Add(-span)
	const batch = 2000
	t0 := time.Now()
	recs := make([]usage.Record, 0, batch)
	for i := from; i < n; i++ {
		h := uint64(i) * 0x9E3779B97F4A7C15
		t, k := int(h%uint64(tenants)), int(h>>8%uint64(perKey))
		m := pick(models, t+k+int(h>>16%3))
		status := 200
		switch h >> 24 % 100 {
		case 0:
			status = 429
		case 1:
			status = 502
		}
		r := usage.Record{RequestID: reqID(i), KeyID: keyID(t, k), TenantID: tenantID(t), Endpoint: "chat", Model: m,
			Channel: pick(channels, int(h>>32%5)/4), UpstreamModel: m, Stream: h>>40%2 == 0, Status: status, Complete: status == 200,
			Start: start.Add(time.Duration(i) * step), Duration: time.Duration(400+h>>20%3000) * time.Millisecond}
		if status == 200 {
			in, out := int64(200+h>>12%4000), int64(20+h>>28%800)
			r.Usage = usage.Usage{Input: in, CachedInput: in / 4 * int64(h>>36%2), Output: out, Source: usage.SourceVendor}
			r.TTFT = time.Duration(150+h>>44%1500) * time.Millisecond
			r.Currency, r.CostNanos, r.PriceVersion = "CNY", in*2000+out*8000, m+"@2025"
			r.Lines = []byte(`[{"kind":"input","quantity":` + fmt.Sprint(in) + `,"price":"2","price_currency":"CNY","per":1000000,"multiplier":"1","amount":"` +
				fmt.Sprintf("0.%09d", in*2000) + `","currency":"CNY","version":"` + m + `@2025"}]`)
			r.Attempts = []usage.Attempt{{Channel: r.Channel, Status: 200, Duration: r.Duration}}
		} else {
			r.ErrorClass = usage.ErrUpstream
		}
		recs = append(recs, r)
		if len(recs) == batch || i == n-1 {
			if err := db.WriteRecords(ctx, recs); err != nil {
				return err
			}
			recs = recs[:0]
			if (i+1)%(500*batch) == 0 || i == n-1 {
				done := i + 1 - from
				fmt.Printf("  %d records written (%.0f/s)\n", i+1, float64(done)/time.Since(t0).Seconds())
			}
		}
	}
	return nil
}

// handler is the admin API with the console, as serve wires them, on db.
func handler(ctx context.Context, db *sqlite.DB, clk clock.Clock, zone *time.Location) (http.Handler, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	books := ledger.New(db, ledger.Options{Clock: clk, Logger: log, Node: "bench"})
	rater := &billing.Rater{Catalog: cat, Currency: "CNY"}
	bill := billing.New(billing.Options{Rater: rater, Books: books, Records: db, Clock: clk, Log: log,
		Holds: billing.HoldRules{DefaultOutput: 1000}, Recorder: billing.RecorderOptions{BatchSize: 8, QueueSize: 64}})
	gw, err := gateway.New(gateway.Options{Keys: db, Log: log, Limits: config.Default().Limits, Clock: clk, Billing: bill,
		Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{Name: "primary", Kind: "openai", BaseURL: "http://127.0.0.1:9/v1",
			Models: config.ModelMap{"deepseek-chat": "deepseek-chat"}})}})
	if err != nil {
		return nil, err
	}
	con, err := console.New(console.Options{Clock: clk, Log: log, Zone: zone, AdminKeyHash: keys.Hash(adminKey), Keys: db,
		Reports: db, Catalog: cat, Currency: "CNY", Billing: true})
	if err != nil {
		return nil, err
	}
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash(adminKey), Clock: clk, Log: log,
		Billing: &httpapi.Billing{Ledger: books, Store: db, AuditGrace: time.Minute}, Console: con}
	_ = ctx
	return api.Handler(), nil
}
