// Package gateway_test benchmarks the request path in process: the gateway's
// handler in front of an upstream that answers from memory (no network), so
// that what is measured is the gateway's own work per request — admission,
// routing, relay, metering, the record — and its allocations. The load run
// (bench/load) measures the same path over real sockets.
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./bench/gateway
package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"baimo/bench/internal/cputime"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/usage"
)

const plainAnswer = `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}`

// streamAnswer is 20 content chunks, the finish chunk, the usage chunk and
// [DONE], as an OpenAI-compatible vendor sends them.
var streamAnswer = func() []byte {
	var b bytes.Buffer
	for i := range 20 {
		b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"word` + strconv.Itoa(i) + ` "},"finish_reason":null}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}()

// memUpstream answers every request from memory.
type memUpstream struct{}

func (memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	h := http.Header{}
	var body []byte
	if r.Header.Get("Accept") == "text/event-stream" {
		h.Set("Content-Type", "text/event-stream")
		body = streamAnswer
	} else {
		h.Set("Content-Type", "application/json")
		body = []byte(plainAnswer)
	}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

type memKeys struct{ k keys.Key }

func (m *memKeys) CreateKey(context.Context, keys.Key) error { return nil }
func (m *memKeys) ListKeys(context.Context) ([]keys.Key, error) {
	return []keys.Key{m.k}, nil
}
func (m *memKeys) KeyByHash(_ context.Context, h string) (keys.Key, error) {
	if h == m.k.Hash {
		return m.k, nil
	}
	return keys.Key{}, keys.ErrNotFound
}
func (m *memKeys) DeleteKey(context.Context, string) error            { return nil }
func (m *memKeys) SetKeyDisabled(context.Context, string, bool) error { return nil }

// discard keeps no records.
type discard struct{ mu sync.Mutex }

func (d *discard) WriteRecords(context.Context, []usage.Record) error { return nil }

func newHandler(b *testing.B) (http.Handler, string, func()) {
	b.Helper()
	secret, k, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	k.ID = "key_bench"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bill := billing.New(billing.Options{Records: &discard{}, Log: log})
	gw, err := gateway.New(gateway.Options{Keys: &memKeys{k: k}, Billing: bill, Log: log, Limits: config.Default().Limits,
		Transport: memUpstream{}, Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{Name: "up", Kind: "openai",
			BaseURL: "http://upstream.invalid/v1", Models: config.ModelMap{"m": "m"}})}})
	if err != nil {
		b.Fatal(err)
	}
	return (&httpapi.Server{GW: gw, Log: log}).Handler(), secret, func() { _ = bill.Close(context.Background()) }
}

func bench(b *testing.B, body string) {
	h, secret, done := newHandler(b)
	defer done()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.StartProcess()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	b.StopTimer()
	cpu.Stop(b)
}

// BenchmarkPlain is one non-streamed chat request through the gateway,
// metering only (the record is written to nothing).
func BenchmarkPlain(b *testing.B) {
	bench(b, `{"model":"m","messages":[{"role":"user","content":"hello"}]}`)
}

// BenchmarkStream is one streamed chat request of 23 events.
func BenchmarkStream(b *testing.B) {
	bench(b, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`)
}
