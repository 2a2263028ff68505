package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
