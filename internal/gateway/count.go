package gateway

import (
	"bytes"
	"net/http"
	"strconv"

	"baimo/internal/apierr"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
)

// ServeCountTokens answers Anthropic's POST /v1/messages/count_tokens
// ({"input_tokens": N}) and Gemini's models/{model}:countTokens
// ({"totalTokens": N}) with the gateway's TokenCounter. It calls no upstream
// and writes no usage record. A body that is not a JSON object is a 400. A
// Gemini body may hold contents or a whole generateContentRequest.
func (g *Gateway) ServeCountTokens(w http.ResponseWriter, r *http.Request, in Inbound) *apierr.Error {
	c := provider.ClientOf(in.Format)
	answerer, ok := c.(ir.TokenCountAnswerer)
	if !ok {
		return apierr.NotFound("Token counting is served for the Anthropic and Gemini APIs.")
	}
	k, aerr := g.Authenticate(r, in.Format)
	if aerr != nil {
		return aerr
	}
	buf := g.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer g.putBuf(buf)
	body, aerr := g.readBody(w, r, buf, in.Endpoint)
	if aerr != nil {
		return aerr
	}
	t := ir.Target{Endpoint: "count_tokens", Model: in.Model}
	a, err := c.Admit(t, body)
	if err != nil {
		return admitError(err)
	}
	req := &request{gw: g, tab: g.chans.Load(), key: k, in: in}
	if aerr := g.admitModel(req, a.Model); aerr != nil {
		return aerr
	}
	n, _ := g.opt.Counter.CountPrompt(a.Model, c.Prompt(t, body))
	out := append(answerer.TokenCountAnswer(n), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}
