package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// fakeKeys is an in-memory keys.Store.
type fakeKeys struct {
	mu sync.Mutex
	m  map[string]keys.Key
}

func (f *fakeKeys) CreateKey(_ context.Context, k keys.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[k.Hash] = k
	return nil
}
func (f *fakeKeys) ListKeys(context.Context) ([]keys.Key, error) { return nil, nil }
func (f *fakeKeys) KeyByHash(_ context.Context, h string) (keys.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.m[h]
	if !ok {
		return keys.Key{}, keys.ErrNotFound
	}
	return k, nil
}
func (f *fakeKeys) DeleteKey(context.Context, string) error            { return nil }
func (f *fakeKeys) SetKeyDisabled(context.Context, string, bool) error { return nil }

// records collects what the recorder writes.
type records struct {
	mu   sync.Mutex
	recs []usage.Record
}

func (r *records) WriteRecords(_ context.Context, recs []usage.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		// As a store does, keep the record as it was when written.
		rec.Attempts = slices.Clone(rec.Attempts)
		r.recs = append(r.recs, rec)
	}
	return nil
}

type harness struct {
	url    string
	secret string
	recs   *records
	bill   *billing.Biller
	gw     *gateway.Gateway
}

// only returns the single record written, after the recorder drained.
func (h *harness) only(t *testing.T) usage.Record {
	t.Helper()
	// As at shutdown: wait for in-flight requests to submit, then drain.
	if err := h.gw.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.bill.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	if len(h.recs.recs) != 1 {
		t.Fatalf("got %d usage records, want 1: %+v", len(h.recs.recs), h.recs.recs)
	}
	return h.recs.recs[0]
}

func newHarness(t *testing.T, upstream http.Handler, limits func(*config.Limits), models ...string) *harness {
	t.Helper()
	return newMulti(t, []http.Handler{upstream}, func(o *gateway.Options, _ *billing.Options) {
		if limits != nil {
			limits(&o.Limits)
		}
	}, models...)
}

