package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// The answer's last bytes wait for its record and settlement to commit
// (billing.Finish): a client that holds a complete answer was billed for it,
// whatever happens to the process after. A client never gets more output
// than the request's hold covers: a stream that goes past it is cut.

// relayBody relays a whole (not streamed) answer.
func (g *Gateway) relayBody(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, log requestLog) {
	buf := g.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer g.putBuf(buf)
	limit := g.opt.Limits.MaxResponseBytes
	if resp.ContentLength > 0 && resp.ContentLength <= limit {
		buf.Grow(int(resp.ContentLength))
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err == nil && int64(buf.Len()) > limit {
		err = errors.New("upstream response over the size limit")
	}
	if err != nil {
		aerr, class := classify(r, err)
		req.rec.ErrorClass = class
		if aerr == nil {
			req.rec.Status = 499
		} else {
			req.rec.Status = aerr.Status
			g.writeError(w, req, aerr)
		}
		g.finish(req, log)
		return
	}
	now := g.opt.Clock.Now()
	req.rec.TTFT = now.Sub(req.start)
	if req.replica != nil {
		req.replica.FirstToken(now)
	}
	out, u, err := req.tr.Response(buf.Bytes())
	if err != nil {
		log.Warn("upstream answer not translated", "channel", req.channel.Name, "err", err)
		aerr := apierr.UpstreamFailed("The upstream model server's answer could not be understood.", err)
		req.rec.Status, req.rec.ErrorClass = aerr.Status, usage.ErrUpstream
		g.writeError(w, req, aerr)
		g.finish(req, log)
		return
	}
	if u.Source == usage.SourceNone {
		u = g.countUsage(req, req.tr.BodyText(nil, buf.Bytes()))
	}
	if req.tel.CapturesContent() {
		req.tel.SetCompletion(req.tr.BodyText(nil, buf.Bytes()))
	}
	req.rec.Usage = g.capOutput(req, u, log)
	req.rec.Status, req.rec.Complete = http.StatusOK, true
	g.audit(req)
	h := w.Header()
	h.Set("Content-Type", answerType(req, resp))
	h.Set("Content-Length", strconv.Itoa(len(out)))
	g.setLimitHeader(h, req)
	committed := g.waitCommit(g.finish(req, log), log)
	if !committed {
		// Unbilled answers are never delivered: the client gets a clear
		// error instead (the record is still queued and will be written).
		h.Del("Content-Length")
		g.writeError(w, req, apierr.Unavailable("The gateway could not record this request in time; it was not delivered.", nil))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(g.opt.Clock.Now().Add(g.opt.Limits.ClientWriteTimeout.D()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// answerType is the content type of an answer for the client: the
// upstream's when it passes through (a transcription as text, speech as
// audio), JSON when translated.
func answerType(req *request, resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" && req.in.Format == req.channel.format {
		return ct
	}
	return "application/json"
}

// rawChunk is the most of a raw answer read at once.
const rawChunk = 32 << 10

// relayRaw relays a raw answer (speech's audio) as it comes, in chunks,
// up to limits.max_response_bytes. Its usage is what the request said
// (the characters to speak: Translator.Response with no body); the last
// chunk waits for the record's commit, so a client that holds the whole
// answer was billed for it.
func (g *Gateway) relayRaw(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, log requestLog) {
	h := w.Header()
	h.Set("Content-Type", answerType(req, resp))
	g.setLimitHeader(h, req)
	rc := http.NewResponseController(w)
	writeTimeout := g.opt.Limits.ClientWriteTimeout.D()
	buf := make([]byte, rawChunk)
	var held []byte
	var total int64
	var readErr error
	started, gone := false, false
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if !started {
				req.rec.TTFT, started = g.opt.Clock.Now().Sub(req.start), true
				w.WriteHeader(http.StatusOK)
				req.rec.Status = http.StatusOK
			}
			total += int64(n)
			if total > g.opt.Limits.MaxResponseBytes {
				readErr = errors.New("upstream answer over the size limit")
				break
			}
			// The previous chunk goes out; this one is held until the next
			// arrives or the record commits.
			if len(held) > 0 {
				_ = rc.SetWriteDeadline(g.opt.Clock.Now().Add(writeTimeout))
				if _, err := w.Write(held); err != nil || rc.Flush() != nil {
					gone = true
					break
				}
			}
			held = append(held[:0], buf[:n]...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	_, u, _ := req.tr.Response(nil)
	req.rec.Usage = u
	switch {
	case gone || r.Context().Err() != nil:
		req.rec.ErrorClass, req.rec.Complete = usage.ErrClientDisconnect, false
		if !started {
			req.rec.Status = 499
		}
	case readErr != nil:
		req.rec.ErrorClass = usage.ErrStreamBroken
		log.Warn("raw answer ended early", "channel", req.channel.Name, "err", readErr)
	default:
		req.rec.Complete = true
		if !started {
			req.rec.Status = http.StatusOK
			w.WriteHeader(http.StatusOK)
		}
	}
	committed := g.waitCommit(g.finish(req, log), log)
	if !req.rec.Complete || !committed || len(held) == 0 {
		return
	}
	_ = rc.SetWriteDeadline(g.opt.Clock.Now().Add(writeTimeout))
	if _, err := w.Write(held); err == nil {
		_ = rc.Flush()
	}
}

// countUsage counts what an upstream that reported no usage consumed: the
// prompt as sent and the text it generated.
func (g *Gateway) countUsage(req *request, text []byte) usage.Usage {
	var u usage.Usage
	var s1, s2 usage.Source
	u.Input, s1 = g.promptTokensSource(req)
	u.Output, s2 = g.opt.Counter.CountText(req.model, text)
	u.Source = max(s1, s2)
	return u
}

// setLimitHeader tells the client that its output limit was lowered to what
// its balance pays for.
func (g *Gateway) setLimitHeader(h http.Header, req *request) {
	if t := req.ticket; t != nil && t.Lowered {
		h.Set("X-Baimo-Output-Limit", strconv.FormatInt(t.Output, 10))
	}
}

// waitCommit waits for a record's commit, up to the commit timeout.
func (g *Gateway) waitCommit(done <-chan struct{}, log requestLog) bool {
	if done == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
	}
	t := g.opt.Clock.NewTimer(g.opt.Limits.CommitTimeout.D())
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C():
		log.Error("usage record not committed within the commit timeout: the answer's final byte is withheld",
			"timeout", g.opt.Limits.CommitTimeout.D())
		return false
	}
}

// writeError writes e before anything else was written.
func (g *Gateway) writeError(w http.ResponseWriter, req *request, e *apierr.Error) {
	provider.WriteError(w, req.in.Format, e)
}

// outputGuard cuts a stream that goes past the output its hold covers
// (limit tokens, 0 for none): a misbehaving upstream must not hand a
// prepaid tenant an answer it cannot pay for. Bytes bound tokens from
// above, so the text is counted only once it is longer than the limit in
// bytes, and again each time it grows by a sixteenth of the limit.
type outputGuard struct {
	limit      int64
	countedLen int
	tokens     int64
}

// over reports whether text, the answer's text so far, is past the limit.
func (o *outputGuard) over(g *Gateway, req *request, text []byte) bool {
	if o.limit <= 0 || int64(len(text)) <= o.limit {
		return false
	}
	if o.countedLen > 0 && len(text)-o.countedLen < max(256, int(o.limit/16)) {
		return false
	}
	n, src := g.opt.Counter.CountText(req.model, text)
	o.countedLen, o.tokens = len(text), n
	if src == usage.SourceEstimated { // an estimate is held to its error margin
		n -= n / 5
	}
	return n > o.limit
}

// capOutput bills at most the output the request's hold authorised: an
// upstream that produced more (past the max_tokens it was sent, or past the
// model's maximum in the catalog) is the operator's loss, logged, never the
// tenant's debt.
func (g *Gateway) capOutput(req *request, u usage.Usage, log requestLog) usage.Usage {
	limit := streamLimit(req)
	if limit <= 0 || u.Output <= limit {
		return u
	}
	log.Warn("the upstream produced more output than the request's hold covers: billed the hold's output",
		"channel", req.channel.Name, "output", u.Output, "authorised", limit)
	u.Output = limit
	u.Reasoning = min(u.Reasoning, limit)
	return u
}

// streamLimit is the output a request may deliver and be billed for: the
// hold's output per answer times the answers asked for (0: no limit known).
func streamLimit(req *request) int64 {
	if req.ticket == nil || req.ticket.Output <= 0 {
		return 0
	}
	return req.ticket.Output * max(req.adm.Choices, 1)
}

// relayStream relays a stream, translated or passed through, and meters it:
// the one relay loop. Events are written as they come and flushed when no
// more of the upstream's bytes are already here; what follows the
// upstream's end of answer (its closing events) is held until the record is
// committed.
func (g *Gateway) relayStream(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, cancel context.CancelFunc, log requestLog) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	g.setLimitHeader(h, req)
	w.WriteHeader(http.StatusOK)
	req.rec.Status = http.StatusOK
	rc := http.NewResponseController(w)
	writeTimeout := g.opt.Limits.ClientWriteTimeout.D()
	idle := g.opt.Limits.StreamIdleTimeout.D()
	var idleFired atomic.Bool
	timer := g.opt.Clock.AfterFunc(idle, func() { idleFired.Store(true); cancel() })
	defer timer.Stop()

	tr, meter := req.tr, req.tr.Meter()
	rd := g.sseReader(resp.Body)
	defer g.readers.Put(rd)
	guard := outputGuard{limit: streamLimit(req)}
	scratch := g.bufs.Get().(*bytes.Buffer)
	defer g.putBuf(scratch)
	out := scratch.Bytes()[:0]
	var held []byte
	var readErr, trErr error
	first, gone, cut := true, false, false
	// The write deadline is renewed when a quarter of it has passed, not on
	// every flush: a client that stops reading is cut within 1¼ of it.
	var deadlineSet time.Time
	cp := checkpoints{at: req.start}
	flush := func() bool {
		if now := g.opt.Clock.Now(); now.Sub(deadlineSet) > writeTimeout/4 {
			_ = rc.SetWriteDeadline(now.Add(writeTimeout))
			deadlineSet = now
		}
		return rc.Flush() == nil
	}
	for {
		ev, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		timer.Reset(idle)
		if first {
			now := g.opt.Clock.Now()
			req.rec.TTFT = now.Sub(req.start)
			first = false
			if req.replica != nil {
				req.replica.FirstToken(now)
			}
		} else if req.replica != nil {
			req.replica.Token(g.opt.Clock.Now())
		}
		out, trErr = tr.Stream(out[:0], ev)
		if guard.over(g, req, meter.Text()) {
			cut = true
			cancel()
			break
		}
		if meter.Done() || trErr != nil {
			held = append(held, out...)
		} else if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				gone = true
				break
			}
			if rd.Buffered() == 0 && !flush() {
				gone = true
				break
			}
		}
		if trErr != nil {
			break
		}
		cp.maybe(g, req, meter.Text())
	}
	if cap(out) > scratch.Cap() {
		*scratch = *bytes.NewBuffer(out[:0]) // keep the grown buffer for the next stream
	}

	// Decide how the stream ended and what closes it for the client.
	complete := false
	var endErr error
	switch {
	case gone || r.Context().Err() != nil:
		req.rec.ErrorClass = usage.ErrClientDisconnect
	case cut:
		req.rec.ErrorClass = usage.ErrOutputLimit
		held = provider.StreamError(req.in.Format, held, http.StatusBadGateway,
			"The answer reached the output this request's hold covers ("+strconv.FormatInt(guard.limit, 10)+" tokens); it was cut.")
	case trErr != nil:
		req.rec.ErrorClass = usage.ErrUpstream
	default:
		held, endErr = tr.StreamEnd(held)
		switch {
		case idleFired.Load():
			req.rec.ErrorClass = usage.ErrUpstreamTimeout
		case errors.Is(endErr, ir.ErrStreamFailed):
			req.rec.ErrorClass = usage.ErrUpstream
		case readErr != nil || endErr != nil:
			req.rec.ErrorClass = usage.ErrStreamBroken
		default:
			complete = true
		}
	}
	if !complete && req.rec.ErrorClass != usage.ErrClientDisconnect {
		log.Warn("stream ended early", "channel", req.channel.Name, "class", req.rec.ErrorClass, "err", readErr, "translate", trErr)
	}
	req.rec.Complete = complete
	req.rec.Usage = g.capOutput(req, g.streamUsage(req, complete, cut, guard), log)
	g.audit(req)
	committed := g.waitCommit(g.finish(req, log), log)
	if req.rec.ErrorClass == usage.ErrClientDisconnect || !committed || len(held) == 0 {
		return
	}
	_ = rc.SetWriteDeadline(g.opt.Clock.Now().Add(writeTimeout))
	if _, err := w.Write(held); err == nil {
		_ = rc.Flush()
	}
}

