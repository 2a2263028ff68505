package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"baimo/internal/apierr"
	"baimo/internal/jsonfield"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/ir"
	"baimo/internal/route"
)

// The Anthropic and Gemini endpoints. Their upstream path depends on the
// channel (see upstreamPath), so Path is only the Anthropic one.
var (
	Messages        = Endpoint{Name: "messages", Path: "/messages", Stream: true}
	GenerateContent = Endpoint{Name: "generate_content", Stream: true}
)

// Inbound says which API a request came in on: its wire format and endpoint.
// For Gemini the model and whether to stream come from the URL
// (models/{model}:streamGenerateContent); for the other formats from the body.
type Inbound struct {
	Format   ir.Format
	Endpoint Endpoint
	Model    string // Gemini only
	Stream   bool   // Gemini only
}

// format returns the wire format a channel speaks.
func (ch *Channel) format() ir.Format {
	switch ch.Kind {
	case "anthropic":
		return ir.FormatAnthropic
	case "gemini":
		return ir.FormatGemini
	}
	return ir.FormatOpenAI
}

// AuthenticateFormat finds the key a client of format f presents, where its
// API puts it: Gemini clients send x-goog-api-key or ?key=; every format also
// accepts Authorization: Bearer and x-api-key.
func (g *Gateway) AuthenticateFormat(r *http.Request, f ir.Format) (*keys.Key, *apierr.Error) {
	if f == ir.FormatGemini {
		if s := r.Header.Get("X-Goog-Api-Key"); s != "" {
			return g.AuthenticateSecret(r.Context(), s)
		}
		if r.Header.Get("Authorization") == "" && r.Header.Get("X-Api-Key") == "" {
			if s := r.URL.Query().Get("key"); s != "" {
				return g.AuthenticateSecret(r.Context(), s)
			}
		}
	}
	return g.Authenticate(r)
}

// admitFormat checks a request in its inbound format and sets the prompt
// body used for counting (OpenAI-shaped, which the TokenCounter reads).
func (g *Gateway) admitFormat(req *request, body []byte, in Inbound) *apierr.Error {
	switch in.Format {
	case ir.FormatAnthropic:
		if aerr := g.admitAnthropic(req, body); aerr != nil {
			return aerr
		}
	case ir.FormatGemini:
		if aerr := g.admitGemini(req, body, in); aerr != nil {
			return aerr
		}
	default:
		if aerr := g.admit(req, body); aerr != nil {
			return aerr
		}
		req.promptBody = body
		return nil
	}
	req.promptBody = openAIPrompt(in.Format, body, req.model)
	return nil
}

// openAIPrompt returns body as an OpenAI chat request for counting its
// prompt; body itself if it cannot be translated.
func openAIPrompt(f ir.Format, body []byte, model string) []byte {
	if f == ir.FormatOpenAI {
		return body
	}
	tr, err := provider.NewTranslator(f, ir.FormatOpenAI, nil)
	if err != nil {
		return body
	}
	up, err := tr.Request(provider.Request{Body: body, Model: model})
	if err != nil {
		return body
	}
	return up.Body
}

// admitModel checks that the model is served and the key may use it.
func (g *Gateway) admitModel(req *request, m string) *apierr.Error {
	req.model, req.rec.Model = m, m
	if len(g.byModel[m]) == 0 {
		return apierr.ModelNotFound(m)
	}
	if !req.key.Allows(m) {
		return apierr.ModelNotAllowed(m)
	}
	return nil
}

// admitAnthropic checks a Messages request's fields.
func (g *Gateway) admitAnthropic(req *request, body []byte) *apierr.Error {
	if !json.Valid(body) {
		return apierr.InvalidJSON(nil)
	}
	var model, stream, messages, maxTokens jsonfield.Span
	var hasModel, hasStream, hasMessages, hasMax bool
	err := jsonfield.Each(body, func(k []byte, v jsonfield.Span) bool {
		switch string(k) {
		case "model":
			model, hasModel = v, true
		case "stream":
			stream, hasStream = v, true
		case "messages":
			messages, hasMessages = v, true
		case "max_tokens":
			maxTokens, hasMax = v, true
		}
		return true
	})
	if err != nil {
		return apierr.BadRequest("", "The request body must be a JSON object.")
	}
	if !hasModel {
		return apierr.BadRequest("model", "model: Field required")
	}
	m, ok := jsonfield.String(body[model.Start:model.End])
	if !ok || m == "" {
		return apierr.BadRequest("model", "model: must be a non-empty string")
	}
	if hasStream {
		v := body[stream.Start:stream.End]
		s, ok := jsonfield.Bool(v)
		if !ok && !jsonfield.IsNull(v) {
			return apierr.BadRequest("stream", "stream: must be a boolean")
		}
		req.stream = s
	}
	req.rec.Stream = req.stream
	if !hasMessages || body[messages.Start] != '[' {
		return apierr.BadRequest("messages", "messages: Field required (an array of messages)")
	}
	if !hasMax {
		return apierr.BadRequest("max_tokens", "max_tokens: Field required")
	}
	n, ok := jsonfield.Int(body[maxTokens.Start:maxTokens.End])
	if !ok || n < 1 {
		return apierr.BadRequest("max_tokens", "max_tokens: must be a positive integer")
	}
	req.maxTokens = n
	return g.admitModel(req, m)
}