// newMulti starts one channel per upstream handler, all serving gpt-test
// (channel i at priority i), and a gateway in front of them.
func newMulti(t *testing.T, upstreams []http.Handler, mutate func(*gateway.Options, *billing.Options), models ...string) *harness {
	t.Helper()
	cfg := config.Default()
	var chans []*gateway.Channel
	for i, u := range upstreams {
		up := httptest.NewServer(u)
		t.Cleanup(up.Close)
		mm := config.ModelMap{"gpt-test": "upstream-model"}
		for _, m := range models {
			mm[m] = m
		}
		chans = append(chans, gateway.NewChannel(config.Channel{Name: fmt.Sprintf("up%d", i), Kind: "openai",
			BaseURL: up.URL + "/v1", Models: mm, Priority: i}))
	}
	chans[0].Name = "up"
	ks := &fakeKeys{m: map[string]keys.Key{}}
	secret, k, _ := keys.Generate()
	k.ID, k.Models = "key_t", []string{"gpt-test", "other"}
	_ = ks.CreateKey(context.Background(), k)
	recs := &records{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bopt := billing.Options{Records: recs, Log: log}
	opt := gateway.Options{Channels: chans, Keys: ks, Log: log, Limits: cfg.Limits}
	if mutate != nil {
		mutate(&opt, &bopt)
	}
	bill := billing.New(bopt)
	opt.Billing = bill
	gw, err := gateway.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	api := &httpapi.Server{GW: gw, Log: log}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &harness{url: srv.URL, secret: secret, recs: recs, bill: bill, gw: gw}
}

func (h *harness) post(t *testing.T, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// scripted returns an upstream that answers with the given raw body, written
// in pieces of size step (0: whole), flushing after each piece, and records
// the body it received.
func scripted(status int, contentType, body string, step int, got *string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if got != nil {
			*got = string(b)
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		if step <= 0 {
			step = len(body)
		}
		for i := 0; i < len(body); i += step {
			_, _ = io.WriteString(w, body[i:min(i+step, len(body))])
			w.(http.Flusher).Flush()
		}
	}
}

const chatReq = `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"x_unknown":{"keep":[1,2]}}`

func TestNonStreamUsageShapes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want usage.Usage
	}{
		{"openai", `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":2}}}`,
			usage.Usage{Input: 12, CachedInput: 8, Output: 5, Reasoning: 2, Source: usage.SourceVendor}},
		{"deepseek", `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":60,"completion_tokens":11,"total_tokens":71,"prompt_cache_hit_tokens":50,"prompt_cache_miss_tokens":10}}`,
			usage.Usage{Input: 60, CachedInput: 50, Output: 11, Source: usage.SourceVendor}},
		{"no usage: counted by us", `{"id":"x","choices":[{"message":{"content":"hello world, this is it"}}]}`,
			usage.Usage{Input: 0, Output: 6, Source: usage.SourceEstimated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent string
			h := newHarness(t, scripted(200, "application/json", tt.body, 0, &sent), nil)
			resp, body := h.post(t, "/v1/chat/completions", chatReq)
			if resp.StatusCode != 200 || body != tt.body {
				t.Fatalf("status %d body %q; want the upstream's body untouched", resp.StatusCode, body)
			}
			if want := strings.Replace(chatReq, `"gpt-test"`, `"upstream-model"`, 1); sent != want {
				t.Errorf("upstream got %s\nwant %s", sent, want)
			}
			rec := h.only(t)
			if tt.want.Source == usage.SourceEstimated {
				if rec.Usage.Source != usage.SourceEstimated || rec.Usage.Input <= 0 || rec.Usage.Output != tt.want.Output {
					t.Errorf("usage = %+v, want an estimate with output %d", rec.Usage, tt.want.Output)
				}
			} else if rec.Usage != tt.want {
				t.Errorf("usage = %+v, want %+v", rec.Usage, tt.want)
			}
			if rec.RequestID == "" || rec.RequestID != resp.Header.Get("X-Request-Id") || !rec.Complete ||
				rec.Channel != "up" || rec.UpstreamModel != "upstream-model" || rec.Model != "gpt-test" || rec.KeyID != "key_t" {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

const (
	c1       = `data: {"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	c2       = `data: {"id":"a","choices":[{"index":0,"delta":{"content":"你好"}}]}` + "\n\n"
	c3       = `data: {"id":"a","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":"stop"}]}` + "\n\n"
	cUsage   = `data: {"id":"a","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"
	cQwen    = `data: {"id":"a","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"
	cDone    = "data: [DONE]\n\n"
	streamRq = `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`
)

func readEvents(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "data: ") {
			out = append(out, l)
		}
	}
	return out
}

func TestStream(t *testing.T) {
	vendorUsage := usage.Usage{Input: 9, Output: 3, Source: usage.SourceVendor}
	tests := []struct {
		name      string
		upstream  string
		request   string
		wantBody  string // exact body the client receives; "" to skip
		want      usage.Usage
		complete  bool
		errClass  usage.ErrorClass
		countOnly bool // usage counted by the gateway
	}{
		{name: "usage chunk stripped when not asked", upstream: c1 + c2 + c3 + cUsage + cDone, request: streamRq,
			wantBody: c1 + c2 + c3 + cDone, want: vendorUsage, complete: true},
		{name: "usage chunk kept when asked", upstream: c1 + c2 + c3 + cUsage + cDone,
			request:  `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			wantBody: c1 + c2 + c3 + cUsage + cDone, want: vendorUsage, complete: true},
		{name: "qwen usage in the last content chunk", upstream: c1 + c2 + cQwen + cDone, request: streamRq,
			wantBody: c1 + c2 + cQwen + cDone, want: vendorUsage, complete: true},
		{name: "missing [DONE] after usage", upstream: c1 + c2 + c3 + cUsage, request: streamRq,
			wantBody: c1 + c2 + c3 + cDone, want: vendorUsage, complete: true},
		{name: "cut mid-way", upstream: c1 + c2, request: streamRq, complete: false,
			errClass: usage.ErrStreamBroken, countOnly: true},
	}
	for _, tt := range tests {
		for _, step := range []int{0, 1, 7} {
			t.Run(tt.name+"/step"+string(rune('0'+step)), func(t *testing.T) {
				var sent string
				h := newHarness(t, scripted(200, "text/event-stream", tt.upstream, step, &sent), nil)
				resp, body := h.post(t, "/v1/chat/completions", tt.request)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if tt.wantBody != "" && body != tt.wantBody {
					t.Errorf("client got\n%q\nwant\n%q", body, tt.wantBody)
				}
				if !strings.Contains(sent, `"include_usage":true`) {
					t.Errorf("upstream was not asked for usage: %s", sent)
				}
				rec := h.only(t)
				if rec.Complete != tt.complete || rec.ErrorClass != tt.errClass {
					t.Errorf("complete=%v class=%q, want %v %q", rec.Complete, rec.ErrorClass, tt.complete, tt.errClass)
				}
				if tt.countOnly {
					evs := readEvents(body)
					if last := evs[len(evs)-1]; !strings.Contains(last, `"code":"stream_broken"`) {
						t.Errorf("client was not told the stream broke; last event %s", last)
					}
					if rec.Usage.Source != usage.SourceEstimated || rec.Usage.Output < 1 || rec.Usage.Input < 1 {
						t.Errorf("usage = %+v, want an estimate of what was delivered", rec.Usage)
					}
				} else if rec.Usage != tt.want {
					t.Errorf("usage = %+v, want %+v", rec.Usage, tt.want)
				}
				if rec.TTFT <= 0 {
					t.Errorf("TTFT not recorded")
				}
			})
		}
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		retryAfter string
	}{
		{"429 passed on with retry-after", 429, `{"error":{"message":"org-secret over limit"}}`, map[string]string{"Retry-After": "7"}, 429, "rate_limit_exceeded", "7"},
		{"500 becomes 502", 500, `{"error":{"message":"boom at 10.0.0.7"}}`, nil, 502, "upstream_error", ""},
		{"401 upstream key is not the client's fault", 401, `{"error":{"message":"Incorrect API key provided: sk-abc***"}}`, nil, 502, "upstream_error", ""},
		{"400 passes the upstream message", 400, `{"error":{"message":"tools[0] is invalid"}}`, nil, 400, "upstream_rejected", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}), nil)
			resp, body := h.post(t, "/v1/chat/completions", chatReq)
			var e struct {
				Error struct {
					Message, Type string
					Code          *string
				}
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == nil {
				t.Fatalf("not an OpenAI error: %s", body)
			}
			if resp.StatusCode != tt.wantStatus || *e.Error.Code != tt.wantCode {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, *e.Error.Code, tt.wantStatus, tt.wantCode)
			}
			if resp.Header.Get("Retry-After") != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", resp.Header.Get("Retry-After"), tt.retryAfter)
			}
			for _, leak := range []string{"org-secret", "10.0.0.7", "sk-abc"} {
				if strings.Contains(body, leak) {
					t.Errorf("error leaks %q: %s", leak, body)
				}
			}
			rec := h.only(t)
			if rec.Status != tt.wantStatus || rec.Complete || len(rec.Attempts) != 1 || rec.Attempts[0].Status != tt.status {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

func TestStalledUpstreamTimesOut(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	t.Run("before the first byte", func(t *testing.T) {
		h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body) // lets the server notice the gateway hanging up
			select {
			case <-stall:
			case <-r.Context().Done():
			}
		}), func(l *config.Limits) { l.FirstByteTimeout = config.Duration(100 * time.Millisecond) })
		resp, body := h.post(t, "/v1/chat/completions", chatReq)
		if resp.StatusCode != 504 || !strings.Contains(body, "upstream_timeout") {
			t.Errorf("got %d %s, want 504 upstream_timeout", resp.StatusCode, body)
		}
		if rec := h.only(t); rec.ErrorClass != usage.ErrUpstreamTimeout || rec.Status != 504 {
			t.Errorf("record = %+v", rec)
		}
	})
	t.Run("mid-stream", func(t *testing.T) {
		h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, c1+c2)
			w.(http.Flusher).Flush()
			select {
			case <-stall:
			case <-r.Context().Done():
			}
		}), func(l *config.Limits) { l.StreamIdleTimeout = config.Duration(100 * time.Millisecond) })
		resp, body := h.post(t, "/v1/chat/completions", streamRq)
		if resp.StatusCode != 200 || !strings.Contains(body, "stream_broken") || !strings.HasPrefix(body, c1+c2) {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if rec := h.only(t); rec.ErrorClass != usage.ErrUpstreamTimeout || rec.Complete || rec.Usage.Output < 1 {
			t.Errorf("record = %+v", rec)
		}
	})
}

