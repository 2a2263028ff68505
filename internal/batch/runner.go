package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/billing"
	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// The runner: every Poll, each node claims the active batches no live
// runner holds (their lease ended) and runs them, renewing the lease as it
// goes. A batch's run requeues the lines a dead runner left running,
// settles again the results it kept but may not have settled, reserves
// anew what its pending lines may cost (a restart lost the reservation of a
// single node; the survivors released a dead node's), then starts lines in
// pages, each page's holds exchanged out of the reservation, and keeps and
// settles their results. It stops for a cancel or at the deadline, and
// ends by writing the results files and releasing what is left.

// stats are the runner's counters, for metrics.
type stats struct {
	created, succeeded, errored, retried atomic.Int64
	costNanos                            atomic.Int64
	inflight                             atomic.Int64
}

// Stats are a node's batch counters.
type Stats struct {
	Created   int64 // batches created on this node
	Running   int   // batches this node runs now
	InFlight  int64 // lines in flight
	Succeeded int64 // lines with a 2xx answer, kept
	Errored   int64 // lines with an error answer, kept
	Retried   int64 // line runs that will run again
	CostNanos int64 // the kept lines' cost
	// Progress is, per batch this node runs, its lines ended and total.
	Progress map[string][2]int
}

// Stats returns the node's counters.
func (s *Service) Stats() Stats {
	st := Stats{Created: s.stats.created.Load(), InFlight: s.stats.inflight.Load(), Succeeded: s.stats.succeeded.Load(),
		Errored: s.stats.errored.Load(), Retried: s.stats.retried.Load(), CostNanos: s.stats.costNanos.Load(),
		Progress: map[string][2]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Running = len(s.jobs)
	for id, j := range s.jobs {
		st.Progress[id] = [2]int{int(j.ended.Load()), j.b.Doc.Total}
	}
	return st
}

// Drain stops starting lines on this node and waits until those in flight
// end (each kept and settled, or left to run again), or ctx ends. Stop the
// runner (Run's context) after it.
func (s *Service) Drain(ctx context.Context) error {
	s.stopping.Store(true)
	t := s.opt.Clock.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.stats.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
	return nil
}

// Kick asks the runner to look for work now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run claims and runs batches until ctx ends, then waits for the runs to
// stop (their lines in flight end as ctx's cancellation makes them).
func (s *Service) Run(ctx context.Context) {
	t := s.opt.Clock.NewTicker(s.opt.Poll)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s.claim(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-s.kick:
		}
	}
}

// claim starts a run of each batch this node can take.
func (s *Service) claim(ctx context.Context, wg *sync.WaitGroup) {
	if s.stopping.Load() {
		return
	}
	now := s.opt.Clock.Now()
	bs, err := s.opt.Store.Claimable(ctx, s.opt.Node, now, 16)
	if err != nil {
		if ctx.Err() == nil {
			s.opt.Log.Warn("look for batches to run", "err", err)
		}
		return
	}
	for _, b := range bs {
		s.mu.Lock()
		_, running := s.jobs[b.ID]
		s.mu.Unlock()
		if running {
			continue
		}
		b, ok, err := s.opt.Store.Claim(ctx, b.ID, s.opt.Node, now, now.Add(s.opt.Lease))
		if err != nil || !ok {
			continue
		}
		j := s.newJob(ctx, b)
		s.mu.Lock()
		s.jobs[b.ID] = j
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.run()
			s.mu.Lock()
			delete(s.jobs, b.ID)
			s.mu.Unlock()
		}()
	}
}

// stopLocal tells this node's run of a batch to look at it again now.
func (s *Service) stopLocal(id string) {
	s.mu.Lock()
	j := s.jobs[id]
	s.mu.Unlock()
	if j != nil {
		select {
		case j.poke <- struct{}{}:
		default:
		}
	}
}

// maxAttempts bounds the runs of a line whose failures are worth another.
const maxAttempts = 8

