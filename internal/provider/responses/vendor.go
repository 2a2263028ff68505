package responses

import (
	"encoding/json"
	"net/http"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// Vendor is the Responses API as the gateway calls an upstream that serves
// it natively (OpenAI, Azure OpenAI, vLLM and others with /v1/responses).
var Vendor ir.Vendor = vendor{}

type vendor struct{}

// BaseURL returns the configured base URL as OpenAI-compatible channels
// take it (it names its version: https://api.openai.com/v1).
func (vendor) BaseURL(configured string) string { return openai.Vendor.BaseURL(configured) }

// Path is /responses: the one endpoint of the format.
func (vendor) Path(string, string, bool) string { return "/responses" }

// SetAuth sets Authorization: Bearer, as OpenAI-compatible channels.
func (vendor) SetAuth(h http.Header, secret string) { openai.Vendor.SetAuth(h, secret) }

// Prepare sets the model and, when limit > 0, max_output_tokens. A
// Responses stream always ends with its usage, so nothing is asked for.
func (vendor) Prepare(body []byte, a *ir.Admission, _, model string, limit int64) ([]byte, error) {
	return ir.SetModelAndLimit(body, a, model, "max_output_tokens", limit)
}

// ParseUsage reads the value of a response's "usage": the one reading of
// the Responses API's usage. Input is input_tokens (cached included),
// CachedInput input_tokens_details.cached_tokens, Output output_tokens
// (reasoning included), Reasoning output_tokens_details.reasoning_tokens.
// ok is false when v is null, holds no counts, or holds a negative one.
func ParseUsage(v []byte) (usage.Usage, bool) {
	if jsonfield.IsNull(v) {
		return usage.Usage{}, false
	}
	var w struct {
		InputTokens         *int64         `json:"input_tokens"`
		OutputTokens        *int64         `json:"output_tokens"`
		InputTokensDetails  *InputDetails  `json:"input_tokens_details"`
		OutputTokensDetails *OutputDetails `json:"output_tokens_details"`
	}
	if json.Unmarshal(v, &w) != nil {
		return usage.Usage{}, false
	}
	if w.InputTokens == nil && w.OutputTokens == nil {
		return usage.Usage{}, false
	}
	var u usage.Usage
	if w.InputTokens != nil {
		u.Input = *w.InputTokens
	}
	if w.OutputTokens != nil {
		u.Output = *w.OutputTokens
	}
	if w.InputTokensDetails != nil {
		u.CachedInput = w.InputTokensDetails.CachedTokens
	}
	if w.OutputTokensDetails != nil {
		u.Reasoning = w.OutputTokensDetails.ReasoningTokens
	}
	if u.Input < 0 || u.Output < 0 || u.CachedInput < 0 || u.Reasoning < 0 {
		return usage.Usage{}, false
	}
	u.CachedInput = min(u.CachedInput, u.Input)
	u.Reasoning = min(u.Reasoning, u.Output)
	u.Source = usage.SourceVendor
	return u, true
}

// BodyUsage reads the usage of a response object.
func (vendor) BodyUsage(body []byte) (usage.Usage, bool) {
	s, ok := jsonfield.Find(body, "usage")
	if !ok {
		return usage.Usage{}, false
	}
	return ParseUsage(body[s.Start:s.End])
}

// BodyText appends the generated text of a response object: its messages'
// text and refusals, its reasoning and its function calls' arguments.
func (vendor) BodyText(dst, body []byte) []byte {
	var r struct {
		Output []Item `json:"output"`
	}
	_ = json.Unmarshal(body, &r)
	return appendOutputText(dst, r.Output)
}

func appendOutputText(dst []byte, items []Item) []byte {
	for _, it := range items {
		switch it.Type {
		case "message", "reasoning":
			var parts []Part
			_ = json.Unmarshal(it.Content, &parts)
			for _, p := range append(parts, it.summary()...) {
				dst = append(append(dst, p.Text...), p.Refusal...)
			}
		case "function_call":
			if it.Arguments != nil {
				dst = append(dst, *it.Arguments...)
			}
		}
	}
	return dst
}

// NewMeter returns the meter of one stream.
func (vendor) NewMeter(bool) ir.Meter { return &meter{} }

// meter reads a Responses stream: the usage in its closing event
// (response.completed, response.incomplete or response.failed), the text of
// its deltas, and errors. It decodes only the deltas and the closing events.
type meter struct {
	u            usage.Usage
	hasUsage     bool
	done, failed bool
	text         []byte
}

// eventType is an event's type: its SSE name, else its data's "type".
func eventType(ev sse.Event) string {
	if len(ev.Name) > 0 {
		return string(ev.Name)
	}
	if s, ok := jsonfield.Find(ev.Data, "type"); ok {
		t, _ := jsonfield.String(ev.Data[s.Start:s.End])
		return t
	}
	return ""
}

func (m *meter) Event(ev sse.Event) bool {
	switch t := eventType(ev); t {
	case "response.output_text.delta", "response.refusal.delta", "response.reasoning_text.delta",
		"response.reasoning_summary_text.delta", "response.function_call_arguments.delta":
		if len(m.text) < ir.MaxText {
			if s, ok := jsonfield.Find(ev.Data, "delta"); ok {
				d, _ := jsonfield.String(ev.Data[s.Start:s.End])
				m.text = append(m.text, d...)
			}
		}
	case "response.completed", "response.incomplete", "response.failed":
		if s, ok := jsonfield.Path(ev.Data, "response", "usage"); ok {
			if u, ok := ParseUsage(ev.Data[s.Start:s.End]); ok {
				m.u, m.hasUsage = u, true
			}
		}
		if t == "response.failed" {
			m.failed = true
		} else {
			m.done = true
		}
	case "error":
		m.failed = true
	}
	return true
}

func (m *meter) Usage() (usage.Usage, bool) { return m.u, m.hasUsage }
func (m *meter) Text() []byte               { return m.text }
func (m *meter) Done() bool                 { return m.done }
func (m *meter) Failed() bool               { return m.failed }

// End: a Responses stream is complete when its closing event came; it
// needs nothing after it.
func (m *meter) End(dst []byte) ([]byte, bool) { return dst, m.done }
