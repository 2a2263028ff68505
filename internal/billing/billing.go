// Package billing is the money side of the request path, between the gateway
// and the ledger and price catalog: it admits a request against its tenant's
// money (the free tier, then a hold of the request's true worst case), and
// finishes it by rating its usage record at the price in force when it
// started and settling it with the record in one group-committed
// transaction. It also keeps the catalog in step with the price versions
// other nodes add, and sweeps expired holds.
//
// The gateway sees one small surface: Admit before the upstream call, Check
// and Cost while routing, Finish with the record. Everything that decides
// money lives here, once, and tests build the same Biller that `baimo serve`
// does.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Books is the ledger a Biller holds and settles on (*ledger.Ledger).
type Books interface {
	Hold(ctx context.Context, r ledger.HoldRequest) (ledger.Hold, error)
	Balance(ctx context.Context, tenantID string) (ledger.Balance, error)
	SettleBatch(ctx context.Context, ss []ledger.Settlement) ([]ledger.SettleResult, error)
	Sweep(ctx context.Context) (ledger.SweepResult, error)
	Tenant(ctx context.Context, id string) (ledger.Tenant, error)
	// Checkpoint notes, without waiting, what a request in flight has
	// delivered so far, so that if this node dies the survivors settle its
	// hold at that (ledger.Ledger.Checkpoint).
	Checkpoint(rec usage.Record)
}

var _ Books = (*ledger.Ledger)(nil)

// RecordWriter stores usage records (usage.Store's write side).
type RecordWriter interface {
	WriteRecords(ctx context.Context, recs []usage.Record) error
}

// Options configures a Biller.
type Options struct {
	// Rater prices requests; nil serves every model unrated.
	Rater *Rater
	// Books holds and settles; nil meters and rates without charging
	// (billing.ledger: false), writing the records to Records.
	Books Books
	// Records stores usage records when there are no Books.
	Records RecordWriter
	// FreeTier, if set, limits tenants with free accounts to free models
	// and a daily quota (it needs Books to tell a tenant's account kind).
	FreeTier *FreeTier
	// Holds sizes the worst case a request may cost.
	Holds HoldRules
	// HoldTTL is how long a hold lives before the sweeper resolves it.
	HoldTTL time.Duration
	// StoreTimeout bounds Admit's wait for the store (the free tier's
	// totals, a hold in the database), so that a database that is away is a
	// quick *UnavailableError; 0 leaves the caller's context alone.
	StoreTimeout time.Duration
	// Recorder tunes the group commit of records and settlements.
	Recorder RecorderOptions
	Clock    clock.Clock
	Log      *slog.Logger
}

// Biller admits and finishes requests. Start its background work with Run;
// Close writes every record still queued.
type Biller struct {
	opt Options
	rec *Recorder
}

// New returns a Biller and starts its recorder.
func New(o Options) *Biller {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.HoldTTL <= 0 {
		o.HoldTTL = 15 * time.Minute
	}
	o.Holds.defaults()
	b := &Biller{opt: o}
	s := &settler{rater: o.Rater, books: o.Books, records: o.Records, log: o.Log}
	b.rec = NewRecorder(s.write, o.Recorder, o.Clock, o.Log)
	return b
}

// Rater returns the rater (nil when requests are not rated).
func (b *Biller) Rater() *Rater { return b.opt.Rater }

// Currency returns the billing currency ("" when requests are not rated).
func (b *Biller) Currency() money.Currency {
	if b.opt.Rater == nil {
		return ""
	}
	return b.opt.Rater.Currency
}

// PromptCounter counts a request's prompt tokens and says whether the count
// is exact; Admit calls it at most once, and only when a hold or quota
// needs it.
type PromptCounter interface {
	PromptTokens() (tokens int64, exact bool)
}

// PromptBounder is a PromptCounter that also knows, without tokenizing, a
// number of tokens the prompt cannot exceed, by the vendor's count or by
// PromptTokens with an estimate's margin (see Admit). ok is false when the
// prompt was counted already: the count is then the better figure.
type PromptBounder interface {
	PromptBound() (tokens int64, ok bool)
}

// Request is what admission needs to know of a request.
type Request struct {
	ID       string
	TenantID string
	KeyID    string
	Model    string // the public model name asked for
	// Upstreams are the upstream model names of the channels that may serve
	// the request: failover may end at any of them, so the hold covers the
	// dearest.
	Upstreams []string
	// NoOutput says the endpoint generates no tokens (embeddings).
	NoOutput bool
	// MaxOutput is the output limit per choice the client set; 0 when unset.
	MaxOutput int64
	// Choices is how many answers the request asks for (n, candidateCount);
	// 0 means 1.
	Choices int64
	// Prompt counts the request's prompt.
	Prompt PromptCounter
	Start  time.Time
	// Batch says the request is a line of a batch: it is held (and rated,
	// by its record's endpoint) at the batch price.
	Batch bool
	// HeldAhead is the hold already placed under ID (a batch's line, held
	// by Exchange when the batch started it): Admit places none. 0: Admit
	// holds as for any request.
	HeldAhead int64
	// Units are what a media request uses that its body says (images asked
	// for, seconds of audio sent, characters to speak): held with its
	// tokens, in the kinds its model is priced in.
	Units usage.Usage
	// Variant is the request's variant a model may price apart (images:
	// "size/quality"); "" for none.
	Variant string
}

