package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/postgres"
	"baimo/internal/store/sqlite"
)

// The cluster run: three nodes, one PostgreSQL, one Redis, one key.
const (
	clusterNodes    = 3
	clusterRequests = 200
	// clusterSpacing spreads the requests' starts over 1.6 s, so the run
	// lasts long enough for the rate limit to refill and for a node to be
	// killed and restarted while streams are open on all three.
	clusterSpacing = 8 * time.Millisecond
	// clusterKillAfter is the earliest node 1 is killed, counted from the
	// first send; the kill waits further until one of its streams has
	// delivered data (a race-built node on a busy machine can take longer
	// than this to open its first stream), but no longer than clusterKillBy.
	clusterKillAfter = 800 * time.Millisecond
	clusterKillBy    = 6 * time.Second
	// The key's limit: a burst of 50, then 30 requests a second. The run
	// offers 125 a second, so it exceeds the limit by far.
	clusterRPM   = 1800
	clusterBurst = 50
	// clusterTopUp covers about 35 of the ~120 requests the rate limit
	// admits (each costs about ¥0.00017 and holds about ¥0.00034), so the
	// balance runs out and insufficient_quota answers are part of the run.
	clusterTopUp = "0.006"
	// Each stream: 20 tokens 30 ms apart after 100 ms, about 0.7 s open;
	// max_tokens above the output keeps every cost within its hold.
	clusterOutputTokens = 20
	clusterTTFTms       = 100
	clusterTPOTms       = 30
	clusterMaxTokens    = 40
	// clusterSettleWait bounds the wait for the last holds to settle.
	clusterSettleWait = 20 * time.Second
)

// rateLimitSlack is the tolerance on the number of requests the key's limit
// admits across the three nodes. The Redis limiter is exact across nodes: one
// Lua script per request updates the key's GCRA meter atomically, in integer
// arithmetic, at the requesting node's clock (all nodes share this machine's
// clock), and a request stamped earlier than the meter's last update gets no
// leak credit. So from an empty meter, n admissions stamped within a span of
// w whole milliseconds obey n <= burst + floor(w × rpm / 60000), with no term
// per node: three nodes must admit no more than one would. The test takes w
// from its own clock, rounded outward (from the millisecond of its first send
// to the millisecond after its last answer), so every node's stamp lies
// inside it. The one request of slack is a margin for what the bound does not
// model (the nodes' and the test's clock reads are separate reads); it is
// neither per node nor proportional to the load, so a limiter that counted
// per node fails by far (run without Redis, this test saw 196 admitted
// against a bound of 101). The count checked is a lower estimate of the true
// one (requests the killed node admitted but never answered are not in it),
// so the bound stays sound with the kill; the lower bound is the burst, which
// a fresh meter must admit in full.
const rateLimitSlack = 1

