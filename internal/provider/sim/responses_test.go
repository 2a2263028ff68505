package sim

import (
	"net/http/httptest"
	"strings"
	"testing"

	"baimo/internal/provider/responses"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// TestResponses checks the Responses endpoint: usage (one token per word
// plus three per input item), the stream's events, a forced function call,
// an incomplete answer at max_output_tokens, and refusals of what a
// stateless upstream cannot serve.
func TestResponses(t *testing.T) {
	opt := DefaultOptions()
	opt.TTFT, opt.TPOT = 0, 0
	srv := httptest.NewServer(New(opt))
	defer srv.Close()
	req := `{"model":"sim-chat","instructions":"be brief","input":[{"role":"user","content":"one two"}],"sim":{"cached_tokens":2,"output_tokens":3}`
	want := usage.Usage{Input: 7, CachedInput: 2, Output: 3, Source: usage.SourceVendor}

	resp, body := post(t, srv.URL+"/v1/responses", req+`}`)
	if u, ok := responses.Vendor.BodyUsage([]byte(body)); resp.StatusCode != 200 || !ok || u != want ||
		!strings.Contains(body, `"text":"the quick brown"`) || !strings.Contains(body, `"status":"completed"`) {
		t.Errorf("responses = %d %s (usage %+v)", resp.StatusCode, body, u)
	}
	_, body = post(t, srv.URL+"/v1/responses", req+`,"stream":true}`)
	m := responses.Vendor.NewMeter(false)
	names := eachEvent(t, body, func(ev sse.Event) { m.Event(ev) })
	if u, _ := m.Usage(); u != want || names[0] != "response.created" || names[len(names)-1] != "response.completed" ||
		string(m.Text()) != "the quick brown" {
		t.Errorf("responses stream usage %+v, text %q, events %v", u, m.Text(), names)
	}
	_, body = post(t, srv.URL+"/v1/responses", req+`,"tools":[{"type":"function","name":"f"},{"type":"function","name":"g"}],"tool_choice":{"type":"function","name":"g"}}`)
	if !strings.Contains(body, `"type":"function_call"`) || !strings.Contains(body, `"name":"g","arguments":"{\"query\":\"weather\"}"`) {
		t.Errorf("responses tool = %s", body)
	}
	_, body = post(t, srv.URL+"/v1/responses", req+`,"max_output_tokens":2}`)
	if !strings.Contains(body, `"status":"incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"}`) {
		t.Errorf("responses at max_output_tokens = %s", body)
	}
	for _, extra := range []string{`,"previous_response_id":"resp_1"}`, `,"background":true}`} {
		if resp, body := post(t, srv.URL+"/v1/responses", req+extra); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", extra, resp.StatusCode, body)
		}
	}
	if resp, body := post(t, srv.URL+"/v1/responses", req+`,"sim":{"status":503}}`); resp.StatusCode != 503 || !strings.Contains(body, `"error"`) {
		t.Errorf("sim status: %d %s", resp.StatusCode, body)
	}
}
