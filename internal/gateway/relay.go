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
	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

func (g *Gateway) relayBody(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, promptBody []byte, writeErr ErrorWriter, log requestLog) {
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
			return
		}
		writeErr(w, aerr)
		req.rec.Status = aerr.Status
		return
	}
	body := buf.Bytes()
	req.rec.TTFT = g.opt.Clock.Now().Sub(req.start)
	contentType := resp.Header.Get("Content-Type")
	var u usage.Usage
	ok := false
	switch {
	case req.tr != nil:
		out, tu, err := req.tr.Response(body)
		if err != nil {
			log.Warn("upstream answer not translated", "channel", req.channel.Name, "err", err)
			aerr := apierr.UpstreamFailed("The upstream model server's answer could not be understood.", err)
			writeErr(w, aerr)
			req.rec.Status, req.rec.ErrorClass = aerr.Status, usage.ErrUpstream
			return
		}
		body, u, ok, contentType = out, tu, tu.Source != usage.SourceNone, "application/json"
	case req.format == ir.FormatOpenAI:
		u, ok = openai.BodyUsage(body)
	default:
		u, ok = nativeBodyUsage(req.format, body)
	}
	if ok {
		req.rec.Usage = u
	} else {
		req.rec.Usage = g.countBody(req, promptBody, body)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	req.rec.Status = http.StatusOK
	if _, err := w.Write(body); err != nil {
		req.rec.ErrorClass = usage.ErrClientDisconnect
		return
	}
	req.rec.Complete = true
}

// countBody counts usage when a non-stream response carries none.
func (g *Gateway) countBody(req *request, promptBody, body []byte) usage.Usage {
	var u usage.Usage
	var src usage.Source
	u.Input, src = g.opt.Counter.CountPrompt(req.model, promptBody)
	var text []byte
	if req.format != ir.FormatOpenAI {
		text = responseText(req.format, body)
	} else if s, ok := jsonfield.Find(body, "choices"); ok {
		_ = jsonfield.EachElement(body[s.Start:s.End], func(v jsonfield.Span) bool {
			choice := body[s.Start+v.Start : s.Start+v.End]
			if c, ok := jsonfield.Path(choice, "message", "content"); ok {
				if str, ok := jsonfield.String(choice[c.Start:c.End]); ok {
					text = append(text, str...)
				}
			} else if c, ok := jsonfield.Find(choice, "text"); ok {
				if str, ok := jsonfield.String(choice[c.Start:c.End]); ok {
					text = append(text, str...)
				}
			}
			return true
		})
	}
	var src2 usage.Source
	u.Output, src2 = g.opt.Counter.CountText(req.model, text)
	u.Source = max(src, src2)
	return u
}

// maxCountedText bounds the delivered text kept per stream for counting when
// the upstream reports no usage.
const maxCountedText = 1 << 20

var doneEvent = []byte("data: [DONE]\n\n")

// beginStream sends the stream's headers and arms the idle timer, which
// cancels the upstream when no event arrives within the stream idle timeout
// (reset it with timer.Reset(idle) on every event; idleFired says it fired).
func (g *Gateway) beginStream(w http.ResponseWriter, req *request, cancel context.CancelFunc) (fl http.Flusher, timer *time.Timer, idle time.Duration, idleFired *atomic.Bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	req.rec.Status = http.StatusOK
	fl, _ = w.(http.Flusher)
	idle = g.opt.Limits.StreamIdleTimeout.D()
	idleFired = new(atomic.Bool)
	timer = time.AfterFunc(idle, func() { idleFired.Store(true); cancel() })
	return fl, timer, idle, idleFired
}

func (g *Gateway) relayStream(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, promptBody []byte, cancel context.CancelFunc, log requestLog) {
	fl, timer, idle, idleFired := g.beginStream(w, req, cancel)
	defer timer.Stop()

	rd := g.sseReader(resp.Body)
	defer g.readers.Put(rd)
	var text []byte
	var vendor usage.Usage
	haveUsage, done, first := false, false, true
	chunks := int64(0)
	var readErr error
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
			req.rec.TTFT = g.opt.Clock.Now().Sub(req.start)
			first = false
		}
		forward := true
		if sse.IsDone(ev.Data) {
			done = true
		} else if len(ev.Data) > 0 {
			c := openai.InspectChunk(ev.Data)
			if c.HasUsage {
				vendor, haveUsage = c.Usage, true
				if c.UsageOnly && !req.clientUsage {
					forward = false
				}
			}
			if len(c.Content) > 0 {
				chunks++
				if len(text) < maxCountedText {
					text = openai.AppendUnescaped(text, c.Content)
				}
			}
		}
		if forward {
			if _, err := w.Write(ev.Raw); err != nil {
				req.rec.ErrorClass = usage.ErrClientDisconnect
				break
			}
			// Hold the flush while more of the upstream's bytes are already here.
			if fl != nil && rd.Buffered() == 0 {
				fl.Flush()
			}
		}
		if done {
			break
		}
	}
	if fl != nil {
		fl.Flush()
	}
	switch {
	case req.rec.ErrorClass == usage.ErrClientDisconnect || r.Context().Err() != nil:
		req.rec.ErrorClass = usage.ErrClientDisconnect
	case idleFired.Load():
		req.rec.ErrorClass = usage.ErrUpstreamTimeout
	case readErr != nil || (!done && !haveUsage):
		req.rec.ErrorClass = usage.ErrStreamBroken
	}
	if req.rec.ErrorClass == usage.ErrNone {
		req.rec.Complete = true
		if !done {
			// The upstream closed without [DONE] after sending its usage:
			// end the stream properly for the client.
			_, _ = w.Write(doneEvent)
		}
	} else if req.rec.ErrorClass != usage.ErrClientDisconnect {
		log.Warn("stream ended early", "channel", req.channel.Name, "class", req.rec.ErrorClass, "err", readErr)
		_, _ = w.Write(sse.AppendData(nil, "", []byte(`{"error":{"message":"The upstream stream ended before it was complete.","type":"api_error","param":null,"code":"stream_broken"}}`)))
	}
	if fl != nil {
		fl.Flush()
	}
	if haveUsage {
		req.rec.Usage = vendor
		return
	}
	var u usage.Usage
	var s1, s2 usage.Source
	u.Input, s1 = g.opt.Counter.CountPrompt(req.model, promptBody)
	u.Output, s2 = g.opt.Counter.CountText(req.model, text)
	if u.Output < chunks && s2 == usage.SourceEstimated {
		u.Output = chunks // each streamed delta carries at least one token
	}
	u.Source = max(s1, s2)
	req.rec.Usage = u
}
