package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/store/sqlite"
)

// modelsEnv is a gateway serving five models over two channels, so the
// gateway's own order (c, e, a from channel one, then b, d from channel
// two) differs from the sorted order the native lists page through.
type modelsEnv struct {
	url string
	// all may use every model; some only b-model and e-model; off is disabled.
	all, some, off string
}

// sortedModels is every model, in the order the native lists give them.
var sortedModels = []string{"a-model", "b-model", "c-model", "d-model", "e-model"}

func newModelsEnv(t *testing.T) *modelsEnv {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	bill := billing.New(billing.Options{Records: db, Log: log})
	t.Cleanup(func() { _ = bill.Close(context.Background()) })
	gw, err := gateway.New(gateway.Options{Keys: db, Billing: bill, Log: log, Limits: config.Default().Limits, Clock: clk,
		Channels: []*gateway.Channel{
			gateway.NewChannel(config.Channel{Name: "one", Kind: "openai", BaseURL: "http://127.0.0.1:1",
				Models: config.ModelMap{"e-model": "x", "c-model": "x", "a-model": "x"}}),
			gateway.NewChannel(config.Channel{Name: "two", Kind: "gemini", BaseURL: "http://127.0.0.1:1",
				Models: config.ModelMap{"d-model": "x", "b-model": "x", "a-model": "x"}}),
		}})
	if err != nil {
		t.Fatal(err)
	}
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash("adm"), Clock: clk, Log: log}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	e := &modelsEnv{url: srv.URL}
	mk := func(body string) (secret, id string) {
		st, b, _ := e.get(t, "POST", "/admin/keys", map[string]string{"Authorization": "Bearer adm"}, body)
		var m struct{ Key, ID string }
		if st != 201 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("POST /admin/keys %s = %d %s", body, st, b)
		}
		return m.Key, m.ID
	}
	e.all, _ = mk(`{"name":"all"}`)
	e.some, _ = mk(`{"name":"some","models":["e-model","b-model"]}`)
	var offID string
	e.off, offID = mk(`{"name":"off"}`)
	if st, b, _ := e.get(t, "POST", "/admin/keys/"+offID+"/disable", map[string]string{"Authorization": "Bearer adm"}, ""); st != 200 {
		t.Fatalf("disable = %d %s", st, b)
	}
	return e
}

// get sends a request with headers h and returns the status, body and
// response headers.
func (e *modelsEnv) get(t *testing.T, method, path string, h map[string]string, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// anthropicHeaders are what the Anthropic SDK sends.
func anthropicHeaders(key string) map[string]string {
	h := map[string]string{"anthropic-version": "2023-06-01"}
	if key != "" {
		h["x-api-key"] = key
	}
	return h
}

func TestOpenAIModelsUnchanged(t *testing.T) {
	e := newModelsEnv(t)
	item := func(id string) string {
		return `{"id":"` + id + `","object":"model","created":1700000000,"owned_by":"baimo"}`
	}
	// The gateway's order, not sorted: today's answer byte for byte.
	var items []string
	for _, id := range []string{"a-model", "c-model", "e-model", "b-model", "d-model"} {
		items = append(items, item(id))
	}
	list := `{"data":[` + strings.Join(items, ",") + `],"object":"list"}` + "\n"
	cases := []struct {
		name, path string
		h          map[string]string
		status     int
		want       string
	}{
		{"list, bearer", "/v1/models", map[string]string{"Authorization": "Bearer " + e.all}, 200, list},
		{"list, x-api-key without anthropic-version", "/v1/models", map[string]string{"x-api-key": e.all}, 200, list},
		{"list, allowlist", "/v1/models", map[string]string{"Authorization": "Bearer " + e.some}, 200,
			`{"data":[` + item("e-model") + "," + item("b-model") + `],"object":"list"}` + "\n"},
		{"one model", "/v1/models/c-model", map[string]string{"Authorization": "Bearer " + e.all}, 200,
			`{"created":1700000000,"id":"c-model","object":"model","owned_by":"baimo"}` + "\n"},
		{"no key", "/v1/models", nil, 401,
			`{"error":{"message":"You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key'.","type":"authentication_error","param":null,"code":"invalid_api_key"}}` + "\n"},
		{"not allowed", "/v1/models/a-model", map[string]string{"Authorization": "Bearer " + e.some}, 404,
			`{"error":{"message":"The model ` + "`a-model`" + ` does not exist or is not served by this gateway.","type":"invalid_request_error","param":"model","code":"model_not_found"}}` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b, _ := e.get(t, "GET", c.path, c.h, "")
			if st != c.status || string(b) != c.want {
				t.Errorf("GET %s = %d\n%s\nwant %d\n%s", c.path, st, b, c.status, c.want)
			}
		})
	}
}

