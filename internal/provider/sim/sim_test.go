package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestSim(t *testing.T) {
	opt := DefaultOptions()
	opt.TTFT, opt.TPOT = 0, 0
	srv := httptest.NewServer(New(opt))
	defer srv.Close()

	resp, body := post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"one two three"}],"max_tokens":4}`)
	var out struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if out.Usage.PromptTokens != 6 || out.Usage.CompletionTokens != 4 || len(strings.Fields(out.Choices[0].Message.Content)) != 4 {
		t.Errorf("chat = %s", body)
	}

	_, body = post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}],"sim":{"output_tokens":3,"cached_tokens":2,"reasoning_tokens":1}}`)
	if n := strings.Count(body, `"content":"`); n != 4 || !strings.Contains(body, `"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}`) ||
		!strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("stream = %s", body)
	}
	_, body = post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"x"}],"sim":{"output_tokens":2,"no_done":true}}`)
	if strings.Contains(body, "[DONE]") || strings.Contains(body, "usage") {
		t.Errorf("no_done stream = %s", body)
	}
	resp, body = post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","messages":[],"sim":{"status":429,"retry_after":3}}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(body, "rate_limit_exceeded") {
		t.Errorf("429 = %d %s", resp.StatusCode, body)
	}
	resp, _ = post(t, srv.URL+"/v1/chat/completions", `{"model":"gpt-4","messages":[]}`)
	if resp.StatusCode != 404 {
		t.Errorf("unknown model = %d", resp.StatusCode)
	}
	resp, body = post(t, srv.URL+"/v1/embeddings", `{"model":"sim-embed","input":["a b","c"]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"usage":{"prompt_tokens":3,"total_tokens":3}`) || !json.Valid([]byte(body)) {
		t.Errorf("embeddings = %d %s", resp.StatusCode, body)
	}
	_, body = post(t, srv.URL+"/v1/completions", `{"model":"sim-chat","prompt":"a b c","max_tokens":2}`)
	if !strings.Contains(body, `"text":"the quick"`) || !strings.Contains(body, `"prompt_tokens":3`) {
		t.Errorf("completions = %s", body)
	}
}

func TestSimCutAndPace(t *testing.T) {
	opt := DefaultOptions()
	opt.TTFT, opt.TPOT = 0, 0
	srv := httptest.NewServer(New(opt))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"x"}],"sim":{"cut_after":2,"tpot_ms":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || strings.Count(string(body), `"content":"`) != 3 {
		t.Errorf("cut stream: err=%v body=%s; want an error after the role chunk and 2 words", err, body)
	}
	start := time.Now()
	_, _ = post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"sim":{"ttft_ms":50,"output_tokens":1}}`)
	if time.Since(start) < 50*time.Millisecond {
		t.Error("ttft_ms not honoured")
	}
}
