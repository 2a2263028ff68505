package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/price"
)

// doKey is do as the admin, with an Idempotency-Key when key is not empty.
func (e *env) doKey(t *testing.T, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	var hdr http.Header
	if key != "" {
		hdr = http.Header{"Idempotency-Key": {key}}
	}
	return e.doHeader(t, method, path, "adm", hdr, body)
}

func TestPriceSetNowIdempotent(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(t)
	set := `{"model":"house-7b","vendor":"local","effective_from":"now","currency":"CNY","unit":"per_1m","source":"cost sheet",` +
		`"prices":{"input":"0.5","output":"1"},"context_window":32768,"max_output":4096}`
	st, m := e.doKey(t, "POST", "/admin/prices", "order-1", set)
	if st != 201 || m["replayed"] != false || m["model"] != "house-7b" || !strings.HasPrefix(m["effective_from"].(string), "2026-11-28T12:00:00") {
		t.Fatalf("set now = %d %v", st, m)
	}
	// The same key and body: the first result, nothing added.
	e.clock.Advance(1)
	st, m2 := e.doKey(t, "POST", "/admin/prices", "order-1", set)
	if st != 200 || m2["replayed"] != true || m2["version"] != m["version"] {
		t.Errorf("replay = %d %v", st, m2)
	}
	// The same key, another body: refused.
	if st, m := e.doKey(t, "POST", "/admin/prices", "order-1", strings.Replace(set, `"0.5"`, `"0.6"`, 1)); st != 409 || errCode(m) != "idempotency_conflict" {
		t.Errorf("conflict = %d %v", st, m)
	}
	// Concurrent calls with one key apply once.
	var wg sync.WaitGroup
	codes := make([]int, 8)
	body := strings.Replace(set, "house-7b", "house-8b", 1)
	for i := range codes {
		wg.Add(1)
		go func(i int) { defer wg.Done(); codes[i], _ = e.doKey(t, "POST", "/admin/prices", "order-2", body) }(i)
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		if c == 201 {
			created++
		} else if c != 200 {
			t.Errorf("concurrent call answered %d", c)
		}
	}
	st, list := e.do(t, "GET", "/admin/prices", "adm", "")
	if created != 1 || st != 200 || len(list["data"].([]any)) != 2 {
		t.Errorf("%d created, %d stored, want 1 and 2", created, len(list["data"].([]any)))
	}
	// The operator's version shows as such next to the catalog's.
	st, v := e.do(t, "GET", "/v1/prices?vendor=local", "", "")
	if st != 200 || !strings.Contains(mustJSON(v), `"origin":"operator"`) || !strings.Contains(mustJSON(v), `"max_output":4096`) {
		t.Errorf("/v1/prices = %d %v", st, v)
	}
	_, q := e.do(t, "POST", "/v1/quote", key, `{"model":"house-7b","input_tokens":1000000,"max_tokens":1000000,"at":"2026-11-28T13:00:00Z"}`)
	if q["max_cost"] != "1.5" || q["price_origin"] != "operator" {
		t.Errorf("quote = %v", q)
	}
	if st, m := e.doKey(t, "POST", "/admin/prices", "", strings.Replace(set, `"now"`, `"2026-11-01T00:00:00Z"`, 1)); st != 400 || !strings.Contains(mustJSON(m), "past") {
		t.Errorf("past = %d %v", st, m)
	}
	if st, m := e.doKey(t, "POST", "/admin/prices", strings.Repeat("k", 300), set); st != 400 || !strings.Contains(mustJSON(m), "Idempotency-Key") {
		t.Errorf("long key = %d %v", st, m)
	}
}

