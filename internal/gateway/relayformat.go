package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"baimo/internal/jsonfield"
	"baimo/internal/provider"
	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// nativeBodyUsage reads the usage of a whole Anthropic or Gemini response
// body, passed through untranslated.
func nativeBodyUsage(f ir.Format, body []byte) (usage.Usage, bool) {
	switch f {
	case ir.FormatAnthropic:
		if !bytes.Contains(body, []byte(`"usage"`)) {
			return usage.Usage{}, false
		}
		u, err := anthropic.ResponseUsage(body)
		return u, err == nil && u.Source != usage.SourceNone
	case ir.FormatGemini:
		u, ok, err := gemini.ChunkUsage(body)
		return u, ok && err == nil
	}
	return openai.BodyUsage(body)
}

// responseText returns the generated text of a whole Anthropic or Gemini
// response body (text, thinking and tool arguments), for counting when the
// upstream reported no usage.
func responseText(f ir.Format, body []byte) []byte {
	var text []byte
	switch f {
	case ir.FormatAnthropic:
		var r struct {
			Content []struct {
				Text     string          `json:"text"`
				Thinking string          `json:"thinking"`
				Input    json.RawMessage `json:"input"`
			} `json:"content"`
		}
		_ = json.Unmarshal(body, &r)
		for _, c := range r.Content {
			text = append(append(append(text, c.Text...), c.Thinking...), c.Input...)
		}
	case ir.FormatGemini:
		text = geminiText(body, text)
	}
	return text
}

// geminiText appends the text of a Gemini response or stream chunk.
func geminiText(data, text []byte) []byte {
	if !bytes.Contains(data, []byte(`"parts"`)) {
		return text
	}
	var r struct {
		Candidates []struct {
			Content struct {
				Parts []struct {
					Text         string          `json:"text"`
					FunctionCall json.RawMessage `json:"functionCall"`
				} `json:"parts"`
			} `json:"content"`
		} `json:"candidates"`
	}
	_ = json.Unmarshal(data, &r)
	for _, c := range r.Candidates {
		for _, p := range c.Content.Parts {
			text = append(append(text, p.Text...), p.FunctionCall...)
		}
	}
	return text
}

// eventText appends the generated text one upstream stream event of format f
// carries.
func eventText(f ir.Format, data, text []byte) []byte {
	switch f {
	case ir.FormatAnthropic:
		for _, k := range []string{"text", "thinking", "partial_json"} {
			if s, ok := jsonfield.Path(data, "delta", k); ok {
				if str, ok := jsonfield.String(data[s.Start:s.End]); ok {
					return append(text, str...)
				}
			}
		}
	case ir.FormatGemini:
		return geminiText(data, text)
	default:
		if c := openai.InspectChunk(data); len(c.Content) > 0 {
			return openai.AppendUnescaped(text, c.Content)
		}
	}
	return text
}

// streamMeter reads the usage of a passed-through Anthropic or Gemini stream
// and whether it finished.
type streamMeter struct {
	f      ir.Format
	au     anthropic.StreamUsage
	gu     gemini.StreamUsage
	done   bool // the upstream finished the answer
	failed bool // the upstream sent an error event
}

func (m *streamMeter) event(ev sse.Event) {
	switch m.f {
	case ir.FormatAnthropic:
		_ = m.au.Event(ev.Name, ev.Data)
		name := string(ev.Name)
		if name == "" {
			var t struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(ev.Data, &t)
			name = t.Type
		}
		switch name {
		case "message_stop":
			m.done = true
		case "error":
			m.failed = true
		}
	case ir.FormatGemini:
		_ = m.gu.Chunk(ev.Data)
		if bytes.Contains(ev.Data, []byte(`"finishReason"`)) {
			m.done = true
		}
		if bytes.HasPrefix(bytes.TrimSpace(ev.Data), []byte(`{"error"`)) {
			m.failed = true
		}
	}
}

func (m *streamMeter) usage() (usage.Usage, bool) {
	if m.f == ir.FormatAnthropic {
		return m.au.Usage()
	}
	return m.gu.Usage()
}

