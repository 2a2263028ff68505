package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/route"
	"baimo/internal/usage"
)

// forward tries the plan's channels in turn until one answers, and relays
// its answer. It returns the error to write when nothing was written.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, req *request, log requestLog) *apierr.Error {
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.Limits.RequestTimeout.D())
	defer cancel()
	var tokens int64
	if req.tab.tpm[req.model] { // count the prompt for vendor TPM limits only when there are some
		tokens = g.reservation(req)
	}
	var cost route.CostFunc
	if g.opt.Router.UsesCost(req.model) {
		cost = g.costFunc(req)
	}
	rr := route.Request{Model: req.model, Tokens: tokens, Now: req.start, Cost: cost}
	if c := req.in.Call; c != nil {
		rr.Pin = c.Pin
	}
	plan, err := g.opt.Router.Plan(rr)
	if err != nil {
		e := apierr.ModelNotFound(req.model)
		if errors.Is(err, route.ErrPinned) {
			e = apierr.BadRequest(req.in.Call.PinParam, "This request continues a conversation held by an upstream account that cannot serve model %s; "+
				"continue it with the model it was started with, or start a new conversation.", req.model)
		}
		g.refuse(req, e, log)
		return e
	}
	var last *apierr.Error
	for {
		a, err := plan.Next()
		if err != nil {
			break
		}
		req.channel, req.secret = a.Channel.Data.(*Channel), a.Key.Data.(string)
		up, aerr := g.prepareAttempt(req)
		if aerr == nil {
			aerr = g.checkPrice(req)
		}
		if aerr != nil {
			plan.Done(&a, route.Outcome{Canceled: true})
			g.refuse(req, aerr, log)
			return aerr
		}
		retry, served := g.attempt(ctx, cancel, w, r, req, &plan, &a, up, &last, log)
		if served || !retry || r.Context().Err() != nil {
			if !served && last != nil {
				req.rec.Status = last.Status
				g.finish(req, log)
				return last
			}
			if !served {
				g.finish(req, log)
			}
			return nil
		}
	}
	if last == nil {
		req.rec.ErrorClass = usage.ErrUpstream
		if wait, resting := plan.RetryAfter(); resting {
			// Every target rests after the vendor rate limited it: say so,
			// as the vendor did, with when the first comes back.
			last = apierr.RateLimited("The upstream model servers are rate limiting requests for model "+req.model+"; retry after the time in the retry-after header.", wait)
		} else {
			// Every channel is at its vendor limit or its keys are parked:
			// say when to come back.
			last = apierr.Unavailable("No upstream channel for model "+req.model+" is available right now; retry later.", nil)
			last.RetryAfter = time.Second
		}
	}
	req.rec.Status = last.Status
	g.finish(req, log)
	return last
}

// prepareAttempt makes the upstream request for the chosen channel: the
// translator of the pair of formats (a passthrough when they are the same)
// patches or rewrites the body.
func (g *Gateway) prepareAttempt(req *request) (ir.Upstream, *apierr.Error) {
	ch := req.channel
	upModel := ch.Models[req.model]
	req.rec.Channel, req.rec.UpstreamModel = ch.Name, upModel
	tr, err := provider.NewTranslator(req.in.Format, ch.format, g.opt.Clock)
	if err != nil {
		return ir.Upstream{}, apierr.Internal(err)
	}
	if req.in.Format != ch.format && !req.endpoint.Conversation {
		return ir.Upstream{}, apierr.BadRequest("model", "The %s endpoint is not supported by this model's %s upstream; use chat completions.",
			req.endpoint.Name, ch.format)
	}
	var limit int64
	if t := req.ticket; t != nil && t.Lowered {
		limit = t.Output
	}
	// No ClientModel: as in a passthrough, the client sees the upstream's model name.
	up, err := tr.Request(provider.Request{Body: req.body, Admission: &req.adm, Endpoint: req.endpoint.Name,
		Model: upModel, Stream: req.stream, Limit: limit})
	if err != nil {
		var ue *ir.UnsupportedError
		var be *ir.BadRequestError
		switch {
		case errors.As(err, &ue):
			e := apierr.BadRequest("", "%s", ue.Error())
			e.Code = "unsupported_feature"
			return ir.Upstream{}, e
		case errors.As(err, &be):
			return ir.Upstream{}, apierr.BadRequest("", "%s", be.Msg)
		}
		return ir.Upstream{}, apierr.Internal(err)
	}
	req.tr = tr
	return up, nil
}

