package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/openai"
	"baimo/internal/provider/responses"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// vendorFixture reads a recorded body or stream from testdata/vendors.
func vendorFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "vendors", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seen is what a fake upstream received.
type seen struct {
	mu     sync.Mutex
	path   string
	header http.Header
	body   []byte
}

// vendorUpstream is a fake upstream of one kind: it answers every request
// with a recorded body (or stream, when the request asks for one) of that
// kind and keeps what it received.
func vendorUpstream(kind string, body, stream []byte, got *seen) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.mu.Lock()
		got.path, got.header, got.body = r.URL.RequestURI(), r.Header.Clone(), b
		got.mu.Unlock()
		wantStream := bytes.Contains(b, []byte(`"stream":true`))
		if kind == "gemini" {
			wantStream = strings.Contains(r.URL.Path, ":streamGenerateContent")
		}
		if !wantStream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(stream)
	}
}

// formatHarness is a gateway with one channel of the given kind in front of
// handler, serving public model "m" as "upstream-model".
func formatHarness(t *testing.T, kind string, handler http.Handler) *harness {
	t.Helper()
	return formatHarnessAt(t, kind, map[string]string{"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "responses": "/v1"}[kind], handler)
}

// formatHarnessAt is formatHarness with the channel's base_url the
// upstream's address followed by base.
func formatHarnessAt(t *testing.T, kind, base string, handler http.Handler) *harness {
	t.Helper()
	up := httptest.NewServer(handler)
	t.Cleanup(up.Close)
	t.Setenv("BAIMO_TEST_UPSTREAM_KEY", "upstream-secret")
	cc := config.Channel{Name: "up-" + kind, Kind: kind, BaseURL: up.URL + base,
		Models: config.ModelMap{"m": "upstream-model"}}
	cc.APIKey = secretFromEnv(t, "BAIMO_TEST_UPSTREAM_KEY")
	ks := &fakeKeys{m: map[string]keys.Key{}}
	secret, k, _ := keys.Generate()
	k.ID = "key_f"
	_ = ks.CreateKey(context.Background(), k)
	recs := &records{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bill := billing.New(billing.Options{Records: recs, Log: log})
	gw, err := gateway.New(gateway.Options{Channels: []*gateway.Channel{gateway.NewChannel(cc)}, Keys: ks, Billing: bill,
		Log: log, Limits: config.Default().Limits})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.Server{GW: gw, Log: log}).Handler())
	t.Cleanup(srv.Close)
	return &harness{url: srv.URL, secret: secret, recs: recs, bill: bill, gw: gw}
}

// secretFromEnv builds a config secret from an environment variable the way
// the configuration loader does.
func secretFromEnv(t *testing.T, name string) config.Secret {
	t.Helper()
	var c struct {
		K config.Secret `yaml:"k"`
	}
	if err := yaml.Unmarshal([]byte("k: ${"+name+"}"), &c); err != nil {
		t.Fatal(err)
	}
	return c.K
}

// clientRequest is one inbound request: path, header and body per format.
func clientRequest(format string, stream bool) (path string, header map[string]string, body string) {
	switch format {
	case "anthropic":
		return "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
			`{"model":"m","max_tokens":1024,"stream":` + boolStr(stream) + `,"system":"Be brief.","messages":[{"role":"user","content":"What is the weather in Paris?"}],` +
				`"tools":[{"name":"get_weather","description":"Weather of a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}`
	case "gemini":
		method := "generateContent"
		if stream {
			method = "streamGenerateContent?alt=sse"
		}
		return "/v1beta/models/m:" + method, nil,
			`{"systemInstruction":{"parts":[{"text":"Be brief."}]},"contents":[{"role":"user","parts":[{"text":"What is the weather in Paris?"}]}],` +
				`"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}]}`
	case "responses":
		return "/v1/responses", nil, `{"model":"m","stream":` + boolStr(stream) + `,"instructions":"Be brief.","input":"What is the weather in Paris?",` +
			`"tools":[{"type":"function","name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}`
	}
	extra := ""
	if stream {
		extra = `"stream":true,"stream_options":{"include_usage":true},`
	}
	return "/v1/chat/completions", nil, `{"model":"m",` + extra + `"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the weather in Paris?"}],` +
		`"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// fixtureUsage is the usage a recorded upstream answer reports, read with
// the per-format parsers.
func fixtureUsage(t *testing.T, kind string, b []byte, stream bool) usage.Usage {
	t.Helper()
	if !stream {
		u, ok := bodyUsage(t, kind, b)
		if !ok {
			t.Fatalf("%s fixture has no usage", kind)
		}
		return u
	}
	u, ok := streamUsage(t, kind, b)
	if !ok {
		t.Fatalf("%s stream fixture has no usage", kind)
	}
	return u
}

func bodyUsage(t *testing.T, format string, b []byte) (usage.Usage, bool) {
	t.Helper()
	switch format {
	case "anthropic":
		u, err := anthropic.ResponseUsage(b)
		return u, err == nil && u.Source != usage.SourceNone
	case "gemini":
		u, ok, err := gemini.ChunkUsage(b)
		return u, ok && err == nil
	case "responses":
		return responses.Vendor.BodyUsage(b)
	}
	return openai.BodyUsage(b)
}

// streamUsage reads the usage of a whole stream of the given format, and
// checks that it is a complete stream of that format.
func streamUsage(t *testing.T, format string, b []byte) (usage.Usage, bool) {
	t.Helper()
	rd := sse.NewReader(bytes.NewReader(b), sse.DefaultMaxLine)
	var au anthropic.StreamUsage
	var gu gemini.StreamUsage
	rm := responses.Vendor.NewMeter(false)
	var ou usage.Usage
	var oseen bool
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s stream: %v", format, err)
		}
		switch format {
		case "anthropic":
			if err := au.Event(ev.Name, ev.Data); err != nil {
				t.Fatalf("anthropic stream event %s: %v", ev.Raw, err)
			}
		case "gemini":
			if err := gu.Chunk(ev.Data); err != nil {
				t.Fatalf("gemini stream chunk %s: %v", ev.Raw, err)
			}
		case "responses":
			rm.Event(ev)
		default:
			if sse.IsDone(ev.Data) {
				continue
			}
			if u, ok, _ := openai.ChunkUsage(ev.Data); ok {
				ou, oseen = u, true
			}
		}
	}
	switch format {
	case "anthropic":
		return au.Usage()
	case "gemini":
		return gu.Usage()
	case "responses":
		if _, complete := rm.End(nil); !complete {
			t.Fatalf("responses stream without its closing event")
		}
		return rm.Usage()
	}
	return ou, oseen
}

// visible is the part of a usage a client format can show: Anthropic has no
// reasoning count, Gemini no cache writes, OpenAI cache writes only inside
// the prompt.
func visible(format string, u usage.Usage) usage.Usage {
	v := usage.Usage{Input: u.Input, CachedInput: u.CachedInput, Output: u.Output}
	switch format {
	case "anthropic":
		v.CacheWrite5m, v.CacheWrite1h = u.CacheWrite5m, u.CacheWrite1h
	default:
		v.Reasoning = u.Reasoning
	}
	return v
}

// TestFormatMatrix sends requests with tools in each inbound format to an
// upstream of each kind, streamed and not: the client gets an answer in its
// own format, the upstream a request in its own (path, auth, model), and the
// usage record holds the upstream's usage, which is also what the client
// sees.
func TestFormatMatrix(t *testing.T) {
	kinds := []string{"openai", "anthropic", "gemini", "responses"}
	fixtures := map[string][2]string{
		"openai":    {"openai/chat_tools.json", "openai/stream.sse"},
		"anthropic": {"anthropic/message_tools.json", "anthropic/stream_tools.sse"},
		"gemini":    {"gemini/response_tools.json", "gemini/stream_tools.sse"},
		"responses": {"responses/response_tools.json", "responses/stream_tools.sse"},
	}
	for _, client := range kinds {
		for _, kind := range kinds {
			for _, stream := range []bool{false, true} {
				name := client + "_to_" + kind
				if stream {
					name += "_stream"
				}
				t.Run(name, func(t *testing.T) {
					body, streamBody := vendorFixture(t, fixtures[kind][0]), vendorFixture(t, fixtures[kind][1])
					var got seen
					h := formatHarness(t, kind, vendorUpstream(kind, body, streamBody, &got))
					path, header, reqBody := clientRequest(client, stream)
					resp, out := postWith(t, h, path, header, reqBody)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d: %s", resp.StatusCode, out)
					}
					checkUpstreamRequest(t, kind, client, stream, &got)
					rec := h.only(t)
					fx := body
					if stream {
						fx = streamBody
					}
					want := fixtureUsage(t, kind, fx, stream)
					if rec.Usage != want {
						t.Errorf("recorded usage %+v, want the upstream's %+v", rec.Usage, want)
					}
					if rec.Model != "m" || rec.UpstreamModel != "upstream-model" || rec.Channel != "up-"+kind || !rec.Complete ||
						rec.Status != 200 || rec.Stream != stream || rec.ErrorClass != usage.ErrNone {
						t.Errorf("record = %+v", rec)
					}
					// The client's answer is in its own format and shows the same usage.
					var seenU usage.Usage
					var ok bool
					if stream {
						if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
							t.Errorf("stream content type %q", ct)
						}
						checkStreamShape(t, client, out)
						seenU, ok = streamUsage(t, client, []byte(out))
					} else {
						checkBodyShape(t, client, out)
						seenU, ok = bodyUsage(t, client, []byte(out))
					}
					if !ok {
						t.Fatalf("the client saw no usage:\n%s", out)
					}
					if visible(client, seenU) != visible(client, rec.Usage) {
						t.Errorf("client saw usage %+v, recorded %+v", seenU, rec.Usage)
					}
				})
			}
		}
	}
}

func postWith(t *testing.T, h *harness, path string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(path, "/v1beta/"):
		req.Header.Set("x-goog-api-key", h.secret)
	case path == "/v1/messages":
		req.Header.Set("x-api-key", h.secret)
	default:
		req.Header.Set("Authorization", "Bearer "+h.secret)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// checkUpstreamRequest checks the path, auth and model the upstream got.
func checkUpstreamRequest(t *testing.T, kind, client string, stream bool, got *seen) {
	t.Helper()
	got.mu.Lock()
	defer got.mu.Unlock()
	var wantPath, authHeader, authValue string
	switch kind {
	case "anthropic":
		wantPath, authHeader, authValue = "/v1/messages", "X-Api-Key", "upstream-secret"
		if v := got.header.Get("Anthropic-Version"); v != anthropic.Version {
			t.Errorf("anthropic-version %q", v)
		}
	case "gemini":
		wantPath, authHeader, authValue = "/v1beta/models/upstream-model:generateContent", "X-Goog-Api-Key", "upstream-secret"
		if stream {
			wantPath = "/v1beta/models/upstream-model:streamGenerateContent?alt=sse"
		}
	case "responses":
		wantPath, authHeader, authValue = "/v1/responses", "Authorization", "Bearer upstream-secret"
	default:
		wantPath, authHeader, authValue = "/v1/chat/completions", "Authorization", "Bearer upstream-secret"
	}
	if got.path != wantPath {
		t.Errorf("upstream path %q, want %q", got.path, wantPath)
	}
	if v := got.header.Get(authHeader); v != authValue {
		t.Errorf("upstream %s = %q, want %q", authHeader, v, authValue)
	}
	for _, h := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
		if h != authHeader && got.header.Get(h) != "" {
			t.Errorf("upstream also got %s", h)
		}
	}
	if kind != "gemini" && !bytes.Contains(got.body, []byte(`"model":"upstream-model"`)) {
		t.Errorf("upstream body does not name upstream-model: %s", got.body)
	}
	if kind == client && kind == "gemini" {
		_, _, want := clientRequest(client, stream)
		if string(got.body) != want {
			t.Errorf("gemini passthrough changed the body:\n%s\nwant\n%s", got.body, want)
		}
	}
	if kind == client && kind == "anthropic" {
		_, _, want := clientRequest(client, stream)
		if want = strings.Replace(want, `"model":"m"`, `"model":"upstream-model"`, 1); string(got.body) != want {
			t.Errorf("anthropic passthrough changed more than the model:\n%s\nwant\n%s", got.body, want)
		}
	}
	if kind == client && kind == "responses" {
		_, _, want := clientRequest(client, stream)
		if want = strings.Replace(want, `"model":"m"`, `"model":"upstream-model"`, 1); string(got.body) != want {
			t.Errorf("responses passthrough changed more than the model:\n%s\nwant\n%s", got.body, want)
		}
	}
	if kind == "openai" && stream && !bytes.Contains(got.body, []byte(`"include_usage":true`)) {
		t.Errorf("openai upstream not asked for usage: %s", got.body)
	}
}

func checkBodyShape(t *testing.T, format, out string) {
	t.Helper()
	var v map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, out)
	}
	want := map[string]string{"openai": "choices", "anthropic": "content", "gemini": "candidates", "responses": "output"}[format]
	if _, ok := v[want]; !ok {
		t.Errorf("%s answer without %q: %s", format, want, out)
	}
}

func checkStreamShape(t *testing.T, format, out string) {
	t.Helper()
	var want string
	switch format {
	case "anthropic":
		want = "event: message_stop\n"
	case "gemini":
		want = `"finishReason"`
	case "responses":
		want = "event: response.completed\n"
	default:
		want = "data: [DONE]"
	}
	if !strings.Contains(out, want) {
		t.Errorf("%s stream without %q:\n%s", format, want, out)
	}
	// A Responses object always has an error member (null when none).
	if strings.Contains(out, `"error"`) && format != "anthropic" && format != "responses" || strings.Contains(out, "event: error") ||
		strings.Contains(out, "event: response.failed") {
		t.Errorf("%s stream carries an error:\n%s", format, out)
	}
}

// TestFormatErrors checks that errors come in the client's format with the
// right status: the gateway's own (auth, an untranslatable feature, an
// unknown model) and an upstream's.
func TestFormatErrors(t *testing.T) {
	anthropicErr := func(typ string) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			var e anthropic.Error
			if err := json.Unmarshal([]byte(out), &e); err != nil || e.Type != "error" || e.Error.Type != typ || e.Error.Message == "" {
				t.Errorf("want an Anthropic %s error, got %s", typ, out)
			}
		}
	}
	geminiErr := func(code int, status string) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			var e gemini.Error
			if err := json.Unmarshal([]byte(out), &e); err != nil || e.Error.Code != code || e.Error.Status != status || e.Error.Message == "" {
				t.Errorf("want a Gemini %d %s error, got %s", code, status, out)
			}
		}
	}
	openaiErr := func(typ string) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			var e struct {
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal([]byte(out), &e); err != nil || e.Error.Type != typ || e.Error.Message == "" {
				t.Errorf("want an OpenAI %s error, got %s", typ, out)
			}
		}
	}
	tests := []struct {
		name     string
		kind     string // the channel's
		upstream http.HandlerFunc
		path     string
		header   map[string]string // replaces the default auth when it sets one
		body     string
		status   int
		check    func(t *testing.T, out string)
		contains string
	}{
		{name: "anthropic: no key", kind: "openai", path: "/v1/messages", header: map[string]string{"x-api-key": ""},
			body: `{"model":"m","max_tokens":5,"messages":[]}`, status: 401, check: anthropicErr("authentication_error")},
		{name: "gemini: bad key in ?key=", kind: "openai", path: "/v1beta/models/m:generateContent?key=nope", header: map[string]string{"x-goog-api-key": ""},
			body: `{"contents":[]}`, status: 401, check: geminiErr(401, "UNAUTHENTICATED")},
		{name: "anthropic: unknown model", kind: "openai", path: "/v1/messages",
			body: `{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, status: 404, check: anthropicErr("not_found_error")},
		{name: "anthropic: max_tokens required", kind: "openai", path: "/v1/messages",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, status: 400, check: anthropicErr("invalid_request_error"), contains: "max_tokens"},
		{name: "gemini: contents required", kind: "openai", path: "/v1beta/models/m:generateContent",
			body: `{}`, status: 400, check: geminiErr(400, "INVALID_ARGUMENT"), contains: "contents"},
		{name: "gemini: stream without alt=sse", kind: "openai", path: "/v1beta/models/m:streamGenerateContent",
			body: `{"contents":[]}`, status: 400, check: geminiErr(400, "INVALID_ARGUMENT"), contains: "alt=sse"},
		{name: "gemini: unknown method", kind: "openai", path: "/v1beta/models/m:embedContent",
			body: `{}`, status: 404, check: geminiErr(404, "NOT_FOUND")},
		{name: "openai to anthropic: seed cannot be translated", kind: "anthropic", path: "/v1/chat/completions",
			body: `{"model":"m","seed":7,"messages":[{"role":"user","content":"hi"}]}`, status: 400, check: openaiErr("invalid_request_error"), contains: "seed"},
		{name: "gemini to anthropic: candidateCount cannot be translated", kind: "anthropic", path: "/v1beta/models/m:generateContent",
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":2}}`, status: 400,
			check: geminiErr(400, "INVALID_ARGUMENT"), contains: "candidateCount"},
		{name: "openai embeddings to a gemini channel", kind: "gemini", path: "/v1/embeddings",
			body: `{"model":"m","input":"hi"}`, status: 400, check: openaiErr("invalid_request_error"), contains: "embeddings"},
		{name: "anthropic client, gemini upstream 429", kind: "gemini", upstream: scripted(429, "application/json", `{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}`, 0, nil),
			path: "/v1/messages", body: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, status: 429, check: anthropicErr("rate_limit_error")},
		{name: "gemini client, anthropic upstream 400 passes its message", kind: "anthropic",
			upstream: scripted(400, "application/json", `{"type":"error","error":{"type":"invalid_request_error","message":"messages: bad role"}}`, 0, nil),
			path:     "/v1beta/models/m:generateContent", body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, status: 400,
			check: geminiErr(400, "INVALID_ARGUMENT"), contains: "bad role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := tt.upstream
			if up == nil {
				up = func(w http.ResponseWriter, r *http.Request) { t.Errorf("the upstream was called: %s", r.URL) }
			}
			h := formatHarness(t, tt.kind, up)
			resp, out := postWith(t, h, tt.path, tt.header, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, out)
			}
			tt.check(t, out)
			if !strings.Contains(out, tt.contains) {
				t.Errorf("error does not name %q: %s", tt.contains, out)
			}
		})
	}
}

