package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"baimo/internal/config"
	"baimo/internal/engine"
	"baimo/internal/gateway"
	"baimo/internal/provider/sim"
	"baimo/internal/replica"
)

// TestPoolsPage shows each replica of a pool (its load, health, cache use
// and prefix hit rates) and the queue by class, from GET /admin/routing.
func TestPoolsPage(t *testing.T) {
	var urls []string
	for range 2 {
		r, err := sim.NewReplica(sim.ReplicaOptions{Engine: engine.Tiny, OutputTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go r.Run(ctx)
		srv := httptest.NewServer(r)
		t.Cleanup(func() { srv.Close(); cancel() })
		urls = append(urls, srv.URL+"/v1")
	}
	p, err := replica.New(replica.Options{Name: "llama", Engine: replica.Sim, URLs: urls, ScrapeInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Replicas[0].Load.Stale || p.Stats().Replicas[1].Load.Stale {
		if time.Now().After(deadline) {
			t.Fatal("replicas never scraped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pc := gateway.NewPoolChannel(config.Pool{Name: "llama", Replicas: urls, Models: config.ModelMap{"llama-3.1-8b": "sim-chat"}}, p)
	e := newEnv(t, pc)
	for _, lang := range []string{"en", "zh-CN"} {
		c := e.client(t, lang)
		c.signIn(adminKey)
		st, body := c.get("/ui/pools")
		if st != http.StatusOK {
			t.Fatalf("%s: GET /ui/pools = %d %s", lang, st, excerpt(body))
		}
		if lang != "en" {
			continue
		}
		for _, want := range []string{`id="pool-llama"`, urls[0], urls[1], ">sim<", "Policy", "Interactive", "Standard", "Batch",
			"Prefix hit (gateway)", "Prefix hit (engine)", "KV cache"} {
			if !strings.Contains(body, want) {
				t.Errorf("the pools page has no %q", want)
			}
		}
		if strings.Count(body, "<td>healthy</td>") != 2 {
			t.Errorf("want two healthy replicas:\n%s", excerpt(body[strings.Index(body, `id="pool-llama"`):]))
		}
	}
	if m := e.con.Missing(); len(m) > 0 {
		t.Errorf("messages without a translation: %v", m)
	}

	// Without pools the page says so.
	c := newEnv(t).client(t, "en")
	c.signIn(adminKey)
	if _, body := c.get("/ui/pools"); !strings.Contains(body, "No replica pools are configured") {
		t.Errorf("pools page without pools: %s", excerpt(body))
	}
}

// TestBatchesPage lists the batches of every tenant from GET /admin/batches
// with their progress, filters by tenant and cancels one.
func TestBatchesPage(t *testing.T) {
	e := newEnv(t)
	var lines strings.Builder
	for i := range 3 {
		fmt.Fprintf(&lines, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}}`+"\n", i)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	_, _ = io.WriteString(fw, lines.String())
	_ = mw.WriteField("purpose", "batch")
	_ = mw.Close()
	st, body := e.send(t, "/v1/files", acmeSecret, mw.FormDataContentType(), buf.String())
	if st != http.StatusOK {
		t.Fatalf("upload = %d %s", st, body)
	}
	var file struct{ ID string }
	_ = json.Unmarshal([]byte(body), &file)
	req, _ := json.Marshal(map[string]any{"input_file_id": file.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
	st, body = e.send(t, "/v1/batches", acmeSecret, "application/json", string(req))
	if st != http.StatusOK {
		t.Fatalf("create = %d %s", st, body)
	}
	var b struct{ ID string }
	_ = json.Unmarshal([]byte(body), &b)

	c := e.client(t, "en")
	c.signIn(adminKey)
	_, page := c.get("/ui/batches")
	row := page[max(0, strings.Index(page, `id="batch-`+b.ID+`"`)):]
	for _, want := range []string{`id="batch-` + b.ID + `"`, `href="/ui/tenants/acme"`, "key_acme1", "/v1/chat/completions",
		`<progress max="3" value="0"></progress> 0 / 3 (0%)`, "<td>in progress</td>", `action="/ui/batches/` + b.ID + `/cancel"`} {
		if !strings.Contains(row, want) {
			t.Errorf("the batch's row has no %q:\n%.1500s", want, row)
		}
	}
	if _, page := c.get("/ui/batches?" + url.Values{"tenant_id": {"globex"}}.Encode()); strings.Contains(page, b.ID) || !strings.Contains(page, "No batches.") {
		t.Errorf("globex's batches show acme's: %s", excerpt(page))
	}
	if st, loc := c.post("/ui/batches/"+b.ID+"/cancel", nil); st != http.StatusSeeOther || loc != "/ui/batches?done=batch_cancelled" {
		t.Fatalf("cancel = %d %s", st, loc)
	}
	_, page = c.get("/ui/batches")
	if !strings.Contains(page, "cancelling") || strings.Contains(page, `/ui/batches/`+b.ID+`/cancel"`) {
		t.Errorf("after the cancel: %s", excerpt(page[strings.Index(page, `id="batch-`):]))
	}
	if st, body := c.post("/ui/batches/batch_nope/cancel", nil); st != http.StatusNotFound || !strings.Contains(body, `class="flash error"`) {
		t.Errorf("cancel of an unknown batch = %d %s", st, excerpt(body))
	}
	z := e.client(t, "zh-CN")
	z.signIn(adminKey)
	if st, _ := z.get("/ui/batches"); st != http.StatusOK {
		t.Errorf("zh batches = %d", st)
	}
	if m := e.con.Missing(); len(m) > 0 {
		t.Errorf("messages without a translation: %v", m)
	}
}

// send posts body to the API with a bearer token.
func (e *env) send(t *testing.T, path, token, contentType, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
