package batch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/batch"
	"baimo/internal/money"
)

// counts reads a batch's request counts and cost.
func counts(v map[string]any) (total, completed, failed int, cost int64) {
	c := v["request_counts"].(map[string]any)
	n, _ := money.ParseNanos(v["baimo"].(map[string]any)["cost"].(string))
	return int(c["total"].(float64)), int(c["completed"].(float64)), int(c["failed"].(float64)), n
}

// waitDone waits until at least n of a batch's lines ended.
func (e *env) waitDone(id string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, v := e.do("GET", "/v1/batches/"+id, "", nil)
		if _, c, f, _ := counts(v); c+f >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("batch %s: fewer than %d lines ended", id, n)
}

// checkBilledOnce checks that each line of a batch has at most one record,
// each line kept has exactly one, and the ledger charged exactly their sum.
func checkBilledOnce(t *testing.T, e *env, id string, balance int64) {
	t.Helper()
	recs := e.records(id)
	var total int64
	for rid, rs := range recs {
		if len(rs) != 1 {
			t.Errorf("%s has %d records", rid, len(rs))
		}
		total += rs[0].CostNanos
	}
	lines, err := e.db.BatchStore().Lines(context.Background(), id, -1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		_, has := recs[batch.RequestID(id, l.CustomID)]
		ended := l.State == batch.LineSettled || l.State == batch.LineDone
		if ended != has {
			t.Errorf("line %s in state %s has a record: %v", l.CustomID, l.State, has)
		}
	}
	if b := e.balance(); b.Pending != 0 || b.Posted != balance-total {
		t.Errorf("balance %+v; want %d charged (the records' sum) and nothing held", b, total)
	}
}

// TestBatchResumesOnAnotherNode: a runner stopped mid-batch (its lines in
// flight cut) leaves the batch to another node, which requeues what was
// running, runs the rest, and settles nothing twice.
func TestBatchResumesOnAnotherNode(t *testing.T) {
	a := newEnv(t, envOpt{balance: money.Scale, concurrency: 4, lease: 300 * time.Millisecond, ttft: 20 * time.Millisecond})
	const n = 60 / raceScale
	status, v := a.create(a.upload(chatLines(n, nil)), nil)
	if status != 200 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	a.waitDone(id, 10)
	a.stop() // the runner and everything under it stop mid-batch
	before, err := a.db.BatchStore().Lines(context.Background(), id, -1, n)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, l := range before {
		if l.State == batch.LineDone || l.State == batch.LineSettled {
			kept[l.CustomID] = true
		}
	}
	b := newEnv(t, envOpt{db: a.db, blobs: a.blobs, up: a.up, node: "node-b", concurrency: 8, lease: 300 * time.Millisecond})
	b.secret, b.key = a.secret, a.key
	v = b.wait(id)
	if v["status"] != "completed" {
		t.Fatalf("batch ended %v", v)
	}
	if tot, c, f, _ := counts(v); tot != n || c != n || f != 0 {
		t.Fatalf("counts %d %d %d", tot, c, f)
	}
	for i := range n {
		cid := fmt.Sprintf("c%d", i)
		runs := b.up.runs(batch.RequestID(id, cid))
		if runs < 1 || (kept[cid] && runs != 1) || runs > 2 {
			t.Errorf("%s ran %d times (kept before the stop: %v)", cid, runs, kept[cid])
		}
	}
	b.stop()
	checkBilledOnce(t, b, id, money.Scale)
	b.auditClean()
}