func mustFixture(t *testing.T, name string) []byte { return vendorFixture(t, name) }

// TestCountTokens checks Anthropic's count_tokens and Gemini's countTokens:
// the gateway's count, in each API's shape, never calling the upstream.
func TestCountTokens(t *testing.T) {
	h := formatHarness(t, "anthropic", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Errorf("the upstream was called: %s", r.URL) }))
	long := strings.Repeat("word ", 50)
	tests := []struct {
		path, body, field string
	}{
		{"/v1/messages/count_tokens", `{"model":"m","system":"Be brief.","messages":[{"role":"user","content":"` + long + `"}]}`, "input_tokens"},
		{"/v1beta/models/m:countTokens", `{"contents":[{"role":"user","parts":[{"text":"` + long + `"}]}]}`, "totalTokens"},
		{"/v1beta/models/m:countTokens", `{"generateContentRequest":{"model":"models/m","contents":[{"role":"user","parts":[{"text":"` + long + `"}]}]}}`, "totalTokens"},
	}
	for _, tt := range tests {
		resp, out := postWith(t, h, tt.path, nil, tt.body)
		var v map[string]int64
		if err := json.Unmarshal([]byte(out), &v); err != nil || resp.StatusCode != 200 || len(v) != 1 || v[tt.field] < 50 || v[tt.field] > 150 {
			t.Errorf("%s: %d %s, want {%q: 50-150} for a 50-word prompt", tt.path, resp.StatusCode, out, tt.field)
		}
	}
	resp, out := postWith(t, h, "/v1/messages/count_tokens", nil, `{"model":"nope","messages":[]}`)
	if resp.StatusCode != 404 || !strings.Contains(out, "not_found_error") {
		t.Errorf("unknown model: %d %s", resp.StatusCode, out)
	}
}

