package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestChannelsReplicated adds a channel through one node's admin API and
// sends a request for its model to another node sharing the PostgreSQL
// store: the other node serves it within about a second. Deleting it on
// the second node takes it away from the first.
func TestChannelsReplicated(t *testing.T) {
	if os.Getenv("BAIMO_TEST_POSTGRES") == "" {
		t.Skip("BAIMO_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the channel replication test")
	}
	dsn := postgresSchemaDSN(t)
	simURL := startSim(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("sim: {enabled: false}\nchannels: []\nbilling: {ledger: false}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminKey := "adm-" + randomHex(t, 16)
	a := newGatewayNode(t, "node A", adminKey, "--postgres", dsn, "--data", t.TempDir(), "--config", cfgPath)
	b := newGatewayNode(t, "node B", adminKey, "--postgres", dsn, "--data", t.TempDir(), "--config", cfgPath)
	a.start(t)
	b.start(t)
	client := a.api().createKey(t, "channels", nil)
	chat := func(n *gatewayNode) int {
		var out map[string]any
		code, err := n.api().do(http.MethodPost, "/v1/chat/completions", client.Key,
			map[string]any{"model": "added", "messages": []map[string]string{{"role": "user", "content": "hi"}}}, nil, &out)
		if err != nil {
			t.Fatalf("chat through %s: %v", n.Name, err)
		}
		return code
	}
	if code := chat(b); code != http.StatusNotFound {
		t.Fatalf("before the channel, node B answered %d, want 404", code)
	}
	spec := map[string]any{"name": "added", "kind": "openai", "base_url": simURL + "/v1", "models": map[string]string{"added": "sim-chat"}}
	var created map[string]any
	if code, err := a.api().do(http.MethodPost, "/admin/channels", adminKey, spec, nil, &created); err != nil || code != http.StatusCreated {
		t.Fatalf("create on node A = %d, %v, %v", code, err, created)
	}
	wait := func(n *gatewayNode, want int) time.Duration {
		start := time.Now()
		for {
			if code := chat(n); code == want {
				return time.Since(start)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s never answered %d for the channel's model", n.Name, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if code := chat(a); code != http.StatusOK {
		t.Errorf("node A, where the channel was added, answered %d", code)
	}
	took := wait(b, http.StatusOK)
	t.Logf("node B served the new channel %v after it was added on node A", took)
	if code, err := b.api().do(http.MethodDelete, "/admin/channels/added", adminKey, nil, nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("delete on node B = %d, %v", code, err)
	}
	took = wait(a, http.StatusNotFound)
	t.Logf("node A stopped serving it %v after it was deleted on node B", took)
}