// Ticket is an admitted request's claim on its tenant's money. Pass it to
// Finish.
type Ticket struct {
	// Held is the amount held, in nanos of the billing currency; 0 when
	// nothing was held (a free model, no ledger).
	Held int64
	// Output is the output tokens per choice the hold covers: the client's
	// limit, or the model's maximum, or what a prepaid balance can pay for
	// (Lowered). 0 means no limit is known. The gateway must not deliver
	// more than Output × choices.
	Output  int64
	Lowered bool
	// release trues up a free-tier reservation at Finish.
	release func(used int64)
}

// Admit admits a request against its tenant's money: the free tier's rules
// for free accounts, then a hold of the request's worst case. It returns a
// typed error the gateway maps to a client error: *LimitError,
// *NotPricedError, ErrNotFree, *QuotaError, *InsufficientError,
// ErrBudgetExceeded, ErrNoAccount, *CurrencyError or *UnavailableError.
func (b *Biller) Admit(ctx context.Context, r *Request) (*Ticket, error) {
	t := &Ticket{}
	// Counting a long prompt is the dearest step of admission. A prepaid
	// hold does not need the count when a bound of it (a few bytes' worth
	// of arithmetic) is covered by the balance: the hold is then larger
	// than the exact worst case, never smaller, and the settlement charges
	// what was used. Only when that larger hold is refused is the prompt
	// counted and the hold tried again at the exact worst case. A free-tier
	// account reserves the prompt against token quotas, which need the count.
	w, err := b.worstOf(r, b.opt.Books != nil && r.HeldAhead == 0)
	if err != nil {
		return nil, err
	}
	t.Output = w.output
	if b.opt.FreeTier == nil && (b.opt.Books == nil || w.free || !w.priced) {
		return t, nil // nothing to ask the store
	}
	if d := b.opt.StoreTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if b.opt.FreeTier != nil {
		release, err := b.opt.FreeTier.admitFunc(ctx, r.TenantID, func() int64 {
			if w.bounded {
				if exact, err := b.worst(r); err == nil { // its refusals were the bounded case's
					w = exact
				}
			}
			return w.tokens()
		}, w.free)
		if err != nil {
			return nil, err
		}
		t.release = release
	}
	if b.opt.Books == nil || w.free || !w.priced {
		return t, nil
	}
	if r.HeldAhead > 0 {
		t.Held = r.HeldAhead
		return t, nil
	}
	err = b.hold(ctx, r, &w, t)
	if err != nil && w.bounded && refusedForMoney(err) {
		if w, err = b.worstOf(r, false); err == nil {
			t.Output = w.output
			err = b.hold(ctx, r, &w, t)
		}
	}
	if err != nil {
		t.Finish(0)
		return nil, err
	}
	return t, nil
}

// refusedForMoney says a hold was refused for its amount: the balance or a
// budget cannot cover it, so a smaller hold might be placed.
func refusedForMoney(err error) bool {
	var ie *InsufficientError
	return errors.As(err, &ie) || errors.Is(err, ErrBudgetExceeded)
}

// Finish releases what a ticket reserved outside the ledger (a free-tier
// quota) with the tokens the request used. Biller.Finish calls it; call it
// directly only for a request that ends without a record.
func (t *Ticket) Finish(used int64) {
	if t != nil && t.release != nil {
		t.release(used)
		t.release = nil
	}
}

// hold places the hold of w on the tenant's account. When the client set no
// output limit and a prepaid balance cannot cover the model's maximum, the
// output limit is lowered to what the balance pays for.
func (b *Biller) hold(ctx context.Context, r *Request, w *worstCase, t *Ticket) error {
	err := b.place(ctx, r, w.amount)
	if err == nil {
		t.Held = w.amount
		return nil
	}
	var ie *InsufficientError
	// A hold at a bound of the prompt is not lowered: Admit counts the
	// prompt and tries again, so the output is lowered only as far as the
	// exact worst case needs.
	if !errors.As(err, &ie) || w.bounded || r.MaxOutput > 0 || w.output <= b.opt.Holds.MinOutput {
		return err
	}
	bal, berr := b.opt.Books.Balance(ctx, r.TenantID)
	if berr != nil || bal.Kind != ledger.Prepaid || bal.Debt > 0 {
		return err
	}
	out, amount, ok := b.affordable(r, w, bal.Available)
	if !ok {
		return err
	}
	if err := b.place(ctx, r, amount); err != nil {
		return err
	}
	t.Held, t.Output, t.Lowered = amount, out, true
	return nil
}