// TestNativeStreamCut checks a passed-through Anthropic stream that the
// upstream cuts: the client gets an Anthropic error event, the record is
// incomplete and keeps the input the upstream reported.
func TestNativeStreamCut(t *testing.T) {
	full := string(vendorFixture(t, "anthropic/stream.sse"))
	cutAt := strings.Index(full, "event: message_delta")
	h := formatHarness(t, "anthropic", scripted(200, "text/event-stream", full[:cutAt], 0, nil))
	_, _, body := clientRequest("anthropic", true)
	resp, out := postWith(t, h, "/v1/messages", nil, body)
	if resp.StatusCode != 200 || !strings.Contains(out, "event: error\ndata: {\"type\":\"error\"") || strings.Contains(out, "message_stop") {
		t.Errorf("status %d, want an error event at the end:\n%s", resp.StatusCode, out)
	}
	rec := h.only(t)
	start, _ := streamUsage(t, "anthropic", []byte(full[:cutAt]))
	if rec.Complete || rec.ErrorClass != usage.ErrStreamBroken || rec.Usage.Input != start.Input || rec.Usage.Output <= 0 {
		t.Errorf("record = %+v, want incomplete stream_broken with input %d", rec, start.Input)
	}
}

// TestTranslatedStreamCut checks a translated stream that the upstream cuts:
// the client gets an error in its own format, and the record is incomplete
// with the input the upstream reported at the start.
func TestTranslatedStreamCut(t *testing.T) {
	full := string(vendorFixture(t, "anthropic/stream.sse"))
	cut := full[:strings.Index(full, "event: message_delta")]
	start, _ := streamUsage(t, "anthropic", []byte(cut))
	for _, tt := range []struct{ client, errMark, notMark string }{
		{"openai", `"error"`, "data: [DONE]"},
		{"gemini", `"error"`, `"finishReason"`},
	} {
		t.Run(tt.client, func(t *testing.T) {
			h := formatHarness(t, "anthropic", scripted(200, "text/event-stream", cut, 0, nil))
			path, header, body := clientRequest(tt.client, true)
			resp, out := postWith(t, h, path, header, body)
			if resp.StatusCode != 200 || !strings.Contains(out, tt.errMark) || strings.Contains(out, tt.notMark) {
				t.Errorf("status %d, want an error at the end and no %s:\n%s", resp.StatusCode, tt.notMark, out)
			}
			rec := h.only(t)
			if rec.Complete || rec.ErrorClass != usage.ErrStreamBroken || rec.Usage.Input != start.Input || rec.Usage.Output <= 0 {
				t.Errorf("record = %+v, want incomplete stream_broken with input %d and some output", rec, start.Input)
			}
		})
	}
}

