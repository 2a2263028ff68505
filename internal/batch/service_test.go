package batch_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
)

// TestBatchEndToEnd: a batch of good lines and lines the upstream refuses
// runs through the request path; each line is billed once, at the batch
// price; the results are in OpenAI's files; the reservation is gone.
func TestBatchEndToEnd(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale})
	const n = 40
	file := e.upload(chatLines(n, func(i int) string {
		if i%10 == 3 {
			return `,"sim":{"status":400,"message":"bad line"}`
		}
		return ""
	}))
	status, v := e.create(file, nil)
	if status != 200 || v["status"] != "in_progress" {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	held := e.balance().Pending
	if held <= 0 {
		t.Fatalf("nothing reserved at create: %+v", e.balance())
	}
	v = e.wait(id)
	if v["status"] != "completed" {
		t.Fatalf("batch ended %v", v)
	}
	counts := v["request_counts"].(map[string]any)
	if counts["total"] != float64(n) || counts["completed"] != float64(n-4) || counts["failed"] != float64(4) {
		t.Fatalf("request_counts = %v", counts)
	}
	out := strings.Split(strings.TrimSpace(e.content(v["output_file_id"].(string))), "\n")
	errs := strings.Split(strings.TrimSpace(e.content(v["error_file_id"].(string))), "\n")
	if len(out) != n-4 || len(errs) != 4 {
		t.Fatalf("output %d lines, errors %d", len(out), len(errs))
	}
	var line struct {
		ID       string `json:"id"`
		CustomID string `json:"custom_id"`
		Response struct {
			StatusCode int             `json:"status_code"`
			RequestID  string          `json:"request_id"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(out[0]), &line); err != nil || line.CustomID != "c0" || line.Response.StatusCode != 200 ||
		line.Response.RequestID != id+":c0" || !strings.Contains(string(line.Response.Body), `"choices"`) {
		t.Fatalf("first output line %s (%v)", out[0], err)
	}
	if err := json.Unmarshal([]byte(errs[0]), &line); err != nil || line.CustomID != "c3" || line.Response.StatusCode != 400 ||
		!strings.Contains(string(line.Response.Body), "bad line") {
		t.Fatalf("first error line %s (%v)", errs[0], err)
	}

	// Money: one record per line, each at the batch rule, the ledger
	// charged their sum, nothing left held.
	recs := e.records(id)
	if len(recs) != n {
		t.Fatalf("%d lines have records, want %d", len(recs), n)
	}
	cat := e.bill.Rater().Catalog
	var total int64
	for rid, rs := range recs {
		if len(rs) != 1 {
			t.Fatalf("%s has %d records", rid, len(rs))
		}
		r := rs[0]
		if e.up.runs(rid) != 1 {
			t.Errorf("%s ran upstream %d times", rid, e.up.runs(rid))
		}
		if !r.IsBatch() {
			t.Errorf("%s: endpoint %q", rid, r.Endpoint)
		}
		full, err := cat.Rate(r.Usage, price.RateContext{Model: "sim-chat", At: r.Start, Currency: money.CNY}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == 200 && (r.CostNanos == 0 || r.CostNanos*2 > full.Total.Nanos+1 || r.CostNanos*2 < full.Total.Nanos-1) {
			t.Errorf("%s cost %d, want half of %d (sim-chat's batch rule)", rid, r.CostNanos, full.Total.Nanos)
		}
		if r.Status != 200 && r.CostNanos != 0 {
			t.Errorf("%s failed and cost %d", rid, r.CostNanos)
		}
		total += r.CostNanos
	}
	b := e.balance()
	if b.Pending != 0 || b.Posted != money.Scale-total {
		t.Fatalf("balance %+v; want %d charged and nothing held", b, total)
	}
	if got := v["baimo"].(map[string]any)["cost"]; got != money.FormatNanos(total) {
		t.Errorf("batch reports cost %v, the ledger charged %s", got, money.FormatNanos(total))
	}
	e.stop()
	e.auditClean()
}

// TestBatchValidation: every bad line is named with its field; a file of
// bad lines is a failed batch; nothing is reserved or run.
func TestBatchValidation(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale})
	good := `{"custom_id":"ok","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","messages":[{"role":"user","content":"hi"}]}}`
	bad := []string{
		`not json`,
		`{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":{"model":"sim-chat","messages":[]}}`,
		`{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"sim-chat","messages":[]}}`,
		`{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"nope","messages":[{"role":"user","content":"x"}]}}`,
		`{"custom_id":"ok","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","messages":[{"role":"user","content":"x"}]}}`,
		`{"custom_id":"d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}}`,
		`{"custom_id":"e","custom_id":"f","method":"POST","url":"/v1/chat/completions","body":{}}`,
		`{"custom_id":"g","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"x"}]}}`,
		`{"method":"POST","url":"/v1/chat/completions","body":{}}`,
	}
	file := e.upload(good + "\n" + strings.Join(bad, "\n") + "\n")
	status, v := e.create(file, nil)
	if status != 200 || v["status"] != "failed" {
		t.Fatalf("create: %d %v", status, v)
	}
	errs := v["errors"].(map[string]any)["data"].([]any)
	want := []string{"2:", "3:method", "4:url", "5:body.model", "6:custom_id", "7:body.max_tokens", "8:custom_id", "9:body.stream", "10:custom_id"}
	if len(errs) != len(want) {
		t.Fatalf("errors %v", errs)
	}
	for i, x := range errs {
		e := x.(map[string]any)
		param, _ := e["param"].(string)
		if got := fmt.Sprintf("%v:%s", e["line"], param); got != want[i] || e["message"] == "" {
			t.Errorf("error %d = %v, want line:param %s", i, e, want[i])
		}
	}
	if b := e.balance(); b.Pending != 0 || b.Posted != money.Scale {
		t.Errorf("balance %+v after a failed batch", b)
	}
}

// TestBatchRefusedWhenNotCovered: a tenant that cannot pay for the batch's
// worst case is refused at create, and nothing is kept.
func TestBatchRefusedWhenNotCovered(t *testing.T) {
	e := newEnv(t, envOpt{balance: 1000})
	file := e.upload(chatLines(5, nil))
	status, v := e.create(file, nil)
	if status != 429 || !strings.Contains(fmt.Sprint(v), "insufficient_quota") || !strings.Contains(fmt.Sprint(v), "batch") {
		t.Fatalf("create with no money: %d %v", status, v)
	}
	if _, l := e.do("GET", "/v1/batches", "", nil); len(l["data"].([]any)) != 0 {
		t.Errorf("a refused batch was kept: %v", l)
	}
	if b := e.balance(); b.Pending != 0 {
		t.Errorf("balance %+v after a refused batch", b)
	}
}

// TestMessageBatches: Anthropic's Message Batches, requests inline, results
// in Anthropic's line format, each request billed once.
func TestMessageBatches(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale})
	body := `{"requests": [
	  {"custom_id": "a", "params": {"model": "sim-chat", "max_tokens": 30, "messages": [{"role": "user", "content": "hi"}]}},
	  {"custom_id": "b", "params": {"model": "sim-chat", "max_tokens": 30, "messages": [{"role": "user", "content": "hello"}], "sim": {"status": 400}}},
	  {"custom_id": "c", "params": {"model": "sim-chat", "max_tokens": 30, "messages": [{"role": "user", "content": "hey"}]}}
	]}`
	status, v := e.do("POST", "/v1/messages/batches", "application/json", strings.NewReader(body))
	if status != 200 || v["type"] != "message_batch" || v["processing_status"] != "in_progress" {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	if !strings.HasPrefix(id, "msgbatch_") {
		t.Errorf("id %q", id)
	}
	for range 3000 {
		_, v = e.do("GET", "/v1/messages/batches/"+id, "", nil)
		if v["processing_status"] == "ended" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc := v["request_counts"].(map[string]any)
	if v["processing_status"] != "ended" || rc["succeeded"] != float64(2) || rc["errored"] != float64(1) {
		t.Fatalf("batch %v", v)
	}
	url, _ := v["results_url"].(string)
	if !strings.HasSuffix(url, "/v1/messages/batches/"+id+"/results") {
		t.Fatalf("results_url %q", url)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("x-api-key", e.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if resp.StatusCode != 200 || len(lines) != 3 {
		t.Fatalf("results %d: %s", resp.StatusCode, b)
	}
	var r struct {
		CustomID string `json:"custom_id"`
		Result   struct {
			Type    string          `json:"type"`
			Message json.RawMessage `json:"message"`
			Error   json.RawMessage `json:"error"`
		} `json:"result"`
	}
	for i, want := range []string{"a:succeeded", "b:errored", "c:succeeded"} {
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil || r.CustomID+":"+r.Result.Type != want {
			t.Fatalf("result %d = %s (%v), want %s", i, lines[i], err, want)
		}
		if r.Result.Type == "succeeded" && !strings.Contains(string(r.Result.Message), `"type":"message"`) {
			t.Errorf("message %s is not in Anthropic's shape", r.Result.Message)
		}
		if r.Result.Type == "errored" && !strings.Contains(string(r.Result.Error), `"type":"error"`) {
			t.Errorf("error %s is not in Anthropic's shape", r.Result.Error)
		}
	}
	// Bad bodies are refused in Anthropic's shape.
	for _, bad := range []string{`[]`, `{"requests": 3}`, `{"other": []}`, `{"requests": [{"custom_id": "x"}]} trailing`} {
		status, v := e.do("POST", "/v1/messages/batches", "application/json", strings.NewReader(bad))
		if status != 400 || v["type"] != "error" {
			t.Errorf("body %s: %d %v", bad, status, v)
		}
	}
	e.stop()
	checkBilledOnce(t, e, id, money.Scale)
	e.auditClean()
}
