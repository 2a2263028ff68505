package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/store/sqlite"
)

type env struct {
	url   string
	clock *clock.Fake
	db    *sqlite.DB
	api   *httpapi.Server // to change before the first request
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	bill := billing.New(billing.Options{Records: db, Log: log, Rater: &billing.Rater{Catalog: cat, Currency: "CNY"}})
	t.Cleanup(func() { _ = bill.Close(context.Background()) })
	gw, err := gateway.New(gateway.Options{Keys: db, Billing: bill, Log: log, Limits: config.Default().Limits, Clock: clk,
		Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{Name: "x", Kind: "openai", BaseURL: "http://127.0.0.1:1",
			Models: config.ModelMap{"sim-chat": "sim-chat", "unpriced": "unpriced"}})}})
	if err != nil {
		t.Fatal(err)
	}
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash("adm"), Clock: clk, Log: log,
		Prices: &httpapi.Prices{Catalog: cat, Store: db, Currency: "CNY",
			CountPrompt: func(string, []byte) (int64, bool) { return 42, true }}}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, clock: clk, db: db, api: api}
}

// apiKey creates an API key of the default tenant through the admin API.
func (e *env) apiKey(t *testing.T) string {
	t.Helper()
	st, m := e.do(t, "POST", "/admin/keys", "adm", `{"name":"api"}`)
	k, _ := m["key"].(string)
	if st != 201 || k == "" {
		t.Fatalf("create key = %d %v", st, m)
	}
	return k
}

func (e *env) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	return e.doHeader(t, method, path, auth, nil, body)
}