// TestBatchCancel: a cancel stops the batch: lines running finish and are
// billed, the others never run and cost nothing, and the batch ends
// cancelled with them in its error file.
func TestBatchCancel(t *testing.T) {
	e := newEnv(t, envOpt{balance: money.Scale, concurrency: 2, ttft: 30 * time.Millisecond})
	const n = 40
	_, v := e.create(e.upload(chatLines(n, nil)), nil)
	id := v["id"].(string)
	e.waitDone(id, 4)
	status, v := e.do("POST", "/v1/batches/"+id+"/cancel", "", nil)
	if status != 200 || (v["status"] != "cancelling" && v["status"] != "cancelled") {
		t.Fatalf("cancel: %d %v", status, v)
	}
	v = e.wait(id)
	if v["status"] != "cancelled" || v["cancelled_at"] == nil {
		t.Fatalf("batch ended %v", v)
	}
	lines := v["baimo"].(map[string]any)["lines"].(map[string]any)
	if lines["cancelled"].(float64) == 0 || lines["cancelled"].(float64)+lines["succeeded"].(float64) != n {
		t.Fatalf("lines %v", lines)
	}
	errs := e.content(v["error_file_id"].(string))
	if strings.Count(errs, "batch_cancelled") != int(lines["cancelled"].(float64)) {
		t.Errorf("error file lists %d cancelled lines, want %v", strings.Count(errs, "batch_cancelled"), lines["cancelled"])
	}
	if status, v := e.do("POST", "/v1/batches/"+id+"/cancel", "", nil); status != 200 || v["status"] != "cancelled" {
		t.Errorf("cancel of a cancelled batch: %d %v", status, v)
	}
	e.stop()
	checkBilledOnce(t, e, id, money.Scale)
	e.auditClean()
}

// TestRetrievesRacingThePoller: for random batches (lines the upstream
// refuses, lines it fails once then serves, a cancel at a random moment),
// clients that read the batch while it runs always see consistent,
// monotonic counts and cost, never move money, and the end is billed once
// per line. The seed is printed on failure.
func TestRetrievesRacingThePoller(t *testing.T) {
	seeds := []uint64{1, 2, 3}[:3/raceScale]
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			e := newEnv(t, envOpt{balance: money.Scale, concurrency: 1 + rng.IntN(8), ttft: time.Duration(rng.IntN(10)) * time.Millisecond})
			n := (20 + rng.IntN(40)) / raceScale
			refuse := map[int]bool{}
			flaky := map[int]bool{}
			for i := range n {
				switch rng.IntN(10) {
				case 0:
					refuse[i] = true
				case 1:
					flaky[i] = true
				}
			}
			_, v := e.create(e.upload(chatLines(n, func(i int) string {
				if refuse[i] {
					return `,"sim":{"status":400}`
				}
				return ""
			})), nil)
			id := v["id"].(string)
			e.up.mu.Lock()
			for i := range flaky {
				e.up.fail[batch.RequestID(id, fmt.Sprintf("c%d", i))] = 1
			}
			e.up.mu.Unlock()
			cancelAt := -1
			if rng.IntN(2) == 0 {
				cancelAt = rng.IntN(n)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for r := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lastDone, lastCost := 0, int64(0)
					cancelAt := cancelAt // each reader its own copy: only reader 1 cancels
					for {
						select {
						case <-stop:
							return
						default:
						}
						path := "/v1/batches/" + id
						if r == 0 {
							path = "/v1/batches?limit=5"
						}
						status, v := e.do("GET", path, "", nil)
						if status != 200 {
							t.Errorf("seed %d: GET %s: %d %v", seed, path, status, v)
							return
						}
						if r == 0 {
							v = v["data"].([]any)[0].(map[string]any)
						}
						tot, c, f, cost := counts(v)
						if tot != n || c+f > n || c+f < lastDone || cost < lastCost {
							t.Errorf("seed %d: retrieve saw total %d done %d (before %d) cost %d (before %d)", seed, tot, c+f, lastDone, cost, lastCost)
							return
						}
						lastDone, lastCost = c+f, cost
						if cancelAt >= 0 && r == 1 && c+f >= cancelAt {
							e.do("POST", "/v1/batches/"+id+"/cancel", "", nil)
							cancelAt = -1
						}
					}
				}()
			}
			v = e.wait(id)
			close(stop)
			wg.Wait()
			if v["status"] != "completed" && v["status"] != "cancelled" {
				t.Fatalf("seed %d: batch ended %v", seed, v)
			}
			if _, c, f, _ := counts(v); v["status"] == "completed" && (f != len(refuse) || c != n-len(refuse)) {
				t.Errorf("seed %d: completed %d failed %d, want %d refused", seed, c, f, len(refuse))
			}
			e.stop()
			checkBilledOnce(t, e, id, money.Scale)
			e.auditClean()
		})
	}
}
