package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// replicationWait bounds the wait for a routing change made on one node to
// show on another. The nodes poll the shared log every second; the bound is
// wide so a loaded machine does not fail the test, and the time measured is
// logged.
const replicationWait = 15 * time.Second

// routingKey is one key of GET /admin/routing.
type routingKey struct {
	ID         string
	Parked     bool
	ParkReason string
}

// routingKeyState reads the state of channel/key from a node's GET
// /admin/routing.
func routingKeyState(s *server, channel, key string) (routingKey, error) {
	var snap struct {
		Channels []struct {
			ID   string
			Keys []routingKey
		}
	}
	code, err := s.do(http.MethodGet, "/admin/routing", s.AdminKey, nil, nil, &snap)
	if err != nil {
		return routingKey{}, err
	}
	if code != http.StatusOK {
		return routingKey{}, fmt.Errorf("GET /admin/routing: status %d", code)
	}
	for _, c := range snap.Channels {
		if c.ID != channel {
			continue
		}
		for _, k := range c.Keys {
			if k.ID == key {
				return k, nil
			}
		}
	}
	return routingKey{}, fmt.Errorf("GET /admin/routing: no key %s/%s", channel, key)
}

// waitRouting polls a node's routing state until ok accepts the key's state,
// for at most replicationWait, and returns how long it took.
func waitRouting(t *testing.T, n *gatewayNode, channel, key, what string, ok func(routingKey) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		k, err := routingKeyState(n.api(), channel, key)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if ok(k) {
			return time.Since(start)
		}
		if time.Since(start) > replicationWait {
			t.Fatalf("%s: %s/%s not %s within %s: %+v", n.Name, channel, key, what, replicationWait, k)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRoutingReplicated runs two gateway nodes on one PostgreSQL schema in
// front of a vendor that refuses their key with 401. A request to node A
// parks the key there; node B must show it parked (with A's reason) within a
// few seconds and stop sending it to the vendor; an operator's unpark
// through A's admin API must then bring it back on B, and a channel reset
// through B's admin API must be applied by A.
func TestRoutingReplicated(t *testing.T) {
	if os.Getenv("BAIMO_TEST_POSTGRES") == "" {
		t.Skip("BAIMO_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the routing replication test")
	}
	dsn := postgresSchemaDSN(t)
	var vendorCalls atomic.Int64
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vendorCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}`)
	}))
	t.Cleanup(vendor.Close)
	cfg := fmt.Sprintf(`sim: {enabled: false}
channels:
  - {name: vendor, kind: openai, base_url: "%s/v1", models: [sim-chat]}
billing: {ledger: false}
`, vendor.URL)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	adminKey := "adm-" + randomHex(t, 16)
	a := newGatewayNode(t, "node A", adminKey, "--postgres", dsn, "--data", t.TempDir(), "--config", cfgPath)
	b := newGatewayNode(t, "node B", adminKey, "--postgres", dsn, "--data", t.TempDir(), "--config", cfgPath)
	a.start(t)
	b.start(t)
	const channel, key = "vendor", "k0" // a channel naming no key variable has one key, k0
	for _, n := range []*gatewayNode{a, b} {
		if k, err := routingKeyState(n.api(), channel, key); err != nil || k.Parked {
			t.Fatalf("%s before any request: %+v, %v; want the key known and not parked", n.Name, k, err)
		}
	}
	client := a.api().createKey(t, "routing", nil) // keys live in the shared database
	chat := func(n *gatewayNode) int {
		var out map[string]any
		code, err := n.api().do(http.MethodPost, "/v1/chat/completions", client.Key,
			map[string]any{"model": "sim-chat", "messages": []map[string]string{{"role": "user", "content": "hi"}}}, nil, &out)
		if err != nil {
			t.Fatalf("chat through %s: %v", n.Name, err)
		}
		return code
	}

	// The vendor refuses A's request: A parks the key, and so must B.
	if code := chat(a); code == http.StatusOK {
		t.Fatalf("chat through A answered 200; the vendor refuses every key")
	}
	if k, err := routingKeyState(a.api(), channel, key); err != nil || !k.Parked {
		t.Fatalf("A after the vendor's 401: %+v, %v; want the key parked", k, err)
	}
	calls := vendorCalls.Load()
	if calls == 0 {
		t.Fatal("the vendor was never called")
	}
	took := waitRouting(t, b, channel, key, "parked", func(k routingKey) bool { return k.Parked })
	t.Logf("A's park visible on B after %s", took)
	k, err := routingKeyState(b.api(), channel, key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.ParkReason, "key:") || !strings.Contains(k.ParkReason, a.nodeID(t)) {
		t.Errorf("B's park reason %q, want A's (key:...) naming node %s", k.ParkReason, a.nodeID(t))
	}
	// B no longer spends a request on the refused key.
	if code := chat(b); code == http.StatusOK {
		t.Errorf("chat through B answered 200 with the only key parked")
	}
	if n := vendorCalls.Load(); n != calls {
		t.Errorf("B sent %d requests to the vendor with the key parked; want none", n-calls)
	}

	// The operator unparks the key through A: B follows.
	var out map[string]any
	if code := a.api().call(t, http.MethodPost, "/admin/routing/channels/"+channel+"/keys/"+key+"/unpark", adminKey, nil, nil, &out); code != http.StatusOK || out["replicated"] != true {
		t.Fatalf("unpark through A: status %d, %v; want 200 and replicated", code, out)
	}
	took = waitRouting(t, b, channel, key, "unparked", func(k routingKey) bool { return !k.Parked })
	t.Logf("A's unpark visible on B after %s", took)

	// A channel reset through B is applied by A (it leaves no mark in the
	// routing state of a healthy channel, so A's log is read).
	if code := b.api().call(t, http.MethodPost, "/admin/routing/channels/"+channel+"/reset", adminKey, nil, nil, &out); code != http.StatusOK || out["replicated"] != true {
		t.Fatalf("reset through B: status %d, %v; want 200 and replicated", code, out)
	}
	start := time.Now()
	for !appliedReset(a) {
		if time.Since(start) > replicationWait {
			t.Fatalf("A did not log applying B's reset within %s", replicationWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("B's reset applied by A after %s", time.Since(start))
	if appliedReset(b) {
		t.Errorf("B applied its own reset again")
	}
	a.stop(t)
	b.stop(t)
}

// appliedReset reports whether the node's current process logged applying a
// channel reset made on another node.
func appliedReset(n *gatewayNode) bool {
	for _, line := range strings.Split(n.procs[len(n.procs)-1].out.String(), "\n") {
		if strings.Contains(line, "applied routing event of another node") && strings.Contains(line, "kind=reset") {
			return true
		}
	}
	return false
}
