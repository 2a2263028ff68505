package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// Helpers for the tests that run several gateway processes, kill them and
// start them again (multinode_test.go).

// killTimeout bounds the wait for a SIGKILLed process to be reaped.
const killTimeout = 10 * time.Second

// gatewayNode is one `baimo serve` that a test may SIGKILL and start again on
// the same address, data directory and database, as an operator restarting a
// crashed node would. The ledger names a node by hostname and --addr, so only
// a restart on the same address reconciles the holds the crash left.
type gatewayNode struct {
	Name     string // for messages
	Addr     string
	AdminKey string
	args     []string
	procs    []*nodeProcess // every process started; the last is current
}

// nodeProcess is one run of a gatewayNode.
type nodeProcess struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	waitErr error
	started time.Time // before exec
	ready   time.Time // /readyz first answered 200
}

// newGatewayNode prepares (does not start) `baimo serve --addr <free port>`
// followed by args, with BAIMO_ADMIN_KEY set to adminKey. Every process it
// starts is killed at the end of the test and its output logged if the test
// failed.
func newGatewayNode(t *testing.T, name, adminKey string, args ...string) *gatewayNode {
	t.Helper()
	n := &gatewayNode{Name: name, Addr: freeAddr(t), AdminKey: adminKey}
	n.args = append([]string{"serve", "--addr", n.Addr}, args...)
	t.Cleanup(func() {
		for i, p := range n.procs {
			select {
			case <-p.exited:
			default:
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.exited
			}
			if t.Failed() {
				t.Logf("%s (process %d of %d) output:\n%s", n.Name, i+1, len(n.procs), p.out.String())
			}
		}
	})
	return n
}

// api returns a client for the node's HTTP API.
func (n *gatewayNode) api() *server {
	return &server{URL: "http://" + n.Addr, AdminKey: n.AdminKey}
}

// current returns the process started last.
func (n *gatewayNode) current(t *testing.T) *nodeProcess {
	t.Helper()
	if len(n.procs) == 0 {
		t.Fatalf("%s was never started", n.Name)
	}
	return n.procs[len(n.procs)-1]
}

// start starts a new process in its own process group and waits until
// /readyz answers 200; it returns the process.
func (n *gatewayNode) start(t *testing.T) *nodeProcess {
	t.Helper()
	if len(n.procs) > 0 {
		select {
		case <-n.current(t).exited:
		default:
			t.Fatalf("%s: start while the previous process runs", n.Name)
		}
	}
	p := &nodeProcess{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(baimoBinary(t), n.args...)
	p.cmd.Env = append(os.Environ(), "BAIMO_ADMIN_KEY="+n.AdminKey)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: start baimo serve: %v", n.Name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	n.procs = append(n.procs, p)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s: baimo serve exited before it was ready (%v):\n%s", n.Name, p.waitErr, p.out.String())
		default:
		}
		resp, err := client.Get("http://" + n.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.ready = time.Now()
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: baimo serve not ready within %s (last: %v):\n%s", n.Name, readyTimeout, err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL to the current process's group and waits until it is
// gone; it returns the moment the signal was sent.
func (n *gatewayNode) kill(t *testing.T) time.Time {
	t.Helper()
	p := n.current(t)
	at := time.Now()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("%s: SIGKILL: %v", n.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(killTimeout):
		t.Fatalf("%s: still running %s after SIGKILL", n.Name, killTimeout)
	}
	return at
}

// stop sends SIGTERM to the current process and checks that it exits
// cleanly within the bound, with no race or panic reported.
func (n *gatewayNode) stop(t *testing.T) {
	t.Helper()
	p := n.current(t)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(shutdownTimeout):
		t.Fatalf("%s: did not exit within %s of SIGTERM:\n%s", n.Name, shutdownTimeout, p.out.String())
	}
	if p.waitErr != nil {
		t.Errorf("%s: exited with %v after SIGTERM:\n%s", n.Name, p.waitErr, p.out.String())
	}
	n.checkOutput(t)
}

