package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/batch"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/provider/sim"
	"baimo/internal/store/sqlite"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// env is a gateway on SQLite with its ledger, a simulated upstream that
// counts the requests it gets by request id, the batch service and the
// HTTP API in front of them: what `baimo serve` builds, in one process.
type env struct {
	t       *testing.T
	db      *sqlite.DB
	books   *ledger.Ledger
	bill    *billing.Biller
	gw      *gateway.Gateway
	svc     *batch.Service
	api     *httptest.Server
	secret  string
	key     keys.Key
	blobs   batch.Blobs
	up      *counter
	stopRun func()
}

// counter counts the upstream requests by the gateway's request id, and
// fails the first fail[id] of them with a 503.
type counter struct {
	mu   sync.Mutex
	n    map[string]int
	fail map[string]int
	h    http.Handler
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	c.mu.Lock()
	c.n[id]++
	fail := c.fail[id] > 0
	if fail {
		c.fail[id]--
	}
	c.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
		return
	}
	c.h.ServeHTTP(w, r)
}

func (c *counter) runs(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

type envOpt struct {
	balance     int64 // prepaid CNY nanos of tenant acme
	concurrency int
	lease       time.Duration
	node        string
	db          *sqlite.DB // share a database (a restart)
	blobs       batch.Blobs
	up          *counter
	ttft        time.Duration
	// batchAPI gives the channel a batch API: the simulator's fake one.
	batchAPI bool
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, o envOpt) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, db: o.db, blobs: o.blobs, up: o.up}
	if e.db == nil {
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baimo.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		e.db = db
	}
	if e.blobs == nil {
		e.blobs = batch.DiskBlobs{Dir: t.TempDir()}
	}
	if e.up == nil {
		so := sim.DefaultOptions()
		so.TTFT, so.TPOT = o.ttft, 0
		e.up = &counter{n: map[string]int{}, fail: map[string]int{}, h: sim.New(so)}
	}
	upstream := httptest.NewServer(e.up)
	t.Cleanup(upstream.Close)
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	log := quiet()
	e.books = ledger.New(e.db, ledger.Options{Logger: log, Exclusive: true, Node: "test"})
	rater := &billing.Rater{Catalog: cat, Currency: money.CNY, Rates: cat.ReferenceRates()}
	e.bill = billing.New(billing.Options{Rater: rater, Books: e.books, Log: log})
	if o.db == nil {
		if _, err := e.books.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
			t.Fatal(err)
		}
		if o.balance > 0 {
			if _, err := e.books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: o.balance}); err != nil {
				t.Fatal(err)
			}
		}
		secret, k, _ := keys.Generate()
		k.ID, k.TenantID, k.Name, k.CreatedAt = "key_acme", "acme", "acme", time.Now()
		if err := e.db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		e.secret, e.key = secret, k
	}
	cfg := config.Default()
	ch := gateway.NewChannel(config.Channel{Name: "sim", Kind: config.KindOpenAI, BaseURL: upstream.URL + "/v1",
		Models: config.ModelMap{"sim-chat": "sim-chat", "sim-embed": "sim-embed"}, BatchAPI: o.batchAPI})
	e.gw, err = gateway.New(gateway.Options{Channels: []*gateway.Channel{ch}, Keys: e.db, Billing: e.bill, Log: log,
		Limits: cfg.Limits, Counter: gateway.Tokenizer{}})
	if err != nil {
		t.Fatal(err)
	}
	if o.node == "" {
		o.node = "node-a"
	}
	e.svc = batch.New(batch.Options{Store: e.db.BatchStore(), Blobs: e.blobs, Gateway: e.gw, Money: e.bill, Keys: e.db,
		Log: log, Node: o.node, Lease: o.lease, Poll: 20 * time.Millisecond, Concurrency: o.concurrency})
	e.api = httptest.NewServer((&httpapi.Server{GW: e.gw, Store: e.db, Log: log, Batches: e.svc}).Handler())
	t.Cleanup(e.api.Close)
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start runs the batch runner.
func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Run(ctx) }()
	e.stopRun = func() { cancel(); <-done }
}

// stop stops the runner, the gateway and the ledger as a shutdown would.
func (e *env) stop() {
	if e.stopRun != nil {
		e.stopRun()
		e.stopRun = nil
		_ = e.gw.Drain(context.Background())
		_ = e.bill.Close(context.Background())
		e.books.Close()
	}
}

// do calls the API with the key; it returns the status and the JSON body.
func (e *env) do(method, path, contentType string, body io.Reader) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.api.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+e.secret)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		v = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, v
}

// upload uploads content as a batch file and returns its id.
func (e *env) upload(content string) string {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	_, _ = io.WriteString(fw, content)
	_ = mw.WriteField("purpose", "batch")
	_ = mw.Close()
	status, v := e.do("POST", "/v1/files", mw.FormDataContentType(), &buf)
	if status != 200 {
		e.t.Fatalf("upload: %d %v", status, v)
	}
	return v["id"].(string)
}

// create creates a batch of the file; it returns the status and the body.
func (e *env) create(fileID string, metadata map[string]string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]any{"input_file_id": fileID, "endpoint": "/v1/chat/completions", "completion_window": "24h",
		"metadata": metadata})
	return e.do("POST", "/v1/batches", "application/json", bytes.NewReader(b))
}

// wait polls a batch until it ends.
func (e *env) wait(id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		status, v := e.do("GET", "/v1/batches/"+id, "", nil)
		if status != 200 {
			e.t.Fatalf("get batch: %d %v", status, v)
		}
		switch v["status"] {
		case "completed", "failed", "expired", "cancelled":
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("batch %s did not end", id)
	return nil
}

// content returns a file's content.
func (e *env) content(fileID string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.api.URL+"/v1/files/"+fileID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+e.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("content of %s: %d %s", fileID, resp.StatusCode, b)
	}
	return string(b)
}

// records returns the usage records of the batch's lines, by request id.
func (e *env) records(batchID string) map[string][]usage.Record {
	e.t.Helper()
	out := map[string][]usage.Record{}
	f := usage.Filter{TenantID: "acme", Limit: usage.MaxListLimit}
	for {
		p, err := e.db.ListRecords(context.Background(), f)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range p.Records {
			if strings.HasPrefix(r.RequestID, batchID+":") {
				out[r.RequestID] = append(out[r.RequestID], r)
			}
		}
		if p.Next.IsZero() || len(p.Records) == 0 {
			return out
		}
		f.After = p.Next
	}
}

// balance is tenant acme's balance.
func (e *env) balance() ledger.Balance {
	e.t.Helper()
	b, err := e.books.Balance(context.Background(), "acme")
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// auditClean fails the test when the books do not balance.
func (e *env) auditClean() {
	e.t.Helper()
	storetest.AuditClean(e.t, e.db, time.Now())
}

// chatLines returns n chat lines, their custom ids c0..c(n-1); extra, if
// set, adds members to line i's body.
func chatLines(n int, extra func(i int) string) string {
	var b strings.Builder
	for i := range n {
		x := ""
		if extra != nil {
			x = extra(i)
		}
		fmt.Fprintf(&b, `{"custom_id":"c%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","max_tokens":20,"messages":[{"role":"user","content":"line %d"}]%s}}`+"\n", i, i, x)
	}
	return b.String()
}
