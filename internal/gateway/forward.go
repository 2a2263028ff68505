package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/route"
	"baimo/internal/usage"
)

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, req *request, clientBody []byte, writeErr ErrorWriter, log requestLog) {
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.Limits.RequestTimeout.D())
	defer cancel()
	plan, err := g.opt.Router.Plan(route.Request{Model: req.model, Tokens: g.reservation(req), Now: req.start,
		Cost: g.costFunc(req)})
	if err != nil {
		g.fail(w, req, apierr.ModelNotFound(req.model), writeErr, log)
		return
	}
	var last *apierr.Error
	for {
		a, err := plan.Next()
		if err != nil {
			break
		}
		req.channel, req.auth = a.Channel.Data.(*Channel), a.Key.Data.(string)
		upstreamBody, aerr := g.prepareAttempt(req, clientBody)
		if aerr == nil {
			aerr = g.checkPrice(req)
		}
		if aerr != nil {
			plan.Done(&a, route.Outcome{Canceled: true})
			g.fail(w, req, aerr, writeErr, log)
			return
		}
		retry, served := g.attempt(ctx, cancel, w, r, req, &plan, &a, upstreamBody, &last, writeErr, log)
		if served || !retry || r.Context().Err() != nil {
			if !served && last != nil {
				writeErr(w, last)
				req.rec.Status = last.Status
			}
			g.finish(req, log)
			return
		}
	}
	if last == nil {
		// Every channel is resting (a breaker is open, an upstream asked to
		// wait) or at its vendor limit: say when to come back.
		last = apierr.Unavailable("No upstream channel for model "+req.model+" is available right now; retry later.", nil)
		last.RetryAfter = time.Second
		req.rec.ErrorClass = usage.ErrUpstream
	}
	writeErr(w, last)
	req.rec.Status = last.Status
	g.finish(req, log)
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
		out := req.maxTokens
		if out <= 0 || out > tpmOutputEstimate {
			out = costOutputEstimate
		}
		return g.opt.Billing.Cost(req.key.TenantID, req.model, ch.Models[req.model], prompt, out*max(req.choices, 1), req.start)
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
	plan *route.Plan, a *route.Attempt, upstreamBody []byte, last **apierr.Error, writeErr ErrorWriter, log requestLog) (retry, served bool) {
	ch := req.channel
	t0 := g.opt.Clock.Now()
	ureq, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.BaseURL+req.path, bytes.NewReader(upstreamBody))
	if err != nil {
		plan.Done(a, route.Outcome{Canceled: true})
		*last = apierr.Internal(err)
		return false, false
	}
	ureq.Header = ch.header.Clone()
	if req.format == ir.FormatOpenAI && ch.Kind == "openai" {
		if req.auth != "" {
			ureq.Header.Set("Authorization", req.auth)
		}
	} else {
		setUpstreamAuth(ureq.Header, r, req)
	}
	ureq.ContentLength = int64(len(upstreamBody))
	if req.stream {
		ureq.Header.Set("Accept", "text/event-stream")
	}
	resp, err := g.client.Do(ureq)
	if err != nil {
		aerr, class := classify(r, err)
		req.rec.Attempts = append(req.rec.Attempts, usage.Attempt{Channel: ch.Name, ErrorClass: class, Duration: g.opt.Clock.Now().Sub(t0)})
		req.rec.ErrorClass = class
		if aerr == nil { // the client left
			plan.Done(a, route.Outcome{Canceled: true})
			req.rec.Status = 499
			*last = nil
			return false, false
		}
		log.Warn("upstream round trip failed", "channel", ch.Name, "attempt", a.Number, "err", err)
		d := plan.Done(a, route.Outcome{ConnectErr: class == usage.ErrUpstreamConnect, FirstByteTimeout: class == usage.ErrUpstreamTimeout})
		*last = aerr
		return d.Retry, false
	}
	defer resp.Body.Close()
	req.rec.Attempts = append(req.rec.Attempts, usage.Attempt{Channel: ch.Name, Status: resp.StatusCode})
	at := &req.rec.Attempts[len(req.rec.Attempts)-1]
	if resp.StatusCode != http.StatusOK {
		aerr, code, ra := g.upstreamError(resp, req, log)
		at.Duration = g.opt.Clock.Now().Sub(t0)
		at.ErrorClass = req.rec.ErrorClass
		d := plan.Done(a, route.Outcome{Status: resp.StatusCode, ErrorCode: code, RetryAfter: ra})
		*last = aerr
		return d.Retry, false
	}
	// From here the answer goes to the client: no more failover.
	*last = nil
	req.rec.ErrorClass = usage.ErrNone
	switch sse := req.stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"); {
	case sse && req.tr == nil && req.format == ir.FormatOpenAI:
		g.relayStream(w, r, req, resp, req.promptBody, cancel, log)
	case sse:
		g.relayFormatStream(w, r, req, resp, cancel, log)
	default:
		g.relayBody(w, r, req, resp, req.promptBody, writeErr, log)
	}
	at.Duration = g.opt.Clock.Now().Sub(t0)
	o := route.Outcome{Status: 200, ClientGotBytes: true, TTFT: req.rec.TTFT, Tokens: req.rec.Usage.Total(),
		Canceled: req.rec.ErrorClass == usage.ErrClientDisconnect,
		Broken:   req.rec.ErrorClass == usage.ErrStreamBroken || req.rec.ErrorClass == usage.ErrUpstreamTimeout}
	if out := req.rec.Usage.Output; out > 1 && at.Duration > req.rec.TTFT {
		o.PerToken = (at.Duration - req.rec.TTFT) / time.Duration(out-1)
	}
	plan.Done(a, o)
	g.audit(req, req.promptBody)
	if req.rec.Status >= 400 {
		at.ErrorClass = req.rec.ErrorClass
	}
	return false, req.rec.Status != 0
}