func TestClientDisconnectStillRecords(t *testing.T) {
	sentFirst := make(chan struct{})
	upstreamGone := make(chan struct{})
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, c1+c2)
		w.(http.Flusher).Flush()
		close(sentFirst)
		<-r.Context().Done() // the gateway must cancel the upstream when the client leaves
		close(upstreamGone)
	}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/chat/completions", strings.NewReader(streamRq))
	req.Header.Set("Authorization", "Bearer "+h.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-sentFirst
	buf := make([]byte, len(c1))
	_, _ = io.ReadFull(resp.Body, buf)
	cancel()
	resp.Body.Close()
	select {
	case <-upstreamGone:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request was not cancelled after the client left")
	}
	rec := h.only(t)
	if rec.ErrorClass != usage.ErrClientDisconnect || rec.Complete || rec.Usage.Output < 1 {
		t.Errorf("record = %+v", rec)
	}
	// The attempt that served carries how the answer ended, in the record as
	// billing received it (not set after the record was handed over).
	if n := len(rec.Attempts); n != 1 || rec.Attempts[0].ErrorClass != usage.ErrClientDisconnect || rec.Attempts[0].Duration <= 0 {
		t.Errorf("attempts = %+v, want one ending in %s", rec.Attempts, usage.ErrClientDisconnect)
	}
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t, scripted(200, "application/json", `{}`, 0, nil), func(l *config.Limits) { l.MaxBodyBytes = 2048 }, "notallowed")
	tests := []struct {
		name, auth, body     string
		status               int
		code, param, errType string
	}{
		{"no key", "-", chatReq, 401, "invalid_api_key", "", "authentication_error"},
		{"bad key", "Bearer sk-baimo-wrong", chatReq, 401, "invalid_api_key", "", "authentication_error"},
		{"malformed JSON", "", `{"model":`, 400, "invalid_json", "", "invalid_request_error"},
		{"not an object", "", `[1]`, 400, "invalid_request", "", "invalid_request_error"},
		{"model missing", "", `{"messages":[]}`, 400, "invalid_request", "model", "invalid_request_error"},
		{"model not a string", "", `{"model":3,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request", "model", "invalid_request_error"},
		{"stream not a bool", "", `{"model":"gpt-test","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request", "stream", "invalid_request_error"},
		{"messages missing", "", `{"model":"gpt-test"}`, 400, "invalid_request", "messages", "invalid_request_error"},
		{"unknown model", "", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model_not_found", "model", "invalid_request_error"},
		{"model not allowed", "", `{"model":"notallowed","messages":[{"role":"user","content":"x"}]}`, 403, "model_not_allowed", "model", "permission_error"},
		{"too large", "", `{"model":"gpt-test","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`, 413, "request_too_large", "", "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(tt.body))
			switch tt.auth {
			case "":
				req.Header.Set("x-api-key", h.secret)
			case "-":
			default:
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if resp.StatusCode != tt.status || e.Error.Code == nil || *e.Error.Code != tt.code || param != tt.param ||
				e.Error.Type != tt.errType || e.Error.Message == "" {
				t.Errorf("got %d %+v, want %d code=%s param=%s type=%s", resp.StatusCode, e.Error, tt.status, tt.code, tt.param, tt.errType)
			}
		})
	}
}

func TestRequestIDHonoured(t *testing.T) {
	h := newHarness(t, scripted(200, "application/json", `{"usage":{"prompt_tokens":1,"completion_tokens":1}}`, 0, nil), nil)
	req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatReq))
	req.Header.Set("Authorization", "Bearer "+h.secret)
	req.Header.Set("X-Request-Id", "my-trace-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := resp.Header.Get("X-Request-Id")
	if !strings.HasPrefix(got, "my-trace-42.") || len(got) != len("my-trace-42.")+24 {
		t.Errorf("X-Request-Id = %q, want the client's id with a unique suffix", got)
	}
	// The same X-Request-Id again is a second request with its own record.
	req2, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatReq))
	req2.Header.Set("Authorization", "Bearer "+h.secret)
	req2.Header.Set("X-Request-Id", "my-trace-42")
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if got2 := resp2.Header.Get("X-Request-Id"); got2 == got {
		t.Errorf("a reused X-Request-Id gave the same request id %q", got2)
	}
	_ = h.gw.Drain(context.Background())
	_ = h.bill.Close(context.Background())
	if n := len(h.recs.recs); n != 2 || h.recs.recs[0].RequestID == h.recs.recs[1].RequestID {
		t.Errorf("records = %d, want two with distinct ids", n)
	}
}