// pageSize is the most lines started (and exchanged) at once.
const pageSize = 256

// lineHoldTTL is how long a started line's hold lives.
const lineHoldTTL = time.Hour

// job is one node's run of one batch, at one epoch.
type job struct {
	s      *Service
	b      Batch
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	poke   chan struct{} // look at the batch again (a cancel)
	key    *keys.Key
	target Target
	keep   *keeper
	pace   *pacer

	ended atomic.Int64 // lines ended, for progress

	mu       sync.Mutex
	inflight int
	wake     chan struct{} // a line ended
	settled  []int
	retries  []retryLine
	attempts map[int]int
}

type retryLine struct {
	line Line
	body []byte
	held bool
	at   time.Time
}

func (s *Service) newJob(ctx context.Context, b Batch) *job {
	j := &job{s: s, b: b, log: s.opt.Log.With("batch", b.ID), poke: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		attempts: map[int]int{}}
	j.ctx, j.cancel = context.WithCancel(ctx)
	return j
}

// run runs the batch from where it stands until it ends, or until this
// node stops or loses it.
func (j *job) run() {
	defer j.cancel()
	renewed := make(chan struct{})
	go func() { defer close(renewed); j.renew() }()
	defer func() { j.cancel(); <-renewed }()
	t, ok := Targets[j.b.Endpoint]
	if !ok {
		j.log.Error("batch of an unknown endpoint", "endpoint", j.b.Endpoint)
		return
	}
	j.target = t
	var err error
	var ch *gateway.Channel
	var model string
	if j.b.Status == InProgress || j.b.Status == Cancelling {
		if ch, model, err = j.vendorChannel(); err != nil {
			j.log.Error("batch run stopped; another run continues it", "err", err)
			return
		}
	}
	switch {
	case ch != nil && (j.b.Status == InProgress || j.b.Doc.Vendor != nil && j.b.Doc.Vendor.BatchID != ""):
		err = j.startVendor(ch, model)
	case j.b.Status == InProgress:
		err = j.runLines()
	case j.b.Status == Cancelling:
		err = j.end(Cancelled)
	case j.b.Status == Finalizing:
		err = j.finish(j.b.Doc.Ending)
	}
	if err != nil && j.ctx.Err() == nil {
		j.log.Error("batch run stopped; another run continues it", "err", err)
	}
}

// renew extends the lease until the run ends; a lease lost (another runner
// took the batch) or not renewed in time stops the run.
func (j *job) renew() {
	s := j.s
	t := s.opt.Clock.NewTicker(s.opt.Lease / 3)
	defer t.Stop()
	until := j.b.LeaseUntil
	for {
		select {
		case <-j.ctx.Done():
			return
		case <-t.C():
		}
		now := s.opt.Clock.Now()
		next := now.Add(s.opt.Lease)
		ok, err := s.opt.Store.Renew(j.ctx, j.b.ID, j.b.Epoch, next)
		switch {
		case err == nil && ok:
			until = next
		case err == nil:
			j.log.Warn("another runner took the batch; this one stops")
			j.cancel()
			return
		case !now.Before(until.Add(-s.opt.Lease / 6)):
			j.log.Warn("the batch's lease could not be renewed; this run stops", "err", err)
			j.cancel()
			return
		}
	}
}