// costFunc rates a channel for this request with the catalog, for the cost
// routing policy: the prompt and a typical output at the channel's model.
func (g *Gateway) costFunc(req *request) route.CostFunc {
	return func(rc *route.Channel) (int64, bool) {
		ch, ok := rc.Data.(*Channel)
		if !ok {
			return 0, false
		}
		prompt, _ := g.promptTokens(req)
		out := req.adm.MaxOutput
		if out <= 0 || out > tpmOutputEstimate {
			out = costOutputEstimate
		}
		return g.opt.Billing.Cost(req.key.TenantID, req.model, ch.Models[req.model], prompt, out*max(req.adm.Choices, 1), req.start)
	}
}

// costOutputEstimate is the output the cost policy assumes for a request
// that sets no limit (or a large one): a typical answer, not the worst case,
// since it compares channels rather than reserving money.
const costOutputEstimate = 256

// attempt sends the request to one channel. It reports whether the plan
// should go on to another channel and whether this attempt served the client.
// An error for the client, if it is the last word, is left in *last.
func (g *Gateway) attempt(ctx context.Context, cancel context.CancelFunc, w http.ResponseWriter, r *http.Request, req *request,
	plan *route.Plan, a *route.Attempt, up ir.Upstream, last **apierr.Error, log requestLog) (retry, served bool) {
	ch := req.channel
	base := ch.BaseURL
	if ch.pool != nil {
		lease, overflow, aerr := g.acquireReplica(ctx, r, req)
		switch {
		case overflow:
			plan.Skip(a) // saturated, not failing: the next channel takes it
			return true, false
		case aerr != nil:
			plan.Done(a, route.Outcome{Canceled: true})
			*last = aerr
			return false, false
		case lease == nil: // the client left while queued
			plan.Done(a, route.Outcome{Canceled: true})
			req.rec.Status, req.rec.ErrorClass = 499, usage.ErrClientDisconnect
			*last = nil
			return false, false
		}
		defer lease.End()
		req.replica, base = lease, lease.BaseURL
		defer func() { req.replica = nil }()
	}
	t0 := g.opt.Clock.Now()
	ureq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+up.Path, bytes.NewReader(up.Body))
	if err != nil {
		plan.Done(a, route.Outcome{Canceled: true})
		*last = apierr.Internal(err)
		return false, false
	}
	ureq.Header = ch.header.Clone()
	req.tr.SetHeaders(ureq.Header, r.Header, req.secret)
	ureq.Header.Set("X-Request-Id", req.id) // the vendor's log can name the gateway's record
	ureq.ContentLength = int64(len(up.Body))
	if req.stream {
		ureq.Header.Set("Accept", "text/event-stream")
	}
	if req.tel != nil {
		// The attempt's span, whose trace context goes upstream, ends with
		// the attempt's entry in the usage record.
		span, n := req.tel.Attempt(ureq.Header, ch.Name, ch.Kind, req.rec.UpstreamModel, a.Number, t0), len(req.rec.Attempts)
		defer func() {
			at := usage.Attempt{Channel: ch.Name, ErrorClass: usage.ErrInternal}
			if len(req.rec.Attempts) > n {
				at = req.rec.Attempts[len(req.rec.Attempts)-1]
			}
			span.End(at, t0.Add(at.Duration))
		}()
	}
	resp, err := g.client.Do(ureq)
	if err != nil {
		aerr, class := classify(r, err)
		req.rec.Attempts = append(req.rec.Attempts, usage.Attempt{Channel: ch.Name, Key: a.Key.ID, ErrorClass: class, Duration: g.opt.Clock.Now().Sub(t0)})
		req.rec.ErrorClass = class
		if aerr == nil { // the client left
			plan.Done(a, route.Outcome{Canceled: true})
			req.rec.Status = 499
			*last = nil
			return false, false
		}
		log.Warn("upstream round trip failed", "channel", ch.Name, "attempt", a.Number, "err", provider.Scrub(err.Error(), g.secrets(ch)...))
		d := plan.Done(a, route.Outcome{ConnectErr: class == usage.ErrUpstreamConnect, FirstByteTimeout: class == usage.ErrUpstreamTimeout})
		*last = aerr
		return d.Retry, false
	}
	defer resp.Body.Close()
	req.rec.Attempts = append(req.rec.Attempts, usage.Attempt{Channel: ch.Name, Key: a.Key.ID, Status: resp.StatusCode})
	at := &req.rec.Attempts[len(req.rec.Attempts)-1]
	if resp.StatusCode != http.StatusOK {
		aerr, uf := g.upstreamError(resp, req, log)
		at.Duration = g.opt.Clock.Now().Sub(t0)
		at.ErrorClass = req.rec.ErrorClass
		d := plan.Done(a, route.Outcome{Status: resp.StatusCode, ErrorCode: uf.Code, RetryAfter: uf.RetryAfter, Fault: routeFault(uf.Fault)})
		*last = aerr
		return d.Retry, false
	}
	// From here the answer goes to the client: no more failover.
	if c := req.in.Call; c != nil && c.Observer != nil {
		c.Observer.Serving(ch.Name, a.Key.ID)
	}
	*last = nil
	req.rec.ErrorClass = usage.ErrNone
	req.servedSince = t0 // finish ends the attempt with the request
	switch {
	case req.endpoint.Raw:
		g.relayRaw(w, r, req, resp, log)
	case req.stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		g.relayStream(w, r, req, resp, cancel, log)
	default:
		g.relayBody(w, r, req, resp, log)
	}
	took := g.opt.Clock.Now().Sub(t0)
	o := route.Outcome{Status: 200, ClientGotBytes: true, TTFT: req.rec.TTFT, Tokens: req.rec.Usage.Total(),
		Canceled: req.rec.ErrorClass == usage.ErrClientDisconnect,
		Broken:   req.rec.ErrorClass == usage.ErrStreamBroken || req.rec.ErrorClass == usage.ErrUpstreamTimeout}
	if out := req.rec.Usage.Output; out > 1 && took > req.rec.TTFT {
		o.PerToken = (took - req.rec.TTFT) / time.Duration(out-1)
	}
	plan.Done(a, o)
	return false, true
}