func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func TestFailover(t *testing.T) {
	ok := `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`
	tests := []struct {
		name       string
		first      http.Handler
		wantStatus int
		attempts   []int // statuses of the attempts recorded, 0 for a connection error
	}{
		{"500 then the next channel", status(500, `{"error":{"message":"x"}}`), 200, []int{500, 200}},
		{"429 then the next channel", status(429, `{"error":{"message":"x"}}`, "Retry-After", "3"), 200, []int{429, 200}},
		{"client fault is not retried", status(400, `{"error":{"message":"bad tools"}}`), 400, []int{400}},
		{"connection refused then the next channel", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		}), 200, []int{0, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secondCalls int
			second := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				secondCalls++
				status(200, ok)(w, r)
			})
			h := newMulti(t, []http.Handler{tt.first, second}, nil)
			resp, body := h.post(t, "/v1/chat/completions", chatReq)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			rec := h.only(t)
			var got []int
			for _, a := range rec.Attempts {
				got = append(got, a.Status)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.attempts) {
				t.Errorf("attempts %v, want %v", got, tt.attempts)
			}
			if tt.wantStatus == 200 {
				// Only the attempt that served is billed.
				if rec.Channel != "up1" || rec.Usage.Input != 3 || rec.Usage.Output != 2 || !rec.Complete || secondCalls != 1 {
					t.Errorf("record = %+v (second called %d times)", rec, secondCalls)
				}
			} else if secondCalls != 0 {
				t.Errorf("a client fault was retried on another channel")
			}
		})
	}
}