// runLines runs the batch's lines until none is left, then finishes it.
func (j *job) runLines() error {
	s := j.s
	ctx := j.ctx
	k, err := s.key(ctx, j.b.KeyID)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return err
	}
	if k == nil {
		j.log.Warn("the batch's API key is gone: the batch is cancelled")
		return j.cancelNow()
	}
	j.key = k
	j.pace = newPacer(s, j)
	if _, err := s.opt.Store.Requeue(ctx, j.b.ID, j.b.Epoch); err != nil {
		return err
	}
	if err := j.settleKept(); err != nil {
		return err
	}
	if err := j.reserve(); err != nil {
		return err
	}
	j.keep = newKeeper(j)
	defer j.keep.close()
	lastLook := s.opt.Clock.Now()
	for {
		if err := ctx.Err(); err != nil {
			j.drain()
			return err
		}
		if s.stopping.Load() { // the node stops: another run continues
			j.drain()
			return nil
		}
		now := s.opt.Clock.Now()
		look := now.Sub(lastLook) >= time.Second
		select {
		case <-j.poke:
			look = true
		default:
		}
		if look {
			lastLook = now
			b, err := s.opt.Store.Batch(ctx, j.b.ID)
			if err == nil && b.Status == Cancelling {
				j.b.Status, j.b.CancelledAt = b.Status, b.CancelledAt
				j.drain()
				return j.end(Cancelled)
			}
			if k, err := s.key(ctx, j.b.KeyID); errors.Is(err, keys.ErrNotFound) || (err == nil && !usable(k, now)) {
				j.log.Warn("the batch's API key is disabled, expired or gone: the batch is cancelled")
				j.drain()
				return j.cancelNow()
			}
			j.flushSettled()
		}
		if !now.Before(j.b.ExpiresAt) {
			j.drain()
			return j.end(Expired)
		}
		if wait := j.pace.window(now); wait > 0 {
			j.sleep(min(wait, time.Second))
			continue
		}
		started := j.startRetries(now)
		n := j.takeSlots(pageSize)
		var lines []Line
		if n > 0 {
			lines, err = s.opt.Store.StartLines(ctx, j.b.ID, j.b.Epoch, n)
			if err != nil {
				j.giveSlots(n)
				if ctx.Err() != nil {
					continue
				}
				return err
			}
			j.giveSlots(n - len(lines))
			if len(lines) > 0 {
				j.dispatch(lines)
				started = true
			}
		}
		if !started {
			j.mu.Lock()
			idle := j.inflight == 0 && len(j.retries) == 0
			j.mu.Unlock()
			if idle {
				return j.finish(Completed)
			}
			j.sleep(100 * time.Millisecond)
		}
	}
}

func usable(k *keys.Key, now time.Time) bool {
	ok, _ := k.Usable(now)
	return ok
}

// cancelNow cancels the batch itself (its key is gone) and ends it.
func (j *job) cancelNow() error {
	if _, err := j.s.opt.Store.Cancel(j.ctx, j.b.ID, []Status{InProgress}, j.s.opt.Clock.Now()); err != nil && !errors.Is(err, ErrEnded) {
		return err
	}
	j.b.Status = Cancelling
	return j.end(Cancelled)
}

// sleep waits d, a line's end, or a poke, whichever comes first.
func (j *job) sleep(d time.Duration) {
	t := j.s.opt.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-j.ctx.Done():
	case <-t.C():
	case <-j.wake:
	case <-j.poke:
		select { // let the loop see the poke
		case j.poke <- struct{}{}:
		default:
		}
	}
}

// takeSlots takes up to n of the node's line slots that are free now.
func (j *job) takeSlots(n int) int {
	got := 0
	for got < n {
		select {
		case j.s.slots <- struct{}{}:
			got++
			continue
		default:
		}
		break
	}
	return got
}

func (j *job) giveSlots(n int) {
	for range n {
		<-j.s.slots
	}
}

// drain waits for the lines in flight to end.
func (j *job) drain() {
	for {
		j.mu.Lock()
		n := j.inflight
		j.mu.Unlock()
		if n == 0 {
			j.flushSettled()
			return
		}
		t := j.s.opt.Clock.NewTimer(50 * time.Millisecond)
		select {
		case <-j.wake:
		case <-t.C():
		}
		t.Stop()
	}
}

