package gemini

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// Client is the Gemini API as clients call the gateway in it.
var Client ir.Client = client{}

type client struct{}

// Secret returns x-goog-api-key; else, when the request has neither an
// Authorization nor an x-api-key header, the key query parameter; else the
// key of Authorization: Bearer or x-api-key.
func (client) Secret(r *http.Request) string {
	h := r.Header
	if k := h.Get("X-Goog-Api-Key"); k != "" {
		return k
	}
	if h.Get("Authorization") == "" && h.Get("X-Api-Key") == "" {
		if k := r.URL.Query().Get("key"); k != "" {
			return k
		}
	}
	return ir.BearerOrAPIKey(h)
}

// Google's JSON parser takes a field by its camelCase name or its proto
// (snake_case) name, Go's encoding/json by the camelCase name in any case:
// only the camelCase spelling is read, and the proto spelling of a member
// the gateway acts on is refused (the Gen AI SDKs send camelCase).
// The names are read with their proto twins after them, so that a twin,
// however it is spelled, is found and refused.
var (
	admitNames = []string{"contents", "generationConfig", "generation_config"}
	genNames   = []string{"maxOutputTokens", "candidateCount", "max_output_tokens", "candidate_count"}
)

// Admit reads a generateContent request: the model and whether to stream
// come from the URL (t); the body must hold contents, and its
// generationConfig's maxOutputTokens and candidateCount, if set, must be
// positive integers.
func (client) Admit(t ir.Target, body []byte) (ir.Admission, error) {
	a := ir.Admission{Stream: t.Stream}
	if !json.Valid(body) {
		return a, ir.ErrInvalidJSON
	}
	if t.Model == "" {
		return a, &ir.FieldError{Param: "model", Message: "The URL must name a model: /v1beta/models/{model}:generateContent."}
	}
	if len(t.Model) > ir.MaxModelName {
		return a, &ir.FieldError{Param: "model", Message: "The URL does not name a model."}
	}
	a.Model = t.Model
	var sp [3]jsonfield.Span
	if err := jsonfield.Members(body, admitNames, sp[:]); err != nil {
		return a, ambiguous("", err)
	}
	if sp[2].Start >= 0 {
		return a, snake("", "generationConfig")
	}
	if t.Endpoint != ir.EndpointGenerate { // countTokens
		return a, nil
	}
	if sp[0].Start < 0 || body[sp[0].Start] != '[' {
		return a, &ir.FieldError{Param: "contents", Message: "contents is required: an array of Content."}
	}
	gen := sp[1]
	if gen.Start < 0 || jsonfield.IsNull(body[gen.Start:gen.End]) {
		return a, nil
	}
	g := body[gen.Start:gen.End]
	if g[0] != '{' {
		return a, &ir.FieldError{Param: "generationConfig", Message: "generationConfig must be an object."}
	}
	var gs [4]jsonfield.Span
	if err := jsonfield.Members(g, genNames, gs[:]); err != nil {
		return a, ambiguous("generationConfig", err)
	}
	for i := 2; i < 4; i++ {
		if gs[i].Start >= 0 {
			return a, snake("generationConfig.", genNames[i-2])
		}
	}
	for i, s := range gs[:2] {
		if s.Start < 0 {
			continue
		}
		param := "generationConfig." + genNames[i]
		n, err := ir.CountField(g[s.Start:s.End], param)
		if err != nil {
			return a, err
		}
		if i == 0 {
			a.MaxOutput, a.MaxOutputField = n, param
		} else {
			a.Choices, a.ChoicesField = n, param
		}
	}
	return a, nil
}

// snake is the error for the proto spelling of a member the gateway acts on.
func snake(prefix, camel string) error {
	return &ir.FieldError{Param: prefix + camel,
		Message: "Write " + prefix + camel + " in camelCase, as the Gen AI SDKs send it; its proto spelling is not read by every parser."}
}

func ambiguous(parent string, err error) error {
	if ae, ok := err.(*jsonfield.AmbiguousError); ok {
		return ir.Ambiguous(parent, ae)
	}
	return err
}

// TokenCountAnswer is countTokens' answer.
func (client) TokenCountAnswer(n int64) []byte {
	return append(strconv.AppendInt([]byte(`{"totalTokens":`), n, 10), '}')
}

var _ ir.TokenCountAnswerer = client{}

// Prompt returns the system instruction, the contents (text, function calls'
// arguments and function responses as JSON) and the tools' definitions. A
// countTokens body may wrap a whole request in generateContentRequest.
func (client) Prompt(_ ir.Target, body []byte) ir.Prompt {
	if s, ok := jsonfield.Find(body, "generateContentRequest"); ok && body[s.Start] == '{' {
		body = body[s.Start:s.End]
	}
	var r struct {
		SystemInstruction *Content        `json:"systemInstruction"`
		Contents          []Content       `json:"contents"`
		Tools             json.RawMessage `json:"tools"`
	}
	var p ir.Prompt
	if json.Unmarshal(body, &r) != nil {
		return p
	}
	if r.SystemInstruction != nil {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: string(partsText(nil, r.SystemInstruction.Parts))})
	}
	for _, c := range r.Contents {
		role := c.Role
		if role == "model" {
			role = "assistant"
		}
		p.Messages = append(p.Messages, ir.PromptMessage{Role: role, Content: string(partsText(nil, c.Parts))})
	}
	if len(r.Tools) > 0 && string(r.Tools) != "null" {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: string(r.Tools)})
	}
	return p
}