// secrets are what must never leave the gateway about a channel: its keys
// and its address.
func (g *Gateway) secrets(ch *Channel) []string {
	return append(append(make([]string, 0, len(ch.secrets)+1), ch.secrets...), ch.BaseURL)
}

// upstreamError reads an upstream's error answer and maps it, with the one
// mapping (provider.UpstreamError), to the client's error and to what
// routing learns. The log gets the upstream's body scrubbed of the
// channel's keys and address.
func (g *Gateway) upstreamError(resp *http.Response, req *request, log requestLog) (*apierr.Error, provider.UpstreamFault) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ra := time.Duration(0)
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		ra = time.Duration(min(n, 3600)) * time.Second
	}
	secrets := g.secrets(req.channel)
	e, uf := provider.UpstreamError(req.channel.format, resp.StatusCode, body, ra, secrets...)
	req.rec.ErrorClass = usage.ErrUpstream
	if uf.Fault == provider.FaultRequest {
		req.rec.ErrorClass = usage.ErrClient
	}
	log.Warn("upstream error", "channel", req.channel.Name, "status", resp.StatusCode, "fault", uf.Fault,
		"body", provider.Scrub(string(body), secrets...))
	return e, uf
}

// routeFault is routing's name for an upstream fault.
func routeFault(f provider.Fault) route.Fault {
	switch f {
	case provider.FaultRequest:
		return route.FaultRequest
	case provider.FaultKey:
		return route.FaultKey
	case provider.FaultRate:
		return route.FaultRate
	}
	return route.FaultServer
}

// audit counts, for one request in AuditEvery, the prompt with the upstream
// model's exact tokenizer, so the vendor's billed prompt tokens can be
// compared with baimo's count (GET /admin/audit/vendors). It runs before the
// record is committed.
func (g *Gateway) audit(req *request) {
	if g.opt.AuditEvery <= 0 || req.rec.Usage.Source != usage.SourceVendor || !req.endpoint.Conversation {
		return
	}
	if g.audits.Add(1)%uint64(g.opt.AuditEvery) != 0 {
		return
	}
	if n, src := g.opt.Counter.CountPrompt(req.rec.UpstreamModel, g.promptText(req)); src == usage.SourceCounted {
		req.rec.CountedInput = n
	}
}
