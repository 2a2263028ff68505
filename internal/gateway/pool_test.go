package gateway_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/engine"
	"baimo/internal/gateway"
	"baimo/internal/provider/sim"
	"baimo/internal/replica"
	"baimo/internal/schedule"
)

// poolHarness runs a gateway whose model gpt-test is served first by a pool
// of two simulated replicas and then (priority 1) by a vendor channel.
func poolHarness(t *testing.T, speed float64, queue schedule.QueueConfig, overflow bool) (*harness, *replica.Pool, []*httptest.Server) {
	t.Helper()
	var urls []string
	var srvs []*httptest.Server
	for range 2 {
		r, err := sim.NewReplica(sim.ReplicaOptions{Engine: engine.Tiny, Speed: speed, OutputTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go r.Run(ctx)
		srv := httptest.NewServer(r)
		t.Cleanup(func() { srv.Close(); cancel() })
		urls = append(urls, srv.URL+"/v1")
		srvs = append(srvs, srv)
	}
	queue.Overflow = overflow
	p, err := replica.New(replica.Options{Name: "pool", Engine: replica.Sim, URLs: urls, ScrapeInterval: 20 * time.Millisecond,
		Pool: schedule.PoolConfig{StaleAfter: 500 * time.Millisecond}, Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	pc := gateway.NewPoolChannel(config.Pool{Name: "pool", Replicas: urls, Models: config.ModelMap{"gpt-test": "sim-chat"},
		DefaultClass: "interactive"}, p)
	h := newMulti(t, []http.Handler{sim.New(sim.DefaultOptions())}, func(o *gateway.Options, _ *billing.Options) {
		o.Channels[0].Priority = 1
		o.Channels[0].Models = config.ModelMap{"gpt-test": "sim-chat"}
		o.Channels = append([]*gateway.Channel{pc}, o.Channels...)
	})
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Replicas[0].Load.Stale || p.Stats().Replicas[1].Load.Stale {
		if time.Now().After(deadline) {
			t.Fatal("replicas never scraped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return h, p, srvs
}

func idle(t *testing.T, p *replica.Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := false
		for _, r := range p.Stats().Replicas {
			busy = busy || r.Load.InFlight != 0 || r.Load.Prefill != 0 || r.Load.Decoding != 0
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool still counts load after every request ended: %+v", p.Stats().Replicas)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const convBody = `{"model":"gpt-test","stream":true,"max_tokens":6,"messages":[{"role":"system","content":"You are a helpful assistant that answers questions about the weather in great and careful detail."},{"role":"user","content":"What is the weather like in Hangzhou in spring, and should I bring an umbrella?"}]}`

func TestPoolServesAndReleases(t *testing.T) {
	h, p, _ := poolHarness(t, 100, schedule.QueueConfig{}, false)
	for range 4 {
		resp, body := h.post(t, "/v1/chat/completions", convBody)
		if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	idle(t, p)
	st := p.Stats()
	routed := st.Replicas[0].Routed + st.Replicas[1].Routed
	if routed != 4 {
		t.Fatalf("%d requests placed on replicas, want 4", routed)
	}
	// The same conversation went to one replica each time (its prefix).
	if st.Replicas[0].Routed != 4 && st.Replicas[1].Routed != 4 {
		t.Fatalf("a repeated conversation was split over replicas: %d and %d", st.Replicas[0].Routed, st.Replicas[1].Routed)
	}
	if err := h.gw.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.bill.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	for _, rec := range h.recs.recs {
		if rec.Channel != "pool" || rec.Usage.Output != 6 {
			t.Fatalf("record channel %q output %d, want pool and 6", rec.Channel, rec.Usage.Output)
		}
	}
}

func TestPoolReleasesOnClientCancel(t *testing.T) {
	h, p, _ := poolHarness(t, 1, schedule.QueueConfig{}, false) // real time: 2 ms a step
	ctx, cancel := context.WithCancel(context.Background())
	body := strings.Replace(convBody, `"max_tokens":6`, `"max_tokens":2000`, 1)
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Replicas[0].Load.InFlight+st.Replicas[1].Load.InFlight != 1 {
		t.Fatalf("in flight while streaming: %+v", st.Replicas)
	}
	cancel()
	resp.Body.Close()
	idle(t, p)
}

func TestPoolOverflowsToVendors(t *testing.T) {
	h, p, srvs := poolHarness(t, 100, schedule.QueueConfig{}, true)
	for _, s := range srvs {
		s.Close() // scrapes fail: every replica saturated
	}
	deadline := time.Now().Add(5 * time.Second)
	for !p.Stats().Replicas[0].Load.Stale || !p.Stats().Replicas[1].Load.Stale {
		if time.Now().After(deadline) {
			t.Fatal("replicas still fresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, body := h.post(t, "/v1/chat/completions", convBody)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if rec := h.only(t); rec.Channel != "up" {
		t.Fatalf("served by %q, want the vendor channel up", rec.Channel)
	}
	if st := p.Stats(); st.Classes[schedule.Interactive].Overflow != 1 {
		t.Fatalf("overflow count %+v", st.Classes)
	}
}
