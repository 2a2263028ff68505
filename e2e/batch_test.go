package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"baimo/internal/money"
)

// The batch crash test: a gateway SIGKILLed twice in the middle of a batch
// is started again on the same address and data; the batch finishes, every
// line answered and billed exactly once, nothing held, the books audited.

// batchView is the part of an OpenAI batch object these tests read.
type batchView struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
	Baimo struct {
		Mode         string `json:"mode"`
		Cost         string `json:"cost"`
		VendorStatus string `json:"vendor_status"`
	} `json:"baimo"`
}

// uploadBatchFile uploads content as a batch input file (POST /v1/files,
// multipart) and returns its id.
func (s *server) uploadBatchFile(t *testing.T, key, content string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("purpose", "batch"); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile("file", "lines.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, content)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/files", &buf)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/files: %v", err)
	}
	defer resp.Body.Close()
	var f struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &f) != nil || f.ID == "" {
		t.Fatalf("POST /v1/files: status %d: %s", resp.StatusCode, b)
	}
	return f.ID
}

// getBatch reads a batch; it returns the transport error (a node may be down).
func (s *server) getBatch(key, id string) (batchView, error) {
	var b batchView
	code, err := s.do(http.MethodGet, "/v1/batches/"+id, key, nil, nil, &b)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /v1/batches/%s: status %d", id, code)
	}
	return b, err
}

// waitBatch polls a batch until done holds, for at most wait.
func (s *server) waitBatch(t *testing.T, key, id string, wait time.Duration, done func(batchView) bool) batchView {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, err := s.getBatch(key, id)
		if err == nil && done(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: not there within %s: %+v, %v", id, wait, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileContent reads a file's content.
func (s *server) fileContent(t *testing.T, key, id string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/files/"+id+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/files/%s/content: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/files/%s/content: status %d: %s", id, resp.StatusCode, b)
	}
	return b
}

// TestBatchSurvivesSIGKILL kills the gateway twice while a batch runs (a
// quarter and then about two thirds of its lines done) and starts it again
// each time on the same address and data directory: the batch completes,
// every line has one answer in the output file and one usage record, the
// tenant is charged exactly the records' sum and holds nothing, and the
// ledger audit (the admin API's and `baimo audit`'s) finds the books clean.
func TestBatchSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	// Few lines at once, so the batch takes several seconds and the kills
	// land mid-batch; a short poll, so a restarted node resumes at once.
	if err := os.WriteFile(cfg, []byte("batches: {concurrency: 8, poll: 100ms}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminKey := "adm-" + randomHex(t, 16)
	node := newGatewayNode(t, "gateway", adminKey, "--data", filepath.Join(dir, "data"), "--config", cfg)
	node.start(t)
	s := node.api()
	const topUp = "100"
	key := newPrepaidTenant(t, s, "batch-crash", topUp)

	const n = 240
	const outTokens = 6
	fileID := s.uploadBatchFile(t, key.Key, batchLines(n, "sim-chat", outTokens))
	var b batchView
	if code := s.call(t, http.MethodPost, "/v1/batches", key.Key, map[string]any{"input_file_id": fileID,
		"endpoint": "/v1/chat/completions", "completion_window": "24h"}, nil, &b); code != http.StatusOK || b.ID == "" {
		t.Fatalf("POST /v1/batches: status %d: %+v", code, b)
	}

	for _, at := range []int{n / 4, 2 * n / 3} {
		got := s.waitBatch(t, key.Key, b.ID, 60*time.Second, func(v batchView) bool { return v.RequestCounts.Completed >= at })
		if got.Status != "in_progress" {
			t.Fatalf("batch %s is %s at %d lines done: the kill would not be mid-batch (make the lines slower)", b.ID, got.Status, got.RequestCounts.Completed)
		}
		node.kill(t)
		t.Logf("SIGKILL with %d of %d lines done", got.RequestCounts.Completed, n)
		node.start(t)
	}

	checkBatchBilledOnce(t, s, key.Key, b.ID, n, outTokens, "batch-crash", topUp)
	node.stop(t)
	runAuditCLI(t, "--data", filepath.Join(dir, "data"))
}

// batchLines is a batch input file of n chat lines for model, line-0 to
// line-(n-1), each asking the simulator for outTokens tokens.
func batchLines(n int, model string, outTokens int) string {
	var in strings.Builder
	for i := range n {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("line-%d", i), "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": model, "max_tokens": 32, "messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("line %d", i)}},
				"sim": map[string]int{"output_tokens": outTokens}}})
		in.Write(line)
		in.WriteByte('\n')
	}
	return in.String()
}