// relayFormatStream relays a stream that is translated (req.tr) or passed
// through in the Anthropic or Gemini format, metering its usage. The OpenAI
// passthrough has its own, faster loop (relayStream).
func (g *Gateway) relayFormatStream(w http.ResponseWriter, r *http.Request, req *request, resp *http.Response, cancel context.CancelFunc, log requestLog) {
	fl, timer, idle, idleFired := g.beginStream(w, req, cancel)
	defer timer.Stop()

	upFormat := req.channel.format()
	meter := streamMeter{f: req.format}
	rd := g.sseReader(resp.Body)
	defer g.readers.Put(rd)
	var text, out []byte
	var readErr, trErr error
	first, gone := true, false
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
		if len(text) < maxCountedText {
			text = eventText(upFormat, ev.Data, text)
		}
		var chunk []byte
		if req.tr != nil {
			out, trErr = req.tr.Stream(out[:0], ev)
			chunk = out
		} else {
			meter.event(ev)
			chunk = ev.Raw
		}
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				gone = true
				break
			}
			if fl != nil && rd.Buffered() == 0 {
				fl.Flush()
			}
		}
		if trErr != nil {
			break
		}
	}

	// Decide how the stream ended and close it for the client.
	var tail []byte
	var vendor usage.Usage
	var haveUsage bool
	switch {
	case gone || r.Context().Err() != nil:
		req.rec.ErrorClass = usage.ErrClientDisconnect
	case req.tr != nil:
		var endErr error
		if trErr == nil {
			tail, endErr = req.tr.StreamEnd(out[:0])
		}
		switch {
		case idleFired.Load():
			req.rec.ErrorClass = usage.ErrUpstreamTimeout
		case trErr != nil || errors.Is(endErr, ir.ErrStreamFailed):
			req.rec.ErrorClass = usage.ErrUpstream
		case readErr != nil || endErr != nil:
			req.rec.ErrorClass = usage.ErrStreamBroken
		}
	default:
		switch {
		case idleFired.Load():
			req.rec.ErrorClass = usage.ErrUpstreamTimeout
		case meter.failed:
			req.rec.ErrorClass = usage.ErrUpstream
		case readErr != nil || !meter.done:
			req.rec.ErrorClass = usage.ErrStreamBroken
		}
		if req.rec.ErrorClass != usage.ErrNone && !meter.failed {
			msg := provider.ErrorBody(req.format, http.StatusBadGateway, ir.KindServer, "The upstream stream ended before it was complete.")
			name := ""
			if req.format == ir.FormatAnthropic {
				name = "error"
			}
			tail = sse.AppendData(nil, name, msg)
		}
	}
	if req.rec.ErrorClass != usage.ErrClientDisconnect && len(tail) > 0 {
		_, _ = w.Write(tail)
	}
	if fl != nil {
		fl.Flush()
	}
	if req.tr != nil {
		vendor, haveUsage = req.tr.StreamUsage()
	} else {
		vendor, haveUsage = meter.usage()
	}
	if req.rec.ErrorClass == usage.ErrNone {
		req.rec.Complete = true
	} else if req.rec.ErrorClass != usage.ErrClientDisconnect {
		log.Warn("stream ended early", "channel", req.channel.Name, "class", req.rec.ErrorClass, "err", readErr, "translate", trErr)
	}
	if haveUsage && req.rec.Complete {
		req.rec.Usage = vendor
		return
	}
	// Incomplete, or no usage: count what was delivered; keep the vendor's
	// figures where they are larger (Anthropic reports the input side at the
	// start of a stream).
	var u usage.Usage
	var s1, s2 usage.Source
	u.Input, s1 = g.opt.Counter.CountPrompt(req.model, req.promptBody)
	u.Output, s2 = g.opt.Counter.CountText(req.model, text)
	u.Source = max(s1, s2)
	if haveUsage {
		if vendor.Input > 0 {
			u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h = vendor.Input, vendor.CachedInput, vendor.CacheWrite5m, vendor.CacheWrite1h
		}
		if vendor.Output > u.Output {
			u.Output, u.Reasoning = vendor.Output, vendor.Reasoning
		}
	}
	req.rec.Usage = u
}