func TestNoRetryAfterFirstByte(t *testing.T) {
	var secondCalls int
	h := newMulti(t, []http.Handler{scripted(200, "text/event-stream", c1+c2, 0, nil),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { secondCalls++ })}, nil)
	resp, body := h.post(t, "/v1/chat/completions", streamRq)
	if resp.StatusCode != 200 || !strings.Contains(body, "stream_broken") || secondCalls != 0 {
		t.Errorf("status %d, second channel called %d times, body %q", resp.StatusCode, secondCalls, body)
	}
	if rec := h.only(t); len(rec.Attempts) != 1 || rec.Complete {
		t.Errorf("record = %+v", rec)
	}
}

func TestRateLimits(t *testing.T) {
	ok := `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`
	h := newMulti(t, []http.Handler{status(200, ok)}, func(o *gateway.Options, b *billing.Options) {
		o.RateLimits.Key.RPM = 2
		o.RateLimits.Key.Burst = 2
	})
	for i := 0; i < 2; i++ {
		resp, body := h.post(t, "/v1/chat/completions", chatReq)
		if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" {
			t.Fatalf("request %d: %d %s headers %v", i, resp.StatusCode, body, resp.Header)
		}
	}
	resp, body := h.post(t, "/v1/chat/completions", chatReq)
	if resp.StatusCode != 429 || !strings.Contains(body, `"code":"rate_limit_exceeded"`) || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("third request: %d %s %v", resp.StatusCode, body, resp.Header)
	}
}

