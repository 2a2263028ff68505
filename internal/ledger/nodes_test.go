package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// Several gateway nodes on one store: each is a ledger.Ledger with its own
// Options.Node, as a process would be (a SQLite store can be shared by
// several ledgers of one process).

// nodeStore wraps the store the nodes share: it counts their write
// transactions, records the checkpoints they write onto holds, and fails
// what a test tells it to.
type nodeStore struct {
	ledger.Store
	dry      atomic.Bool // record checkpoints without writing them (no holds behind them)
	failTx   atomic.Bool // write transactions run, then fail and roll back
	failView atomic.Bool // read snapshots fail
	cutOff   atomic.Bool // TouchNode fails: the node cannot say it is alive
	badRead  atomic.Bool // HoldCheckpoint fails
	badWrite atomic.Bool // CheckpointHold fails

	mu      sync.Mutex
	updates int               // write transactions begun
	written map[string]string // request id -> the last checkpoint a committed transaction wrote
	during  func()            // if set, called inside the next write transaction, before it ends
}

func (s *nodeStore) LedgerUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	s.mu.Lock()
	s.updates++
	during := s.during
	s.during = nil
	s.mu.Unlock()
	var written map[string]string
	err := s.Store.LedgerUpdate(ctx, func(tx ledger.Tx) error {
		written = map[string]string{}
		if err := fn(nodeTx{Tx: tx, s: s, written: written}); err != nil {
			return err
		}
		if during != nil {
			during()
		}
		if s.failTx.Load() {
			return errInjected
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		if s.written == nil {
			s.written = map[string]string{}
		}
		maps.Copy(s.written, written)
		s.mu.Unlock()
	}
	return err
}

func (s *nodeStore) LedgerView(ctx context.Context, fn func(ledger.Snapshot) error) error {
	if s.failView.Load() {
		return errInjected
	}
	return s.Store.LedgerView(ctx, fn)
}

// take returns the write transactions begun and the checkpoints written
// since the last take.
func (s *nodeStore) take() (int, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, w := s.updates, s.written
	s.updates, s.written = 0, nil
	return n, w
}

// whileWriting sets what the next write transaction calls before it ends.
func (s *nodeStore) whileWriting(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.during = f
}

type nodeTx struct {
	ledger.Tx
	s       *nodeStore
	written map[string]string
}

func (tx nodeTx) CheckpointHold(ctx context.Context, requestID, checkpoint string) (bool, error) {
	if tx.s.badWrite.Load() {
		return false, errInjected
	}
	tx.written[requestID] = checkpoint
	if tx.s.dry.Load() {
		return true, nil
	}
	return tx.Tx.CheckpointHold(ctx, requestID, checkpoint)
}

var errCutOff = errors.New("cut off from the store")

func (tx nodeTx) TouchNode(ctx context.Context, node string, at time.Time) error {
	if tx.s.cutOff.Load() {
		return errCutOff
	}
	return tx.Tx.TouchNode(ctx, node, at)
}

func (tx nodeTx) HoldCheckpoint(ctx context.Context, requestID string) (string, error) {
	if tx.s.badRead.Load() {
		return "", errInjected
	}
	return tx.Tx.HoldCheckpoint(ctx, requestID)
}

// stillTicks is a fake clock whose tickers never fire: the keeper of a
// ledger on it heartbeats once as it starts (with a NodeTimeout), and never
// flushes, heartbeats or resolves by itself; the test's calls do it all.
type stillTicks struct{ *clock.Fake }

func (c stillTicks) NewTicker(d time.Duration) clock.Ticker { return clock.NewFake(t0).NewTicker(d) }

// newNode starts a ledger on s with o, on clk's time with still tickers,
// logging into logs (if not nil), and waits for the heartbeat its keeper
// writes as it starts, if it does.
func newNode(t *testing.T, s ledger.Store, clk *clock.Fake, logs *lockedLog, o ledger.Options) *ledger.Ledger {
	t.Helper()
	o.Clock = stillTicks{clk}
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	l := ledger.New(s, o)
	t.Cleanup(func() { l.Close() })
	if o.Node != "" && o.NodeTimeout > 0 {
		waitSeen(t, s, o.Node, clk.Now())
	}
	return l
}

// waitSeen waits until node was last seen at at or later.
func waitSeen(t *testing.T, s ledger.Store, node string, at time.Time) {
	t.Helper()
	eventually(t, fmt.Sprintf("node %s seen at %s", node, at.Format(time.TimeOnly)), func() bool {
		return slices.Contains(staleNodes(t, s, at.Add(time.Hour)), node) && !slices.Contains(staleNodes(t, s, at), node)
	})
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a background goroutine, the keeper, has to act).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// staleNodes returns the nodes last seen before before.
func staleNodes(t *testing.T, s ledger.Store, before time.Time) []string {
	t.Helper()
	var nodes []string
	if err := s.LedgerView(context.Background(), func(v ledger.Snapshot) error {
		var err error
		nodes, err = v.StaleNodes(context.Background(), before, 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// touch records that node was last seen at at.
func touch(t *testing.T, s ledger.Store, node string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := s.LedgerUpdate(ctx, func(tx ledger.Tx) error { return tx.TouchNode(ctx, node, at) }); err != nil {
		t.Fatal(err)
	}
}

// fund creates the prepaid tenant acme with 10 CNY.
func fund(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * yuan}); err != nil {
		t.Fatal(err)
	}
}

// holdFor holds 2 CNY of acme's for request id of key k1 on node l.
func holdFor(t *testing.T, l *ledger.Ledger, id string) {
	t.Helper()
	if _, err := l.Hold(context.Background(), ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1",
		Amount: money.New(2*yuan, money.CNY)}); err != nil {
		t.Fatal(err)
	}
}

func holdOf(t *testing.T, s ledger.Store, id string) ledger.Hold {
	t.Helper()
	var h ledger.Hold
	if err := s.LedgerView(context.Background(), func(v ledger.Snapshot) error {
		var err error
		h, err = v.Hold(context.Background(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func checkpointOn(t *testing.T, s ledger.Store, id string) string {
	t.Helper()
	var cp string
	if err := s.LedgerView(context.Background(), func(v ledger.Snapshot) error {
		var err error
		cp, err = v.HoldCheckpoint(context.Background(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return cp
}

func recordOf(t *testing.T, db *sqlite.DB, id string) usage.Record {
	t.Helper()
	page, err := db.ListRecords(context.Background(), usage.Filter{RequestID: id})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("record of %s: %+v, %v; want one", id, page.Records, err)
	}
	return page.Records[0]
}

func wantStates(t *testing.T, s ledger.Store, want map[string]ledger.HoldState) {
	t.Helper()
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if h := holdOf(t, s, id); h.State != want[id] {
			t.Errorf("hold %s is %s, want %s", id, h.State, want[id])
		}
	}
}

// resolved matches the log line of the holds of a lost node resolved.
var resolvedLine = regexp.MustCompile(`msg="resolved the holds of a node not seen for longer than the node timeout" node=(\S+) timeout=\S+ ` +
	`settled=(\d+) checkpointed=(\d+) lost=(\d+) failed=(\d+)`)

// resolvedLogs returns, by node, the counts logged for its resolution
// ("settled/checkpointed/lost/failed"), one entry per line.
func resolvedLogs(logs *lockedLog) map[string][]string {
	out := map[string][]string{}
	for _, m := range resolvedLine.FindAllStringSubmatch(logs.String(), -1) {
		out[m[1]] = append(out[m[1]], strings.Join(m[2:], "/"))
	}
	return out
}

// TestLostNodeResolvedByOthers: a node dies with three requests in flight:
// one that checkpointed what it had delivered, one that had not yet, one
// whose record was written. Until it has gone unseen for longer than the
// node timeout nothing is resolved; then another node settles the first
// at its last checkpoint (its record is the checkpoint, incomplete,
// node_lost), voids the second as lost and settles the third from its
// record, and says so in one warning; a third node resolving after it
// finds nothing, and the hold of that live node (its heartbeats written)
// is left alone. The books
// balance and the audit lists the lost request as unbilled.
func TestLostNodeResolvedByOthers(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	const timeout = 30 * time.Second
	opts := func(node string) ledger.Options { return ledger.Options{Node: node, NodeTimeout: timeout} }
	dead := newNode(t, db, clk, logs, opts("node0"))
	survivor := newNode(t, db, clk, logs, opts("node1"))
	racer := newNode(t, db, clk, logs, opts("node2"))
	fund(t, survivor)
	for _, id := range []string{"streaming", "silent", "recorded"} {
		holdFor(t, dead, id)
	}
	holdFor(t, racer, "alive")
	partial := usage.Record{RequestID: "streaming", TenantID: "acme", KeyID: "k1", Model: "m", Channel: "c", Status: 200, Stream: true,
		Start: t0, Usage: usage.Usage{Input: 100, Output: 40}, Currency: "CNY", CostNanos: yuan / 2, PriceVersion: "m/CNY/v1"}
	dead.Checkpoint(partial)
	partial.Usage.Output, partial.CostNanos = 90, yuan
	dead.Checkpoint(partial)
	if err := dead.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteRecords(ctx, []usage.Record{{RequestID: "recorded", TenantID: "acme", KeyID: "k1", Model: "m", Status: 200,
		Start: t0, Currency: "CNY", CostNanos: yuan / 4, Complete: true}}); err != nil {
		t.Fatal(err)
	}
	dead.Close()

	// The others go on beating; the dead node's last heartbeat was at t0.
	resolveAt := func(d time.Duration, l *ledger.Ledger, want ledger.SweepResult) {
		t.Helper()
		clk.Set(t0.Add(d))
		for _, l := range []*ledger.Ledger{survivor, racer} {
			if err := l.Heartbeat(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := l.ResolveLostNodes(ctx); err != nil || r != want {
			t.Fatalf("%s after the dead node's last heartbeat: resolved %+v, %v; want %+v", d, r, err, want)
		}
	}
	resolveAt(timeout-time.Nanosecond, survivor, ledger.SweepResult{})
	resolveAt(timeout, survivor, ledger.SweepResult{}) // unseen for the timeout, not longer
	if got := resolvedLogs(logs); len(got) != 0 {
		t.Errorf("resolutions logged before the timeout: %v", got)
	}
	resolveAt(timeout+time.Nanosecond, survivor, ledger.SweepResult{Settled: 2, Voided: 1, Checkpointed: 1, Lost: 1})
	resolveAt(timeout+time.Second, racer, ledger.SweepResult{})
	if got, want := resolvedLogs(logs), map[string][]string{"node0": {"2/1/1/0"}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("resolutions logged %v, want %v (settled/checkpointed/lost/failed)", got, want)
	}

	if r := recordOf(t, db, "streaming"); r.Complete || r.ErrorClass != usage.ErrNodeLost || r.CostNanos != yuan || r.Usage.Output != 90 ||
		r.TenantID != "acme" || r.KeyID != "k1" || r.PriceVersion != "m/CNY/v1" || !r.Stream || r.Channel != "c" {
		t.Errorf("record from the checkpoint: %+v; want the last checkpoint (90 output tokens, 1 CNY), incomplete, node_lost", r)
	}
	wantStates(t, db, map[string]ledger.HoldState{"streaming": ledger.HoldPosted, "silent": ledger.HoldVoided,
		"recorded": ledger.HoldPosted, "alive": ledger.HoldPending})
	if _, err := racer.Settle(ctx, ledger.Settlement{Record: record("alive", yuan/10)}); err != nil {
		t.Fatal(err)
	}
	if b := balance(t, survivor); b.Posted != 10*yuan-yuan-yuan/4-yuan/10 || b.Pending != 0 {
		t.Errorf("balance %+v; want 10 CNY less the checkpoint (1), the record (0.25) and the live request (0.1), nothing pending", b)
	}
	rep, err := ledger.Audit(ctx, db, clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !slices.Equal(rep.Unbilled, []string{"silent"}) {
		t.Errorf("audit ok %v, unbilled %v; want ok and [silent]: %+v", rep.OK, rep.Unbilled, rep.Failed())
	}
}

// TestResolveCountsAndWarnings: one resolution of several lost nodes
// counts what it did with each hold, and logs one warning per node that
// had holds (with its counts), none for a node that had none; a hold whose
// settlement fails counts as failed and stays pending; a second resolution
// finds nothing left.
func TestResolveCountsAndWarnings(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	judge := newNode(t, db, clk, logs, ledger.Options{Node: "judge", NodeTimeout: time.Minute})
	fund(t, judge)
	placer := func(node string) *ledger.Ledger { return newNode(t, db, clk, nil, ledger.Options{Node: node}) }
	mixed, voided, settled, failing := placer("mixed"), placer("voided"), placer("settled"), placer("failing")
	for l, ids := range map[*ledger.Ledger][]string{mixed: {"m-rec", "m-lost"}, voided: {"v-lost"}, settled: {"s-rec"}, failing: {"f-usd"}} {
		for _, id := range ids {
			holdFor(t, l, id)
		}
	}
	if err := db.WriteRecords(ctx, []usage.Record{record("m-rec", yuan), record("s-rec", yuan)}); err != nil {
		t.Fatal(err)
	}
	// A checkpoint in another currency than the account's: its settlement fails.
	failing.Checkpoint(usage.Record{RequestID: "f-usd", Currency: "USD", CostNanos: yuan})
	if err := failing.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"mixed", "voided", "settled", "failing", "empty"} {
		touch(t, db, n, t0.Add(-time.Hour+time.Duration(i)*time.Second))
	}
	clk.Advance(time.Second)
	if err := judge.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := judge.ResolveLostNodes(ctx)
	if want := (ledger.SweepResult{Settled: 2, Voided: 2, Failed: 1, Lost: 2}); err != nil || r != want {
		t.Errorf("resolution: %+v, %v; want %+v", r, err, want)
	}
	want := map[string][]string{"mixed": {"1/0/1/0"}, "voided": {"0/0/1/0"}, "settled": {"1/0/0/0"}, "failing": {"0/0/0/1"}}
	if got := resolvedLogs(logs); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("resolutions logged %v, want %v (settled/checkpointed/lost/failed)", got, want)
	}
	wantStates(t, db, map[string]ledger.HoldState{"m-rec": ledger.HoldPosted, "m-lost": ledger.HoldVoided,
		"v-lost": ledger.HoldVoided, "s-rec": ledger.HoldPosted, "f-usd": ledger.HoldPending})
	// The failed one is tried again by the next round; voided by hand, it
	// leaves nothing to resolve.
	if r, err := judge.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{Failed: 1}) {
		t.Errorf("second resolution: %+v, %v; want the failing hold failed again", r, err)
	}
	if _, err := judge.Void(ctx, "f-usd"); err != nil {
		t.Fatal(err)
	}
	if r, err := judge.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Errorf("third resolution: %+v, %v; want nothing", r, err)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestNodeNeverResolvesItsOwnHolds: a node unseen for longer than the
// timeout by its own account (its heartbeats could not be written) still
// leaves its own holds to its requests, while it resolves another's.
func TestNodeNeverResolvesItsOwnHolds(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	self := newNode(t, db, clk, logs, ledger.Options{Node: "self", NodeTimeout: time.Minute})
	other := newNode(t, db, clk, nil, ledger.Options{Node: "other"})
	fund(t, self)
	holdFor(t, self, "mine")
	holdFor(t, other, "theirs")
	touch(t, db, "other", t0)
	clk.Advance(2 * time.Minute)
	if got := staleNodes(t, db, clk.Now().Add(-time.Minute)); !slices.Equal(got, []string{"self", "other"}) && !slices.Equal(got, []string{"other", "self"}) {
		t.Fatalf("stale nodes %v, want self and other", got)
	}
	if r, err := self.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{Voided: 1, Lost: 1}) {
		t.Errorf("resolution: %+v, %v; want the other node's hold voided as lost", r, err)
	}
	wantStates(t, db, map[string]ledger.HoldState{"mine": ledger.HoldPending, "theirs": ledger.HoldVoided})
	if got := resolvedLogs(logs); len(got) != 1 || len(got["other"]) != 1 {
		t.Errorf("resolutions logged %v, want the other node's only", got)
	}
	if _, err := self.Settle(ctx, ledger.Settlement{Record: record("mine", yuan)}); err != nil {
		t.Fatal(err)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestNoResolutionWithoutATimeout: the keeper of a node with no
// NodeTimeout, or with no name, never writes a heartbeat (nor does
// Heartbeat with no name), and a node with no NodeTimeout resolves no other
// node's holds, however long unseen.
func TestNoResolutionWithoutATimeout(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := clock.NewFake(t0)
	gone := newNode(t, db, clk, nil, ledger.Options{Node: "gone"})
	fund(t, gone)
	holdFor(t, gone, "r1")
	touch(t, db, "gone", t0.Add(-24*time.Hour))
	// Real tickers here: a keeper that would beat gets the chance.
	unnamed := ledger.New(db, ledger.Options{Clock: clk, NodeTimeout: time.Minute})
	untimed := ledger.New(db, ledger.Options{Clock: clk, Node: "untimed"})
	if err := unnamed.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := untimed.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{}) {
		t.Errorf("resolution with no NodeTimeout: %+v, %v; want nothing", r, err)
	}
	clk.Advance(time.Minute)
	unnamed.Close() // waits for its keeper
	untimed.Close()
	if got := staleNodes(t, db, clk.Now().Add(time.Hour)); !slices.Equal(got, []string{"gone"}) {
		t.Errorf("nodes seen: %v; want only gone (neither an unnamed nor an untimed node beats)", got)
	}
	wantStates(t, db, map[string]ledger.HoldState{"r1": ledger.HoldPending})
	if _, err := gone.Void(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestResolveLostNodesFailures: a resolution that cannot read the stale
// nodes, or cannot write, returns the store's error.
func TestResolveLostNodesFailures(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	s := &nodeStore{Store: db}
	clk := clock.NewFake(t0)
	judge := newNode(t, s, clk, nil, ledger.Options{Node: "judge", NodeTimeout: time.Minute})
	gone := newNode(t, db, clk, nil, ledger.Options{Node: "gone"})
	fund(t, judge)
	holdFor(t, gone, "r1")
	touch(t, db, "gone", t0.Add(-time.Hour))
	s.failView.Store(true)
	if _, err := judge.ResolveLostNodes(ctx); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "lost nodes") {
		t.Errorf("resolution that cannot read: %v; want the lost nodes' error", err)
	}
	s.failView.Store(false)
	s.failTx.Store(true)
	if r, err := judge.ResolveLostNodes(ctx); !errors.Is(err, errInjected) || r != (ledger.SweepResult{}) {
		t.Errorf("resolution that cannot write: %+v, %v; want the injected error", r, err)
	}
	s.failTx.Store(false)
	wantStates(t, db, map[string]ledger.HoldState{"r1": ledger.HoldPending})
	if r, err := judge.ResolveLostNodes(ctx); err != nil || r != (ledger.SweepResult{Voided: 1, Lost: 1}) {
		t.Errorf("resolution once the store answers: %+v, %v; want the hold voided as lost", r, err)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestCheckpointOfTheHold: a hold is settled from its checkpoint as the
// hold says: its request, tenant and key, whatever the checkpoint names,
// incomplete and node_lost; a checkpoint that cannot be read (not JSON, or
// the store failing) is logged and its hold voided as lost.
func TestCheckpointOfTheHold(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	s := &nodeStore{Store: db}
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	judge := newNode(t, s, clk, logs, ledger.Options{Node: "judge", NodeTimeout: time.Minute})
	gone := newNode(t, db, clk, nil, ledger.Options{Node: "gone"})
	unread := newNode(t, db, clk, nil, ledger.Options{Node: "unread"})
	fund(t, judge)
	holdFor(t, gone, "foreign")
	holdFor(t, gone, "garbled")
	holdFor(t, unread, "unread")
	foreign, err := json.Marshal(usage.Record{RequestID: "someone-else", TenantID: "other", KeyID: "k9", Model: "m", Status: 200,
		Complete: true, Currency: "CNY", CostNanos: yuan / 2, Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	valid, err := json.Marshal(record("unread", yuan))
	if err != nil {
		t.Fatal(err)
	}
	for id, cp := range map[string]string{"foreign": string(foreign), "garbled": `{"CostNanos": 1`, "unread": string(valid)} {
		if err := db.LedgerUpdate(ctx, func(tx ledger.Tx) error {
			ok, err := tx.CheckpointHold(ctx, id, cp)
			if !ok && err == nil {
				err = fmt.Errorf("hold %s not pending", id)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(want ledger.SweepResult) {
		t.Helper()
		if r, err := judge.ResolveLostNodes(ctx); err != nil || r != want {
			t.Errorf("resolution: %+v, %v; want %+v", r, err, want)
		}
	}
	// The store fails to read the checkpoint of node unread's hold.
	touch(t, db, "gone", clk.Now())
	touch(t, db, "unread", t0.Add(-time.Hour))
	s.badRead.Store(true)
	resolve(ledger.SweepResult{Voided: 1, Lost: 1})
	s.badRead.Store(false)
	touch(t, db, "gone", t0.Add(-time.Hour))
	resolve(ledger.SweepResult{Settled: 1, Checkpointed: 1, Voided: 1, Lost: 1})
	wantStates(t, db, map[string]ledger.HoldState{"foreign": ledger.HoldPosted, "garbled": ledger.HoldVoided, "unread": ledger.HoldVoided})
	if r := recordOf(t, db, "foreign"); r.TenantID != "acme" || r.KeyID != "k1" || r.Complete || r.ErrorClass != usage.ErrNodeLost || r.CostNanos != yuan/2 {
		t.Errorf("record from the checkpoint: %+v; want acme's, key k1, incomplete, node_lost, 0.5 CNY", r)
	}
	if page, err := db.ListRecords(ctx, usage.Filter{RequestID: "someone-else"}); err != nil || len(page.Records) != 0 {
		t.Errorf("records of the request the checkpoint named: %+v, %v; want none", page.Records, err)
	}
	for _, id := range []string{"garbled", "unread"} {
		if !regexp.MustCompile(`level=ERROR msg="checkpoint unreadable; the hold is voided" request_id=` + id + ` err=`).MatchString(logs.String()) {
			t.Errorf("no error logged for the checkpoint of %s:\n%s", id, logs)
		}
	}
	rep, err := ledger.Audit(ctx, db, clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !slices.Equal(slices.Sorted(slices.Values(rep.Unbilled)), []string{"garbled", "unread"}) {
		t.Errorf("audit ok %v, unbilled %v; want ok and [garbled unread]: %+v", rep.OK, rep.Unbilled, rep.Failed())
	}
}

// written returns the checkpoint a ledger writes for rec: its record as
// it stands, incomplete and node_lost whatever it says.
func written(t *testing.T, rec usage.Record) string {
	t.Helper()
	rec.Complete, rec.ErrorClass = false, usage.ErrNodeLost
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckpointsWrittenOntoTheirHolds: the latest checkpoint of each
// request is written onto its hold, incomplete and node_lost, all in one
// transaction; one naming no request is ignored; with nothing noted a
// flush writes nothing (not even an empty transaction); a checkpoint of a
// request settled meanwhile is moot: its hold keeps what it had, and it is
// not tried again.
func TestCheckpointsWrittenOntoTheirHolds(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	s := &nodeStore{Store: db}
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	l := newNode(t, s, clk, logs, ledger.Options{Node: "n1"})
	fund(t, l)
	holdFor(t, l, "r1")
	holdFor(t, l, "r2")
	first := record("r1", yuan/4)
	first.Complete, first.ErrorClass = true, usage.ErrInternal
	l.Checkpoint(first)
	latest := record("r1", yuan/2)
	latest.Complete = true
	l.Checkpoint(latest)
	l.Checkpoint(record("r2", yuan/3))
	l.Checkpoint(record("", yuan))
	flush := func() (int, map[string]string) {
		t.Helper()
		s.take()
		if err := l.FlushCheckpoints(ctx); err != nil {
			t.Fatal(err)
		}
		return s.take()
	}
	want := map[string]string{"r1": written(t, latest), "r2": written(t, record("r2", yuan/3))}
	if n, w := flush(); n != 1 || !maps.Equal(w, want) {
		t.Errorf("flush: %d transactions writing %q; want one writing the latest of r1 and r2's", n, w)
	}
	for id, cp := range want {
		if got := checkpointOn(t, db, id); got != cp {
			t.Errorf("checkpoint on hold %s: %s; want %s", id, got, cp)
		}
	}
	if n, w := flush(); n != 0 || len(w) != 0 {
		t.Errorf("flush with nothing noted: %d transactions writing %v; want none", n, w)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan/2)}); err != nil {
		t.Fatal(err)
	}
	l.Checkpoint(record("r1", yuan))
	if n, _ := flush(); n != 1 {
		t.Errorf("flush of a moot checkpoint: %d transactions; want one", n)
	}
	if got := checkpointOn(t, db, "r1"); got != want["r1"] {
		t.Errorf("checkpoint on the settled hold: %s; want the one before it settled", got)
	}
	if n, w := flush(); n != 0 || len(w) != 0 {
		t.Errorf("flush after a moot checkpoint: %d transactions writing %v; want none", n, w)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r2", yuan/3)}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "checkpoint") {
		t.Errorf("checkpoints logged:\n%s", logs)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestCheckpointsOfHoldsInMemoryIgnored: an exclusive ledger keeps holds in
// memory, with no row to write a checkpoint onto: it notes none and its
// flush writes nothing.
func TestCheckpointsOfHoldsInMemoryIgnored(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	s := &nodeStore{Store: db}
	clk := clock.NewFake(t0)
	l := ledger.New(s, ledger.Options{Clock: clk, Exclusive: true})
	t.Cleanup(func() { l.Close() })
	fund(t, l)
	holdFor(t, l, "r1")
	if n := l.Stats().HeldInMemory; n != 1 {
		t.Fatalf("%d holds in memory, want 1", n)
	}
	s.take()
	l.Checkpoint(record("r1", yuan))
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if n, w := s.take(); n != 0 || len(w) != 0 {
		t.Errorf("flush of an exclusive ledger: %d transactions writing %v; want none", n, w)
	}
	if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan)}); err != nil {
		t.Fatal(err)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestCheckpointSizeBound: a checkpoint of up to 64 KiB of JSON is
// written; a larger one, or one that cannot be encoded, is not kept, and
// a warning says so.
func TestCheckpointSizeBound(t *testing.T) {
	ctx := context.Background()
	s := &nodeStore{Store: openStore(t)}
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	l := newNode(t, s, clk, logs, ledger.Options{Node: "n1"})
	fits := usage.Record{RequestID: "fits", ErrorClass: usage.ErrNodeLost}
	fits.Model = strings.Repeat("x", 64<<10-len(written(t, fits)))
	if n := len(written(t, fits)); n != 64<<10 {
		t.Fatalf("checkpoint of %d bytes, want 64 KiB", n)
	}
	over := fits
	over.RequestID, over.Model = "over", fits.Model+"x"
	unencodable := usage.Record{RequestID: "unencodable", Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} // JSON times end at year 9999
	for _, rec := range []usage.Record{fits, over, unencodable} {
		l.Checkpoint(rec)
	}
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if _, w := s.take(); !maps.Equal(w, map[string]string{"fits": written(t, fits)}) {
		t.Errorf("written: %d checkpoints (%v); want the one of 64 KiB only", len(w), slices.Sorted(maps.Keys(w)))
	}
	for _, line := range []string{`level=WARN msg="checkpoint not kept" request_id=over bytes=65537 err=<nil>`,
		`level=WARN msg="checkpoint not kept" request_id=unencodable bytes=0 err=`} {
		if strings.Count(logs.String(), line) != 1 {
			t.Errorf("want one warning %s, logged:\n%s", line, logs)
		}
	}
}

// TestCheckpointsKeptWhenTheWriteFails: checkpoints whose write failed
// (the transaction, or the store refusing one) are written by the next
// flush, unless a newer one of the same request came meanwhile: that one
// is written.
func TestCheckpointsKeptWhenTheWriteFails(t *testing.T) {
	ctx := context.Background()
	s := &nodeStore{Store: openStore(t)}
	s.dry.Store(true)
	clk := clock.NewFake(t0)
	l := newNode(t, s, clk, nil, ledger.Options{Node: "n1"})
	l.Checkpoint(record("a", 1))
	l.Checkpoint(record("b", 1))
	s.failTx.Store(true)
	s.whileWriting(func() { l.Checkpoint(record("a", 2)) })
	if err := l.FlushCheckpoints(ctx); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "write checkpoints") {
		t.Fatalf("flush through a failing store: %v; want its error", err)
	}
	if _, w := s.take(); len(w) != 0 {
		t.Fatalf("a failed write wrote %v", w)
	}
	s.failTx.Store(false)
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if _, w := s.take(); !maps.Equal(w, map[string]string{"a": written(t, record("a", 2)), "b": written(t, record("b", 1))}) {
		t.Errorf("next flush wrote %q; want a's newer checkpoint and b's", w)
	}
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if n, w := s.take(); n != 0 || len(w) != 0 {
		t.Errorf("then a flush ran %d transactions writing %v; want none", n, w)
	}
	// The same when the store refuses the checkpoint itself.
	l.Checkpoint(record("c", 1))
	s.badWrite.Store(true)
	if err := l.FlushCheckpoints(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("flush through a store refusing the checkpoint: %v; want its error", err)
	}
	s.badWrite.Store(false)
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if _, w := s.take(); !maps.Equal(w, map[string]string{"c": written(t, record("c", 1))}) {
		t.Errorf("next flush wrote %v; want c's checkpoint", w)
	}
}

// TestCheckpointBound: at most 100,000 requests' checkpoints await their
// write: a new request's beyond that is dropped, and so is a checkpoint
// whose write failed while others filled the bound; a newer one of a
// request already noted still replaces it; the next flush warns once of
// how many were dropped since the last.
func TestCheckpointBound(t *testing.T) {
	ctx := context.Background()
	s := &nodeStore{Store: openStore(t)}
	s.dry.Store(true)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	l := newNode(t, s, clk, logs, ledger.Options{Node: "n1"})
	const bound = 100_000
	// While the write of "old" fails, the checkpoints of 100,000 others come.
	l.Checkpoint(record("old", 1))
	s.failTx.Store(true)
	s.whileWriting(func() {
		for i := range bound {
			l.Checkpoint(usage.Record{RequestID: fmt.Sprintf("r%06d", i)})
		}
	})
	if err := l.FlushCheckpoints(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("flush through a failing store: %v; want its error", err)
	}
	s.failTx.Store(false)
	newer := usage.Record{RequestID: "r000000", CostNanos: 7}
	l.Checkpoint(newer)
	l.Checkpoint(usage.Record{RequestID: "beyond1"})
	l.Checkpoint(usage.Record{RequestID: "beyond2"})
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	_, w := s.take()
	_, old := w["old"]
	if _, beyond := w["beyond1"]; len(w) != bound || old || beyond || w["r000000"] != written(t, newer) {
		t.Errorf("written %d checkpoints, old's %v, beyond1's %v, r000000's %s; want %d, not old's nor beyond1's, the newer r000000's",
			len(w), old, beyond, w["r000000"], bound)
	}
	const line = `level=WARN msg="checkpoints dropped: too many requests awaiting their write" dropped=2 max=100000`
	if n := strings.Count(logs.String(), "checkpoints dropped"); n != 1 || !strings.Contains(logs.String(), line) {
		t.Errorf("logged %d warnings of dropped checkpoints, want one: %s", n, line)
	}
	// Counted afresh: the next flush has none to report.
	l.Checkpoint(usage.Record{RequestID: "beyond1"})
	if err := l.FlushCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	if _, w := s.take(); len(w) != 1 || strings.Count(logs.String(), "checkpoints dropped") != 1 {
		t.Errorf("next flush wrote %d checkpoints, logged:\n%s", len(w), logs)
	}
}

// TestKeeperWritesCheckpoints: the keeper writes the checkpoints noted
// every CheckpointEvery; a write that fails is logged and the checkpoint
// written at the next tick.
func TestKeeperWritesCheckpoints(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	s := &nodeStore{Store: db}
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	const every = 2 * time.Second
	l := ledger.New(s, ledger.Options{Clock: clk, Node: "n1", CheckpointEvery: every, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { l.Close() })
	fund(t, l)
	holdFor(t, l, "r1")
	eventually(t, "the keeper's ticker", func() bool { return clk.Waiters() == 1 })
	step := func(rec usage.Record) {
		t.Helper()
		l.Checkpoint(rec)
		clk.Advance(every)
		eventually(t, "checkpoint "+written(t, rec), func() bool { return checkpointOn(t, db, "r1") == written(t, rec) })
	}
	step(record("r1", yuan))
	s.failTx.Store(true)
	l.Checkpoint(record("r1", 2*yuan))
	clk.Advance(every)
	eventually(t, "the failed write logged", func() bool { return strings.Contains(logs.String(), "level=WARN msg=checkpoints err=") })
	s.failTx.Store(false)
	clk.Advance(every)
	eventually(t, "the checkpoint written at the next tick", func() bool { return checkpointOn(t, db, "r1") == written(t, record("r1", 2*yuan)) })
	step(record("r1", 3*yuan))
	if _, err := l.Settle(ctx, ledger.Settlement{Record: record("r1", yuan)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n := strings.Count(logs.String(), "msg=checkpoints"); n != 1 {
		t.Errorf("%d warnings of checkpoints, want the failed write's only:\n%s", n, logs)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestKeeperBeatsAndResolves: the keeper writes the node's heartbeat as it
// starts and every fourth of the node timeout, and resolves the holds of
// a node unseen for longer than the timeout.
func TestKeeperBeatsAndResolves(t *testing.T) {
	db := openStore(t)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	const timeout = 40 * time.Second
	gone := newNode(t, db, clk, nil, ledger.Options{Node: "gone"})
	fund(t, gone)
	holdFor(t, gone, "r1")
	touch(t, db, "gone", t0)
	l := ledger.New(db, ledger.Options{Clock: clk, Node: "live", NodeTimeout: timeout, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { l.Close() })
	eventually(t, "the keeper's tickers", func() bool { return clk.Waiters() == 2 })
	waitSeen(t, db, "live", t0)
	for range 5 {
		clk.Advance(timeout / 4)
		waitSeen(t, db, "live", clk.Now())
	}
	// At 50 s, gone has been unseen for longer than the timeout.
	eventually(t, "r1 resolved", func() bool { return holdOf(t, db, "r1").State == ledger.HoldVoided })
	l.Close()
	if got, want := resolvedLogs(logs), map[string][]string{"gone": {"0/0/1/0"}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("resolutions logged %v, want %v", got, want)
	}
	if strings.Contains(logs.String(), "node heartbeat") || strings.Contains(logs.String(), "resolve lost nodes") {
		t.Errorf("keeper failures logged:\n%s", logs)
	}
	storetest.AuditClean(t, db, clk.Now())
}

// TestKeeperCutOff: a keeper that cannot write its heartbeat logs it and
// judges no other node meanwhile (it may be the one cut off); one that
// cannot read the stale nodes logs that.
func TestKeeperCutOff(t *testing.T) {
	db := openStore(t)
	s := &nodeStore{Store: db}
	s.cutOff.Store(true)
	clk := clock.NewFake(t0)
	logs := &lockedLog{}
	const timeout = 40 * time.Second
	gone := newNode(t, db, clk, nil, ledger.Options{Node: "gone"})
	fund(t, gone)
	holdFor(t, gone, "r1")
	touch(t, db, "gone", t0.Add(-time.Hour))
	l := ledger.New(s, ledger.Options{Clock: clk, Node: "live", NodeTimeout: timeout, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { l.Close() })
	failures := func(what string, n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d warnings %q", n, what), func() bool { return strings.Count(logs.String(), `level=WARN msg="`+what+`" err=`) == n })
	}
	failures("node heartbeat", 1) // as it starts
	eventually(t, "the keeper's tickers", func() bool { return clk.Waiters() == 2 })
	clk.Advance(timeout / 4)
	failures("node heartbeat", 2)
	s.cutOff.Store(false)
	s.failView.Store(true)
	clk.Advance(timeout / 4)
	failures("resolve lost nodes", 1)
	l.Close()
	wantStates(t, db, map[string]ledger.HoldState{"r1": ledger.HoldPending})
	if got := resolvedLogs(logs); len(got) != 0 {
		t.Errorf("resolutions logged %v, want none", got)
	}
	if _, err := gone.Void(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
	storetest.AuditClean(t, db, clk.Now())
}