// partsText appends the text of parts: text, function calls' arguments and
// function responses as JSON.
func partsText(dst []byte, parts []Part) []byte {
	for _, p := range parts {
		dst = append(dst, p.Text...)
		if p.FunctionCall != nil {
			dst = append(dst, p.FunctionCall.Args...)
		}
		if p.FunctionResponse != nil {
			dst = append(dst, p.FunctionResponse.Response...)
		}
	}
	return dst
}

// Vendor is the Gemini API as the gateway calls an upstream in it.
var Vendor ir.Vendor = vendor{}

type vendor struct{}

// BaseURL appends /v1beta to a base URL given without a version.
func (vendor) BaseURL(configured string) string {
	b := strings.TrimRight(configured, "/")
	if !strings.HasSuffix(b, "/v1beta") && !strings.HasSuffix(b, "/v1") {
		b += "/v1beta"
	}
	return b
}

// Path is the model's generateContent method below a base URL such as
// https://generativelanguage.googleapis.com/v1beta.
func (vendor) Path(_, model string, stream bool) string {
	if stream {
		return "/models/" + url.PathEscape(model) + ":streamGenerateContent?alt=sse"
	}
	return "/models/" + url.PathEscape(model) + ":generateContent"
}

// SetAuth sets x-goog-api-key.
func (vendor) SetAuth(h http.Header, secret string) {
	if secret != "" {
		h.Set("X-Goog-Api-Key", secret)
	}
}

// Prepare leaves the body as it is (the model is in the URL) but for an
// output limit, which goes in generationConfig.maxOutputTokens (or the
// snake_case twin the client used).
func (vendor) Prepare(body []byte, _ *ir.Admission, _, _ string, limit int64) ([]byte, error) {
	if limit <= 0 {
		return body, nil
	}
	n := strconv.AppendInt(nil, limit, 10)
	for _, names := range [][2]string{{"generationConfig", "maxOutputTokens"}, {"generation_config", "max_output_tokens"}} {
		if s, ok := jsonfield.Find(body, names[0]); ok && body[s.Start] == '{' {
			inner, err := jsonfield.Set(body[s.Start:s.End], names[1], n)
			if err != nil {
				return nil, err
			}
			return jsonfield.Replace(body, s, inner), nil
		}
	}
	return jsonfield.Set(body, "generationConfig", append(append([]byte(`{"maxOutputTokens":`), n...), '}'))
}

// BodyUsage reads the usageMetadata of a whole answer.
func (vendor) BodyUsage(body []byte) (usage.Usage, bool) {
	u, ok, err := ChunkUsage(body)
	return u, ok && err == nil
}

// BodyText appends the text and function calls of a whole answer.
func (vendor) BodyText(dst, body []byte) []byte { return candidatesText(dst, body) }

// candidatesText appends the text and function calls' arguments of an
// answer or stream chunk.
func candidatesText(dst, data []byte) []byte {
	if !bytes.Contains(data, []byte(`"parts"`)) {
		return dst
	}
	var r struct {
		Candidates []struct {
			Content struct {
				Parts []Part `json:"parts"`
			} `json:"content"`
		} `json:"candidates"`
	}
	_ = json.Unmarshal(data, &r)
	for _, c := range r.Candidates {
		dst = partsText(dst, c.Content.Parts)
	}
	return dst
}

// NewMeter returns the meter of one stream.
func (vendor) NewMeter(bool) ir.Meter { return &meter{} }

// meter reads a streamGenerateContent stream: its usageMetadata, its text,
// the chunk with a finishReason that ends it, and errors.
type meter struct {
	su           StreamUsage
	done, failed bool
	text         []byte
}

var finishKey = []byte(`"finishReason"`)

func (m *meter) Event(ev sse.Event) bool {
	_ = m.su.Chunk(ev.Data)
	if bytes.Contains(ev.Data, finishKey) {
		m.done = true
	}
	if bytes.HasPrefix(bytes.TrimSpace(ev.Data), []byte(`{"error"`)) {
		m.failed = true
	}
	if len(m.text) < ir.MaxText {
		m.text = candidatesText(m.text, ev.Data)
	}
	return true
}

func (m *meter) Usage() (usage.Usage, bool) { return m.su.Usage() }
func (m *meter) Text() []byte               { return m.text }
func (m *meter) Done() bool                 { return m.done }
func (m *meter) Failed() bool               { return m.failed }

func (m *meter) End(dst []byte) ([]byte, bool) { return dst, m.done }