func TestVendorAuditSample(t *testing.T) {
	billed := `{"id":"x","choices":[{"message":{"content":"Argentina"}}],"usage":{"prompt_tokens":20,"completion_tokens":2}}`
	h := newMulti(t, []http.Handler{status(200, billed)}, func(o *gateway.Options, b *billing.Options) {
		o.Channels[0].Models["other"] = "gpt-4o-mini"
		o.AuditEvery = 1
		o.Counter = gateway.Tokenizer{}
	})
	resp, body := h.post(t, "/v1/chat/completions", `{"model":"other","messages":[{"role":"user","content":"Who won the World Cup in 2022?"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// The vendor billed 20 prompt tokens; gpt-4o-mini's tokenizer and chat framing count 17.
	if rec := h.only(t); rec.Usage.Input != 20 || rec.CountedInput != 17 || rec.UpstreamModel != "gpt-4o-mini" {
		t.Errorf("record = %+v", rec)
	}
}

// fakeBooks is a ledger that records holds and can refuse them; its
// settlements write the records to recs.
type fakeBooks struct {
	mu          sync.Mutex
	checkpoints []usage.Record
	holds       []ledger.HoldRequest
	refuse      error
	recs        *records
}

func (f *fakeBooks) Hold(_ context.Context, r ledger.HoldRequest) (ledger.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return ledger.Hold{}, f.refuse
	}
	f.holds = append(f.holds, r)
	return ledger.Hold{RequestID: r.RequestID, Amount: r.Amount.Nanos, State: ledger.HoldPending}, nil
}

func (f *fakeBooks) Balance(context.Context, string) (ledger.Balance, error) {
	return ledger.Balance{Kind: ledger.Postpaid}, nil
}

func (f *fakeBooks) SettleBatch(ctx context.Context, ss []ledger.Settlement) ([]ledger.SettleResult, error) {
	out := make([]ledger.SettleResult, len(ss))
	for i, st := range ss {
		out[i].RequestID = st.Record.RequestID
		_ = f.recs.WriteRecords(ctx, []usage.Record{st.Record})
	}
	return out, nil
}

func (f *fakeBooks) Sweep(context.Context) (ledger.SweepResult, error) {
	return ledger.SweepResult{}, nil
}

func (f *fakeBooks) Checkpoint(rec usage.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoints = append(f.checkpoints, rec)
}

func (f *fakeBooks) Tenant(context.Context, string) (ledger.Tenant, error) {
	return ledger.Tenant{}, ledger.ErrNotFound
}

func TestHoldBeforeUpstream(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	ok := `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`
	for _, tt := range []struct {
		name    string
		refuse  error
		status  int
		code    string
		upstrCt int
	}{
		{"held", nil, 200, "", 1},
		{"insufficient funds", ledger.ErrInsufficientFunds, 429, "insufficient_quota", 0},
		{"budget", ledger.ErrBudgetExceeded, 429, "budget_exceeded", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			holder := &fakeBooks{refuse: tt.refuse}
			h := newMulti(t, []http.Handler{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				status(200, ok)(w, r)
			})}, func(o *gateway.Options, b *billing.Options) {
				o.Channels[0].Models["other"] = "deepseek-chat"
				b.Rater = &billing.Rater{Catalog: cat, Currency: "CNY"}
				b.Books = holder
				holder.recs = b.Records.(*records)
			})
			resp, body := h.post(t, "/v1/chat/completions", `{"model":"other","max_tokens":500,"messages":[{"role":"user","content":"hello"}]}`)
			if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`)) || calls != tt.upstrCt {
				t.Fatalf("got %d %s with %d upstream calls", resp.StatusCode, body, calls)
			}
			rec := h.only(t)
			if tt.refuse != nil {
				if rec.ErrorClass != usage.ErrInsufficient || rec.Status != 429 {
					t.Errorf("record = %+v", rec)
				}
				return
			}
			if len(holder.holds) != 1 || holder.holds[0].RequestID != rec.RequestID || holder.holds[0].Amount.Currency != "CNY" {
				t.Fatalf("holds = %+v", holder.holds)
			}
			// The worst case is the prompt plus max_tokens (500) at the model's
			// price: it must cover what the request can cost and not be zero.
			q, err := cat.Quote(rec.Usage.Input, 500, price.RateContext{Model: "deepseek-chat", At: rec.Start, Currency: "CNY"})
			if err != nil {
				t.Fatal(err)
			}
			if got := holder.holds[0].Amount.Nanos; got <= 0 || got < q.Total.Nanos {
				t.Errorf("hold %d nanos, below the worst case %d", got, q.Total.Nanos)
			}
		})
	}
}

// TestAmbiguousBodiesRefused: a body that spells a member the gateway acts
// on so that parsers read it differently (escapes, case variants,
// duplicates) is refused with a 400 naming the member, before any upstream
// call, and recorded as the client's error. (The key may use only
// gpt-test; a dearer model hidden in a second spelling must not be served
// while the record says gpt-test.)
func TestAmbiguousBodiesRefused(t *testing.T) {
	calls := 0
	h := newMulti(t, []http.Handler{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		status(200, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":20000}}`)(w, r)
	})}, nil, "dear")
	for _, tt := range []struct{ body, param string }{
		{`{"model":"gpt-test","mod\u0065l":"dear","messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"gpt-test","Model":"dear","messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"gpt-test","model":"dear","messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"gpt-test","stream":false,"str\u0065am":true,"messages":[{"role":"user","content":"x"}]}`, "stream"},
		{`{"model":"gpt-test","max_tokens":5,"max_tokens":90000,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true,"INCLUDE_USAGE":false},"messages":[{"role":"user","content":"x"}]}`, "stream_options.include_usage"},
	} {
		resp, body := h.post(t, "/v1/chat/completions", tt.body)
		if resp.StatusCode != 400 || !strings.Contains(body, `"param":"`+tt.param+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tt.body, resp.StatusCode, body, tt.param)
		}
	}
	if calls != 0 {
		t.Errorf("the upstream was called %d times", calls)
	}
	_ = h.gw.Drain(context.Background())
	_ = h.bill.Close(context.Background())
	for _, rec := range h.recs.recs {
		if rec.ErrorClass != usage.ErrClient || rec.Status != 400 || rec.Channel != "" {
			t.Errorf("record %+v", rec)
		}
	}
}