// checkOutput fails the test if any process of the node reported a data
// race or a panic.
func (n *gatewayNode) checkOutput(t *testing.T) {
	t.Helper()
	for i, p := range n.procs {
		out := p.out.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s (process %d) reported a data race:\n%s", n.Name, i+1, out)
		}
		if strings.Contains(out, "panic:") {
			t.Errorf("%s (process %d) panicked:\n%s", n.Name, i+1, out)
		}
	}
}

// nodeID is the name the ledger records on the holds a node places (see
// cmd/baimo/serve.go): the hostname, a slash and --addr.
func (n *gatewayNode) nodeID(t *testing.T) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return host + "/" + n.Addr
}

// postgresSchemaDSN creates a fresh schema in the database BAIMO_TEST_POSTGRES
// names and returns a DSN whose search_path is that schema; the schema is
// dropped with everything in it when the test ends.
func postgresSchemaDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BAIMO_TEST_POSTGRES")
	if dsn == "" {
		t.Fatal("postgresSchemaDSN needs BAIMO_TEST_POSTGRES")
	}
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Fatalf("BAIMO_TEST_POSTGRES must be a postgres:// URL (%v)", err)
	}
	schema := "baimo_e2e_" + randomHex(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to BAIMO_TEST_POSTGRES (%s): %v", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// redisTestPrefix returns a key prefix no other test uses and deletes the
// keys under it when the test ends.
func redisTestPrefix(t *testing.T, addr string) string {
	t.Helper()
	prefix := "baimo-e2e-" + randomHex(t, 6) + ":"
	t.Cleanup(func() {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, prefix+"*", 100).Iterator()
		var ks []string
		for iter.Next(ctx) {
			ks = append(ks, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("redis cleanup of %s*: %v", prefix, err)
			return
		}
		if len(ks) > 0 {
			if err := rc.Del(ctx, ks...).Err(); err != nil {
				t.Logf("redis cleanup of %s*: %v", prefix, err)
			}
		}
	})
	return prefix
}

// newPrepaidTenant creates a prepaid CNY tenant, tops it up with topUp (a
// decimal string) and creates an API key for it.
func newPrepaidTenant(t *testing.T, s *server, id, topUp string) apiKey {
	t.Helper()
	var out map[string]any
	if code := s.call(t, http.MethodPost, "/admin/tenants", s.AdminKey,
		map[string]any{"id": id, "name": "e2e " + id, "kind": "prepaid", "currency": "CNY"}, nil, &out); code != http.StatusCreated {
		t.Fatalf("POST /admin/tenants: status %d: %v", code, out)
	}
	if code := s.call(t, http.MethodPost, "/admin/tenants/"+id+"/topup", s.AdminKey,
		map[string]any{"amount": topUp}, nil, &out); code != http.StatusOK {
		t.Fatalf("POST /admin/tenants/%s/topup: status %d: %v", id, code, out)
	}
	var k apiKey
	if code := s.call(t, http.MethodPost, "/admin/keys", s.AdminKey,
		map[string]any{"name": "e2e-" + id, "tenant_id": id}, nil, &k); code != http.StatusCreated || k.Key == "" {
		t.Fatalf("POST /admin/keys: status %d: %+v", code, k)
	}
	return k
}

// balance is a tenant's balance in nanos.
type balance struct {
	Posted, Pending, Available, Debt int64
}

// tenantBalance reads a tenant's balance through the admin API.
func (s *server) tenantBalance(id string) (balance, error) {
	var raw struct {
		Posted    string `json:"posted"`
		Pending   string `json:"pending"`
		Available string `json:"available"`
		Debt      string `json:"debt"`
	}
	code, err := s.do(http.MethodGet, "/admin/tenants/"+id+"/balance", s.AdminKey, nil, nil, &raw)
	if err != nil {
		return balance{}, err
	}
	if code != http.StatusOK {
		return balance{}, fmt.Errorf("GET /admin/tenants/%s/balance: status %d", id, code)
	}
	var b balance
	for _, f := range []struct {
		s   string
		dst *int64
	}{{raw.Posted, &b.Posted}, {raw.Pending, &b.Pending}, {raw.Available, &b.Available}, {raw.Debt, &b.Debt}} {
		if *f.dst, err = money.ParseNanos(f.s); err != nil {
			return balance{}, fmt.Errorf("balance of %s: %w", id, err)
		}
	}
	return b, nil
}

// settledBalance polls a tenant's balance until nothing is pending, for at
// most wait, and returns it.
func settledBalance(t *testing.T, s *server, tenantID string, wait time.Duration) balance {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, err := s.tenantBalance(tenantID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending == 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("balance of %s still has %s pending %s after the run: a hold was never resolved",
				tenantID, money.FormatNanos(b.Pending), wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// costRecord is the part of a usage record the billing checks read.
type costRecord struct {
	RequestID    string    `json:"request_id"`
	KeyID        string    `json:"key_id"`
	Start        time.Time `json:"start"`
	PriceVersion string    `json:"price_version"`
	TenantID     string    `json:"tenant_id"`
	Status       int       `json:"status"`
	Complete     bool      `json:"complete"`
	ErrorClass   string    `json:"error_class"`
	Cost         string    `json:"cost"`
	Currency     string    `json:"currency"`

	nanos int64
}

// tenantRecords lists every usage record of a tenant with its cost parsed,
// and returns the sum of the costs.
func tenantRecords(t *testing.T, s *server, tenantID string) ([]costRecord, int64) {
	t.Helper()
	const limit = 10000
	var u struct {
		Data []costRecord `json:"data"`
	}
	if code := s.call(t, http.MethodGet, fmt.Sprintf("/admin/usage?limit=%d&tenant_id=%s", limit, tenantID), s.AdminKey, nil, nil, &u); code != http.StatusOK {
		t.Fatalf("GET /admin/usage: status %d", code)
	}
	if len(u.Data) >= limit {
		t.Fatalf("tenant %s has %d or more records; the test cannot sum them in one page", tenantID, limit)
	}
	var sum int64
	for i := range u.Data {
		r := &u.Data[i]
		n, err := money.ParseNanos(r.Cost)
		if err != nil {
			t.Fatalf("record %s: cost %q: %v", r.RequestID, r.Cost, err)
		}
		if n < 0 || (n > 0 && r.Currency != "CNY") {
			t.Errorf("record %s: cost %s %s, want a non-negative CNY amount", r.RequestID, r.Cost, r.Currency)
		}
		r.nanos = n
		if sum, err = money.AddNanos(sum, n); err != nil {
			t.Fatalf("sum of costs: %v", err)
		}
	}
	return u.Data, sum
}

// checkAdminAudit asks a node for GET /admin/audit and fails the test unless
// every check passed.
func checkAdminAudit(t *testing.T, s *server) {
	t.Helper()
	var rep struct {
		OK     bool              `json:"ok"`
		Checks []json.RawMessage `json:"checks"`
	}
	code := s.call(t, http.MethodGet, "/admin/audit", s.AdminKey, nil, nil, &rep)
	if code != http.StatusOK || !rep.OK || len(rep.Checks) == 0 {
		b, _ := json.Marshal(rep)
		t.Errorf("GET /admin/audit: status %d, report %s; want 200 and every check ok", code, b)
	}
}

// runAuditCLI runs `baimo audit --json` with args (--data DIR or --postgres
// DSN) and fails the test if it exits non-zero.
func runAuditCLI(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, baimoBinary(t), append([]string{"audit", "--json"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("baimo audit: %v\n%s", err, out)
	}
}

// streamOutcome is what a client saw of one streaming chat request.
type streamOutcome struct {
	Node      int       // which node it was sent to
	Sent      time.Time // just before the request was written
	Answered  time.Time // when the status line arrived (or the request failed)
	Status    int       // 0 when no answer came
	ErrorCode string    // error.code of a non-200 answer
	RequestID string    // the X-Request-Id baimo answered with
	Finished  bool      // the stream ended with data: [DONE]
	Err       error     // a transport error, or the stream broke off
}

// chatStreamBody is a streaming sim-chat request asking the simulator for
// outputTokens tokens at tpot each after ttft, reserving maxTokens.
func chatStreamBody(outputTokens, ttftMs, tpotMs, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":      "sim-chat",
		"messages":   []map[string]string{{"role": "user", "content": "hello"}},
		"stream":     true,
		"max_tokens": maxTokens,
		"sim":        map[string]int{"output_tokens": outputTokens, "ttft_ms": ttftMs, "tpot_ms": tpotMs},
	})
	return b
}

// streamChat sends one streaming request and reads it to the end. firstData,
// if not nil, is called once when the first data line arrives.
func streamChat(client *http.Client, baseURL, key, id string, body []byte, firstData func()) streamOutcome {
	var o streamOutcome
	req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		o.Err = err
		return o
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", id)
	o.Sent = time.Now()
	resp, err := client.Do(req)
	o.Answered = time.Now()
	if err != nil {
		o.Err = err
		return o
	}
	defer resp.Body.Close()
	o.Status = resp.StatusCode
	o.RequestID = resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			o.Err = err
		} else if err := json.Unmarshal(b, &e); err != nil {
			o.Err = fmt.Errorf("status %d with a body that is not an OpenAI error: %w: %.300s", resp.StatusCode, err, b)
		}
		o.ErrorCode = e.Error.Code
		return o
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		if firstData != nil {
			firstData()
			firstData = nil
		}
		if bytes.Equal(bytes.TrimSpace(line[5:]), []byte("[DONE]")) {
			o.Finished = true
		}
	}
	o.Err = sc.Err()
	if o.Err == nil && !o.Finished {
		o.Err = errors.New("stream ended without data: [DONE]")
	}
	return o
}

// newLoadClient returns a client for test traffic: no keep-alive (a request
// never lands on a connection to a process that was killed), bounded.
func newLoadClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// holdsOf returns the holds of the given request ids (ledger.ErrNotFound
// leaves an id out) and every hold still pending, read in one snapshot.
func holdsOf(ctx context.Context, st ledger.Store, ids []string) (map[string]ledger.Hold, map[string]int64, []ledger.Hold, error) {
	holds := map[string]ledger.Hold{}
	costs := map[string]int64{}
	var pending []ledger.Hold
	err := st.LedgerView(ctx, func(v ledger.Snapshot) error {
		for _, id := range ids {
			h, err := v.Hold(ctx, id)
			if errors.Is(err, ledger.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("hold %s: %w", id, err)
			}
			holds[id] = h
			c, found, err := v.RecordCost(ctx, id)
			if err != nil {
				return fmt.Errorf("record cost %s: %w", id, err)
			}
			if found {
				costs[id] = c.Cost
			}
		}
		var err error
		pending, err = v.PendingHolds(ctx, ledger.HoldQuery{Limit: 1000})
		return err
	})
	return holds, costs, pending, err
}

// checkHoldsAfterCrash checks the holds of requests a killed process
// answered 200 (finished or cut by the kill): each was placed by that node
// (node), is no longer pending, and is posted exactly when its usage record
// was written (the record and its settlement commit together), voided
// otherwise; a hold voided without a record was resolved after the kill (by
// the restarted node's reconciliation: nothing else touches another run's
// unexpired hold). It returns how many were voided and how many posted.
func checkHoldsAfterCrash(t *testing.T, holds map[string]ledger.Hold, costs map[string]int64, ids []string, node string, killedAt time.Time) (voided, posted int) {
	t.Helper()
	for _, id := range ids {
		h, ok := holds[id]
		if !ok {
			// A stream answered 200 only after its hold was placed.
			t.Errorf("request %s (answered 200 by the killed node): no hold in the ledger", id)
			continue
		}
		_, recorded := costs[id]
		switch {
		case h.Node != node:
			t.Errorf("request %s: hold placed by %q, want the killed node %q", id, h.Node, node)
		case h.State == ledger.HoldPending:
			t.Errorf("request %s (answered 200 by the killed node): hold still pending after the restart", id)
		case h.ResolvedAt.Before(killedAt.Add(-time.Second)) && !recorded:
			t.Errorf("request %s: hold %s at %s, before the kill at %s, yet there is no usage record", id, h.State, h.ResolvedAt, killedAt)
		case recorded && h.State != ledger.HoldPosted:
			t.Errorf("request %s: has a usage record (cost %s) but its hold is %s, want posted", id, money.FormatNanos(costs[id]), h.State)
		case !recorded && h.State != ledger.HoldVoided:
			t.Errorf("request %s: has no usage record but its hold is %s, want voided", id, h.State)
		case h.State == ledger.HoldVoided:
			voided++
		default:
			posted++
		}
	}
	return voided, posted
}

// checkChargesAfterCrash checks, for each request a killed process answered
// 200, that its posted transfers sum to its usage record's cost when it has
// one, and that nothing was posted for it otherwise. It returns how many
// were charged.
func checkChargesAfterCrash(t *testing.T, ctx context.Context, st ledger.Store, ids []string) (charged int) {
	t.Helper()
	err := st.LedgerView(ctx, func(v ledger.Snapshot) error {
		for _, id := range ids {
			c, recorded, err := v.RecordCost(ctx, id)
			if err != nil {
				return err
			}
			cost := c.Cost
			ts, err := v.TransfersByRequest(ctx, id)
			if err != nil {
				return err
			}
			var sum int64
			for _, tr := range ts {
				switch {
				case tr.Flag == ledger.FlagPending || tr.Flag == ledger.FlagVoid:
					t.Errorf("request %s: a stored hold transfer %s (%s)", id, tr.ID, tr.Flag)
				case tr.Kind == ledger.KindRefund:
				default:
					sum += tr.Amount
				}
			}
			if c.SettledIn != 0 {
				// Posted by its batch's one transfer, which the audit
				// checks against the costs of the records naming it.
				sum += cost
			}
			switch {
			case recorded && sum != cost:
				t.Errorf("request %s: record costs %s, posted %s", id, money.FormatNanos(cost), money.FormatNanos(sum))
			case !recorded && len(ts) > 0:
				t.Errorf("request %s: no usage record, yet %d transfers", id, len(ts))
			case recorded:
				charged++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return charged
}

// counter is a concurrency-safe tally by name.
type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[name]++
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(c.m)
	return string(b)
}

// balanceWatch polls a tenant's balance until stopped and remembers the
// first reading that breaks the prepaid rule (never below zero, no debt).
type balanceWatch struct {
	stop     chan struct{}
	done     chan struct{}
	readings atomic.Int64
	bad      atomic.Value // string
	errs     atomic.Int64
}

func watchBalance(s *server, tenantID string, every time.Duration) *balanceWatch {
	w := &balanceWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
			b, err := s.tenantBalance(tenantID)
			if err != nil {
				w.errs.Add(1)
				continue
			}
			w.readings.Add(1)
			if b.Posted < 0 || b.Available < 0 || b.Debt != 0 {
				w.bad.CompareAndSwap(nil, fmt.Sprintf("posted %s, pending %s, available %s, debt %s",
					money.FormatNanos(b.Posted), money.FormatNanos(b.Pending), money.FormatNanos(b.Available), money.FormatNanos(b.Debt)))
			}
		}
	}()
	return w
}

// finish stops the watch and fails the test if a reading broke the rule.
func (w *balanceWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if bad, _ := w.bad.Load().(string); bad != "" {
		t.Errorf("a prepaid balance went below zero during the run: %s", bad)
	}
	if w.readings.Load() == 0 {
		t.Errorf("the balance was never read during the run (%d errors)", w.errs.Load())
	}
}
