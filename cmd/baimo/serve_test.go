package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/keys"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// startServe runs `baimo serve` in-process and returns its base URL.
func startServe(t *testing.T, ctx context.Context, args ...string) (string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "baimo listening on "); ok {
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			return u, done
		}
	}
	t.Fatal("serve did not start")
	return "", nil
}

func TestServeGracefulShutdownKeepsStreamsAndRecords(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("sim: {ttft: 10ms, tpot: 30ms, output_tokens: 20}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	base, done := startServe(t, ctx, "--data", dir, "--config", cfg)

	req, _ := http.NewRequest("POST", base+"/admin/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()

	// Start a stream of about 600 ms, then ask the server to stop mid-way.
	req, _ = http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+k.Key)
	req.Header.Set("X-Request-Id", "shutdown-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stop()
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("stream cut by shutdown: err=%v tail=%q", err, rest[max(0, len(rest)-80):])
	}
	recs := stoppedRecords(t, done, dir)
	if len(recs) != 1 || !strings.HasPrefix(recs[0].RequestID, "shutdown-stream.") || !recs[0].Complete || recs[0].Usage.Output != 20 ||
		recs[0].CostNanos <= 0 || recs[0].Currency != "CNY" {
		t.Fatalf("records after shutdown = %+v", recs)
	}
}

// stoppedRecords waits for a serve started with startServe to exit (0) and
// returns the usage records it wrote in its SQLite database under dir.
func stoppedRecords(t *testing.T, done <-chan int, dir string) []usage.Record {
	t.Helper()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "baimo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	page, err := db.ListRecords(context.Background(), usage.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return page.Records
}

func TestAuditVendorsCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	base, done := startServe(t, ctx, "--data", dir)
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"audit", "vendors", "--url", base}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "No audited requests yet") {
		t.Errorf("output = %q", out.String())
	}
	t.Setenv("BAIMO_ADMIN_KEY", "wrong")
	if code := run(context.Background(), []string{"audit", "vendors", "--url", base}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("wrong admin key: exit %d, %s", code, errb.String())
	}
	stop()
	<-done
}

// TestAdminKeyKeptOnlyAfterAGoodStart: a first start whose configuration
// fails, when it is read (not YAML, an unknown field, a value refused) or
// after (a routing policy that does not exist, an exchange rate below
// zero, a pool's Redis that is not there), names the file and neither
// shows nor keeps an admin key; the next good start generates one, shows it once, and a
// restart keeps it without showing it again.
func TestAdminKeyKeptOnlyAfterAGoodStart(t *testing.T) {
	t.Setenv("BAIMO_ADMIN_KEY", "")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "data", "admin_key.sha256")
	for _, bad := range []string{
		"routing: {defaults: {policy: bogus}}\n",
		`billing: {exchange_rates: [{from: USD, to: CNY, rate: "-1", effective_from: "2020-01-01T00:00:00Z", source: x}]}` + "\n",
		"routing: {defaults: {policy: bogus}\n",      // not YAML
		"billing: {currency: USD}\nbogus_field: 1\n", // a field that does not exist
		"billing: {currency: XYZ}\n",                 // a value the check refuses
		"channels: [{name: a, kind: anthropic, base_url: ftp://x, models: {m: m}}]\n",
		// A pool whose shared index is on a Redis that is not there:
		// found only when the pool starts, after the file was read.
		"pools: [{name: p, engine: vllm, models: [m], replicas: [\"http://127.0.0.1:1\"], share_index: {redis: \"127.0.0.1:1\"}}]\n",
	} {
		cfg := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errb := cli(t, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg)
		if code != 1 || !strings.Contains(errb, "config "+cfg+": ") {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %s", bad, code, errb, cfg)
		}
		if strings.Contains(out, "admin key") {
			t.Errorf("%s: a failed start showed an admin key: %s", bad, out)
		}
		if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a failed start kept an admin key (%v)", bad, err)
		}
	}
	start := func() string {
		ctx, stop := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, pw, io.Discard)
			pw.Close()
		}()
		var shown strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "baimo listening on ") {
			shown.WriteString(sc.Text() + "\n")
		}
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		stop()
		<-done
		return shown.String()
	}
	first := start()
	i := strings.Index(first, "sk-baimo-admin-")
	b, err := os.ReadFile(keyFile)
	if i < 0 || err != nil || strings.TrimSpace(string(b)) != keys.Hash(strings.Fields(first[i:])[0]) {
		t.Fatalf("first good start showed %q, kept %q (%v): want the hash of the key shown", first, b, err)
	}
	if again := start(); strings.Contains(again, "sk-baimo-admin-") {
		t.Errorf("a restart showed a new admin key: %s", again)
	}
}