// admitGemini checks a generateContent request: the model and the stream
// come from the URL.
func (g *Gateway) admitGemini(req *request, body []byte, in Inbound) *apierr.Error {
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return apierr.InvalidJSON(nil)
	}
	if in.Model == "" {
		return apierr.BadRequest("model", "The URL must name a model: /v1beta/models/{model}:generateContent.")
	}
	req.stream = in.Stream
	req.rec.Stream = in.Stream
	s, ok := jsonfield.Find(body, "contents")
	if !ok || body[s.Start] != '[' {
		return apierr.BadRequest("contents", "contents is required: an array of Content.")
	}
	if p, ok := jsonfield.Path(body, "generationConfig", "maxOutputTokens"); ok {
		if n, ok := jsonfield.Int(body[p.Start:p.End]); ok && n > 0 {
			req.maxTokens, req.maxTokensField = n, "generationConfig.maxOutputTokens"
		}
	}
	if p, ok := jsonfield.Path(body, "generationConfig", "candidateCount"); ok {
		if n, ok := jsonfield.Int(body[p.Start:p.End]); ok && n > 0 {
			req.choices, req.choicesField = n, "generationConfig.candidateCount"
		}
	}
	return g.admitModel(req, in.Model)
}

// prepareAttempt makes the upstream request body for the chosen channel and
// sets req.path (below the channel's base URL) and req.tr: same format both
// sides passes the body through, patching only the model; otherwise the
// translator rewrites it.
func (g *Gateway) prepareAttempt(req *request, body []byte) ([]byte, *apierr.Error) {
	ch := req.channel
	kind := ch.format()
	req.tr = nil
	if req.format == kind {
		switch kind {
		case ir.FormatOpenAI:
			req.path = req.endpoint.Path
			return g.prepare(req, body)
		case ir.FormatAnthropic:
			up := ch.Models[req.model]
			req.rec.Channel, req.rec.UpstreamModel = ch.Name, up
			req.path = Messages.Path
			if up == req.model {
				return body, nil
			}
			out, err := jsonfield.Set(body, "model", strconv.AppendQuote(nil, up))
			if err != nil {
				return nil, apierr.Internal(err)
			}
			return out, nil
		case ir.FormatGemini:
			up := ch.Models[req.model]
			req.rec.Channel, req.rec.UpstreamModel = ch.Name, up
			req.path = geminiPath(up, req.stream)
			return body, nil
		}
	}
	up := ch.Models[req.model]
	req.rec.Channel, req.rec.UpstreamModel = ch.Name, up
	if req.endpoint.Name != Chat.Name && req.endpoint.Name != Messages.Name && req.endpoint.Name != GenerateContent.Name {
		return nil, apierr.BadRequest("model", "The %s endpoint is not supported by this model's %s upstream; use chat completions.",
			req.endpoint.Name, kind)
	}
	tr, err := provider.NewTranslator(req.format, kind, g.opt.Clock)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	// No ClientModel: as in a passthrough, the client sees the upstream's model name.
	u, err := tr.Request(provider.Request{Body: body, Model: up, Stream: req.stream})
	if err != nil {
		var ue *ir.UnsupportedError
		var be *ir.BadRequestError
		switch {
		case errors.As(err, &ue):
			e := apierr.BadRequest("", "%s", ue.Error())
			e.Code = "unsupported_feature"
			return nil, e
		case errors.As(err, &be):
			return nil, apierr.BadRequest("", "%s", be.Msg)
		}
		return nil, apierr.Internal(err)
	}
	req.tr = tr
	req.path = "/" + u.Path
	return u.Body, nil
}

// geminiPath is the generateContent path of a Gemini upstream model.
func geminiPath(model string, stream bool) string {
	if stream {
		return "/models/" + url.PathEscape(model) + ":streamGenerateContent?alt=sse"
	}
	return "/models/" + url.PathEscape(model) + ":generateContent"
}

// setUpstreamAuth sets the headers a channel's kind authenticates with:
// Authorization: Bearer (OpenAI-compatible), x-api-key and anthropic-version
// (Anthropic), x-goog-api-key (Gemini). An Anthropic client's anthropic-beta
// header is passed on to an Anthropic upstream.
func setUpstreamAuth(h http.Header, r *http.Request, req *request) {
	setAuth(h, req.channel.Kind, req.auth)
	if req.channel.Kind == "anthropic" && req.format == ir.FormatAnthropic {
		if b := r.Header.Get("Anthropic-Beta"); b != "" && h.Get("Anthropic-Beta") == "" {
			h.Set("Anthropic-Beta", b)
		}
	}
}

// setAuth sets the headers an upstream of kind authenticates with; auth is
// "Bearer <secret>", or "" for none.
func setAuth(h http.Header, kind, auth string) {
	secret := strings.TrimPrefix(auth, "Bearer ")
	switch kind {
	case "anthropic":
		if secret != "" {
			h.Set("X-Api-Key", secret)
		}
		if h.Get("Anthropic-Version") == "" {
			h.Set("Anthropic-Version", anthropic.Version)
		}
	case "gemini":
		if secret != "" {
			h.Set("X-Goog-Api-Key", secret)
		}
	default:
		if auth != "" {
			h.Set("Authorization", auth)
		}
	}
}

// ProbeTarget is the request an active health probe sends for one of the
// channel's keys (auth, as route.Key.Data holds it): a GET of the vendor's
// model list, which costs no tokens, with the channel's headers and the
// key's authentication as a real request would carry them.
func (c *Channel) ProbeTarget(auth string) route.ProbeTarget {
	h := c.header.Clone()
	h.Del("Content-Type")
	setAuth(h, c.Kind, auth)
	return route.ProbeTarget{URL: c.BaseURL + "/models", Header: h}
}