// checkBatchBilledOnce waits for the batch of batchLines(n, ...) to end and
// checks it completed with one answer per line in its output file, one
// usage record per line, the tenant (topped up with topUp) charged exactly
// the records' sum with nothing held, and the admin audit clean.
func checkBatchBilledOnce(t *testing.T, s *server, key, id string, n, outTokens int, tenant, topUp string) {
	t.Helper()
	b := batchView{ID: id}
	end := s.waitBatch(t, key, b.ID, 120*time.Second, func(v batchView) bool { return v.Status != "in_progress" && v.Status != "finalizing" })
	if end.Status != "completed" || end.RequestCounts.Total != n || end.RequestCounts.Completed != n || end.RequestCounts.Failed != 0 {
		t.Fatalf("batch after the kill: %+v; want completed, %d of %d lines", end, n, n)
	}

	// One answer per line in the output file, with the usage asked for.
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(s.fileContent(t, key, end.OutputFileID)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Usage struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		seen[o.CustomID]++
		if o.Response.StatusCode != 200 || o.Response.Body.Usage.CompletionTokens != outTokens {
			t.Errorf("output of %s: %s; want 200 with %d completion tokens", o.CustomID, sc.Text(), outTokens)
		}
	}
	for i := range n {
		if id := fmt.Sprintf("line-%d", i); seen[id] != 1 {
			t.Errorf("%s is %d times in the output file, want once", id, seen[id])
		}
	}

	// One record per line, each with a cost; the tenant charged their sum.
	recs, sum := tenantRecords(t, s, tenant)
	byID := map[string]int{}
	for _, r := range recs {
		byID[r.RequestID]++
		if r.Status != 200 || r.nanos <= 0 {
			t.Errorf("record %s: status %d, cost %s; want 200 and a cost", r.RequestID, r.Status, r.Cost)
		}
	}
	for i := range n {
		if id := fmt.Sprintf("%s:line-%d", b.ID, i); byID[id] != 1 {
			t.Errorf("line-%d has %d usage records (%s), want exactly 1", i, byID[id], id)
		}
	}
	if len(recs) != n {
		t.Errorf("%d usage records for %d lines", len(recs), n)
	}
	if cost, err := money.ParseNanos(end.Baimo.Cost); err != nil || cost != sum {
		t.Errorf("the batch's cost %s (%v), the records' sum %s", end.Baimo.Cost, err, money.FormatNanos(sum))
	}
	bal := settledBalance(t, s, tenant, 30*time.Second)
	top, _ := money.ParseNanos(topUp)
	if bal.Posted != top-sum {
		t.Errorf("tenant balance %s after the batch, want %s (top-up %s less the records' %s): a line charged twice or not at all",
			money.FormatNanos(bal.Posted), money.FormatNanos(top-sum), topUp, money.FormatNanos(sum))
	}
	checkAdminAudit(t, s)
}

// TestVendorBatchSurvivesSIGKILL kills the gateway while a vendor's batch
// API (`baimo sim`'s fake one) runs its batch, and starts it again: the
// restarted gateway polls the same vendor batch (it creates no second one),
// and every line is answered and billed once, from the vendor's usage,
// though the vendor gives every result twice.
func TestVendorBatchSurvivesSIGKILL(t *testing.T) {
	simURL := startSim(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`batches: {poll: 100ms}
channels:
  - {name: vendor, kind: openai, base_url: "%s/v1", batch_api: true, models: {sim-vendor: sim-chat}}
`, simURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	adminKey := "adm-" + randomHex(t, 16)
	node := newGatewayNode(t, "gateway", adminKey, "--data", filepath.Join(dir, "data"), "--config", cfg)
	node.start(t)
	s := node.api()
	const topUp = "100"
	key := newPrepaidTenant(t, s, "vendor-crash", topUp)
	const n, outTokens = 60, 5
	fileID := s.uploadBatchFile(t, key.Key, batchLines(n, "sim-vendor", outTokens))
	var b batchView
	if code := s.call(t, http.MethodPost, "/v1/batches", key.Key, map[string]any{"input_file_id": fileID,
		"endpoint": "/v1/chat/completions", "completion_window": "24h",
		"metadata": map[string]string{"baimo_mode": "vendor", "sim_delay_ms": "4000", "sim_duplicate": "1"}}, nil, &b); code != http.StatusOK || b.ID == "" {
		t.Fatalf("POST /v1/batches: status %d: %+v", code, b)
	}
	got := s.waitBatch(t, key.Key, b.ID, 30*time.Second, func(v batchView) bool { return v.Baimo.VendorStatus != "" })
	if got.Status != "in_progress" || got.Baimo.Mode != "vendor" {
		t.Fatalf("batch %s at the vendor: %+v; want in progress in mode vendor", b.ID, got)
	}
	node.kill(t)
	node.start(t)
	checkBatchBilledOnce(t, s, key.Key, b.ID, n, outTokens, "vendor-crash", topUp)

	// The vendor ran one batch of this one, not two.
	var list struct {
		Data []struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"data"`
	}
	vendor := &server{URL: simURL}
	if code := vendor.call(t, http.MethodGet, "/v1/batches?limit=100", "", nil, nil, &list); code != http.StatusOK {
		t.Fatalf("GET the vendor's batches: status %d", code)
	}
	runs := 0
	for _, vb := range list.Data {
		if vb.Metadata["baimo_batch"] == b.ID {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("the vendor has %d batches of %s, want 1", runs, b.ID)
	}
	node.stop(t)
	runAuditCLI(t, "--data", filepath.Join(dir, "data"))
}