// checkpoints note, every checkpointEvery or checkpointBytes of answer, what
// a stream has delivered (billing.Checkpoint), so that if this node dies
// mid-stream the survivors settle its hold for what was delivered.
type checkpoints struct {
	at     time.Time
	len    int   // bytes of text counted
	tokens int64 // their tokens, counted piece by piece (a checkpoint need not be exact)
}

const (
	checkpointEvery = 10 * time.Second
	checkpointBytes = 4000 // about 1,000 tokens of text
)

func (c *checkpoints) maybe(g *Gateway, req *request, text []byte) {
	if req.ticket == nil || req.ticket.Held == 0 {
		return
	}
	grown := len(text)-c.len >= checkpointBytes
	if !grown && len(text) == c.len {
		return // nothing new since the last one
	}
	now := g.opt.Clock.Now()
	if !grown && now.Sub(c.at) < checkpointEvery {
		return
	}
	n, src := g.opt.Counter.CountText(req.model, text[c.len:])
	c.at, c.len, c.tokens = now, len(text), c.tokens+n
	rec := req.rec
	rec.Attempts = nil
	rec.Duration = now.Sub(req.start)
	var s1 usage.Source
	rec.Usage.Input, s1 = g.promptTokensSource(req)
	rec.Usage.Output, rec.Usage.Source = c.tokens, max(s1, src)
	if vendor, ok := req.tr.StreamUsage(); ok && vendor.Input > 0 { // Anthropic reports the input side at the start
		rec.Usage.Input, rec.Usage.CachedInput, rec.Usage.CacheWrite5m, rec.Usage.CacheWrite1h =
			vendor.Input, vendor.CachedInput, vendor.CacheWrite5m, vendor.CacheWrite1h
	}
	g.opt.Billing.Checkpoint(req.ticket, rec)
}

// streamUsage is what a stream consumed: the vendor's report when the
// stream completed; else what was delivered, counted, keeping the vendor's
// figures where they are larger (Anthropic reports the input side at the
// start of a stream). A stream cut at its output limit is billed at most
// that limit.
func (g *Gateway) streamUsage(req *request, complete, cut bool, guard outputGuard) usage.Usage {
	vendor, haveUsage := req.tr.StreamUsage()
	if haveUsage && complete {
		return vendor
	}
	u := g.countUsage(req, req.tr.Meter().Text())
	if haveUsage {
		if vendor.Input > 0 {
			u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h = vendor.Input, vendor.CachedInput, vendor.CacheWrite5m, vendor.CacheWrite1h
		}
		if vendor.Output > u.Output && !cut {
			u.Output, u.Reasoning = vendor.Output, vendor.Reasoning
		}
	}
	if cut {
		u.Output = min(u.Output, guard.limit)
		u.Reasoning = min(u.Reasoning, u.Output)
	}
	return u
}
