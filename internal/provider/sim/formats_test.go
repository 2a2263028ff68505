package sim

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// TestFormats checks the Anthropic and Gemini endpoints: the usage each
// reports (one token per word plus three per message), stream shapes, forced
// tool calls and failures in each vendor's error shape.
func TestFormats(t *testing.T) {
	opt := DefaultOptions()
	opt.TTFT, opt.TPOT = 0, 0
	srv := httptest.NewServer(New(opt))
	defer srv.Close()
	want := usage.Usage{Input: 7, CachedInput: 2, Output: 3, Source: usage.SourceVendor}
	anth := `{"model":"sim-chat","max_tokens":3,"system":"be brief","messages":[{"role":"user","content":"one two"}],"sim":{"cached_tokens":2}`
	gem := `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"one two"}]}],"generationConfig":{"maxOutputTokens":3},"sim":{"cached_tokens":2}`

	resp, body := post(t, srv.URL+"/v1/messages", anth+`}`)
	if u, err := anthropic.ResponseUsage([]byte(body)); resp.StatusCode != 200 || err != nil || u != want || !strings.Contains(body, `"text":"the quick brown"`) {
		t.Errorf("anthropic = %d %s (usage %+v, %v)", resp.StatusCode, body, u, err)
	}
	_, body = post(t, srv.URL+"/v1/messages", anth+`,"stream":true}`)
	var su anthropic.StreamUsage
	names := eachEvent(t, body, func(ev sse.Event) {
		if err := su.Event(ev.Name, ev.Data); err != nil {
			t.Error(err)
		}
	})
	if u, _ := su.Usage(); u != want || names[0] != "message_start" || names[len(names)-1] != "message_stop" {
		t.Errorf("anthropic stream usage %+v, events %v", u, names)
	}
	_, body = post(t, srv.URL+"/v1/messages", anth+`,"tools":[{"name":"f"},{"name":"g"}],"tool_choice":{"type":"tool","name":"g"}}`)
	if !strings.Contains(body, `"type":"tool_use","id":"toolu_sim1","name":"g","input":{"query":"weather"}`) || !strings.Contains(body, `"stop_reason":"tool_use"`) {
		t.Errorf("anthropic tool = %s", body)
	}

	resp, body = post(t, srv.URL+"/v1beta/models/sim-chat:generateContent", gem+`}`)
	if u, ok, err := gemini.ChunkUsage([]byte(body)); resp.StatusCode != 200 || !ok || err != nil || u != want || !strings.Contains(body, `"finishReason":"STOP"`) {
		t.Errorf("gemini = %d %s (usage %+v, %v)", resp.StatusCode, body, u, err)
	}
	_, body = post(t, srv.URL+"/v1beta/models/sim-chat:streamGenerateContent?alt=sse", gem+`}`)
	var gu gemini.StreamUsage
	n := len(eachEvent(t, body, func(ev sse.Event) {
		if err := gu.Chunk(ev.Data); err != nil {
			t.Error(err)
		}
	}))
	if u, _ := gu.Usage(); u != want || n != 3 {
		t.Errorf("gemini stream usage %+v in %d chunks, want 3", u, n)
	}
	_, body = post(t, srv.URL+"/v1beta/models/sim-chat:generateContent", gem+`,"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}`)
	if !strings.Contains(body, `{"functionCall":{"name":"f","args":{"query":"weather"}}}`) {
		t.Errorf("gemini tool = %s", body)
	}

	for _, tt := range []struct{ path, body, want string }{
		{"/v1/messages", `{"model":"sim-chat","max_tokens":3,"messages":[],"sim":{"status":429}}`, `"type":"rate_limit_error"`},
		{"/v1/messages", `{"model":"nope","max_tokens":3,"messages":[]}`, `"type":"not_found_error"`},
		{"/v1beta/models/sim-chat:generateContent", `{"contents":[],"sim":{"status":429}}`, `"status":"RESOURCE_EXHAUSTED"`},
		{"/v1beta/models/nope:generateContent", `{"contents":[]}`, `"status":"NOT_FOUND"`},
		{"/v1beta/models/sim-chat:streamGenerateContent", `{"contents":[]}`, `alt=sse`},
	} {
		resp, body := post(t, srv.URL+tt.path, tt.body)
		if resp.StatusCode < 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s = %d %s, want an error with %s", tt.path, tt.body, resp.StatusCode, body, tt.want)
		}
	}
}

// eachEvent calls fn for each event of an SSE body and returns the event
// names (or "data" for unnamed events).
func eachEvent(t *testing.T, body string, fn func(sse.Event)) []string {
	t.Helper()
	var names []string
	rd := sse.NewReader(bytes.NewReader([]byte(body)), sse.DefaultMaxLine)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		name := string(ev.Name)
		if name == "" {
			name = "data"
		}
		names = append(names, name)
		fn(ev)
	}
}