// place holds amount on the request's tenant.
func (b *Biller) place(ctx context.Context, r *Request, amount int64) error {
	h, err := b.opt.Books.Hold(ctx, ledger.HoldRequest{RequestID: r.ID, TenantID: r.TenantID, KeyID: r.KeyID,
		Amount: money.Amount{Nanos: amount, Currency: b.opt.Rater.Currency}, TTL: b.opt.HoldTTL})
	switch {
	case err == nil && h.State != ledger.HoldPending:
		// Request ids are unique (the gateway adds 96 random bits), so an
		// existing hold in another state means something is badly wrong: do
		// not serve unpaid.
		return fmt.Errorf("billing: hold %s exists in state %s", r.ID, h.State)
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrBudgetExceeded):
		return fmt.Errorf("%w: %w", ErrBudgetExceeded, err)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return &InsufficientError{Need: amount, Currency: b.opt.Rater.Currency, Err: err}
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNoAccount, err)
	case errors.Is(err, ledger.ErrInvalid):
		// The ledger refuses a hold in another currency than the account's.
		if t, terr := b.opt.Books.Tenant(ctx, r.TenantID); terr == nil && t.Currency != b.opt.Rater.Currency {
			return &CurrencyError{TenantID: t.ID, Tenant: t.Currency, Billing: b.opt.Rater.Currency}
		}
		return fmt.Errorf("billing: hold %s: %w", r.ID, err)
	default:
		return &UnavailableError{What: "reserve the request's cost", Err: err}
	}
}

// Check reports whether a request for model served as upstream can be rated
// at at: nil, a *NotPricedError, or another error.
func (b *Biller) Check(model, upstream string, at time.Time) error {
	return b.opt.Rater.Check(model, upstream, at)
}

// Cost returns what prompt and out tokens of a tenant's request cost at a
// channel's model, for the cost routing policy; ok is false when unpriced.
func (b *Biller) Cost(tenantID, model, upstream string, prompt, out int64, at time.Time) (int64, bool) {
	if b.opt.Rater == nil {
		return 0, false
	}
	return b.opt.Rater.Cost(tenantID, model, upstream, prompt, out, at)
}

// Finish rates and settles a finished request with its usage record and
// returns a channel closed once they are durably committed (or given up at
// a forced Close). The gateway writes a response's final byte only after it
// is closed, so a client that holds a complete answer was billed for it.
func (b *Biller) Finish(t *Ticket, rec usage.Record) (<-chan struct{}, error) {
	t.Finish(rec.Usage.Total())
	f := finished{rec: rec}
	if t != nil {
		f.held = t.Held
	}
	return b.rec.Submit(f)
}

// Checkpoint notes what a request in flight has delivered so far (rec: its
// record as it would be written now, with the usage to this point), rated
// and charged at most its hold, so that a node that dies mid-stream is
// settled for what it delivered rather than voided. It does not wait.
func (b *Biller) Checkpoint(t *Ticket, rec usage.Record) {
	if b.opt.Books == nil || t == nil || t.Held == 0 {
		return
	}
	if err := b.opt.Rater.RateRecord(&rec); err != nil {
		rec.CostNanos, rec.PriceVersion, rec.Lines, rec.Currency = t.Held, Unrated, nil, string(b.opt.Rater.Currency)
	}
	rec.CostNanos = min(rec.CostNanos, t.Held)
	b.opt.Books.Checkpoint(rec)
}

// Run keeps the price catalog in step with the versions and price lists other
// nodes add (sync, every interval) and sweeps expired holds every
// sweepEvery, until ctx ends.
func (b *Biller) Run(ctx context.Context, sync *PriceSync, sweepEvery time.Duration) {
	var syncC <-chan time.Time
	if sync != nil {
		t := b.opt.Clock.NewTicker(sync.Interval)
		defer t.Stop()
		syncC = t.C()
	}
	var sweepC <-chan time.Time
	if b.opt.Books != nil && sweepEvery > 0 {
		t := b.opt.Clock.NewTicker(sweepEvery)
		defer t.Stop()
		sweepC = t.C()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncC:
			sync.Once(ctx)
		case <-sweepC:
			if res, err := b.opt.Books.Sweep(ctx); err != nil {
				b.opt.Log.Error("sweep expired holds", "err", err)
			} else if res.Settled+res.Voided > 0 {
				b.opt.Log.Warn("swept expired holds", "settled", res.Settled, "voided", res.Voided)
			}
		}
	}
}

// Close stops taking records and writes every queued one; if ctx ends first
// the records not written are logged and counted as lost.
func (b *Biller) Close(ctx context.Context) error { return b.rec.Close(ctx) }

// RecorderStats returns the recorder's counters, for metrics.
func (b *Biller) RecorderStats() RecorderStats { return b.rec.Stats() }
