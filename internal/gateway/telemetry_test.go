package gateway_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/money"
	"baimo/internal/provider/sim"
	"baimo/internal/telemetry"
	"baimo/internal/telemetry/otlptest"
	"baimo/internal/usage"
)

// traced is the simulator upstream, keeping the traceparent of each
// request it gets.
type traced struct {
	mu      sync.Mutex
	parents []string
	h       http.Handler
}

func (u *traced) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.parents = append(u.parents, r.Header.Get("Traceparent"))
	u.mu.Unlock()
	u.h.ServeHTTP(w, r)
}

func (u *traced) got() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.parents...)
}

func simUpstream() *traced {
	return &traced{h: sim.New(sim.Options{TTFT: 2 * time.Millisecond, TPOT: time.Millisecond, OutputTokens: 6,
		ChatModels: []string{"deepseek-chat"}})}
}

// telemetryHarness is a gateway with telemetry (nil when cfg is off) in
// front of upstreams, model "other" served as deepseek-chat and rated
// with the catalog.
func telemetryHarness(t *testing.T, cfg config.Telemetry, upstreams ...http.Handler) (*harness, *telemetry.Telemetry) {
	t.Helper()
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	rater := &billing.Rater{Catalog: cat, Currency: "CNY"}
	tel, err := telemetry.New(cfg, telemetry.Options{Rate: rater.RateRecord})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	h := newMulti(t, upstreams, func(o *gateway.Options, b *billing.Options) {
		for _, ch := range o.Channels {
			ch.Models["other"] = "deepseek-chat"
		}
		b.Rater = rater
		o.Telemetry = tel
	})
	return h, tel
}

func telemetryConfig(endpoint string, capture bool) config.Telemetry {
	c := config.Default().Telemetry
	c.Enabled, c.Endpoint, c.CaptureContent = true, endpoint, capture
	c.ExportInterval = config.Duration(time.Hour) // the test flushes
	return c
}

func (h *harness) postTraced(t *testing.T, body, traceparent string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.secret)
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return resp
}

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
)