// reserve replaces the batch's reservation by one of what its pending
// lines may cost, when this run is not the batch's first (the first keeps
// the one its creation placed): a restart lost the reservation kept in
// memory, and a runner that died left its own for the survivors.
func (j *job) reserve() error {
	s := j.s
	d := &j.b.Doc
	if j.b.Epoch <= 1 && d.Reservation != "" {
		return nil
	}
	sum, err := s.opt.Store.PendingHold(j.ctx, j.b.ID)
	if err != nil {
		return err
	}
	x := billing.Exchange{TenantID: j.b.TenantID, KeyID: j.b.KeyID, Release: d.Reservation}
	next := ""
	if sum > 0 {
		next = ledger.ReservationID(j.b.ID)
		x.Holds = []billing.Hold{{ID: next, Amount: sum, TTL: s.reservationTTL(&j.b, s.opt.Clock.Now())}}
	}
	if err := s.opt.Money.Exchange(j.ctx, x); err != nil {
		j.log.Warn("the batch's pending lines could not be reserved again; each holds for itself as it starts", "err", err)
		s.release(j.ctx, &j.b)
		next, sum = "", 0
	}
	d.Reservation, d.Remaining = next, sum
	return j.saveDoc()
}

// saveDoc writes the batch's doc as this run has it.
func (j *job) saveDoc() error {
	ok, err := j.s.opt.Store.SetBatch(j.ctx, j.b.ID, j.b.Epoch, j.b.Status, j.b.Status, j.b.Doc)
	if err == nil && !ok {
		err = ErrFenced
	}
	return err
}

// exchange moves the holds of lines out of the reservation; false when
// they are not held ahead (no reservation, or the exchange failed).
func (j *job) exchange(lines []Line) bool {
	s := j.s
	d := &j.b.Doc
	if d.Reservation == "" {
		return false
	}
	x := billing.Exchange{TenantID: j.b.TenantID, KeyID: j.b.KeyID, Release: d.Reservation}
	var sum int64
	for _, l := range lines {
		if l.Hold > 0 {
			x.Holds = append(x.Holds, billing.Hold{ID: RequestID(j.b.ID, l.CustomID), Amount: l.Hold, TTL: lineHoldTTL})
			sum += l.Hold
		}
	}
	next, left := "", max(d.Remaining-sum, 0)
	if left > 0 {
		next = ledger.ReservationID(j.b.ID)
		x.Holds = append(x.Holds, billing.Hold{ID: next, Amount: left, TTL: s.reservationTTL(&j.b, s.opt.Clock.Now())})
	}
	if err := s.opt.Money.Exchange(j.ctx, x); err != nil {
		j.log.Warn("lines not held out of the batch's reservation; each holds for itself", "lines", len(lines), "err", err)
		return false
	}
	d.Reservation, d.Remaining = next, left
	if err := j.saveDoc(); err != nil && !errors.Is(err, ErrFenced) {
		j.log.Warn("the batch's reservation not recorded", "err", err)
	}
	return true
}

// dispatch starts lines whose slots were taken.
func (j *job) dispatch(lines []Line) {
	held := j.exchange(lines)
	bodies, err := j.bodies(lines)
	if err != nil {
		j.log.Error("read lines of the input file", "err", err)
		idx := make([]int, len(lines))
		for i, l := range lines {
			idx[i] = l.Index
		}
		_ = j.s.opt.Store.Retry(j.ctx, j.b.ID, j.b.Epoch, idx)
		j.giveSlots(len(lines))
		return
	}
	for i := range lines {
		j.start(lines[i], bodies[i], held)
	}
}

// maxSpan bounds one read of consecutive lines' bodies.
const maxSpan = 16 << 20

