package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/store/sqlite"
)

// upstreamLog is a fake vendor's own log: every request it was sent, by the
// gateway's request id, and whether it wrote its whole answer.
type upstreamLog struct {
	mu   sync.Mutex
	reqs map[string]bool // request id → answer written to the end
}

func (l *upstreamLog) begin(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs[id] = false
}

func (l *upstreamLog) end(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs[id] = true
}

// fakeVendor answers chat completions, streamed (12 chunks 4 ms apart, the
// usage, [DONE]) or not (after 15 ms), logging each by X-Request-Id.
func fakeVendor(log *upstreamLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, 400)
			return
		}
		id := r.Header.Get("X-Request-Id")
		log.begin(id)
		if !req.Stream {
			time.Sleep(15 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			_, err := io.WriteString(w, `{"id":"c","object":"chat.completion","created":1,"model":"sim-chat","choices":[{"index":0,"message":{"role":"assistant","content":"a plain answer of some words"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}`)
			if err == nil {
				log.end(id)
			}
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < 12; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"sim-chat\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d \"},\"finish_reason\":null}]}\n\n", i); err != nil {
				return
			}
			fl.Flush()
			time.Sleep(4 * time.Millisecond)
		}
		_, err := io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"sim-chat\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"+
			"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"sim-chat\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n"+
			"data: [DONE]\n\n")
		fl.Flush()
		if err == nil {
			log.end(id)
		}
	})
}

// answered is what a client saw of one request.
type answered struct {
	id       string
	stream   bool
	complete bool // the client holds the whole answer
}

// askOnce sends one chat request (streamed or not) and reads the answer to
// its end, saying whether the client got all of it.
func askOnce(client *http.Client, url, key string, stream bool) answered {
	body := `{"model":"sim-chat","max_tokens":64,"messages":[{"role":"user","content":"hello"}]` +
		map[bool]string{true: `,"stream":true}`, false: `}`}[stream]
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	a := answered{stream: stream}
	if err != nil {
		return a
	}
	defer resp.Body.Close()
	a.id = resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK {
		return a
	}
	if !stream {
		b, err := io.ReadAll(resp.Body)
		var r struct {
			Usage *struct{ CompletionTokens int } `json:"usage"`
		}
		a.complete = err == nil && int64(len(b)) == resp.ContentLength && json.Unmarshal(b, &r) == nil && r.Usage != nil
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if bytes.Equal(bytes.TrimSpace(sc.Bytes()), []byte("data: [DONE]")) {
			a.complete = true
		}
	}
	a.complete = a.complete && sc.Err() == nil
	return a
}

// TestAnsweredRequestsAreBilled: under mixed streamed and plain load, the
// gateway is SIGKILLed again and again. Every request whose client holds a
// complete answer has exactly one usage record and is charged exactly its
// cost, and the vendor's own log served it; the books balance. (Before the
// final byte waited for the commit, each kill lost the bills of requests
// whose clients already had their whole answer.)
func TestAnsweredRequestsAreBilled(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	vlog := &upstreamLog{reqs: map[string]bool{}}
	up := httptest.NewServer(fakeVendor(vlog))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(`sim: {enabled: false}
channels:
  - {name: vendor, kind: openai, base_url: "`+up.URL+`/v1", models: {sim-chat: sim-chat}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	n := newGatewayNode(t, "answered", "adm-"+randomHex(t, 16), "--data", dataDir, "--config", cfg)
	n.start(t)
	api := n.api()
	key := newPrepaidTenant(t, api, "steady", "100")

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	var mu sync.Mutex
	var seen []answered
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newLoadClient()
			for i := 0; !stop.Load(); i++ {
				a := askOnce(client, api.URL, key.Key, (w+i)%2 == 0)
				mu.Lock()
				seen = append(seen, a)
				mu.Unlock()
				if a.id == "" {
					time.Sleep(20 * time.Millisecond) // the node is down
				}
			}
		}()
	}
	completeSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for _, a := range seen {
			if a.complete {
				c++
			}
		}
		return c
	}
	// Each kill lands while the load runs: after at least a few complete
	// answers since the last restart (however slow the machine), then 0 to
	// 500 ms later.
	const kills = 6
	for k := 0; k < kills; k++ {
		base := completeSoFar()
		for wait := time.Now().Add(60 * time.Second); completeSoFar() < base+5 && time.Now().Before(wait); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		n.kill(t)
		time.Sleep(50 * time.Millisecond)
		n.start(t)
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	n.stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var complete, incomplete []string
	for _, a := range seen {
		switch {
		case a.complete:
			complete = append(complete, a.id)
		case a.id != "":
			incomplete = append(incomplete, a.id)
		}
	}
	if len(complete) < 5*kills || len(incomplete) == 0 {
		t.Fatalf("%d complete and %d incomplete answers: the load did not meet the kills", len(complete), len(incomplete))
	}
	charged := checkChargesAfterCrash(t, ctx, st, complete)
	if charged != len(complete) {
		t.Errorf("%d of %d requests whose clients hold a complete answer are billed", charged, len(complete))
	}
	vlog.mu.Lock()
	for _, id := range complete {
		if done, ok := vlog.reqs[id]; !ok || !done {
			t.Errorf("request %s: complete at the client, but the vendor's log says served=%v", id, done)
		}
	}
	vlog.mu.Unlock()
	runAuditCLI(t, "--data", dataDir)
	t.Logf("%d kills; %d complete answers, %d of them billed; %d cut or refused; %d requests in the vendor's log",
		kills, len(complete), charged, len(incomplete), len(vlog.reqs))
}