func TestTelemetryExportsRequests(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			recv := otlptest.New(t)
			up := simUpstream()
			h, tel := telemetryHarness(t, telemetryConfig(recv.URL, false), up)
			body := `{"model":"other","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"secret prompt"}],` +
				`"sim":{"cached_tokens":4,"reasoning_tokens":2}}`
			h.postTraced(t, body, "00-"+clientTrace+"-"+clientParent+"-01")
			rec := h.only(t)
			if err := tel.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if rec.Usage.Input == 0 || rec.Usage.Output != 6 || rec.Usage.CachedInput != 4 || rec.Usage.Reasoning != 2 || rec.CostNanos <= 0 {
				t.Fatalf("record %+v: the test needs vendor usage with cache and reasoning, and a cost", rec)
			}

			server, attempts := splitSpans(t, recv.Spans())
			if len(attempts) != 1 {
				t.Fatalf("%d attempt spans, want 1", len(attempts))
			}
			if got := hex.EncodeToString(server.TraceId); got != clientTrace {
				t.Errorf("trace id %s, want the client's %s", got, clientTrace)
			}
			if got := hex.EncodeToString(server.ParentSpanId); got != clientParent {
				t.Errorf("server span's parent %s, want the client's span %s", got, clientParent)
			}
			if server.Name != "chat other" {
				t.Errorf("span name %q", server.Name)
			}
			a := otlptest.Attrs(server.Attributes)
			want := map[string]string{
				"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
				"gen_ai.request.model": "other", "gen_ai.response.model": "deepseek-chat",
				"gen_ai.usage.input_tokens":                strconv.FormatInt(rec.Usage.Input, 10),
				"gen_ai.usage.output_tokens":               "6",
				"gen_ai.usage.cache_read.input_tokens":     "4",
				"gen_ai.usage.cache_creation.input_tokens": "0",
				"gen_ai.usage.reasoning.output_tokens":     "2",
				"baimo.tenant.id":                          rec.TenantID,
				"baimo.key.id":                             "key_t",
				"baimo.channel":                            "up",
				"baimo.request.id":                         rec.RequestID,
				"baimo.stream":                             strconv.FormatBool(stream),
				"baimo.cost":                               money.FormatNanos(rec.CostNanos),
				"baimo.cost.currency":                      "CNY",
				"baimo.price.version":                      rec.PriceVersion,
				"http.response.status_code":                "200",
			}
			for k, v := range want {
				if a[k] != v {
					t.Errorf("span attribute %s = %q, want %q", k, a[k], v)
				}
			}
			for k, v := range a {
				if strings.Contains(v, "secret prompt") || strings.HasPrefix(k, "gen_ai.input") || strings.HasPrefix(k, "gen_ai.output.messages") {
					t.Errorf("content exported without capture_content: %s = %q", k, v)
				}
			}
			at := attempts[0]
			if got := otlptest.Attrs(at.Attributes); got["baimo.channel"] != "up" || got["http.response.status_code"] != "200" ||
				got["gen_ai.request.model"] != "deepseek-chat" {
				t.Errorf("attempt span attributes %v", got)
			}
			if want := "00-" + clientTrace + "-" + hex.EncodeToString(at.SpanId) + "-01"; len(up.got()) != 1 || up.got()[0] != want {
				t.Errorf("upstream got traceparent %q, want %q (the attempt's span)", up.got(), want)
			}

			attrs := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
				"gen_ai.request.model": "other", "gen_ai.response.model": "deepseek-chat"}
			checkHistogram(t, recv, telemetry.MetricTokenUsage, withAttr(attrs, "gen_ai.token.type", "input"), 1, float64(rec.Usage.Input))
			checkHistogram(t, recv, telemetry.MetricTokenUsage, withAttr(attrs, "gen_ai.token.type", "output"), 1, 6)
			checkHistogram(t, recv, telemetry.MetricDuration, attrs, 1, rec.Duration.Seconds())
			checkHistogram(t, recv, telemetry.MetricServerTTFT, attrs, 1, rec.TTFT.Seconds())
			checkHistogram(t, recv, telemetry.MetricTimeToFirstChunk, attrs, 1, -1)
			checkHistogram(t, recv, telemetry.MetricServerTPOT, attrs, 1, (rec.Duration-rec.TTFT).Seconds()/5)
		})
	}
}

func TestTelemetryFailoverAttempts(t *testing.T) {
	recv := otlptest.New(t)
	down := &traced{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"overloaded","type":"server_error"}}`, http.StatusInternalServerError)
	})}
	up := simUpstream()
	h, tel := telemetryHarness(t, telemetryConfig(recv.URL, false), down, up)
	h.postTraced(t, `{"model":"other","messages":[{"role":"user","content":"hi"}]}`, "")
	rec := h.only(t)
	if err := tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.Attempts) != 2 {
		t.Fatalf("record attempts %+v, want a failover", rec.Attempts)
	}
	server, attempts := splitSpans(t, recv.Spans())
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	for i, want := range []struct {
		channel, status, errType string
		up                       *traced
	}{{"up", "500", string(usage.ErrUpstream), down}, {"up1", "200", "", up}} {
		a := otlptest.Attrs(attempts[i].Attributes)
		if a["baimo.channel"] != want.channel || a["http.response.status_code"] != want.status || a["error.type"] != want.errType ||
			a["baimo.attempt"] != strconv.Itoa(i+1) {
			t.Errorf("attempt %d attributes %v", i+1, a)
		}
		if string(attempts[i].ParentSpanId) != string(server.SpanId) {
			t.Errorf("attempt %d is not the request span's child", i+1)
		}
		tp := "00-" + hex.EncodeToString(server.TraceId) + "-" + hex.EncodeToString(attempts[i].SpanId) + "-01"
		if got := want.up.got(); len(got) != 1 || got[0] != tp {
			t.Errorf("attempt %d: upstream got traceparent %q, want %q", i+1, got, tp)
		}
	}
	if a := otlptest.Attrs(server.Attributes); a["baimo.channel"] != "up1" || a["baimo.attempts"] != "2" {
		t.Errorf("request span attributes %v", a)
	}
}

func TestTelemetryCapturesContentWhenAsked(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			recv := otlptest.New(t)
			h, tel := telemetryHarness(t, telemetryConfig(recv.URL, true), simUpstream())
			h.postTraced(t, `{"model":"other","stream":`+strconv.FormatBool(stream)+`,"messages":[{"role":"user","content":"the prompt"}]}`, "")
			h.only(t)
			if err := tel.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			server, _ := splitSpans(t, recv.Spans())
			a := otlptest.Attrs(server.Attributes)
			if in := a["gen_ai.input.messages"]; in != `[{"role":"user","parts":[{"type":"text","content":"the prompt"}]}]` {
				t.Errorf("gen_ai.input.messages = %s", in)
			}
			if out := a["gen_ai.output.messages"]; !strings.HasPrefix(out, `[{"role":"assistant","parts":[{"type":"text","content":"`) || len(out) < 70 {
				t.Errorf("gen_ai.output.messages = %s", out)
			}
		})
	}
}

