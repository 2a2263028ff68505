package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// errorShape reports whether b is an error of format f ("openai",
// "anthropic" or "gemini") with status 400.
func errorShape(f string, b []byte) bool {
	switch f {
	case "anthropic":
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		return json.Unmarshal(b, &e) == nil && e.Type == "error" && e.Error.Type == "invalid_request_error" && e.Error.Message != ""
	case "gemini":
		var e struct {
			Error struct {
				Code            int
				Message, Status string
			}
		}
		return json.Unmarshal(b, &e) == nil && e.Error.Code == 400 && e.Error.Status == "INVALID_ARGUMENT" && e.Error.Message != ""
	}
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(b, &e) == nil && e.Error != nil && e.Error.Type == "invalid_request_error" && e.Error.Message != ""
}

// TestInvalidJSONEverywhere: every endpoint that reads a JSON body answers
// one that is not JSON (cut short, not JSON at all, a value with more after
// it, empty) with a 400 in its own API's error shape, never a 200, a 500 or
// another API's shape.
func TestInvalidJSONEverywhere(t *testing.T) {
	e := newBillingEnv(t)
	if st, m := e.doH(t, "POST", "/admin/tenants", `{"id":"acme","name":"Acme","kind":"prepaid","currency":"CNY"}`); st != 201 {
		t.Fatalf("create tenant = %d %v", st, m)
	}
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k"}`)
	key, _ := k["key"].(string)
	if key == "" {
		t.Fatalf("create key: %v", k)
	}
	const (
		chat   = `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}]}`
		gemini = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
		price  = `{"model":"house-7b","vendor":"local","effective_from":"now","currency":"CNY","unit":"per_1m","source":"s","prices":{"input":"0.5","output":"1"}}`
	)
	// Each endpoint with a body it would take: with more data after it, it
	// must be refused as any other invalid JSON.
	endpoints := []struct {
		method, path, format, valid string
		admin                       bool
	}{
		{"POST", "/v1/chat/completions", "openai", chat, false},
		{"POST", "/v1/completions", "openai", `{"model":"sim-chat","prompt":"hi"}`, false},
		{"POST", "/v1/embeddings", "openai", `{"model":"sim-chat","input":"hi"}`, false},
		{"POST", "/v1/tokenize", "openai", `{"model":"sim-chat","input":"hi"}`, false},
		{"POST", "/v1/quote", "openai", `{"model":"deepseek-chat","input_tokens":10}`, false},
		{"POST", "/v1/messages", "anthropic", `{"model":"sim-chat","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"POST", "/v1/messages/count_tokens", "anthropic", chat, false},
		{"POST", "/v1beta/models/sim-chat:generateContent", "gemini", gemini, false},
		{"POST", "/v1beta/models/sim-chat:streamGenerateContent?alt=sse", "gemini", gemini, false},
		{"POST", "/v1beta/models/sim-chat:countTokens", "gemini", gemini, false},
		{"POST", "/admin/keys", "openai", `{"name":"x"}`, true},
		{"POST", "/admin/tenants", "openai", `{"id":"t2","name":"T","kind":"prepaid","currency":"CNY"}`, true},
		{"POST", "/admin/tenants/acme/topup", "openai", `{"amount":"1"}`, true},
		{"POST", "/admin/tenants/acme/adjust", "openai", `{"amount":"1"}`, true},
		{"POST", "/admin/tenants/acme/refund", "openai", `{"amount":"1"}`, true},
		{"POST", "/admin/tenants/acme/redeem", "openai", `{"code":"bm-nope"}`, true},
		{"POST", "/admin/codes", "openai", `{"amount":"1","currency":"CNY"}`, true},
		{"PUT", "/admin/budgets/tenant/acme", "openai", `{"period":"day","limit":"1"}`, true},
		{"PUT", "/admin/tenants/acme/price_list", "openai", `{"markup_bp":100}`, true},
		{"POST", "/admin/prices", "openai", price, true},
		{"POST", "/admin/prices/import", "openai", `{"versions":[` + price + `]}`, true},
		{"POST", "/admin/prices/retire", "openai", `{"model":"sim-chat","effective_from":"now"}`, true},
	}
	for _, ep := range endpoints {
		bodies := map[string]string{
			"cut short": `{"model":"sim-chat","messages":[`,
			"not JSON":  `model=sim-chat`,
			"empty":     ``,
			"an array":  `[` + ep.valid + `]`,
		}
		bodies["trailing data"] = ep.valid + ` {"model":"other"}`
		bodies["trailing garbage"] = ep.valid + `x`
		for name, body := range bodies {
			t.Run(ep.path+"/"+name, func(t *testing.T) {
				req, _ := http.NewRequest(ep.method, e.url+ep.path, strings.NewReader(body))
				auth := key
				if ep.admin {
					auth = "adm"
				}
				switch ep.format {
				case "anthropic":
					req.Header.Set("x-api-key", auth)
				case "gemini":
					req.Header.Set("x-goog-api-key", auth)
				default:
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 400 || !errorShape(ep.format, b) {
					t.Errorf("%s %s with %s body: %d %s; want a 400 in %s's shape", ep.method, ep.path, name, resp.StatusCode, b, ep.format)
				}
			})
		}
	}
}
