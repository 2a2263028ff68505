package openai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// Vendor is the OpenAI-compatible API as the gateway calls an upstream in it.
var Vendor ir.Vendor = vendor{}

type vendor struct{}

// BaseURL returns the configured base URL without a trailing slash (it
// names its version itself, as vendors' docs give it).
func (vendor) BaseURL(configured string) string { return strings.TrimRight(configured, "/") }

// Path is the endpoint's path below a base URL such as
// https://api.openai.com/v1; requests translated from other formats are
// chat completions.
func (vendor) Path(endpoint, _ string, _ bool) string {
	if isMedia(endpoint) {
		return mediaPath(endpoint)
	}
	switch endpoint {
	case ir.EndpointCompletions:
		return "/completions"
	case ir.EndpointEmbeddings:
		return "/embeddings"
	}
	return "/chat/completions"
}

// SetAuth sets Authorization: Bearer.
func (vendor) SetAuth(h http.Header, secret string) {
	if secret != "" {
		h.Set("Authorization", "Bearer "+secret)
	}
}

var includeUsage = []byte(`{"include_usage":true}`)

// Prepare sets the model, asks a stream for its usage (the gateway strips
// the usage chunk again when the client did not ask for it), and sets an
// output limit: max_completion_tokens for OpenAI's reasoning models, which
// refuse max_tokens, max_tokens for everyone else.
func (vendor) Prepare(body []byte, a *ir.Admission, endpoint, model string, limit int64) ([]byte, error) {
	if isMedia(endpoint) {
		return prepareMedia(body, a, model)
	}
	out := body
	var err error
	if model != a.Model {
		if out, err = jsonfield.Set(out, "model", strconv.AppendQuote(nil, model)); err != nil {
			return nil, err
		}
	}
	if a.Stream && !a.ClientUsage {
		if s, ok := jsonfield.Find(out, "stream_options"); ok && out[s.Start] == '{' {
			inner, err := jsonfield.Set(out[s.Start:s.End], "include_usage", []byte("true"))
			if err != nil {
				return nil, err
			}
			out = jsonfield.Replace(out, s, inner)
		} else if out, err = jsonfield.Set(out, "stream_options", includeUsage); err != nil {
			return nil, err
		}
	}
	if limit > 0 {
		if out, err = jsonfield.Set(out, limitField(model), strconv.AppendInt(nil, limit, 10)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// limitField is the output limit's name for model.
func limitField(model string) string {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return "max_completion_tokens"
		}
	}
	return "max_tokens"
}

// BodyUsage reads the usage of a whole answer.
func (vendor) BodyUsage(body []byte) (usage.Usage, bool) { return BodyUsage(body) }

// BodyText appends the generated text of a whole answer: each choice's
// message content, reasoning content and tool call arguments, or text.
func (vendor) BodyText(dst, body []byte) []byte {
	var r struct {
		Choices []struct {
			Message struct {
				Content          *string    `json:"content"`
				ReasoningContent string     `json:"reasoning_content"`
				ToolCalls        []ToolCall `json:"tool_calls"`
			} `json:"message"`
			Text string `json:"text"`
		} `json:"choices"`
	}
	_ = json.Unmarshal(body, &r)
	for _, c := range r.Choices {
		if c.Message.Content != nil {
			dst = append(dst, *c.Message.Content...)
		}
		dst = append(append(dst, c.Message.ReasoningContent...), c.Text...)
		for _, tc := range c.Message.ToolCalls {
			dst = append(dst, tc.Function.Arguments...)
		}
	}
	return dst
}

// NewMeter returns the meter of one stream.
func (vendor) NewMeter(clientUsage bool) ir.Meter {
	return &meter{clientUsage: clientUsage, text: make([]byte, 0, 512)}
}

// meter reads an OpenAI-compatible stream: the usage (top level, or inside
// the last choice as Kimi sends it), the generated text, [DONE], and error
// events. It decodes nothing unless a chunk mentions usage or an error, so
// the common chunk costs a scan.
type meter struct {
	clientUsage  bool
	u            usage.Usage
	hasUsage     bool
	done, failed bool
	text         []byte
}

var errorKey = []byte(`"error"`)

func (m *meter) Event(ev sse.Event) bool {
	if sse.IsDone(ev.Data) {
		m.done = true
		return true
	}
	data := ev.Data
	if len(data) == 0 {
		return true
	}
	if bytes.Contains(data, errorKey) && bytes.HasPrefix(bytes.TrimSpace(data), []byte(`{"error"`)) {
		m.failed = true
		return true
	}
	forward := true
	if bytes.Contains(data, usageKey) {
		if u, ok, only := ChunkUsage(data); ok {
			m.u, m.hasUsage = u, true
			forward = !only || m.clientUsage
		}
	}
	if len(m.text) < ir.MaxText {
		m.text = AppendDeltaText(m.text, data)
	}
	return forward
}

func (m *meter) Usage() (usage.Usage, bool) { return m.u, m.hasUsage }
func (m *meter) Text() []byte               { return m.text }
func (m *meter) Done() bool                 { return m.done }
func (m *meter) Failed() bool               { return m.failed }

func (m *meter) End(dst []byte) ([]byte, bool) {
	switch {
	case m.done:
		return dst, true
	case m.hasUsage: // the usage came and the upstream closed without [DONE]
		return append(dst, "data: [DONE]\n\n"...), true
	}
	return dst, false
}
