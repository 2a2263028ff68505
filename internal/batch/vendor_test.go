package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/batch"
	"baimo/internal/money"
)

// outputs reads an OpenAI results file: each line's status and completion
// tokens by custom_id, and how many times each appears.
func outputs(t *testing.T, content string) (map[string][2]int, map[string]int) {
	t.Helper()
	res, seen := map[string][2]int{}, map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(content), "\n") {
		if l == "" {
			continue
		}
		var o struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Usage struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("results line %q: %v", l, err)
		}
		seen[o.CustomID]++
		if o.Response != nil {
			res[o.CustomID] = [2]int{o.Response.StatusCode, o.Response.Body.Usage.CompletionTokens}
		}
	}
	return res, seen
}

// TestVendorBatch passes a batch to the vendor's batch API (the simulator's
// fake one) with faults injected (two failed polls, every result given
// twice, one line refused): each line is answered and billed once, from the
// vendor's usage, at the same batch price as the same lines run through the
// request path; the refused line costs nothing, nothing stays held.
func TestVendorBatch(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale, batchAPI: true})
	const n = 12
	lines := chatLines(n, func(i int) string {
		if i == 5 {
			return `,"sim":{"status":400}`
		}
		return fmt.Sprintf(`,"sim":{"output_tokens":%d}`, 3+i%5)
	})
	status, v := e.create(e.upload(lines), map[string]string{"baimo_mode": "vendor", "sim_poll_errors": "2", "sim_duplicate": "1"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	end := e.wait(id)
	total, completed, failed, cost := counts(end)
	if end["status"] != "completed" || total != n || completed != n-1 || failed != 1 {
		t.Fatalf("vendor batch ended %v %d/%d/%d: %v", end["status"], total, completed, failed, end)
	}
	if m := end["baimo"].(map[string]any)["mode"]; m != "vendor" {
		t.Errorf("mode %v, want vendor", m)
	}
	for i := range n {
		if r := e.up.runs(batch.RequestID(id, fmt.Sprintf("c%d", i))); r != 0 {
			t.Errorf("line c%d went to the real-time API %d times", i, r)
		}
	}
	out, seen := outputs(t, e.content(end["output_file_id"].(string)))
	errs, errSeen := outputs(t, e.content(end["error_file_id"].(string)))
	for i := range n {
		cid := fmt.Sprintf("c%d", i)
		if seen[cid]+errSeen[cid] != 1 {
			t.Errorf("%s in the results %d times, want once", cid, seen[cid]+errSeen[cid])
		}
		if i == 5 {
			if errs[cid][0] != 400 {
				t.Errorf("%s: %v in the error file, want status 400", cid, errs[cid])
			}
			continue
		}
		if want := 3 + i%5; out[cid] != [2]int{200, want} {
			t.Errorf("%s: %v, want status 200 with %d completion tokens", cid, out[cid], want)
		}
	}
	checkBilledOnce(t, e, id, money.Scale)
	recs := e.records(id)
	if r := recs[batch.RequestID(id, "c5")]; len(r) != 1 || r[0].CostNanos != 0 {
		t.Errorf("the failed line's records %+v, want one at no cost", r)
	}
	for rid, rs := range recs {
		if rid == batch.RequestID(id, "c5") {
			continue
		}
		if rs[0].Channel != "sim" || rs[0].Endpoint != "batch:chat" || rs[0].Usage.Source == 0 {
			t.Errorf("record %s: channel %q endpoint %q source %v", rid, rs[0].Channel, rs[0].Endpoint, rs[0].Usage.Source)
		}
	}

	// The same lines through the request path cost the same: the vendor's
	// lines are rated at the batch price, from the vendor's usage.
	before := e.balance().Posted
	status, v = e.create(e.upload(lines), map[string]string{"baimo_mode": "realtime"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	rt := e.wait(v["id"].(string))
	if _, _, _, rtCost := counts(rt); rtCost != cost || cost <= 0 {
		t.Errorf("vendor batch cost %d, the same lines in real time %d; want equal and above 0", cost, rtCost)
	}
	if spent := before - e.balance().Posted; spent != cost {
		t.Errorf("the real-time batch charged %d, its cost is %d", spent, cost)
	}
	e.auditClean()
}

// TestVendorBatchLostLinesAndCancel: lines the vendor gives no result for
// expire at no cost; a batch cancelled while the vendor runs it is
// cancelled at the vendor, its finished lines billed, the others not.
func TestVendorBatchLostLinesAndCancel(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale, batchAPI: true})
	status, v := e.create(e.upload(chatLines(10, nil)), map[string]string{"baimo_mode": "vendor", "sim_drop": "3"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	end := e.wait(id)
	if total, completed, failed, _ := counts(end); end["status"] != "completed" || total != 10 || completed != 7 || failed != 3 {
		t.Fatalf("batch with 3 lines lost: %v %d/%d/%d", end["status"], total, completed, failed)
	}
	checkBilledOnce(t, e, id, money.Scale)
	if len(e.records(id)) != 7 {
		t.Errorf("%d records, want 7 (the lost lines have none)", len(e.records(id)))
	}

	// Slow lines (about 0.3 s each, 8 at a time at the vendor): the cancel
	// comes while most have not run.
	before := e.balance().Posted
	status, v = e.create(e.upload(chatLines(80, func(int) string { return `,"sim":{"output_tokens":4,"tpot_ms":100}` })),
		map[string]string{"baimo_mode": "vendor"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id = v["id"].(string)
	time.Sleep(1500 * time.Millisecond) // the vendor has it and runs some lines
	if status, v := e.do("POST", "/v1/batches/"+id+"/cancel", "", nil); status != 200 {
		t.Fatalf("cancel: %d %v", status, v)
	}
	end = e.wait(id)
	total, completed, failed, _ := counts(end)
	if end["status"] != "cancelled" || total != 80 || completed == 0 || completed >= 80 || failed != 0 {
		t.Fatalf("cancelled vendor batch: %v %d/%d/%d", end["status"], total, completed, failed)
	}
	checkBilledOnce(t, e, id, before)
	if len(e.records(id)) != completed {
		t.Errorf("%d records, want %d (the lines the vendor finished)", len(e.records(id)), completed)
	}
	e.auditClean()
}

// TestVendorBatchResumes: a runner stopped while the vendor runs the batch
// leaves it to another node, which polls the same vendor batch (it creates
// no second one) and bills each line once.
func TestVendorBatchResumes(t *testing.T) {
	a := newEnv(t, envOpt{balance: money.Scale, batchAPI: true, lease: 300 * time.Millisecond})
	status, v := a.create(a.upload(chatLines(20, func(int) string { return `,"sim":{"output_tokens":4,"tpot_ms":50}` })),
		map[string]string{"baimo_mode": "vendor", "sim_delay_ms": "1500"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	var vendorBatch string
	for deadline := time.Now().Add(10 * time.Second); vendorBatch == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := a.db.BatchStore().Batch(context.Background(), id)
		if err == nil && b.Doc.Vendor != nil {
			vendorBatch = b.Doc.Vendor.BatchID
		}
	}
	if vendorBatch == "" {
		t.Fatal("the batch never reached the vendor")
	}
	a.stop()
	b := newEnv(t, envOpt{db: a.db, blobs: a.blobs, up: a.up, node: "node-b", lease: 300 * time.Millisecond, batchAPI: true})
	b.secret, b.key = a.secret, a.key
	end := b.wait(id)
	if total, completed, _, _ := counts(end); end["status"] != "completed" || total != 20 || completed != 20 {
		t.Fatalf("resumed vendor batch: %v", end)
	}
	got, err := b.db.BatchStore().Batch(context.Background(), id)
	if err != nil || got.Doc.Vendor.BatchID != vendorBatch {
		t.Errorf("the resumed run used vendor batch %v, want %s (no second one)", got.Doc.Vendor, vendorBatch)
	}
	checkBilledOnce(t, b, id, money.Scale)
	b.auditClean()
}

// TestVendorMessageBatch: an Anthropic message batch goes to an OpenAI-shaped
// vendor batch API (mode auto: the channel has one), each line translated
// there and its answer back, billed once from the vendor's usage.
func TestVendorMessageBatch(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale, batchAPI: true})
	var reqs []map[string]any
	for i := range 4 {
		reqs = append(reqs, map[string]any{"custom_id": fmt.Sprintf("m%d", i), "params": map[string]any{"model": "sim-chat",
			"max_tokens": 3 + i, "messages": []map[string]string{{"role": "user", "content": "hello"}}}})
	}
	body, _ := json.Marshal(map[string]any{"requests": reqs})
	status, v := e.do("POST", "/v1/messages/batches", "application/json", strings.NewReader(string(body)))
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	var res string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, v = e.do("GET", "/v1/messages/batches/"+id, "", nil)
		if v["processing_status"] == "ended" {
			res = e.content(e.mustOutput(id))
			break
		}
	}
	if res == "" {
		t.Fatalf("message batch did not end: %v", v)
	}
	if m := v["baimo"].(map[string]any)["mode"]; m != "vendor" {
		t.Errorf("mode %v, want vendor", m)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(res), "\n") {
		var r struct {
			CustomID string `json:"custom_id"`
			Result   struct {
				Type    string `json:"type"`
				Message struct {
					Type  string `json:"type"`
					Usage struct {
						OutputTokens int `json:"output_tokens"`
					} `json:"usage"`
				} `json:"message"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(r.CustomID, "m%d", &i)
		if r.Result.Type != "succeeded" || r.Result.Message.Type != "message" || r.Result.Message.Usage.OutputTokens != 3+i {
			t.Errorf("result %s, want a message of %d output tokens", l, 3+i)
		}
		if e.up.runs(batch.RequestID(id, r.CustomID)) != 0 {
			t.Errorf("%s went to the real-time API", r.CustomID)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d results, want 4", n)
	}
	checkBilledOnce(t, e, id, money.Scale)
	e.auditClean()
}

// mustOutput returns the id of a batch's output file, read from the store.
func (e *env) mustOutput(id string) string {
	e.t.Helper()
	b, err := e.db.BatchStore().Batch(context.Background(), id)
	if err != nil || b.Doc.OutputFileID == "" {
		e.t.Fatalf("batch %s has no output file: %v", id, err)
	}
	return b.Doc.OutputFileID
}

// TestVendorBatchRetrievesRaceThePoller: clients retrieving a vendor batch
// (and listing batches) as fast as they can while the runner polls the
// vendor and settles the results bill nothing: each line is billed once,
// by the runner, whatever the interleaving.
func TestVendorBatchRetrievesRaceThePoller(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale, batchAPI: true})
	status, v := e.create(e.upload(chatLines(30, nil)), map[string]string{"baimo_mode": "vendor", "sim_duplicate": "1",
		"sim_poll_errors": "1", "sim_delay_ms": "500"})
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				path := "/v1/batches/" + id
				if w == 3 {
					path = "/v1/batches?limit=5"
				}
				if status, v := e.get(path); status != 200 {
					t.Errorf("GET %s: %d %v", path, status, v)
					return
				}
			}
		}()
	}
	end := e.wait(id)
	close(stop)
	wg.Wait()
	if total, completed, _, _ := counts(end); end["status"] != "completed" || total != 30 || completed != 30 {
		t.Fatalf("batch: %v", end)
	}
	checkBilledOnce(t, e, id, money.Scale)
	e.auditClean()
}

// get is do for a GET off the test's goroutine: no Fatal.
func (e *env) get(path string) (int, map[string]any) {
	req, _ := http.NewRequest("GET", e.api.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"err": err.Error()}
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}