// doHeader is do with extra request headers.
func (e *env) doHeader(t *testing.T, method, path, auth string, hdr http.Header, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func errParam(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	p, _ := e["param"].(string)
	return p
}

func TestAdminKeys(t *testing.T) {
	e := newEnv(t)
	if st, m := e.do(t, "GET", "/admin/keys", "", ""); st != 401 || errCode(m) != "invalid_api_key" {
		t.Errorf("no admin key: %d %v", st, m)
	}
	if st, _ := e.do(t, "GET", "/admin/keys", "wrong", ""); st != 401 {
		t.Errorf("wrong admin key: %d", st)
	}
	bad := []struct{ body, param string }{
		{`{"name":""}`, "name"},
		{`{"name":"a","models":["x,y"]}`, "models"},
		{`{"name":"a","expires_at":"2020-01-01T00:00:00Z"}`, "expires_at"},
		{`{"name":"a","colour":"red"}`, "colour"},
		{`{"name":5}`, "name"},
	}
	for _, b := range bad {
		st, m := e.do(t, "POST", "/admin/keys", "adm", b.body)
		p, _ := m["error"].(map[string]any)["param"].(string)
		if st != 400 || p != b.param {
			t.Errorf("POST /admin/keys %s = %d %v, want 400 naming %s", b.body, st, m, b.param)
		}
	}
	st, m := e.do(t, "POST", "/admin/keys", "adm", `{"name":"demo","models":["sim-chat"]}`)
	secret, _ := m["key"].(string)
	id, _ := m["id"].(string)
	if st != 201 || !strings.HasPrefix(secret, keys.SecretPrefix) || id == "" {
		t.Fatalf("create = %d %v", st, m)
	}
	st, m = e.do(t, "GET", "/admin/keys", "adm", "")
	list, _ := m["data"].([]any)
	if st != 200 || len(list) != 1 || strings.Contains(mustJSON(m), secret) {
		t.Errorf("list = %d %v (must not show the secret)", st, m)
	}
	if st, m := e.do(t, "GET", "/v1/models", secret, ""); st != 200 || len(m["data"].([]any)) != 1 {
		t.Errorf("models for the key = %d %v, want only sim-chat", st, m)
	}
	if st, m := e.do(t, "POST", "/v1/chat/completions", secret, `{"model":"unpriced","messages":[{"role":"user","content":"x"}]}`); st != 403 || errCode(m) != "model_not_allowed" {
		t.Errorf("not allowed: %d %v", st, m)
	}
	if st, _ := e.do(t, "POST", "/admin/keys/"+id+"/disable", "adm", ""); st != 200 {
		t.Errorf("disable = %d", st)
	}
	if st, m := e.do(t, "GET", "/v1/models", secret, ""); st != 401 || !strings.Contains(mustJSON(m), "disabled") {
		t.Errorf("disabled key = %d %v", st, m)
	}
	if st, _ := e.do(t, "DELETE", "/admin/keys/"+id, "adm", ""); st != 200 {
		t.Errorf("delete = %d", st)
	}
	if st, m := e.do(t, "DELETE", "/admin/keys/"+id, "adm", ""); st != 404 || errCode(m) != "not_found" {
		t.Errorf("delete twice = %d %v", st, m)
	}
	if st, m := e.do(t, "GET", "/admin/usage?from=yesterday", "adm", ""); st != 400 || !strings.Contains(mustJSON(m), "from") {
		t.Errorf("bad from = %d %v", st, m)
	}
}

func TestUnpricedModelRefused(t *testing.T) {
	e := newEnv(t)
	_, m := e.do(t, "POST", "/admin/keys", "adm", `{"name":"all"}`)
	secret := m["key"].(string)
	st, m := e.do(t, "POST", "/v1/chat/completions", secret, `{"model":"unpriced","messages":[{"role":"user","content":"x"}]}`)
	if st != 400 || errCode(m) != "model_not_priced" || !strings.Contains(mustJSON(m), "No price for model unpriced in CNY") {
		t.Errorf("unpriced = %d %v", st, m)
	}
}

func TestPrices(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(t)
	st, m := e.do(t, "GET", "/v1/prices?vendor=deepseek", "", "")
	if st != 200 || len(m["models"].([]any)) == 0 {
		t.Fatalf("prices = %d", st)
	}
	st, m = e.do(t, "POST", "/v1/quote", key, `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1000}`)
	// 42 counted input tokens at ¥2/M plus 1000 output tokens at ¥8/M.
	if st != 200 || m["max_cost"] != "0.008084" || m["input_tokens"] != float64(42) {
		t.Errorf("quote = %d %v", st, m)
	}
	if st, m := e.do(t, "POST", "/v1/quote", key, `{"model":"nope","input_tokens":5}`); st != 404 || errCode(m) != "model_not_priced" {
		t.Errorf("quote unknown = %d %v", st, m)
	}
	past := `{"model":"sim-chat","effective_from":"2026-11-01T00:00:00+08:00","currency":"CNY","unit":"per_1m","source":"ops","checked":"2026-11-28","prices":{"input":"1","output":"4"}}`
	if st, m := e.do(t, "POST", "/admin/prices", "adm", past); st != 400 || !strings.Contains(mustJSON(m), "past") {
		t.Errorf("backdated version = %d %v", st, m)
	}
	future := strings.Replace(past, "2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00", 1)
	if st, m := e.do(t, "POST", "/admin/prices", "adm", future); st != 201 {
		t.Fatalf("add version = %d %v", st, m)
	}
	if st, m := e.do(t, "POST", "/admin/prices", "adm", future); st != 400 {
		t.Errorf("same start twice = %d %v, want 400 (history is append-only)", st, m)
	}
	st, m = e.do(t, "GET", "/admin/prices", "adm", "")
	if st != 200 || len(m["data"].([]any)) != 1 {
		t.Errorf("stored versions = %d %v, want exactly the one accepted", st, m)
	}
	_, m = e.do(t, "POST", "/v1/quote", key, `{"model":"sim-chat","input_tokens":1000000,"max_tokens":0,"at":"2026-12-02T00:00:00Z"}`)
	if m["max_cost"] != "1" {
		t.Errorf("quote after the new version = %v, want 1", m["max_cost"])
	}
	_, m = e.do(t, "POST", "/v1/quote", key, `{"model":"sim-chat","input_tokens":1000000,"max_tokens":0}`)
	if m["max_cost"] != "2" {
		t.Errorf("quote before the new version = %v, want 2", m["max_cost"])
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