type anthropicList struct {
	Data []struct {
		Type        string `json:"type"`
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		CreatedAt   string `json:"created_at"`
	} `json:"data"`
	HasMore bool    `json:"has_more"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
}

func (l anthropicList) ids() []string {
	ids := []string{}
	for _, m := range l.Data {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestAnthropicModelList(t *testing.T) {
	e := newModelsEnv(t)
	cases := []struct {
		name, query string
		key         string // e.all when empty
		want        []string
		hasMore     bool
	}{
		{name: "default page holds all five", query: "", want: sortedModels},
		{name: "limit", query: "?limit=2", want: []string{"a-model", "b-model"}, hasMore: true},
		{name: "after_id", query: "?limit=2&after_id=b-model", want: []string{"c-model", "d-model"}, hasMore: true},
		{name: "after_id, last page exactly", query: "?limit=2&after_id=c-model", want: []string{"d-model", "e-model"}},
		{name: "after_id past the end", query: "?after_id=e-model", want: []string{}},
		{name: "after_id between ids", query: "?limit=1&after_id=bz", want: []string{"c-model"}, hasMore: true},
		{name: "before_id", query: "?limit=2&before_id=e-model", want: []string{"c-model", "d-model"}, hasMore: true},
		{name: "before_id, first page", query: "?limit=2&before_id=c-model", want: []string{"a-model", "b-model"}},
		{name: "before_id before the start", query: "?before_id=a-model", want: []string{}},
		{name: "limit 1000", query: "?limit=1000", want: sortedModels},
		{name: "lifecycle active", query: "?lifecycle[]=active&lifecycle[]=deprecated", want: sortedModels},
		{name: "lifecycle retired only", query: "?lifecycle[]=retired", want: []string{}},
		{name: "lifecycle without brackets", query: "?lifecycle=deprecated", want: []string{}},
		{name: "allowlist", query: "", key: e.some, want: []string{"b-model", "e-model"}},
		{name: "allowlist, paged", query: "?limit=1&after_id=b-model", key: e.some, want: []string{"e-model"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key == "" {
				key = e.all
			}
			st, b, _ := e.get(t, "GET", "/v1/models"+c.query, anthropicHeaders(key), "")
			var l anthropicList
			if st != 200 || json.Unmarshal(b, &l) != nil {
				t.Fatalf("GET /v1/models%s = %d %s", c.query, st, b)
			}
			if got := l.ids(); !reflect.DeepEqual(got, c.want) || l.HasMore != c.hasMore {
				t.Errorf("GET /v1/models%s = %v has_more %v, want %v has_more %v", c.query, got, l.HasMore, c.want, c.hasMore)
			}
			if len(c.want) == 0 {
				if l.FirstID != nil || l.LastID != nil || !strings.Contains(string(b), `"data":[]`) {
					t.Errorf("empty page: %s, want data [] and null first_id, last_id", b)
				}
				return
			}
			if l.FirstID == nil || *l.FirstID != c.want[0] || l.LastID == nil || *l.LastID != c.want[len(c.want)-1] {
				t.Errorf("first_id, last_id: %s", b)
			}
			for _, m := range l.Data {
				if m.Type != "model" || m.DisplayName != m.ID || m.CreatedAt != "2023-11-14T22:13:20Z" {
					t.Errorf("model %+v, want type model, display_name the id, created_at 2023-11-14T22:13:20Z", m)
				}
			}
		})
	}
}

// TestAnthropicModelPaging walks the list a page at a time both ways, as
// the SDK does: forward with after_id = last_id, backward with before_id =
// first_id.
func TestAnthropicModelPaging(t *testing.T) {
	e := newModelsEnv(t)
	walk := func(query func(l anthropicList) string, first string) []string {
		var got []string
		q := first
		for i := 0; ; i++ {
			if i > len(sortedModels) {
				t.Fatalf("paging does not end: %v", got)
			}
			st, b, _ := e.get(t, "GET", "/v1/models"+q, anthropicHeaders(e.all), "")
			var l anthropicList
			if st != 200 || json.Unmarshal(b, &l) != nil {
				t.Fatalf("GET /v1/models%s = %d %s", q, st, b)
			}
			got = append(got, l.ids()...)
			if !l.HasMore {
				return got
			}
			q = query(l)
		}
	}
	fwd := walk(func(l anthropicList) string { return "?limit=2&after_id=" + *l.LastID }, "?limit=2")
	if !reflect.DeepEqual(fwd, sortedModels) {
		t.Errorf("forward = %v, want %v", fwd, sortedModels)
	}
	back := walk(func(l anthropicList) string { return "?limit=2&before_id=" + *l.FirstID }, "?limit=2&before_id=zzz")
	want := []string{"d-model", "e-model", "b-model", "c-model", "a-model"}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("backward = %v, want %v", back, want)
	}
}

// anthropicError is Anthropic's error shape.
type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestAnthropicModelErrors(t *testing.T) {
	e := newModelsEnv(t)
	long := strings.Repeat("x", 513)
	cases := []struct {
		name, path string
		h          map[string]string
		status     int
		errType    string
	}{
		{"no key", "/v1/models", anthropicHeaders(""), 401, "authentication_error"},
		{"wrong key", "/v1/models", anthropicHeaders("sk-baimo-nope"), 401, "authentication_error"},
		{"disabled key", "/v1/models", anthropicHeaders(e.off), 401, "authentication_error"},
		{"no key, one model", "/v1/models/a-model", anthropicHeaders(""), 401, "authentication_error"},
		{"limit 0", "/v1/models?limit=0", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"limit 1001", "/v1/models?limit=1001", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"limit not a number", "/v1/models?limit=ten", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"after_id and before_id", "/v1/models?after_id=a-model&before_id=e-model", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"after_id too long", "/v1/models?after_id=" + long, anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"unknown lifecycle", "/v1/models?lifecycle[]=beta", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"too many lifecycles", "/v1/models?lifecycle[]=active&lifecycle[]=active&lifecycle[]=active&lifecycle[]=active", anthropicHeaders(e.all), 400, "invalid_request_error"},
		{"unknown model", "/v1/models/nope", anthropicHeaders(e.all), 404, "not_found_error"},
		{"model not allowed", "/v1/models/a-model", anthropicHeaders(e.some), 404, "not_found_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b, h := e.get(t, "GET", c.path, c.h, "")
			var ae anthropicError
			if err := json.Unmarshal(b, &ae); err != nil || st != c.status || ae.Type != "error" || ae.Error.Type != c.errType || ae.Error.Message == "" {
				t.Errorf("GET %.60s = %d %s, want %d in Anthropic's shape with type %s", c.path, st, b, c.status, c.errType)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestAnthropicGetModel(t *testing.T) {
	e := newModelsEnv(t)
	for _, c := range []struct{ key, id string }{{e.all, "a-model"}, {e.some, "e-model"}} {
		st, b, _ := e.get(t, "GET", "/v1/models/"+c.id, anthropicHeaders(c.key), "")
		var m map[string]any
		if st != 200 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("GET /v1/models/%s = %d %s", c.id, st, b)
		}
		if m["type"] != "model" || m["id"] != c.id || m["display_name"] != c.id || m["created_at"] != "2023-11-14T22:13:20Z" || m["lifecycle"] != "active" {
			t.Errorf("GET /v1/models/%s = %s", c.id, b)
		}
	}
}

type geminiList struct {
	Models []struct {
		Name                       string   `json:"name"`
		BaseModelID                string   `json:"baseModelId"`
		DisplayName                string   `json:"displayName"`
		SupportedGenerationMethods []string `json:"supportedGenerationMethods"`
	} `json:"models"`
	NextPageToken *string `json:"nextPageToken"`
}

func (l geminiList) ids() []string {
	ids := []string{}
	for _, m := range l.Models {
		ids = append(ids, strings.TrimPrefix(m.Name, "models/"))
	}
	return ids
}

func TestGeminiModelList(t *testing.T) {
	e := newModelsEnv(t)
	goog := func(key string) map[string]string { return map[string]string{"x-goog-api-key": key} }
	cases := []struct {
		name, query string
		h           map[string]string
		want        []string
		next        bool
	}{
		{name: "default page holds all five", h: goog(e.all), want: sortedModels},
		{name: "key in the query", query: "?key=" + e.all, want: sortedModels},
		{name: "bearer", h: map[string]string{"Authorization": "Bearer " + e.all}, want: sortedModels},
		{name: "x-goog-api-key wins over a wrong ?key=", query: "?key=nope", h: goog(e.all), want: sortedModels},
		{name: "pageSize", query: "?pageSize=2", h: goog(e.all), want: []string{"a-model", "b-model"}, next: true},
		{name: "pageSize 0 is the default", query: "?pageSize=0", h: goog(e.all), want: sortedModels},
		{name: "pageSize over 1000 is 1000", query: "?pageSize=100000", h: goog(e.all), want: sortedModels},
		{name: "pageSize = all, no next page", query: "?pageSize=5", h: goog(e.all), want: sortedModels},
		{name: "allowlist", h: goog(e.some), want: []string{"b-model", "e-model"}},
		{name: "allowlist, paged", query: "?pageSize=1", h: goog(e.some), want: []string{"b-model"}, next: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b, _ := e.get(t, "GET", "/v1beta/models"+c.query, c.h, "")
			var l geminiList
			if st != 200 || json.Unmarshal(b, &l) != nil {
				t.Fatalf("GET /v1beta/models%s = %d %s", c.query, st, b)
			}
			if got := l.ids(); !reflect.DeepEqual(got, c.want) || (l.NextPageToken != nil) != c.next {
				t.Errorf("GET /v1beta/models%s = %v next %v, want %v next %v", c.query, got, l.NextPageToken != nil, c.want, c.next)
			}
			for _, m := range l.Models {
				id := strings.TrimPrefix(m.Name, "models/")
				if m.BaseModelID != id || m.DisplayName != id ||
					!reflect.DeepEqual(m.SupportedGenerationMethods, []string{"generateContent", "streamGenerateContent", "countTokens"}) {
					t.Errorf("model %+v", m)
				}
			}
		})
	}
}

func TestGeminiModelPaging(t *testing.T) {
	e := newModelsEnv(t)
	for _, size := range []int{1, 2, 3, 4, 5} {
		var got []string
		q := "?pageSize=" + strconv.Itoa(size)
		for i := 0; ; i++ {
			if i > len(sortedModels) {
				t.Fatalf("pageSize %d: paging does not end: %v", size, got)
			}
			st, b, _ := e.get(t, "GET", "/v1beta/models"+q, map[string]string{"x-goog-api-key": e.all}, "")
			var l geminiList
			if st != 200 || json.Unmarshal(b, &l) != nil {
				t.Fatalf("GET /v1beta/models%s = %d %s", q, st, b)
			}
			got = append(got, l.ids()...)
			if l.NextPageToken == nil {
				break
			}
			// Clients pass the other parameters again, as Gemini asks.
			q = "?pageSize=" + strconv.Itoa(size) + "&pageToken=" + *l.NextPageToken
		}
		if !reflect.DeepEqual(got, sortedModels) {
			t.Errorf("pageSize %d: %v, want %v", size, got, sortedModels)
		}
	}
}

// geminiError is Google's error shape.
type geminiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

func TestGeminiModelErrors(t *testing.T) {
	e := newModelsEnv(t)
	goog := map[string]string{"x-goog-api-key": e.all}
	foreign := base64.RawURLEncoding.EncodeToString([]byte("a-model"))
	cases := []struct {
		name, path string
		h          map[string]string
		status     int
		gstatus    string
	}{
		{"no key", "/v1beta/models", nil, 401, "UNAUTHENTICATED"},
		{"wrong x-goog-api-key", "/v1beta/models", map[string]string{"x-goog-api-key": "nope"}, 401, "UNAUTHENTICATED"},
		{"wrong ?key=", "/v1beta/models?key=nope", nil, 401, "UNAUTHENTICATED"},
		{"disabled key", "/v1beta/models?key=" + e.off, nil, 401, "UNAUTHENTICATED"},
		{"no key, one model", "/v1beta/models/a-model", nil, 401, "UNAUTHENTICATED"},
		{"bad pageToken", "/v1beta/models?pageToken=%21%21%21", goog, 400, "INVALID_ARGUMENT"},
		{"pageToken not ours", "/v1beta/models?pageToken=" + foreign, goog, 400, "INVALID_ARGUMENT"},
		{"pageToken too long", "/v1beta/models?pageToken=" + strings.Repeat("A", 2000), goog, 400, "INVALID_ARGUMENT"},
		{"negative pageSize", "/v1beta/models?pageSize=-1", goog, 400, "INVALID_ARGUMENT"},
		{"pageSize not a number", "/v1beta/models?pageSize=lots", goog, 400, "INVALID_ARGUMENT"},
		{"unknown model", "/v1beta/models/nope", goog, 404, "NOT_FOUND"},
		{"model not allowed", "/v1beta/models/a-model?key=" + e.some, nil, 404, "NOT_FOUND"},
		{"a method is not a model", "/v1beta/models/a-model:generateContent", goog, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b, _ := e.get(t, "GET", c.path, c.h, "")
			var ge geminiError
			if err := json.Unmarshal(b, &ge); err != nil || st != c.status || ge.Error.Code != c.status || ge.Error.Status != c.gstatus || ge.Error.Message == "" {
				t.Errorf("GET %.60s = %d %s, want %d in Gemini's shape with status %s", c.path, st, b, c.status, c.gstatus)
			}
			if strings.Contains(string(b), e.all) || strings.Contains(string(b), e.some) || strings.Contains(string(b), e.off) {
				t.Errorf("the error shows a key: %s", b)
			}
		})
	}
}

func TestGeminiGetModel(t *testing.T) {
	e := newModelsEnv(t)
	for _, c := range []struct{ key, id string }{{e.all, "d-model"}, {e.some, "b-model"}} {
		st, b, _ := e.get(t, "GET", "/v1beta/models/"+c.id+"?key="+c.key, nil, "")
		var m map[string]any
		if st != 200 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("GET /v1beta/models/%s = %d %s", c.id, st, b)
		}
		if m["name"] != "models/"+c.id || m["displayName"] != c.id {
			t.Errorf("GET /v1beta/models/%s = %s", c.id, b)
		}
	}
	// POST on the same path is still generateContent's route, not the list's.
	st, b, _ := e.get(t, "POST", "/v1beta/models", map[string]string{"x-goog-api-key": e.all}, "{}")
	if st != 404 {
		t.Errorf("POST /v1beta/models = %d %s, want 404", st, b)
	}
}