// TestProbeTarget: an active probe of a channel's key authenticates as a
// real request to that kind of upstream would, at the vendor's model list.
func TestProbeTarget(t *testing.T) {
	for _, tc := range []struct {
		kind, auth string
		want       map[string]string
	}{
		{"openai", "sk-1", map[string]string{"Authorization": "Bearer sk-1", "X-Team": "a"}},
		{"openai", "", map[string]string{"Authorization": "", "X-Team": "a"}},
		{"anthropic", "sk-ant", map[string]string{"X-Api-Key": "sk-ant", "Anthropic-Version": anthropic.Version, "Authorization": ""}},
		{"gemini", "g-1", map[string]string{"X-Goog-Api-Key": "g-1", "Authorization": ""}},
	} {
		ch := gateway.NewChannel(config.Channel{Name: "c", Kind: tc.kind, BaseURL: "http://up/v1", Headers: map[string]string{"X-Team": "a"}})
		pt := ch.ProbeTarget(tc.auth)
		if pt.URL != "http://up/v1/models" {
			t.Errorf("%s: URL %q", tc.kind, pt.URL)
		}
		for k, v := range tc.want {
			if got := pt.Header.Get(k); got != v {
				t.Errorf("%s %q: header %s = %q, want %q", tc.kind, tc.auth, k, got, v)
			}
		}
		if pt.Header.Get("Content-Type") != "" {
			t.Errorf("%s: a GET probe sends Content-Type %q", tc.kind, pt.Header.Get("Content-Type"))
		}
	}
}

