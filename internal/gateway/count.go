package gateway

import (
	"bytes"
	"net/http"
	"strconv"

	"baimo/internal/apierr"
	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
)

// ServeCountTokens answers Anthropic's POST /v1/messages/count_tokens
// ({"input_tokens": N}) and Gemini's models/{model}:countTokens
// ({"totalTokens": N}) with the gateway's TokenCounter. It calls no upstream
// and writes no usage record. A Gemini body may hold contents or a whole
// generateContentRequest.
func (g *Gateway) ServeCountTokens(w http.ResponseWriter, r *http.Request, in Inbound, writeErr ErrorWriter) {
	if in.Format != ir.FormatAnthropic && in.Format != ir.FormatGemini {
		writeErr(w, apierr.NotFound("Token counting is served for the Anthropic and Gemini APIs."))
		return
	}
	k, aerr := g.AuthenticateFormat(r, in.Format)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	buf := g.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer g.putBuf(buf)
	body, aerr := g.readBody(w, r, buf)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	req := &request{key: k, format: in.Format}
	model := in.Model
	if in.Format == ir.FormatAnthropic {
		s, ok := jsonfield.Find(body, "model")
		if !ok {
			writeErr(w, apierr.BadRequest("model", "model: Field required"))
			return
		}
		if model, ok = jsonfield.String(body[s.Start:s.End]); !ok || model == "" {
			writeErr(w, apierr.BadRequest("model", "model: must be a non-empty string"))
			return
		}
		// count_tokens takes no max_tokens; the translator wants one.
		if _, ok := jsonfield.Find(body, "max_tokens"); !ok {
			var err error
			if body, err = jsonfield.Set(body, "max_tokens", []byte("1")); err != nil {
				writeErr(w, apierr.BadRequest("", "The request body must be a JSON object."))
				return
			}
		}
	} else if s, ok := jsonfield.Find(body, "generateContentRequest"); ok && body[s.Start] == '{' {
		body = body[s.Start:s.End]
	}
	if aerr := g.admitModel(req, model); aerr != nil {
		writeErr(w, aerr)
		return
	}
	n, _ := g.opt.Counter.CountPrompt(model, openAIPrompt(in.Format, body, model))
	out := []byte(`{"input_tokens":`)
	if in.Format == ir.FormatGemini {
		out = []byte(`{"totalTokens":`)
	}
	out = append(strconv.AppendInt(out, n, 10), "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}