func TestPriceImportAndRetire(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(t)
	imp := `{"versions":[` +
		`{"model":"a-1","vendor":"local","currency":"CNY","unit":"per_1m","source":"s","prices":{"input":"1","output":"2"}},` +
		`{"model":"a-2","vendor":"local","effective_from":"2026-12-01T00:00:00Z","currency":"USD","unit":"per_1m","source":"s","prices":{"input":"1"}}]}`
	st, m := e.doKey(t, "POST", "/admin/prices/import", "imp-1", imp)
	if st != 201 || len(m["versions"].([]any)) != 2 {
		t.Fatalf("import = %d %v", st, m)
	}
	// One bad version refuses the whole import.
	bad := strings.Replace(strings.Replace(imp, "a-1", "b-1", 1), `"2026-12-01T00:00:00Z"`, `"2026-01-01T00:00:00Z"`, 1)
	if st, m := e.doKey(t, "POST", "/admin/prices/import", "", strings.Replace(bad, "a-2", "b-2", 1)); st != 400 {
		t.Errorf("bad import = %d %v", st, m)
	}
	if st, _ := e.do(t, "POST", "/v1/quote", key, `{"model":"b-1","input_tokens":1}`); st != 404 {
		t.Errorf("a refused import added b-1: %d", st)
	}
	st, m = e.doKey(t, "POST", "/admin/prices/retire", "ret-1", `{"model":"sim-chat","effective_from":"now"}`)
	if st != 201 || !strings.Contains(mustJSON(m), `"retired":true`) {
		t.Fatalf("retire = %d %v", st, m)
	}
	e.clock.Advance(1)
	if st, m := e.do(t, "POST", "/v1/quote", key, `{"model":"sim-chat","input_tokens":1}`); st != 404 || !strings.Contains(mustJSON(m), "retired") {
		t.Errorf("quote after retirement = %d %v", st, m)
	}
	if st, m := e.doKey(t, "POST", "/admin/prices/retire", "", `{"model":"sim-chat"}`); st != 400 {
		t.Errorf("retire twice = %d %v", st, m)
	}
	if st, m := e.doKey(t, "POST", "/admin/prices/retire", "", `{"model":"no-such"}`); st != 404 {
		t.Errorf("retire unknown = %d %v", st, m)
	}
}

// TestPriceLeadOnSharedStore: with several nodes on one database a version
// must start at least the propagation bound ahead, so that every node has
// it before it starts; "now" means now plus that bound. A single node
// (Lead 0) takes "now" as it is (TestPriceSetNowIdempotent).
func TestPriceLeadOnSharedStore(t *testing.T) {
	e := newEnv(t)
	e.api.Prices.Lead = price.PropagationBound
	set := func(model, from string) string {
		return `{"model":"` + model + `","vendor":"local","effective_from":"` + from + `","currency":"CNY","unit":"per_1m","source":"s",` +
			`"prices":{"input":"0.5","output":"1"}}`
	}
	now := e.clock.Now()
	soon := now.Add(price.PropagationBound - time.Millisecond).Format(time.RFC3339Nano)
	if st, m := e.doKey(t, "POST", "/admin/prices", "", set("lead-1", soon)); st != 400 || errParam(m) != "effective_from" ||
		!strings.Contains(mustJSON(m), "at least 5s from now") {
		t.Errorf("a version starting within the bound = %d %v, want 400 naming the bound", st, m)
	}
	if st, m := e.doKey(t, "POST", "/admin/prices", "", set("lead-1", now.Add(-time.Second).Format(time.RFC3339))); st != 400 ||
		!strings.Contains(mustJSON(m), "past") {
		t.Errorf("a version in the past = %d %v", st, m)
	}
	at := now.Add(price.PropagationBound).Format(time.RFC3339Nano)
	if st, m := e.doKey(t, "POST", "/admin/prices", "", set("lead-1", at)); st != 201 {
		t.Errorf("a version starting at the bound = %d %v", st, m)
	}
	st, m := e.doKey(t, "POST", "/admin/prices", "", set("lead-2", "now"))
	if st != 201 {
		t.Fatalf("now = %d %v", st, m)
	}
	if got, _ := time.Parse(time.RFC3339Nano, m["effective_from"].(string)); !got.Equal(now.Add(price.PropagationBound)) {
		t.Errorf("now on a shared store starts at %v, want now + %s = %v", got, price.PropagationBound, now.Add(price.PropagationBound))
	}
	e.clock.Advance(time.Second)
	st, m = e.doKey(t, "POST", "/admin/prices/retire", "", `{"model":"lead-2","effective_from":"now"}`)
	from, _ := m["effective_from"].(string)
	if got, _ := time.Parse(time.RFC3339Nano, from); st != 201 || !got.Equal(e.clock.Now().Add(price.PropagationBound)) {
		t.Errorf("retire now = %d %v, want it to start at now + the bound", st, m)
	}
}