func TestTelemetryOffExportsNothing(t *testing.T) {
	recv := otlptest.New(t)
	cfg := telemetryConfig(recv.URL, true)
	cfg.Enabled = false
	up := simUpstream()
	h, tel := telemetryHarness(t, cfg, up)
	if tel != nil {
		t.Fatalf("telemetry.New with enabled: false = %v, want nil", tel)
	}
	h.postTraced(t, `{"model":"other","messages":[{"role":"user","content":"hi"}]}`, "00-"+clientTrace+"-"+clientParent+"-01")
	h.only(t)
	if err := tel.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := recv.Exports(); n != 0 {
		t.Errorf("%d exports with telemetry off", n)
	}
	if got := up.got(); len(got) != 1 || got[0] != "" {
		t.Errorf("upstream got traceparent %q with telemetry off", got)
	}
}

// splitSpans returns the one request span and its attempts' spans, in
// order of their start.
func splitSpans(t *testing.T, spans []*tracepb.Span) (server *tracepb.Span, attempts []*tracepb.Span) {
	t.Helper()
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			if server != nil {
				t.Fatalf("two request spans: %v and %v", server.Name, s.Name)
			}
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempts = append(attempts, s)
		}
	}
	if server == nil {
		t.Fatalf("no request span among %d spans", len(spans))
	}
	for i := 1; i < len(attempts); i++ {
		for j := i; j > 0 && attempts[j].StartTimeUnixNano < attempts[j-1].StartTimeUnixNano; j-- {
			attempts[j], attempts[j-1] = attempts[j-1], attempts[j]
		}
	}
	return server, attempts
}

func withAttr(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkHistogram finds the data point of the histogram named name whose
// attributes are attrs, and checks its count and (unless sum < 0) its sum.
func checkHistogram(t *testing.T, recv *otlptest.Receiver, name string, attrs map[string]string, count uint64, sum float64) {
	t.Helper()
	m := recv.Metric(name)
	if m == nil {
		t.Errorf("metric %s not exported", name)
		return
	}
	h, ok := m.Data.(*metricpb.Metric_Histogram)
	if !ok {
		t.Errorf("metric %s is a %T, want a histogram", name, m.Data)
		return
	}
	for _, dp := range h.Histogram.DataPoints {
		got := otlptest.Attrs(dp.Attributes)
		if len(got) != len(attrs) {
			continue
		}
		match := true
		for k, v := range attrs {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		if dp.Count != count || (sum >= 0 && (dp.GetSum() < sum*0.999-1e-9 || dp.GetSum() > sum*1.001+1e-9)) {
			t.Errorf("%s%v: count %d sum %v, want %d and %v", name, attrs, dp.Count, dp.GetSum(), count, sum)
		}
		if sum < 0 && dp.GetSum() <= 0 {
			t.Errorf("%s%v: sum %v, want > 0", name, attrs, dp.GetSum())
		}
		return
	}
	t.Errorf("%s: no data point with attributes %v among %d", name, attrs, len(h.Histogram.DataPoints))
}
