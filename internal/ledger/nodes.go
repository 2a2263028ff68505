package ledger

// Nodes that share a store, and what becomes of a dead node's requests.
//
// A node writes its liveness into the store (TouchNode) every fourth of
// Options.NodeTimeout; the others take a node unseen for longer than that
// for dead and resolve its pending holds (ResolveLostNodes), as its own
// restart would (Reconcile). The request path checkpoints what a long
// request has delivered so far (Checkpoint): the ledger writes each
// request's latest checkpoint onto its hold, many in one transaction, so
// that a hold its node left behind is settled at what was delivered
// instead of voided. The rule for a hold resolved by anyone but its own
// request (sweepTx):
//
//  1. the request has a usage record: settled from it;
//  2. else it has a checkpoint: the checkpoint becomes its usage record
//     (incomplete, error class node_lost) and is settled (charged what was
//     delivered up to it, at most the hold; the rest is never known);
//  3. else it is voided, and its void transfer carries NoteLost: the audit
//     lists it among the requests the vendor may have billed that were
//     never charged (Report.Unbilled).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"baimo/internal/usage"
)

// NoteLost is the note of the void transfer of a hold resolved with nothing
// known of what its request delivered.
const NoteLost = "lost: resolved without a usage record or a checkpoint; the vendor may have billed it"

// Bounds on checkpoints.
const (
	maxCheckpoints    = 100_000 // requests whose latest checkpoint awaits writing
	maxCheckpointSize = 64 << 10
	maxLostNodes      = 64 // stale nodes resolved per round
)

// checkpoints holds the latest checkpoint of each request until the keeper
// writes them.
type checkpoints struct {
	mu      sync.Mutex
	pending map[string]usage.Record
	dropped int64 // beyond maxCheckpoints; the next one of a request replaces it
}

// Checkpoint notes, without waiting, what a request in flight has delivered
// so far: rec is its usage record as it would be written now (the usage up
// to this point, rated: Currency, CostNanos, PriceVersion, Lines), with
// RequestID naming its hold. The ledger writes the latest checkpoint of
// each request onto its hold within about Options.CheckpointEvery, many in
// one transaction. If the node then dies, whichever node resolves the hold
// settles it at that checkpoint (see the package's rule in nodes.go); a
// request that settles normally makes its checkpoints moot. Holds kept in
// memory (Options.Exclusive) have no row to write to: their checkpoints
// are dropped, as the holds themselves are lost with the process.
func (l *Ledger) Checkpoint(rec usage.Record) {
	if l.adm != nil || rec.RequestID == "" {
		return
	}
	c := &l.checkpoints
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[rec.RequestID]; !ok && len(c.pending) >= maxCheckpoints {
		c.dropped++
		return
	}
	if c.pending == nil {
		c.pending = map[string]usage.Record{}
	}
	rec.Complete, rec.ErrorClass = false, usage.ErrNodeLost
	c.pending[rec.RequestID] = rec
}