// TestVendorRateLimitAnswered429: after a vendor's 429 every target of the
// model rests; the next request gets a 429 with the time left, not a 503
// that hides the vendor's answer, and no upstream call.
func TestVendorRateLimitAnswered429(t *testing.T) {
	calls := 0
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		status(429, `{"error":{"message":"Rate limit reached for upstream-model","type":"requests","code":"rate_limit_exceeded"}}`, "Retry-After", "30")(w, r)
	}), nil)
	for i, wantCalls := range []int{1, 1} {
		resp, body := h.post(t, "/v1/chat/completions", chatReq)
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || ra < 29 || ra > 30 || calls != wantCalls {
			t.Fatalf("request %d: %d retry-after %q, %d upstream calls: %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), calls, body)
		}
	}
}

// TestLastChannelNeverShut: a model's only channel keeps getting requests
// while its breaker is open; each succeeds or fails on its own.
func TestLastChannelNeverShut(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 6 {
			status(500, `{"error":{"message":"boom"}}`)(w, r)
			return
		}
		status(200, `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`)(w, r)
	}), nil)
	for i := 0; i < 6; i++ {
		if resp, _ := h.post(t, "/v1/chat/completions", chatReq); resp.StatusCode != 502 {
			t.Fatalf("failure %d: status %d, want 502 from the upstream's 500", i, resp.StatusCode)
		}
	}
	if resp, body := h.post(t, "/v1/chat/completions", chatReq); resp.StatusCode != 200 {
		t.Fatalf("after the breaker opened: %d %s, want the upstream's answer", resp.StatusCode, body)
	}
}

