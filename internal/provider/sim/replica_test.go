package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/engine"
)

func startReplica(t *testing.T, speed float64) (*Replica, *httptest.Server) {
	t.Helper()
	r, err := NewReplica(ReplicaOptions{Engine: engine.Tiny, Speed: speed, OutputTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return r, srv
}

// words builds a prompt of n distinct words from a family.
func promptWords(family, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "f%dw%d ", family, i)
	}
	return b.String()
}

type streamResult struct {
	content      string
	chunks       int
	prompt, comp int
	cached       int
	done         bool
}

func streamChat(t *testing.T, url, body string) streamResult {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var res streamResult
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			res.done = true
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				Prompt  int `json:"prompt_tokens"`
				Comp    int `json:"completion_tokens"`
				Details *struct {
					Cached int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("bad chunk %q: %v", line, err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				res.chunks++
				res.content += ch.Delta.Content
			}
		}
		if c.Usage != nil {
			res.prompt, res.comp = c.Usage.Prompt, c.Usage.Comp
			if c.Usage.Details != nil {
				res.cached = c.Usage.Details.Cached
			}
		}
	}
	return res
}

func chatBody(prompt string, maxTokens int) string {
	b, _ := json.Marshal(map[string]any{"model": "sim-chat", "stream": true, "stream_options": map[string]any{"include_usage": true},
		"max_tokens": maxTokens, "messages": []map[string]any{{"role": "user", "content": prompt}}})
	return string(b)
}

func TestReplicaStreamsAndCachesPrefixes(t *testing.T) {
	r, srv := startReplica(t, 1000)
	long := promptWords(1, 200)
	res := streamChat(t, srv.URL, chatBody(long, 12))
	if !res.done || res.chunks != 12 || res.comp != 12 || res.prompt != 203 || res.cached != 0 {
		t.Fatalf("first answer %+v, want 12 chunks, 203 prompt tokens, none cached", res)
	}
	// The same prompt again: its full blocks (192 tokens of 203) come from the cache.
	res = streamChat(t, srv.URL, chatBody(long, 4))
	if res.cached != 192 {
		t.Fatalf("second answer cached %d tokens, want 192", res.cached)
	}
	// A different prompt shares nothing.
	if res = streamChat(t, srv.URL, chatBody(promptWords(2, 200), 4)); res.cached != 0 {
		t.Fatalf("unrelated prompt cached %d tokens", res.cached)
	}
	st := r.Stats()
	if st.PrefixHits != 192 || st.Finished != 3 || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Non-streaming answers carry the same usage.
	resp, body := post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","max_tokens":3,"messages":[{"role":"user","content":"a b c"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"completion_tokens":3`) || !strings.Contains(body, `"prompt_tokens":6`) {
		t.Fatalf("non-stream: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(t, srv.URL+"/v1/chat/completions", `{"model":"nope","messages":[]}`); resp.StatusCode != 404 {
		t.Fatalf("unknown model: %d", resp.StatusCode)
	}
	if resp, _ := post(t, srv.URL+"/v1/chat/completions", `{"model":"sim-chat","max_tokens":100000,"messages":[]}`); resp.StatusCode != 400 {
		t.Fatalf("request longer than the KV cache: %d", resp.StatusCode)
	}
}

func metricValue(t *testing.T, url, name string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+"{") {
			f := strings.Fields(sc.Text())
			return f[len(f)-1]
		}
	}
	t.Fatalf("metric %s missing", name)
	return ""
}

func TestReplicaMetricsAndCancel(t *testing.T) {
	_, srv := startReplica(t, 1) // real time: 2 ms a step
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("hello there", 4000)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the first token arrived
		t.Fatal(err)
	}
	if v := metricValue(t, srv.URL, "vllm:num_requests_running"); v != "1" {
		t.Fatalf("running %s while a request streams", v)
	}
	if v := metricValue(t, srv.URL, "vllm:kv_cache_usage_perc"); v == "0" {
		t.Fatal("KV usage 0 while a request holds blocks")
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, srv.URL, "vllm:num_requests_running") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled request still runs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v := metricValue(t, srv.URL, "vllm:kv_cache_usage_perc"); v != "0" {
		t.Fatalf("KV usage %s after the only request was cancelled", v)
	}
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:gpu_cache_usage_perc"} {
		metricValue(t, srv.URL, name)
	}
	if v := metricValue(t, srv.URL, "vllm:cache_config_info"); v != "1" {
		t.Fatalf("cache_config_info %s", v)
	}
}

func TestReplicaConcurrentRequests(t *testing.T) {
	r, srv := startReplica(t, 200)
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := streamChat(t, srv.URL, chatBody(promptWords(i%5, 50+i), 5+i))
			if res.chunks != 5+i || !res.done {
				errs <- fmt.Sprintf("request %d: %d chunks, done %v", i, res.chunks, res.done)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := r.Stats(); st.Finished != 40 || st.UsedBlocks != 0 {
		t.Fatalf("after all: %+v", st)
	}
}
