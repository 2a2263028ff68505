package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

const lineAnswer = `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`

// recorded returns the records written for id so far.
func (h *harness) recorded(id string) []usage.Record {
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	var out []usage.Record
	for _, r := range h.recs.recs {
		if r.RequestID == id {
			out = append(out, r)
		}
	}
	return out
}

// TestServeLine: a batch's line goes through the request path in-process;
// its result is kept before its record is settled; a failure worth another
// run is not a result; a refusal about the request is one.
func TestServeLine(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := int(status.Load()); s != 200 {
			w.WriteHeader(s)
			_, _ = w.Write([]byte(`{"error":{"message":"overloaded"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(lineAnswer))
	}), nil)
	key := &keys.Key{ID: "key_t", TenantID: "acme", Models: []string{"gpt-test"}}
	serve := func(id, body string, persist func(*gateway.LineResult) error) gateway.LineResult {
		return h.gw.ServeLine(context.Background(), gateway.LineRequest{ID: id, Key: key, Format: ir.FormatOpenAI,
			Endpoint: gateway.Chat, Body: []byte(body), Persist: persist})
	}

	var kept []string
	keep := func(id string) func(*gateway.LineResult) error {
		return func(r *gateway.LineResult) error {
			if n := len(h.recorded(id)); n != 0 {
				t.Errorf("%s: %d records written before its result was kept", id, n)
			}
			kept = append(kept, id)
			return nil
		}
	}
	res := serve("batch_1:a", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"max_tokens":10}`, keep("batch_1:a"))
	if res.Status != 200 || string(res.Body) != lineAnswer || !res.Kept || !res.Settled || res.Retry != 0 {
		t.Fatalf("line = %d %q kept %v settled %v retry %v", res.Status, res.Body, res.Kept, res.Settled, res.Retry)
	}
	recs := h.recorded("batch_1:a")
	if len(recs) != 1 || recs[0].Endpoint != "batch:chat" || !recs[0].IsBatch() || recs[0].TenantID != "acme" ||
		recs[0].Usage.Input != 12 || recs[0].Channel != "up" {
		t.Fatalf("records = %+v", recs)
	}

	// The upstream cannot serve now: run again later; nothing kept or recorded.
	status.Store(503)
	res = serve("batch_1:b", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, keep("batch_1:b"))
	if res.Retry <= 0 || res.Kept || len(h.recorded("batch_1:b")) != 0 {
		t.Fatalf("line on an overloaded upstream = %+v; want a retry, nothing kept", res)
	}
	status.Store(200)

	// Refusals about the request are results, in the line's format.
	for id, body := range map[string]string{
		"batch_1:c": `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`,
		"batch_1:d": `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		"batch_1:e": `{"model":"gpt-test","messages":"x"}`,
	} {
		res := serve(id, body, keep(id))
		if res.Status < 400 || res.Status >= 500 || !strings.Contains(string(res.Body), `"error"`) || !res.Kept || res.Retry != 0 {
			t.Errorf("%s: line = %d %s kept %v retry %v; want a kept client error", id, res.Status, res.Body, res.Kept, res.Retry)
		}
		if recs := h.recorded(id); len(recs) != 1 || recs[0].Status != res.Status {
			t.Errorf("%s: records %+v", id, recs)
		}
	}

	// A result that cannot be kept is not settled: the line runs again.
	res = serve("batch_1:f", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`,
		func(*gateway.LineResult) error { return errors.New("store down") })
	if res.Kept || res.Retry <= 0 || res.Err == nil || len(h.recorded("batch_1:f")) != 0 {
		t.Fatalf("line whose result was not kept = %+v", res)
	}
	if len(kept) != 4 {
		t.Errorf("kept %v", kept)
	}

	// A stopping gateway serves no more lines.
	_ = h.gw.Drain(context.Background())
	res = serve("batch_1:g", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, keep("batch_1:g"))
	if res.Retry <= 0 || res.Retry > time.Minute || res.Kept {
		t.Fatalf("line on a draining gateway = %+v", res)
	}
}