// TestSetChannels: channels changed at run time take effect for the next
// request: a model added is served, a model removed is a 404.
func TestSetChannels(t *testing.T) {
	ok := `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`
	h := newHarness(t, status(200, ok), nil)
	second := httptest.NewServer(status(200, ok))
	t.Cleanup(second.Close)
	added := gateway.NewChannel(config.Channel{Name: "added", Kind: "openai", BaseURL: second.URL + "/v1",
		Models: config.ModelMap{"other": "other-upstream"}})
	if resp, _ := h.post(t, "/v1/chat/completions", strings.Replace(chatReq, "gpt-test", "other", 1)); resp.StatusCode != 404 {
		t.Fatalf("before: %d, want 404", resp.StatusCode)
	}
	if err := h.gw.SetChannels(append(h.gw.Channels(), added)); err != nil {
		t.Fatal(err)
	}
	if resp, body := h.post(t, "/v1/chat/completions", strings.Replace(chatReq, "gpt-test", "other", 1)); resp.StatusCode != 200 {
		t.Fatalf("after adding: %d %s", resp.StatusCode, body)
	}
	if err := h.gw.SetChannels([]*gateway.Channel{added}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := h.post(t, "/v1/chat/completions", chatReq); resp.StatusCode != 404 {
		t.Fatalf("after removing gpt-test's channel: %d, want 404", resp.StatusCode)
	}
	if got := h.gw.Models(); len(got) != 1 || got[0] != "other" {
		t.Fatalf("models %v", got)
	}
}

// TestStreamCheckpoints: a long stream notes what it has delivered as it
// goes (every ~4,000 bytes of answer), rated and within its hold, so that
// a node that dies mid-stream is settled for what it delivered.
func TestStreamCheckpoints(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}\n\n", strings.Repeat("word ", 20))
	}
	b.WriteString("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1200}}\n\ndata: [DONE]\n\n")
	books := &fakeBooks{}
	h := newMulti(t, []http.Handler{scripted(200, "text/event-stream", b.String(), 0, nil)}, func(o *gateway.Options, bo *billing.Options) {
		o.Channels[0].Models["other"] = "deepseek-chat"
		o.Counter = gateway.Tokenizer{}
		bo.Rater = &billing.Rater{Catalog: cat, Currency: "CNY"}
		bo.Books = books
		books.recs = bo.Records.(*records)
	})
	resp, body := h.post(t, "/v1/chat/completions", `{"model":"other","max_tokens":5000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	h.only(t)
	books.mu.Lock()
	defer books.mu.Unlock()
	if len(books.checkpoints) < 1 || len(books.holds) != 1 {
		t.Fatalf("%d checkpoints, %d holds", len(books.checkpoints), len(books.holds))
	}
	for _, c := range books.checkpoints {
		if c.Usage.Output <= 0 || c.CostNanos <= 0 || c.CostNanos > books.holds[0].Amount.Nanos || c.RequestID != books.holds[0].RequestID {
			t.Errorf("checkpoint %+v (hold %d)", c, books.holds[0].Amount.Nanos)
		}
	}
}

// TestAttemptsNameTheirKey: each attempt records which of the channel's
// upstream keys it used, by its id (k0, k1), never the secret; an
// operator's check of the channel reports the answer and changes nothing.
func TestAttemptsNameTheirKey(t *testing.T) {
	ok := `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`
	var mu sync.Mutex
	var seen []string // the Authorization of each chat request, in order
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
			w.WriteHeader(map[bool]int{true: 401, false: 200}[auth == "Bearer sk-upstream-aaaa"])
			return
		}
		mu.Lock()
		seen = append(seen, auth)
		mu.Unlock()
		if auth == "Bearer sk-upstream-aaaa" {
			status(401, `{"error":{"message":"bad key","code":"invalid_api_key"}}`)(w, r)
			return
		}
		status(200, ok)(w, r)
	}))
	t.Cleanup(up.Close)
	ch := config.Channel{Name: "up", Kind: "openai", BaseURL: up.URL + "/v1", Models: config.ModelMap{"gpt-test": "upstream-model"},
		APIKey: config.NewSecret("sk-upstream-aaaa"), APIKeys: []config.Secret{config.NewSecret("sk-upstream-bbbb")}}
	if err := config.CheckChannel(&ch, ""); err != nil {
		t.Fatal(err)
	}
	h := newMulti(t, []http.Handler{status(200, ok)}, func(o *gateway.Options, _ *billing.Options) {
		o.Channels = []*gateway.Channel{gateway.NewChannel(ch)}
	})
	// Before any traffic: a check with each key, then with the first not parked.
	for _, tt := range []struct{ key, wantKey, result string }{{"k0", "k0", "http_401"}, {"k1", "k1", "ok"}, {"", "k0", "http_401"}} {
		c, err := h.gw.Check(context.Background(), "up", tt.key)
		if err != nil || c.Key != tt.wantKey || c.Result != tt.result || c.Channel != "up" {
			t.Errorf("Check(up, %q) = %+v, %v; want key %s, %s", tt.key, c, err, tt.wantKey, tt.result)
		}
	}
	if _, err := h.gw.Check(context.Background(), "nope", ""); err == nil {
		t.Errorf("Check of an unknown channel succeeded")
	}
	// Until k0 has been tried (which key goes first is the router's choice).
	triedK0 := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, "Bearer sk-upstream-aaaa")
	}
	for i := 0; i < 4 || (i < 50 && !triedK0()); i++ {
		if resp, body := h.post(t, "/v1/chat/completions", chatReq); resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
	}
	if err := h.gw.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.bill.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range h.recs.recs {
		for _, a := range rec.Attempts {
			got = append(got, a.Key)
		}
		// The attempt that served lasts as long as its answer (the record
		// is handed to billing before the relay returns).
		if last := rec.Attempts[len(rec.Attempts)-1]; last.Status != 200 || last.Duration <= 0 || last.Duration > rec.Duration {
			t.Errorf("serving attempt %+v of a request of %v", last, rec.Duration)
		}
	}
	want := map[string]string{"Bearer sk-upstream-aaaa": "k0", "Bearer sk-upstream-bbbb": "k1"}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(seen) || !slices.Contains(seen, "Bearer sk-upstream-aaaa") {
		t.Fatalf("attempt keys %v for upstream requests %v", got, seen)
	}
	for i, auth := range seen {
		if got[i] != want[auth] {
			t.Errorf("attempt %d used %s, recorded key %q; want %q", i, auth, got[i], want[auth])
		}
	}
	// The 401 parked k0: a check without a key now uses k1.
	if c, err := h.gw.Check(context.Background(), "up", ""); err != nil || c.Key != "k1" || !c.OK {
		t.Errorf("Check(up) after k0 was parked = %+v, %v; want k1, ok", c, err)
	}
}