// TestAnthropicBaseURLWithOrWithoutV1: an Anthropic channel's base_url may
// be written as Anthropic's SDKs take it (https://api.anthropic.com) or
// with /v1, with or without a trailing slash: requests, streamed or not,
// and the health probe reach /v1/... either way, never /v1/v1/... or
// /messages.
func TestAnthropicBaseURLWithOrWithoutV1(t *testing.T) {
	body, streamBody := vendorFixture(t, "anthropic/message_tools.json"), vendorFixture(t, "anthropic/stream_tools.sse")
	for _, base := range []string{"", "/", "/v1", "/v1/"} {
		for _, stream := range []bool{false, true} {
			t.Run("base"+strings.ReplaceAll(base, "/", "_")+map[bool]string{true: "_stream"}[stream], func(t *testing.T) {
				var got seen
				h := formatHarnessAt(t, "anthropic", base, vendorUpstream("anthropic", body, streamBody, &got))
				path, header, reqBody := clientRequest("openai", stream)
				if resp, out := postWith(t, h, path, header, reqBody); resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				got.mu.Lock()
				defer got.mu.Unlock()
				if got.path != "/v1/messages" {
					t.Errorf("base_url ending %q: the upstream was called at %s, want /v1/messages", base, got.path)
				}
			})
		}
		ch := gateway.NewChannel(config.Channel{Name: "c", Kind: "anthropic", BaseURL: "http://up" + base})
		if pt := ch.ProbeTarget("k"); pt.URL != "http://up/v1/models" {
			t.Errorf("base_url ending %q: probe at %s, want http://up/v1/models", base, pt.URL)
		}
	}
}
