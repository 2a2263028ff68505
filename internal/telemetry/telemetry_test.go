package telemetry_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"baimo/internal/config"
	"baimo/internal/provider/ir"
	"baimo/internal/telemetry"
	"baimo/internal/telemetry/otlptest"
	"baimo/internal/usage"
)

func TestOffIsNilAndFree(t *testing.T) {
	tel, err := telemetry.New(config.Default().Telemetry, telemetry.Options{})
	if err != nil || tel != nil {
		t.Fatalf("New(default) = %v, %v; want nil, nil (off by default)", tel, err)
	}
	h := http.Header{}
	rec := &usage.Record{Model: "m", Channel: "c", Usage: usage.Usage{Input: 3, Output: 4}}
	allocs := testing.AllocsPerRun(100, func() {
		q := tel.Start(context.Background(), h, "chat", time.Time{})
		a := q.Attempt(h, "c", "openai", "m", 1, time.Time{})
		a.End(usage.Attempt{Status: 200}, time.Time{})
		if q.CapturesContent() {
			q.SetPrompt(ir.Prompt{})
		}
		q.End(rec)
	})
	if allocs != 0 || len(h) != 0 {
		t.Errorf("telemetry off: %v allocations, header %v; want none", allocs, h)
	}
	if err := tel.Flush(context.Background()); err != nil {
		t.Error(err)
	}
	tel.Close()
}

func TestExportCarriesHeaders(t *testing.T) {
	for _, protocol := range []string{config.ProtocolHTTP, config.ProtocolGRPC} {
		t.Run(protocol, func(t *testing.T) { testExport(t, protocol) })
	}
}

func testExport(t *testing.T, protocol string) {
	recv := otlptest.New(t)
	if protocol == config.ProtocolGRPC {
		recv = otlptest.NewGRPC(t)
	}
	cfg := config.Default().Telemetry
	cfg.Enabled, cfg.Endpoint, cfg.Protocol = true, recv.URL, protocol
	cfg.Headers = map[string]config.Secret{"x-api-key": config.NewSecret("k1")}
	tel, err := telemetry.New(cfg, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	q := tel.Start(context.Background(), nil, "embeddings", start)
	q.End(&usage.Record{Model: "e", Status: 401, ErrorClass: usage.ErrAuth, Start: start, Duration: time.Millisecond})
	tel.Close()
	spans := recv.Spans()
	if len(spans) != 1 || spans[0].Name != "embeddings e" {
		t.Fatalf("spans %v", spans)
	}
	a := otlptest.Attrs(spans[0].Attributes)
	if a["gen_ai.operation.name"] != "embeddings" || a["gen_ai.provider.name"] != "baimo" || a["error.type"] != "auth" ||
		a["gen_ai.usage.input_tokens"] != "" {
		t.Errorf("refused request's span attributes %v", a)
	}
	if recv.Metric(telemetry.MetricDuration) == nil || recv.Metric(telemetry.MetricTokenUsage) != nil {
		t.Errorf("a refused request records its duration and no tokens: %v", recv.Metrics())
	}
	if len(recv.Headers()) != 2 {
		t.Errorf("%d exports, want a trace and a metric export", len(recv.Headers()))
	}
	for _, h := range recv.Headers() {
		if h.Get("X-Api-Key") != "k1" && (len(h["x-api-key"]) != 1 || h["x-api-key"][0] != "k1") {
			t.Errorf("export without the configured header: %v", h)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ endpoint, op string }{
		{ir.EndpointChat, "chat"}, {ir.EndpointMessages, "chat"}, {ir.EndpointResponses, "chat"},
		{ir.EndpointCompletions, "text_completion"}, {ir.EndpointEmbeddings, "embeddings"},
		{ir.EndpointGenerate, "generate_content"}, {ir.EndpointRerank, ir.EndpointRerank},
	} {
		if got := telemetry.Operation(tt.endpoint); got != tt.op {
			t.Errorf("Operation(%q) = %q, want %q", tt.endpoint, got, tt.op)
		}
	}
	for kind, want := range map[string]string{"openai": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"} {
		if got := telemetry.Provider(kind); got != want {
			t.Errorf("Provider(%q) = %q, want %q", kind, got, want)
		}
	}
}