// FlushCheckpoints writes the checkpoints noted since the last flush onto
// their holds in one transaction. The keeper calls it every
// CheckpointEvery; tests call it directly. A checkpoint whose hold is no
// longer pending is dropped. The checkpoints dropped since the last flush
// (beyond maxCheckpoints) are logged.
func (l *Ledger) FlushCheckpoints(ctx context.Context) error {
	c := &l.checkpoints
	c.mu.Lock()
	batch, dropped := c.pending, c.dropped
	c.pending, c.dropped = nil, 0
	c.mu.Unlock()
	if dropped > 0 {
		// Their holds, if their node dies, are voided as lost instead of
		// settled at what was delivered: say so once per flush, not per
		// checkpoint.
		l.log.Warn("checkpoints dropped: too many requests awaiting their write", "dropped", dropped, "max", maxCheckpoints)
	}
	if len(batch) == 0 {
		return nil
	}
	enc := make(map[string]string, len(batch))
	for id, rec := range batch {
		b, err := json.Marshal(rec)
		if err != nil || len(b) > maxCheckpointSize {
			l.log.Warn("checkpoint not kept", "request_id", id, "bytes", len(b), "err", err)
			continue
		}
		enc[id] = string(b)
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	err := l.store.LedgerUpdate(ctx, func(tx Tx) error {
		for id, cp := range enc {
			if _, err := tx.CheckpointHold(ctx, id, cp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Keep them for the next flush unless newer ones came meanwhile.
		c.mu.Lock()
		for id, rec := range batch {
			if _, newer := c.pending[id]; !newer && len(c.pending) < maxCheckpoints {
				if c.pending == nil {
					c.pending = map[string]usage.Record{}
				}
				c.pending[id] = rec
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("write checkpoints: %w", err)
	}
	return nil
}

// Heartbeat records in the store that this node (Options.Node) is alive.
func (l *Ledger) Heartbeat(ctx context.Context) error {
	if l.opts.Node == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	now := l.clock.Now()
	return l.store.LedgerUpdate(ctx, func(tx Tx) error { return tx.TouchNode(ctx, l.opts.Node, now) })
}

// ResolveLostNodes resolves the pending holds of the nodes not seen for
// longer than Options.NodeTimeout (this one excepted), by the rule in
// nodes.go: a node that died leaves holds that no request of its will
// settle. A node cut off from the store for that long is taken for dead
// too: what its requests finish after that is charged in full if their
// hold was voided, and stays at the checkpoint's cost if it was settled
// from one.
func (l *Ledger) ResolveLostNodes(ctx context.Context) (SweepResult, error) {
	var out SweepResult
	if l.opts.NodeTimeout <= 0 {
		return out, nil
	}
	var nodes []string
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		var err error
		nodes, err = v.StaleNodes(ctx, l.clock.Now().Add(-l.opts.NodeTimeout), maxLostNodes)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("lost nodes: %w", err)
	}
	for _, n := range nodes {
		if n == l.opts.Node {
			continue
		}
		node := n
		r, err := l.resolve(ctx, HoldQuery{Node: &node})
		out.add(r)
		if err != nil {
			return out, err
		}
		if r.Settled+r.Voided+r.Failed > 0 {
			l.log.Warn("resolved the holds of a node not seen for longer than the node timeout", "node", n,
				"timeout", l.opts.NodeTimeout, "settled", r.Settled, "checkpointed", r.Checkpointed, "lost", r.Lost, "failed", r.Failed)
		}
	}
	return out, nil
}

// keep runs, until Close, the node's heartbeat and the resolution of lost
// nodes (every NodeTimeout/4) and the writing of checkpoints (every
// CheckpointEvery).
func (l *Ledger) keep() {
	defer close(l.keeperDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flush := l.clock.NewTicker(l.opts.CheckpointEvery)
	defer flush.Stop()
	var beatC <-chan time.Time
	if l.opts.NodeTimeout > 0 && l.opts.Node != "" {
		beat := l.clock.NewTicker(l.opts.NodeTimeout / 4)
		defer beat.Stop()
		beatC = beat.C()
		if err := l.Heartbeat(ctx); err != nil {
			l.log.Warn("node heartbeat", "err", err)
		}
	}
	for {
		select {
		case <-l.keeperStop:
			return
		case <-flush.C():
			if err := l.FlushCheckpoints(ctx); err != nil {
				l.log.Warn("checkpoints", "err", err)
			}
		case <-beatC:
			if err := l.Heartbeat(ctx); err != nil {
				l.log.Warn("node heartbeat", "err", err)
				continue // cut off: do not judge the others meanwhile
			}
			if _, err := l.ResolveLostNodes(ctx); err != nil {
				l.log.Warn("resolve lost nodes", "err", err)
			}
		}
	}
}

// checkpointOf returns the record a hold's last checkpoint holds, if any.
func checkpointOf(ctx context.Context, v View, h Hold) (usage.Record, bool, error) {
	cp, err := v.HoldCheckpoint(ctx, h.RequestID)
	switch {
	case errors.Is(err, ErrNotFound): // a hold kept in memory has no row
		return usage.Record{}, false, nil
	case err != nil:
		return usage.Record{}, false, err
	case cp == "":
		return usage.Record{}, false, nil
	}
	var rec usage.Record
	if err := json.Unmarshal([]byte(cp), &rec); err != nil {
		return usage.Record{}, false, fmt.Errorf("checkpoint of %s: %w", h.RequestID, err)
	}
	// The hold decides whose request it is.
	rec.RequestID, rec.TenantID, rec.KeyID = h.RequestID, h.TenantID, h.KeyID
	rec.Complete, rec.ErrorClass = false, usage.ErrNodeLost
	return rec, true, nil
}