// TestClusterOnPostgres is issue 4's and issue 7's multi-node test: three
// gateway processes on one PostgreSQL schema and one Redis drive 200
// streaming requests of one key with a rate limit against a prepaid balance
// that covers only part of them; one node is SIGKILLed mid-run and started
// again on the same address. Afterwards the rate limit held within
// rateLimitSlack, no hold is pending, the balance is exactly the top-up minus
// the recorded costs and never went below zero, the holds the kill cut were
// resolved by the restarted node's reconciliation, and the audit is clean.
func TestClusterOnPostgres(t *testing.T) {
	pgEnv, redisAddr := os.Getenv("BAIMO_TEST_POSTGRES"), os.Getenv("BAIMO_TEST_REDIS")
	switch {
	case pgEnv == "" && redisAddr == "":
		t.Skip("BAIMO_TEST_POSTGRES and BAIMO_TEST_REDIS are unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable and 127.0.0.1:6379); skipping the multi-node test")
	case pgEnv == "":
		t.Skip("BAIMO_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the multi-node test")
	case redisAddr == "":
		t.Skip("BAIMO_TEST_REDIS is unset (e.g. 127.0.0.1:6379); skipping the multi-node test")
	}
	dsn := postgresSchemaDSN(t)
	prefix := redisTestPrefix(t, redisAddr)
	simURL := startSim(t)
	// The limiter fails closed, and this test counts every 503 as a defect:
	// its budget per Redis call is 1 s instead of the default 50 ms, which
	// a race-built node on a machine busy with the whole suite can exceed
	// on a healthy Redis. The budget itself is ratelimit's TestRedisPartition's.
	cfg := fmt.Sprintf(`sim: {enabled: false}
channels:
  - {name: sim, kind: openai, base_url: "%s/v1", models: [sim-chat]}
rate_limits:
  key: {rpm: %d, burst: %d}
  redis: {addr: "%s", prefix: "%s", fail_open: false, timeout: 1s}
billing: {currency: CNY}
`, simURL, clusterRPM, clusterBurst, redisAddr, prefix)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	adminKey := "adm-" + randomHex(t, 16)
	nodes := make([]*gatewayNode, clusterNodes)
	for i := range nodes {
		nodes[i] = newGatewayNode(t, fmt.Sprintf("node %d", i), adminKey,
			"--postgres", dsn, "--data", t.TempDir(), "--config", cfgPath)
		nodes[i].start(t)
	}
	const victim = 1
	tenantID := "mn-" + randomHex(t, 4)
	key := newPrepaidTenant(t, nodes[0].api(), tenantID, clusterTopUp)
	topUp, err := money.ParseNanos(clusterTopUp)
	if err != nil {
		t.Fatal(err)
	}

	// The run. A node that is never killed watches the balance meanwhile.
	client := newLoadClient()
	body := chatStreamBody(clusterOutputTokens, clusterTTFTms, clusterTPOTms, clusterMaxTokens)
	watch := watchBalance(nodes[2].api(), tenantID, 20*time.Millisecond)
	outcomes := make([]streamOutcome, clusterRequests)
	var wg sync.WaitGroup
	victimStreaming := make(chan struct{})
	var victimOnce sync.Once
	runStart := time.Now()
	for i := range clusterRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(runStart.Add(time.Duration(i) * clusterSpacing)))
			node := i % clusterNodes
			var firstData func()
			if node == victim {
				firstData = func() { victimOnce.Do(func() { close(victimStreaming) }) }
			}
			o := streamChat(client, "http://"+nodes[node].Addr, key.Key, fmt.Sprintf("mn-%03d", i), body, firstData)
			o.Node = node
			outcomes[i] = o
		}()
	}
	time.Sleep(time.Until(runStart.Add(clusterKillAfter)))
	select {
	case <-victimStreaming:
	case <-time.After(time.Until(runStart.Add(clusterKillBy))):
	}
	killedAt := nodes[victim].kill(t)
	restarted := nodes[victim].start(t)
	wg.Wait()
	watch.finish(t)

	// Every answer is 200, a 429 of the rate limit or of the balance, or an
	// error from the killed node while it was down or cut mid-stream.
	var tally counter
	admitted, rateLimited, noQuota := 0, 0, 0
	var oldNodeServed []string // request ids the killed process answered 200
	lastAnswer := runStart
	for i, o := range outcomes {
		if o.Status != 0 && o.Answered.After(lastAnswer) {
			lastAnswer = o.Answered
		}
		onKilled := o.Node == victim && o.Sent.Before(restarted.ready)
		if o.Status == 200 && onKilled && o.Sent.Before(killedAt) {
			oldNodeServed = append(oldNodeServed, o.RequestID)
		}
		switch {
		case o.Status == 200 && o.Finished && o.Err == nil:
			tally.add("200")
			admitted++
		case o.Status == 429 && o.Err == nil && o.ErrorCode == "rate_limit_exceeded":
			tally.add("429 rate_limit_exceeded")
			rateLimited++
		case o.Status == 429 && o.Err == nil && o.ErrorCode == "insufficient_quota":
			tally.add("429 insufficient_quota")
			admitted++ // the rate limit let it through; the ledger refused it
			noQuota++
		case o.Err != nil && onKilled && o.Status == 200 && o.Sent.Before(killedAt):
			tally.add("200 cut by the kill")
			admitted++
		case o.Err != nil && onKilled:
			tally.add("connection error (killed node)")
		default:
			t.Errorf("request %d to node %d, sent %s into the run (kill at %s, restarted at %s): status %d, code %q, finished %v, err %v",
				i, o.Node, o.Sent.Sub(runStart), killedAt.Sub(runStart), restarted.ready.Sub(runStart), o.Status, o.ErrorCode, o.Finished, o.Err)
		}
	}
	windowMs := lastAnswer.UnixMilli() + 1 - runStart.UnixMilli()
	maxAdmitted := clusterBurst + int(windowMs*clusterRPM/60000) + rateLimitSlack
	t.Logf("answers: %s; admitted by the rate limit %d (at most %d in %d ms), killed at %s, node %d ready again at %s",
		tally.String(), admitted, maxAdmitted, windowMs, killedAt.Sub(runStart), victim, restarted.ready.Sub(runStart))
	if admitted > maxAdmitted {
		t.Errorf("the key's limit (rpm %d, burst %d) admitted %d requests in %d ms across %d nodes; at most %d allowed (burst + rpm × window + %d)",
			clusterRPM, clusterBurst, admitted, windowMs, clusterNodes, maxAdmitted, rateLimitSlack)
	}
	if admitted < clusterBurst {
		t.Errorf("the key's limit admitted only %d requests; a fresh meter must admit its burst of %d", admitted, clusterBurst)
	}
	if rateLimited == 0 || noQuota == 0 || len(oldNodeServed) == 0 {
		t.Errorf("the run did not exercise what it is for: %d rate-limited, %d insufficient_quota, %d streams on the killed node; all must be above 0 (tune the constants)",
			rateLimited, noQuota, len(oldNodeServed))
	}

	// The books: nothing pending once the live nodes' last batches are in
	// (the restarted node reconciled the killed one's holds at start), and
	// the balance exactly the top-up minus what the records cost.
	admin := nodes[0].api()
	final := settledBalance(t, admin, tenantID, clusterSettleWait)
	recs, spent := tenantRecords(t, admin, tenantID)
	want, err := money.AddNanos(topUp, -spent)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("balance: top-up %s, %d records costing %s, posted %s", clusterTopUp, len(recs), money.FormatNanos(spent), money.FormatNanos(final.Posted))
	if final.Posted != want || final.Available != final.Posted || final.Debt != 0 {
		t.Errorf("balance after the run: posted %s, available %s, debt %s; want posted = available = %s (top-up %s − recorded costs %s) and no debt",
			money.FormatNanos(final.Posted), money.FormatNanos(final.Available), money.FormatNanos(final.Debt),
			money.FormatNanos(want), clusterTopUp, money.FormatNanos(spent))
	}
	if final.Posted < 0 {
		t.Errorf("prepaid balance below zero: %s", money.FormatNanos(final.Posted))
	}
	byID := map[string]costRecord{}
	for _, r := range recs {
		byID[r.RequestID] = r
	}
	lost := 0
	for i, o := range outcomes {
		if o.Status != 200 || !o.Finished {
			continue
		}
		r, ok := byID[o.RequestID]
		switch {
		case !ok && o.Node == victim && o.Sent.Before(killedAt):
			lost++ // finished just before the kill; its batch died with the process
		case !ok:
			t.Errorf("request %d (%s) finished on node %d but has no usage record", i, o.RequestID, o.Node)
		case r.Status != 200 || !r.Complete || r.nanos <= 0:
			t.Errorf("request %d: record %+v, want status 200, complete, a positive cost", i, r)
		}
	}

	// The killed process's streams: each hold resolved by the restarted
	// node's reconciliation, posted exactly when its record was written.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holds, costs, pending, err := holdsOf(ctx, db, oldNodeServed)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range pending {
		t.Errorf("hold %s (node %s, %s) still pending after the run", h.RequestID, h.Node, money.FormatNanos(h.Amount))
	}
	voided, posted := checkHoldsAfterCrash(t, holds, costs, oldNodeServed, nodes[victim].nodeID(t), killedAt)
	t.Logf("killed node: %d streams answered 200, holds posted %d, voided %d (of which finished but unrecorded: %d)", len(oldNodeServed), posted, voided, lost)
	if voided > 0 && !strings.Contains(restarted.out.String(), "reconciled holds left by a previous run") {
		t.Errorf("%d holds of the killed node were voided, but the restarted node did not log its reconciliation", voided)
	}

	checkAdminAudit(t, admin)
	for _, n := range nodes {
		n.stop(t)
	}
	runAuditCLI(t, "--postgres", dsn)
}