// TestFreshInstallBillsInConfiguredCurrency: with billing.currency USD on a
// fresh data directory the default tenant is in USD, so requests are held,
// served and charged in USD (they used to fail, every one, with a
// retryable 503 "cannot reserve"); its creation date is the first start,
// never 0001-01-01.
func TestFreshInstallBillsInConfiguredCurrency(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("billing: {currency: USD}\nsim: {ttft: 0s, tpot: 0s, output_tokens: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	base, done := startServe(t, ctx, "--data", filepath.Join(dir, "data"), "--config", cfg)
	admin := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer adm")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	key, _ := admin("POST", "/admin/keys", `{"name":"k"}`)["key"].(string)
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("request on a fresh USD install: %d %s", resp.StatusCode, b)
	}
	bal := admin("GET", "/admin/tenants/default/balance", "")
	tenants := admin("GET", "/admin/tenants", "")
	if bal["currency"] != "USD" || bal["posted"] == "0" || strings.Contains(fmt.Sprint(tenants), "0001-01-01") {
		t.Errorf("default tenant: balance %v, tenants %v", bal, tenants)
	}
	stop()
	<-done
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeReportsForeignCurrencyModelsAtStart: in a CNY gateway with no
// billing.exchange_rates, models priced only in USD are reported when the
// gateway starts, with the rate they will be billed at and the fix (set
// billing.exchange_rates), for the file's channels and for channels stored
// through the admin API; their requests are served and charged in CNY, not
// refused one by one.
func TestServeReportsForeignCurrencyModelsAtStart(t *testing.T) {
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":10,"total_tokens":1010}}`, req.Model)
	}))
	defer up.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("channels: [{name: oa, kind: openai, base_url: "+up.URL+"/v1, models: {gpt-4o-mini: gpt-4o-mini}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() (base string, logs *syncBuffer, stop func()) {
		logs = &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg}, pw, logs)
			pw.Close()
		}()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "baimo listening on "); ok {
				base = u
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		if base == "" {
			t.Fatalf("serve did not start:\n%s", logs)
		}
		return base, logs, func() { cancel(); <-done }
	}
	admin := func(base, method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer adm")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	reported := func(logs, model string) bool {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "priced in USD are billed in CNY at") && strings.Contains(line, model) &&
				strings.Contains(line, "Set billing.exchange_rates") {
				return true
			}
		}
		return false
	}

	base, logs, stop := start()
	if !reported(logs.String(), "gpt-4o-mini") {
		t.Errorf("start did not report gpt-4o-mini, priced in USD, with the fix:\n%s", logs)
	}
	_, k := admin(base, "POST", "/admin/keys", `{"name":"k"}`)
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+k["key"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a USD-priced model in a CNY gateway: %d %s", resp.StatusCode, b)
	}
	if st, m := admin(base, "POST", "/admin/channels", `{"name":"stored","kind":"openai","base_url":"`+up.URL+`/v1","models":{"claude-haiku-4-5":"claude-haiku-4-5"}}`); st != 201 && st != 200 {
		t.Fatalf("add a channel: %d %v", st, m)
	}
	stop()

	base, logs, stop = start()
	defer stop()
	if !reported(logs.String(), "claude-haiku-4-5") {
		t.Errorf("start did not report claude-haiku-4-5 of a stored channel, priced in USD, with the fix:\n%s", logs)
	}
	if strings.Contains(logs.String(), "will be refused") {
		t.Errorf("start says requests will be refused:\n%s", logs)
	}
	_, u := admin(base, "GET", "/admin/usage?model=gpt-4o-mini", "")
	data, _ := u["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("usage of gpt-4o-mini: %v", u)
	}
	rec := data[0].(map[string]any)
	if rec["currency"] != "CNY" || rec["cost"] == "0" || rec["cost"] == nil {
		t.Errorf("the request's record: %v, want a CNY cost", rec)
	}
}
