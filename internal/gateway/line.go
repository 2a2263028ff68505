package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// Lines of batches run through the request path itself: the same admission
// of the body by its format, routing, translation, metering and rating as a
// client's request, served in-process. Two things differ, both about
// durability: the result is handed to the batch (LineRequest.Persist) before
// the line is settled, so a line is settled only once its answer is kept,
// and a settlement lost to a crash is redone from the kept record (by
// request id, at most once); and a failure worth retrying (an upstream
// error, no channel free, the gateway shutting down) is not a result: the
// line runs again later, its hold kept, nothing recorded.

// LineRequest is one request of a batch.
type LineRequest struct {
	// ID is the request id: the batch's id and the line's custom_id. Holds,
	// settlements and the usage record are keyed by it, so a line is
	// settled at most once whatever happens to the runs of its batch.
	ID       string
	Key      *keys.Key // the batch's key
	Format   ir.Format
	Endpoint Endpoint
	Body     []byte
	// HeldAhead is the line's hold placed by its batch (billing.Exchange);
	// 0 when the line must hold for itself.
	HeldAhead int64
	// Persist keeps the line's final result before it is settled; an error
	// leaves the line unsettled, to run again.
	Persist func(*LineResult) error
	// LastTry makes any outcome final: a failure worth another run is kept
	// as the line's result.
	LastTry bool
}

// LineResult is how a line ended.
type LineResult struct {
	// Status and Body are the answer, or the error in the line's format.
	Status int
	Body   []byte
	// Record is the line's usage record (unrated until it is settled).
	Record usage.Record
	// Retry, when above 0, says the line did not end: run it again after
	// about this long. Nothing was kept or recorded.
	Retry time.Duration
	// Kept says Persist kept the result; Settled that its record and
	// settlement were committed within the commit timeout (if not, they
	// are still queued, or the batch settles them again from the record).
	Kept, Settled bool
	// Err is why a final result was not kept (Persist's error).
	Err error
}

// lineDeferred is the commit channel finish returns for a line: closed, as
// the line's answer goes to its batch, not to a client.
var lineDeferred = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// ServeLine serves one line of a batch and, when it ended, keeps and
// settles its result: ctx bounds it (a cancelled batch, a node stopping).
func (g *Gateway) ServeLine(ctx context.Context, l LineRequest) LineResult {
	g.inflight.Add(1)
	defer g.inflight.Done()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", http.NoBody)
	if err != nil {
		return LineResult{Retry: time.Second, Err: err}
	}
	w := &lineWriter{h: http.Header{}}
	in := Inbound{Format: l.Format, Endpoint: l.Endpoint}
	req, aerr := g.serve(w, r, in, &l)
	res := LineResult{Status: w.status, Body: w.body.Bytes()}
	if aerr != nil {
		res.Status, res.Body = provider.ErrorBody(l.Format, aerr)
	}
	if res.Status == 0 {
		res.Status = http.StatusOK
	}
	if req == nil { // refused before the request began: the node is stopping
		res.Retry = time.Second
		return res
	}
	res.Record = req.rec
	if wait, ok := lineRetry(req, aerr, w); ok && (!l.LastTry || req.rec.ErrorClass == usage.ErrClientDisconnect) {
		req.ticket.Finish(0) // what admission reserved outside the ledger; the hold stays for the next run
		return LineResult{Status: res.Status, Body: res.Body, Retry: wait}
	}
	if err := l.Persist(&res); err != nil {
		req.ticket.Finish(0)
		res.Err = err
		res.Retry = time.Second
		return res
	}
	res.Kept = true
	done, err := g.opt.Billing.Finish(req.ticket, req.rec)
	if err != nil {
		requestLog{g.opt.Log, req.id}.Error("usage record of a batch's line not submitted; the batch settles it again", "err", err)
		return res
	}
	res.Settled = g.waitCommit(done, requestLog{g.opt.Log, req.id})
	return res
}

// lineRetry says whether a line's failure is worth running it again, and
// after how long: the gateway or its upstreams could not serve it now, as
// opposed to an answer about the request (a bad request, no money).
func lineRetry(req *request, aerr *apierr.Error, w *lineWriter) (time.Duration, bool) {
	status := req.rec.Status
	if aerr != nil {
		status = aerr.Status
	}
	switch req.rec.ErrorClass {
	case usage.ErrClientDisconnect:
		return time.Second, true // the batch was stopped: it decides
	case usage.ErrInsufficient, usage.ErrClient, usage.ErrAuth:
		return 0, false
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	wait := time.Second
	if aerr != nil && aerr.RetryAfter > 0 {
		wait = aerr.RetryAfter
	} else if n, err := strconv.Atoi(w.h.Get("Retry-After")); err == nil && n > 0 {
		wait = time.Duration(n) * time.Second
	}
	return wait, true
}

// lineWriter keeps a line's answer.
type lineWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *lineWriter) Header() http.Header { return w.h }

func (w *lineWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *lineWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(b) > maxLineAnswer {
		return 0, errLineTooLarge
	}
	return w.body.Write(b)
}

// maxLineAnswer bounds a line's answer (the response size limit applies
// first; this only guards the buffer).
const maxLineAnswer = 64 << 20

var errLineTooLarge = errors.New("gateway: a batch line's answer is over 64 MiB")

// LineCheck is what the gateway found of a batch's line before it runs.
type LineCheck struct {
	Model  string
	Prompt int64 // prompt tokens
	// Output is the output the line may produce (its limit times its
	// choices, or the model's maximum; 0 when none is known).
	Output int64
	// Hold is the line's worst case at the batch price (0 when nothing is
	// held: free, unpriced for metering, or no ledger).
	Hold int64
}

// CheckLine admits a batch's line as ServeLine will, at at, without
// running it: its body read by its format, its model served and allowed to
// the key, and its worst case at the batch price. The error is the one the
// line would get.
func (g *Gateway) CheckLine(key *keys.Key, f ir.Format, ep Endpoint, body []byte, at time.Time) (LineCheck, *apierr.Error) {
	req := &request{gw: g, tab: g.chans.Load(), in: Inbound{Format: f, Endpoint: ep}, endpoint: ep, start: at, key: key, body: body,
		line: &LineRequest{Key: key, Format: f, Endpoint: ep, Body: body}}
	if aerr := g.admit(req); aerr != nil {
		return LineCheck{Model: req.model}, aerr
	}
	prompt, _ := g.promptTokens(req)
	br := g.billRequest(req)
	q, err := g.opt.Billing.Quote(&br)
	if err != nil {
		return LineCheck{Model: req.model, Prompt: prompt}, billingError(err, req)
	}
	return LineCheck{Model: req.model, Prompt: prompt, Output: q.Output * max(req.adm.Choices, 1), Hold: q.Amount}, nil
}
