package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startReplica runs `baimo sim --replica` (the tiny step model, twenty times
// faster than real time) and returns its base URL.
func startReplica(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(baimoBinary(t), "sim", "--replica", "--engine", "tiny", "--speed", "20", "--addr", addr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("replica %s output:\n%s", addr, out.String())
		}
	})
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr + "/v1"
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not start: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicaPoolLive runs a gateway in front of three simulated replica
// servers over real HTTP: the turns of a conversation stream back through
// the pool and stay on one replica (prefix affinity); the pool's figures
// reach GET /admin/routing and /metrics; no load is left counted after.
func TestReplicaPoolLive(t *testing.T) {
	urls := []string{startReplica(t), startReplica(t), startReplica(t)}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`sim: {enabled: false}
billing: {free_models: [pooled]}
pools:
  - name: live
    engine: sim
    policy: prefix
    scrape_interval: 20ms
    models: {pooled: sim-chat}
    replicas: [%s]
`, strings.Join(urls, ", "))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := randomHex(t, 16)
	s := startServer(t, filepath.Join(dir, "data"), admin, "--config", cfgPath)
	var k apiKey
	if code := s.call(t, "POST", "/admin/keys", admin, map[string]any{"name": "pool"}, nil, &k); code != http.StatusCreated {
		t.Fatalf("create key: %d", code)
	}
	time.Sleep(200 * time.Millisecond) // a scrape or two: replicas never scraped count as saturated
	var history []map[string]string
	history = append(history, map[string]string{"role": "system", "content": strings.Repeat("You answer questions about rivers and their cities. ", 8)})
	for turn := range 5 {
		history = append(history, map[string]string{"role": "user", "content": fmt.Sprintf("Tell me about river number %d and the towns along its banks.", turn)})
		body := map[string]any{"model": "pooled", "stream": true, "max_tokens": 12, "messages": history}
		resp, text := postRaw(t, s, k.Key, body)
		if resp != http.StatusOK || !strings.Contains(text, "data: [DONE]") {
			t.Fatalf("turn %d: %d %s", turn, resp, text)
		}
		history = append(history, map[string]string{"role": "assistant", "content": "the quick brown fox jumps over the lazy dog while a hundred models"})
	}
	var routing struct {
		Pools []struct {
			Name     string
			Replicas []struct {
				URL    string
				Routed int64
				Load   struct{ InFlight, Prefill int64 }
			}
		}
	}
	s.call(t, "GET", "/admin/routing", admin, nil, nil, &routing)
	if len(routing.Pools) != 1 || len(routing.Pools[0].Replicas) != 3 {
		t.Fatalf("admin routing pools: %+v", routing.Pools)
	}
	var total, most int64
	for _, r := range routing.Pools[0].Replicas {
		total += r.Routed
		most = max(most, r.Routed)
		if r.Load.InFlight != 0 || r.Load.Prefill != 0 {
			t.Fatalf("load still counted after every answer: %+v", r)
		}
	}
	if total != 5 || most != 5 {
		t.Fatalf("a conversation's five turns were placed %+v; want all on one replica", routing.Pools[0].Replicas)
	}
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"baimo_replica_requests_total", "baimo_replica_in_flight", "baimo_pool_queue_waiting", "baimo_replica_prefix_cache_hit_ratio"} {
		if !strings.Contains(string(m), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	s.stop(t)
}

// postRaw posts a chat request and returns the status and the raw answer.
func postRaw(t *testing.T, s *server, key string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.URL+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(text)
}
