package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOutputLimitsAndChoicesValidated: on every inbound API the output
// limit and the number of answers are positive integers within bounds:
// 0, a negative, a fraction, an exponent, a string, a number too large to
// hold and one beyond what any model produces (or the gateway serves) are
// each a 400 in the client's format naming the field, before any upstream
// is called; an honest value goes through.
func TestOutputLimitsAndChoicesValidated(t *testing.T) {
	bad := []struct{ name, value string }{
		{"zero", "0"}, {"negative", "-5"}, {"fraction", "10.5"}, {"exponent", "1e3"}, {"string", `"100"`},
		{"overflow", "99999999999999999999999"}, {"beyond any model", "1000000000000"},
	}
	type field struct {
		client, param string
		body          func(v string) string
		path          string
	}
	chat := func(f string) func(string) string {
		return func(v string) string {
			return `{"model":"m","messages":[{"role":"user","content":"hi"}],"` + f + `":` + v + `}`
		}
	}
	genCfg := func(f string) func(string) string {
		return func(v string) string {
			return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"` + f + `":` + v + `}}`
		}
	}
	fields := []field{
		{"openai", "max_tokens", chat("max_tokens"), "/v1/chat/completions"},
		{"openai", "max_completion_tokens", chat("max_completion_tokens"), "/v1/chat/completions"},
		{"openai", "n", chat("n"), "/v1/chat/completions"},
		{"openai", "max_tokens", func(v string) string { return `{"model":"m","prompt":"hi","max_tokens":` + v + `}` }, "/v1/completions"},
		{"openai", "best_of", func(v string) string { return `{"model":"m","prompt":"hi","best_of":` + v + `}` }, "/v1/completions"},
		{"anthropic", "max_tokens", func(v string) string {
			return `{"model":"m","max_tokens":` + v + `,"messages":[{"role":"user","content":"hi"}]}`
		}, "/v1/messages"},
		{"gemini", "generationConfig.maxOutputTokens", genCfg("maxOutputTokens"), "/v1beta/models/m:generateContent"},
		{"gemini", "generationConfig.candidateCount", genCfg("candidateCount"), "/v1beta/models/m:generateContent"},
	}
	calls := 0
	h := formatHarness(t, "openai", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c","object":"chat.completion","created":1,"model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
	}))
	for _, f := range fields {
		for _, b := range bad {
			t.Run(f.path+"/"+f.param+"/"+b.name, func(t *testing.T) {
				before := calls
				resp, out := postWith(t, h, f.path, nil, f.body(b.value))
				if resp.StatusCode != 400 || !strings.Contains(out, f.param) || !errorIn(f.client, out) {
					t.Errorf("%s=%s: %d %s; want a 400 in %s's shape naming %s", f.param, b.value, resp.StatusCode, out, f.client, f.param)
				}
				if calls != before {
					t.Errorf("%s=%s reached the upstream", f.param, b.value)
				}
			})
		}
		t.Run(f.path+"/"+f.param+"/honest", func(t *testing.T) {
			if resp, out := postWith(t, h, f.path, nil, f.body("1")); resp.StatusCode != 200 {
				t.Errorf("%s=1: %d %s", f.param, resp.StatusCode, out)
			}
		})
	}
}

// errorIn reports whether out is an error in format f's shape.
func errorIn(f, out string) bool {
	var e struct {
		Type  string          `json:"type"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal([]byte(out), &e) != nil || len(e.Error) == 0 {
		return false
	}
	var d map[string]any
	_ = json.Unmarshal(e.Error, &d)
	switch f {
	case "anthropic":
		return e.Type == "error" && d["type"] == "invalid_request_error"
	case "gemini":
		return d["status"] == "INVALID_ARGUMENT" && d["code"] == float64(400)
	}
	return d["type"] == "invalid_request_error"
}
