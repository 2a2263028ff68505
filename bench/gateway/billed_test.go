package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"baimo/bench/internal/cputime"
	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/telemetry"
)

// BenchmarkBilled is the request path as `baimo serve` runs it on SQLite,
// in process: a prepaid tenant's key, a catalog price, holds in memory,
// each record rated and settled in the recorder's group commit before the
// answer's last byte, 64 requests in flight (run it with -cpu 1, as the
// load run pins baimo to one core). "metering" writes the records without
// the ledger (billing.ledger: false). Besides time and allocations it
// reports the process's CPU time per request (cpu-ns/op: the figure to
// compare on a busy machine, where ns/op counts time descheduled) and
// records per group commit.
//
//	go test -run '^$' -bench Billed -benchmem -cpu 1 ./bench/gateway
func BenchmarkBilled(b *testing.B) {
	for _, mode := range []string{"billing", "metering"} {
		for _, kind := range []struct{ name, body string }{
			{"plain", `{"model":"deepseek-chat","messages":[{"role":"user","content":"Say something short."}]}`},
			{"stream", `{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say something short."}]}`},
		} {
			b.Run(mode+"/"+kind.name, func(b *testing.B) { benchBilled(b, mode == "billing", false, kind.body) })
		}
	}
}

// BenchmarkTelemetry is BenchmarkBilled's billing case with OpenTelemetry
// off and on (every request sampled, spans and metrics exported over
// OTLP/HTTP to an in-process collector that discards them): what the
// export costs per request. Export runs in the SDK's goroutines, so
// cpu-ns/op is the figure that counts it.
//
//	go test -run '^$' -bench Telemetry -benchmem -cpu 1 ./bench/gateway
func BenchmarkTelemetry(b *testing.B) {
	for _, tel := range []string{"off", "on"} {
		for _, kind := range []struct{ name, body string }{
			{"plain", `{"model":"deepseek-chat","messages":[{"role":"user","content":"Say something short."}]}`},
			{"stream", `{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say something short."}]}`},
		} {
			b.Run(tel+"/"+kind.name, func(b *testing.B) { benchBilled(b, true, tel == "on", kind.body) })
		}
	}
}

// collector is an OTLP/HTTP endpoint that reads each export and drops it.
func collector(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func benchBilled(b *testing.B, charge, traced bool, body string) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "baimo.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	books := ledger.New(db, ledger.Options{Node: "bench", Exclusive: true, HoldTTL: time.Hour, Logger: log})
	defer books.Close()
	if _, err := books.CreateTenant(ctx, ledger.Tenant{ID: "bench", Name: "bench", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		b.Fatal(err)
	}
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "bench", Amount: ledger.MaxAmount, Note: "bench"}); err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	secret, k, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	k.ID, k.TenantID = "key_bench", "bench"
	cfg := config.Default()
	o := billing.Options{Rater: &billing.Rater{Catalog: cat, Currency: money.CNY}, Records: db, HoldTTL: time.Hour,
		Clock: clock.Real{}, Log: log, Holds: billing.HoldRules{MaxChoices: cfg.Limits.MaxChoices}}
	if charge {
		o.Books = books
		o.FreeTier = &billing.FreeTier{Zone: time.UTC, Tenants: books, Totals: db, Clock: clock.Real{}}
	}
	bill := billing.New(o)
	defer func() { _ = bill.Close(ctx) }()
	var tel *telemetry.Telemetry
	if traced {
		tc := cfg.Telemetry
		tc.Enabled, tc.Endpoint = true, collector(b)
		if tel, err = telemetry.New(tc, telemetry.Options{Rate: o.Rater.RateRecord, Log: log}); err != nil {
			b.Fatal(err)
		}
		defer tel.Close()
	}
	gw, err := gateway.New(gateway.Options{Keys: &memKeys{k: k}, Billing: bill, Log: log, Limits: cfg.Limits, Telemetry: tel,
		Counter: gateway.Tokenizer{}, Transport: memUpstream{}, Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{
			Name: "up", Kind: "openai", BaseURL: "http://upstream.invalid/v1", Models: config.ModelMap{"deepseek-chat": "deepseek-chat"}})}})
	if err != nil {
		b.Fatal(err)
	}
	h := (&httpapi.Server{GW: gw, Log: log}).Handler()
	before := books.Stats()
	b.SetParallelism(benchParallel())
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.StartProcess()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+secret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Errorf("status %d: %s", w.Code, w.Body.String())
				return
			}
		}
	})
	b.StopTimer()
	cpu.Stop(b)
	if charge {
		st := books.Stats()
		if n := st.Batches - before.Batches; n > 0 {
			b.ReportMetric(float64(st.Ops-before.Ops)/float64(n), "records/commit")
		}
	}
}

// benchParallel is the requests in flight per core: 64, or BENCH_PARALLEL
// (1 measures a lone request, which waits for its own group commit).
func benchParallel() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 64
}