// bodies reads the lines' request bodies from the input file, the lines
// of a page in one read when they are close together.
func (j *job) bodies(lines []Line) ([][]byte, error) {
	ctx, blobs := j.ctx, j.s.opt.Blobs
	out := make([][]byte, len(lines))
	first, last := lines[0], lines[len(lines)-1]
	span := last.Offset + last.Length - first.Offset
	if span > 0 && span <= maxSpan {
		b, err := blobs.ReadAt(ctx, j.b.InputFileID, first.Offset, span)
		if err != nil {
			return nil, err
		}
		for i, l := range lines {
			o := l.Offset - first.Offset
			if o < 0 || o+l.Length > int64(len(b)) {
				return nil, fmt.Errorf("line %d outside the read", l.Index)
			}
			out[i] = b[o : o+l.Length : o+l.Length]
		}
		return out, nil
	}
	for i, l := range lines {
		b, err := blobs.ReadAt(ctx, j.b.InputFileID, l.Offset, l.Length)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// start runs one line, whose slot was taken.
func (j *job) start(l Line, body []byte, held bool) {
	j.mu.Lock()
	j.inflight++
	j.attempts[l.Index]++
	last := j.attempts[l.Index] >= maxAttempts
	j.mu.Unlock()
	j.s.stats.inflight.Add(1)
	go func() {
		defer func() {
			j.s.stats.inflight.Add(-1)
			j.giveSlots(1)
			j.mu.Lock()
			j.inflight--
			j.mu.Unlock()
			select {
			case j.wake <- struct{}{}:
			default:
			}
		}()
		if err := j.pace.wait(j.ctx, l); err != nil {
			return // the run stops: the line is requeued by the next one
		}
		var hold int64
		if held {
			hold = l.Hold
		}
		res := j.s.opt.Gateway.ServeLine(j.ctx, gateway.LineRequest{ID: RequestID(j.b.ID, l.CustomID), Key: j.key,
			Format: j.target.Format, Endpoint: j.target.Endpoint, Body: body, HeldAhead: hold, LastTry: last,
			Persist: func(r *gateway.LineResult) error { return j.keep.keep(l, r) }})
		switch {
		case res.Kept:
			j.ended.Add(1)
			if res.Status >= 200 && res.Status < 300 {
				j.s.stats.succeeded.Add(1)
			} else {
				j.s.stats.errored.Add(1)
			}
			if res.Settled {
				j.mu.Lock()
				j.settled = append(j.settled, l.Index)
				full := len(j.settled) >= pageSize
				j.mu.Unlock()
				if full {
					j.flushSettled()
				}
			}
		case errors.Is(res.Err, ErrFenced):
			j.cancel()
		case j.ctx.Err() != nil:
			// The run stops; the line stays running and the next run requeues it.
		default:
			j.s.stats.retried.Add(1)
			j.mu.Lock()
			j.retries = append(j.retries, retryLine{line: l, body: body, held: held, at: j.s.opt.Clock.Now().Add(backoff(res.Retry, j.attempts[l.Index]))})
			j.mu.Unlock()
		}
	}()
}

// backoff is how long a line waits before its next run: what the answer
// asked, doubling with its runs, at most a minute.
func backoff(asked time.Duration, attempts int) time.Duration {
	d := time.Second << min(attempts-1, 6)
	return min(max(d, asked), time.Minute)
}

// startRetries starts the lines whose next run is due, as slots allow.
func (j *job) startRetries(now time.Time) bool {
	j.mu.Lock()
	var due []retryLine
	keep := j.retries[:0]
	for _, r := range j.retries {
		if !r.at.After(now) {
			due = append(due, r)
		} else {
			keep = append(keep, r)
		}
	}
	j.retries = keep
	j.mu.Unlock()
	started := false
	for i, r := range due {
		if j.takeSlots(1) == 0 {
			j.mu.Lock()
			j.retries = append(j.retries, due[i:]...)
			j.mu.Unlock()
			break
		}
		j.start(r.line, r.body, r.held)
		started = true
	}
	return started
}

// flushSettled records the lines whose settlement committed.
func (j *job) flushSettled() {
	j.mu.Lock()
	idx := j.settled
	j.settled = nil
	j.mu.Unlock()
	if len(idx) == 0 {
		return
	}
	if err := j.s.opt.Store.MarkSettled(context.WithoutCancel(j.ctx), j.b.ID, idx); err != nil {
		j.log.Warn("settled lines not recorded; they are settled again (once) at the end", "err", err)
	}
}

// settleKept settles again every kept line not known to be settled: a
// settlement lost to a crash is made, one already made is found by its
// request id and not repeated.
func (j *job) settleKept() error {
	s := j.s
	ctx := context.WithoutCancel(j.ctx)
	for after := -1; ; {
		lines, err := s.opt.Store.Unsettled(ctx, j.b.ID, after, pageSize)
		if err != nil || len(lines) == 0 {
			return err
		}
		var waits []<-chan struct{}
		idx := make([]int, 0, len(lines))
		for _, l := range lines {
			after = l.Index
			var rec usage.Record
			if err := json.Unmarshal(l.Record, &rec); err != nil {
				j.log.Error("a kept line's record is unreadable; it is not settled", "line", l.Index, "err", err)
				continue
			}
			done, err := s.opt.Money.Finish(nil, rec)
			if err != nil {
				return fmt.Errorf("settle line %d: %w", l.Index, err)
			}
			waits = append(waits, done)
			idx = append(idx, l.Index)
		}
		for _, d := range waits {
			select {
			case <-d:
			case <-j.ctx.Done():
				return j.ctx.Err()
			}
		}
		if err := s.opt.Store.MarkSettled(ctx, j.b.ID, idx); err != nil {
			return err
		}
		if len(lines) < pageSize {
			return nil
		}
	}
}

// end stops the batch for a cancel or at its deadline: lines that never
// ran end so, and the batch finishes.
func (j *job) end(final Status) error {
	s := j.s
	j.drain()
	j.mu.Lock()
	idx := make([]int, 0, len(j.retries))
	var held []string
	for _, r := range j.retries {
		idx = append(idx, r.line.Index)
		if r.held {
			held = append(held, RequestID(j.b.ID, r.line.CustomID))
		}
	}
	j.retries = nil
	j.mu.Unlock()
	for _, id := range held { // they will not run: their holds go back
		if err := s.opt.Money.Exchange(j.ctx, billing.Exchange{TenantID: j.b.TenantID, KeyID: j.b.KeyID, Release: id}); err != nil {
			j.log.Warn("the hold of a line that will not run was not released; it expires", "request_id", id, "err", err)
		}
	}
	if len(idx) > 0 {
		if err := s.opt.Store.Retry(j.ctx, j.b.ID, j.b.Epoch, idx); err != nil {
			return err
		}
	}
	if _, err := s.opt.Store.Requeue(j.ctx, j.b.ID, j.b.Epoch); err != nil {
		return err
	}
	state := LineExpired
	if final == Cancelled {
		state = LineCancelled
	}
	if _, err := s.opt.Store.EndPending(j.ctx, j.b.ID, j.b.Epoch, state); err != nil {
		return err
	}
	return j.finish(final)
}

// finish ends the batch: every kept line settled, the reservation
// released, the results written, the batch in its final status.
func (j *job) finish(final Status) error {
	s := j.s
	ctx := j.ctx
	now := s.opt.Clock.Now()
	if j.b.Status == InProgress {
		j.b.Doc.FinalizingAt, j.b.Doc.Ending = now, final
		ok, err := s.opt.Store.SetBatch(ctx, j.b.ID, j.b.Epoch, InProgress, Finalizing, j.b.Doc)
		if err != nil {
			return err
		}
		if !ok {
			return ErrFenced
		}
		j.b.Status = Finalizing
	}
	if err := j.settleKept(); err != nil {
		return err
	}
	s.release(ctx, &j.b)
	if j.b.Doc.Reservation != "" {
		return errors.New("the reservation could not be released")
	}
	c, err := s.opt.Store.Count(ctx, j.b.ID)
	if err != nil {
		return err
	}
	d := &j.b.Doc
	if d.OutputFileID, err = j.writeFile(false, c); err != nil {
		return err
	}
	if j.b.API == OpenAI {
		if d.ErrorFileID, err = j.writeFile(true, c); err != nil {
			return err
		}
	}
	d.Final, d.EndedAt = &c, s.opt.Clock.Now()
	ok, err := s.opt.Store.SetBatch(ctx, j.b.ID, j.b.Epoch, j.b.Status, final, *d)
	if err != nil {
		return err
	}
	if !ok {
		return ErrFenced
	}
	j.b.Status = final
	j.log.Info("batch ended", "status", final, "succeeded", c.Succeeded, "errored", c.Errored, "cancelled", c.Cancelled,
		"expired", c.Expired)
	return nil
}

// writeFile writes a results file (errors: OpenAI's error file) and
// returns its id, "" when it would be empty (Anthropic's is always
// written).
func (j *job) writeFile(errors bool, c Counts) (string, error) {
	s := j.s
	ctx := j.ctx
	id := NewFileID()
	pr, pw := io.Pipe()
	var n int
	go func() {
		var err error
		n, err = writeResults(ctx, s.opt.Store, &j.b, errors, pw)
		pw.CloseWithError(err)
	}()
	size, err := s.opt.Blobs.Put(ctx, id, pr)
	pr.CloseWithError(err)
	if err != nil {
		_ = s.opt.Blobs.Delete(context.WithoutCancel(ctx), id)
		return "", fmt.Errorf("write results: %w", err)
	}
	if n == 0 && j.b.API == OpenAI {
		_ = s.opt.Blobs.Delete(ctx, id)
		return "", nil
	}
	purpose, name := PurposeOutput, j.b.ID+"_output.jsonl"
	if errors {
		purpose, name = PurposeError, j.b.ID+"_error.jsonl"
	}
	f := File{ID: id, TenantID: j.b.TenantID, KeyID: j.b.KeyID, Purpose: purpose, Filename: name, Bytes: size, Lines: n,
		CreatedAt: s.opt.Clock.Now()}
	if err := s.opt.Store.CreateFile(ctx, f); err != nil {
		_ = s.opt.Blobs.Delete(context.WithoutCancel(ctx), id)
		return "", err
	}
	_ = c
	return id, nil
}

// keeper keeps lines' results durably before they are settled, many in one
// transaction (group commit).
type keeper struct {
	j    *job
	reqs chan keepReq
	done chan struct{}
}

type keepReq struct {
	line Line
	err  chan error
}

func newKeeper(j *job) *keeper {
	k := &keeper{j: j, reqs: make(chan keepReq, pageSize), done: make(chan struct{})}
	go k.loop()
	return k
}

// close stops the keeper once no line is in flight.
func (k *keeper) close() {
	close(k.reqs)
	<-k.done
}

// keep keeps a line's final result (ServeLine's Persist).
func (k *keeper) keep(l Line, r *gateway.LineResult) error {
	if err := k.j.fill(&l, r.Status, r.Body, r.Record); err != nil {
		return err
	}
	req := keepReq{line: l, err: make(chan error, 1)}
	k.reqs <- req
	if err := <-req.err; err != nil {
		return err
	}
	k.j.s.stats.costNanos.Add(l.Cost)
	return nil
}

func (k *keeper) loop() {
	defer close(k.done)
	j := k.j
	ctx := context.WithoutCancel(j.ctx)
	for first := range k.reqs {
		batch := []keepReq{first}
	more:
		for len(batch) < pageSize {
			select {
			case r, ok := <-k.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		lines := make([]Line, len(batch))
		for i, r := range batch {
			lines[i] = r.line
		}
		kept, err := j.s.opt.Store.KeepResults(ctx, j.b.ID, j.b.Epoch, lines)
		for i, r := range batch {
			switch {
			case err != nil:
				r.err <- err
			case !kept[i]:
				r.err <- ErrFenced
			default:
				r.err <- nil
			}
		}
	}
}