// upstreamError maps an upstream error status to the client's error. The
// upstream's own message is passed on only for faults of the request itself
// (400, 413, 422), where it helps the client; otherwise it may name the
// gateway's upstream account, so the client gets the gateway's words. It also
// returns the vendor's error code and retry-after, for the router.
func (g *Gateway) upstreamError(resp *http.Response, req *request, log requestLog) (*apierr.Error, string, time.Duration) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	st := resp.StatusCode
	req.rec.ErrorClass = usage.ErrUpstream
	log.Warn("upstream error", "channel", req.channel.Name, "status", st, "body", truncate(body, 512))
	code := ""
	for _, f := range []string{"code", "type", "status"} { // OpenAI, Anthropic, Gemini
		if s, ok := jsonfield.Path(body, "error", f); ok {
			if c, ok := jsonfield.String(body[s.Start:s.End]); ok && c != "" {
				code = c
				break
			}
		}
	}
	ra := time.Duration(0)
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		ra = time.Duration(n) * time.Second
	}
	var e *apierr.Error
	switch {
	case st == http.StatusTooManyRequests:
		e = apierr.RateLimited("The upstream model server is rate limiting requests; retry later.", ra)
	case st == http.StatusBadRequest || st == http.StatusRequestEntityTooLarge || st == http.StatusUnprocessableEntity:
		msg := "The upstream model server rejected the request."
		if s, ok := jsonfield.Path(body, "error", "message"); ok {
			if m, ok := jsonfield.String(body[s.Start:s.End]); ok && m != "" {
				msg = "Upstream: " + truncate([]byte(m), 1000)
			}
		}
		e = &apierr.Error{Status: st, Type: "invalid_request_error", Code: "upstream_rejected", Message: msg}
		req.rec.ErrorClass = usage.ErrClient
	case st >= 500:
		e = apierr.UpstreamFailed("The upstream model server failed ("+strconv.Itoa(st)+").", nil)
	default:
		e = apierr.UpstreamFailed("The upstream model server refused the gateway's request ("+strconv.Itoa(st)+").", nil)
	}
	return e, code, ra
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// audit counts, for one request in AuditEvery, the prompt with the upstream
// model's exact tokenizer, so the vendor's billed prompt tokens can be
// compared with baimo's count (GET /admin/audit/vendors). It runs after the
// answer reached the client.
func (g *Gateway) audit(req *request, promptBody []byte) {
	chat := req.endpoint.Name == Chat.Name || req.endpoint.Name == Messages.Name || req.endpoint.Name == GenerateContent.Name
	if g.opt.AuditEvery <= 0 || req.rec.Usage.Source != usage.SourceVendor || !chat {
		return
	}
	if g.audits.Add(1)%uint64(g.opt.AuditEvery) != 0 {
		return
	}
	if n, src := g.opt.Counter.CountPrompt(req.rec.UpstreamModel, promptBody); src == usage.SourceCounted {
		req.rec.CountedInput = n
	}
}