// crashSeeds is how many seeded kill points each store gets.
const crashSeeds = 3

// TestCrashMidStream is issue 4's crash test: a gateway process serving
// streams of a prepaid tenant is SIGKILLed at a seeded point, started again
// on the same data and address, and then no hold is pending, each cut
// request's hold was resolved by the start-up reconciliation (posted when its
// record was written, voided otherwise), the balance is exactly the top-up
// minus the recorded costs, and the audit is clean. It runs on SQLite, and on
// PostgreSQL too when BAIMO_TEST_POSTGRES is set. BAIMO_E2E_SEED replays a
// run (the seed is printed).
func TestCrashMidStream(t *testing.T) {
	base := time.Now().UnixNano()
	if s := os.Getenv("BAIMO_E2E_SEED"); s != "" {
		var err error
		if base, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("BAIMO_E2E_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seeds %d..%d (replay with BAIMO_E2E_SEED=%d)", base, base+crashSeeds-1, base)
	stores := []string{"sqlite"}
	if os.Getenv("BAIMO_TEST_POSTGRES") != "" {
		stores = append(stores, "postgres")
	} else {
		t.Log("BAIMO_TEST_POSTGRES is unset: crash runs on SQLite only")
	}
	for _, st := range stores {
		for i := range int64(crashSeeds) {
			seed := base + i
			t.Run(fmt.Sprintf("%s/seed=%d", st, seed), func(t *testing.T) { crashOnce(t, st, seed) })
		}
	}
}

// reconciledLine matches the restarted gateway's report of its start-up
// reconciliation.
var reconciledLine = regexp.MustCompile(`reconciled holds left by a previous run" settled=(\d+) voided=(\d+)`)

func crashOnce(t *testing.T, store string, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6261696d6f))
	dataDir := t.TempDir()
	args := []string{"--data", dataDir}
	auditArgs := []string{"--data", dataDir}
	dsn := ""
	if store == "postgres" {
		dsn = postgresSchemaDSN(t)
		args = append(args, "--postgres", dsn)
		auditArgs = []string{"--postgres", dsn}
	}
	n := newGatewayNode(t, "node", "adm-"+randomHex(t, 16), args...)
	n.start(t)
	api := n.api()
	const topUpText = "0.05"
	topUp, err := money.ParseNanos(topUpText)
	if err != nil {
		t.Fatal(err)
	}
	key := newPrepaidTenant(t, api, "crash", topUpText)
	newPrepaidTenant(t, api, "bystander", topUpText) // the audit then checks more than one account
	client := newLoadClient()

	// Two requests that finish, so the books hold settled holds too.
	for i := range 2 {
		o := streamChat(client, api.URL, key.Key, fmt.Sprintf("crash-pre-%d", i), chatStreamBody(5, 0, 0, 64), nil)
		if o.Status != 200 || !o.Finished || o.Err != nil {
			t.Fatalf("request before the crash: status %d, finished %v, err %v", o.Status, o.Finished, o.Err)
		}
	}

	// 1 to 4 streams of 5 to 44 tokens 20 ms apart, started within 200 ms;
	// SIGKILL lands 0 to 1 s after the first token arrived, so it cuts
	// some streams mid-way and finds others finished or not yet started.
	streams := 1 + rng.IntN(4)
	type plan struct{ delay, tokens int }
	plans := make([]plan, streams)
	for i := range plans {
		plans[i] = plan{delay: rng.IntN(200), tokens: 5 + rng.IntN(40)}
	}
	killDelay := time.Duration(rng.IntN(1000)) * time.Millisecond
	t.Logf("seed %d: streams %+v, kill %s after the first token", seed, plans, killDelay)

	first := make(chan struct{})
	var once sync.Once
	outs := make([]streamOutcome, streams)
	var wg sync.WaitGroup
	for i, p := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(p.delay) * time.Millisecond)
			outs[i] = streamChat(client, api.URL, key.Key, fmt.Sprintf("crash-%d", i), chatStreamBody(p.tokens, 20, 20, 64),
				func() { once.Do(func() { close(first) }) })
		}()
	}
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatalf("no stream produced a token within 30 s")
	}
	time.Sleep(killDelay)
	killedAt := n.kill(t)
	wg.Wait()
	restarted := n.start(t)

	var ids []string
	for i, o := range outs {
		switch {
		case o.Status == 200 && o.Finished && o.Err == nil:
		case o.Err != nil && (o.Status == 0 || o.Status == 200):
			// cut mid-stream, or refused while the node was down
		default:
			t.Errorf("stream %d: status %d, code %q, finished %v, err %v", i, o.Status, o.ErrorCode, o.Finished, o.Err)
		}
		if o.Status == 200 {
			ids = append(ids, o.RequestID)
		}
	}

	// Reconcile runs before the node listens: nothing may be pending now.
	b, err := api.tenantBalance("crash")
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 0 {
		t.Errorf("after the restart %s is still pending; the start-up reconciliation should have resolved every hold of the killed process",
			money.FormatNanos(b.Pending))
	}
	checkBooks := func(when string) {
		t.Helper()
		b := settledBalance(t, api, "crash", 10*time.Second)
		recs, spent := tenantRecords(t, api, "crash")
		want, err := money.AddNanos(topUp, -spent)
		if err != nil {
			t.Fatal(err)
		}
		if b.Posted != want || b.Available != b.Posted || b.Debt != 0 || b.Posted < 0 {
			t.Errorf("%s: posted %s, available %s, debt %s; want posted = available = %s (top-up %s − %d records costing %s), no debt",
				when, money.FormatNanos(b.Posted), money.FormatNanos(b.Available), money.FormatNanos(b.Debt),
				money.FormatNanos(want), topUpText, len(recs), money.FormatNanos(spent))
		}
	}
	checkBooks("after the restart")
	checkAdminAudit(t, api)

	// The restarted node bills as before.
	if o := streamChat(client, api.URL, key.Key, "crash-post", chatStreamBody(5, 0, 0, 64), nil); o.Status != 200 || !o.Finished || o.Err != nil {
		t.Errorf("request after the restart: status %d, finished %v, err %v", o.Status, o.Finished, o.Err)
	}
	checkBooks("after a request to the restarted node")

	m := reconciledLine.FindStringSubmatch(restarted.out.String())
	n.stop(t)

	// Hold by hold, read from the store once the node is stopped.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st interface {
		ledger.Store
		Close() error
	}
	if dsn != "" {
		st, err = postgres.Open(ctx, dsn)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dataDir, "baimo.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	holds, costs, pending, err := holdsOf(ctx, st, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range pending {
		t.Errorf("hold %s (%s) still pending", h.RequestID, money.FormatNanos(h.Amount))
	}
	var voided, posted int
	if dsn != "" {
		voided, posted = checkHoldsAfterCrash(t, holds, costs, ids, n.nodeID(t), killedAt)
	} else {
		// On the embedded store the only process keeps its holds in memory
		// (ledger.Options.Exclusive): none is a row, and the kill lost those
		// of the cut streams. What must hold is the same: each request is
		// charged its recorded cost exactly when it has a record.
		if len(holds) > 0 {
			t.Errorf("holds stored for requests %v; a single SQLite node keeps them in memory", slices.Collect(maps.Keys(holds)))
		}
		posted = checkChargesAfterCrash(t, ctx, st, ids)
	}
	reconciled := 0
	if m != nil {
		s, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		reconciled = s + v
	}
	// Every voided hold was pending at the kill; holds of requests cut
	// before their answer (no id known here) may add to the count.
	if reconciled < voided {
		t.Errorf("the restarted node reports %d holds reconciled, but %d holds of cut streams were voided", reconciled, voided)
	}
	t.Logf("seed %d: %d streams answered 200; holds posted %d, voided %d; start-up reconciliation resolved %d", seed, len(ids), posted, voided, reconciled)
	runAuditCLI(t, auditArgs...)
}
