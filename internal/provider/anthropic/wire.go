package anthropic

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

// Client is the Messages API as clients call the gateway in it.
var Client ir.Client = client{}

type client struct{}

// Secret returns the key of Authorization: Bearer, or of x-api-key.
func (client) Secret(r *http.Request) string { return ir.BearerOrAPIKey(r.Header) }

var admitNames = []string{"model", "stream", "messages", "max_tokens", "service_tier", "system", "tools"}

const (
	fModel = iota
	fStream
	fMessages
	fMaxTokens
	fServiceTier
	numAdmit = 7
)

// Admit reads a Messages request (or, for count_tokens, its model). The
// members it acts on must be spelled plainly and once; max_tokens is
// required and positive; a service_tier other than auto or standard_only is
// refused.
func (client) Admit(t ir.Target, body []byte) (ir.Admission, error) {
	var a ir.Admission
	if !json.Valid(body) {
		return a, ir.ErrInvalidJSON
	}
	var sp [numAdmit]jsonfield.Span
	if err := jsonfield.Members(body, admitNames, sp[:]); err != nil {
		if ae, ok := err.(*jsonfield.AmbiguousError); ok {
			return a, ir.Ambiguous("", ae)
		}
		return a, err
	}
	val := func(i int) []byte {
		if sp[i].Start < 0 {
			return nil
		}
		return body[sp[i].Start:sp[i].End]
	}
	m, err := ir.ModelField(val(fModel), "model")
	if err != nil {
		return a, err
	}
	a.Model = m
	if t.Endpoint != ir.EndpointMessages { // count_tokens reads the model only
		return a, nil
	}
	if a.Stream, err = ir.BoolField(val(fStream), "stream"); err != nil {
		return a, err
	}
	if v := val(fMessages); v == nil || v[0] != '[' {
		return a, &ir.FieldError{Param: "messages", Message: "messages: Field required (an array of messages)"}
	}
	if val(fMaxTokens) == nil {
		return a, &ir.FieldError{Param: "max_tokens", Message: "max_tokens: Field required"}
	}
	if a.MaxOutput, err = ir.CountField(val(fMaxTokens), "max_tokens"); err != nil {
		return a, err
	}
	a.MaxOutputField = "max_tokens"
	if v := val(fServiceTier); v != nil && !jsonfield.IsNull(v) {
		s, ok := jsonfield.String(v)
		if !ok || (s != "auto" && s != "standard_only") {
			return a, &ir.FieldError{Param: "service_tier",
				Message: "service_tier: only auto and standard_only are offered through this gateway"}
		}
	}
	return a, nil
}

// TokenCountAnswer is count_tokens' answer.
func (client) TokenCountAnswer(n int64) []byte {
	return append(strconv.AppendInt([]byte(`{"input_tokens":`), n, 10), '}')
}

var _ ir.TokenCountAnswerer = client{}

// Prompt returns the system prompt, the messages (text, tool calls as
// their input JSON, tool results, thinking) and the tools' definitions.
func (client) Prompt(_ ir.Target, body []byte) ir.Prompt {
	var r struct {
		System   json.RawMessage `json:"system"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools json.RawMessage `json:"tools"`
	}
	var p ir.Prompt
	if json.Unmarshal(body, &r) != nil {
		return p
	}
	if s := blocksText(r.System); s != "" {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: s})
	}
	for _, m := range r.Messages {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: m.Role, Content: blocksText(m.Content)})
	}
	if len(r.Tools) > 0 && string(r.Tools) != "null" {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: string(r.Tools)})
	}
	return p
}

// blocksText returns the text of a content value: a string, or the text of
// its blocks (tool inputs as JSON, tool results' content, thinking).
func blocksText(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] == 'n' {
		return ""
	}
	if raw[0] == '"' {
		s, _ := jsonfield.String(raw)
		return s
	}
	var blocks []ContentBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var b []byte
	for _, c := range blocks {
		b = append(append(b, c.Text...), c.Thinking...)
		if len(c.Input) > 0 {
			b = append(b, c.Input...)
		}
		if len(c.Content) > 0 {
			b = append(b, blocksText(c.Content)...)
		}
	}
	return string(b)
}

// Vendor is the Messages API as the gateway calls an upstream in it.
var Vendor ir.Vendor = vendor{}

type vendor struct{}

// BaseURL appends /v1 to a base URL given without it (as Anthropic's SDKs
// take it: https://api.anthropic.com).
func (vendor) BaseURL(configured string) string {
	b := strings.TrimRight(configured, "/")
	if !strings.HasSuffix(b, "/v1") {
		b += "/v1"
	}
	return b
}

// Path is /messages, below a base URL such as https://api.anthropic.com/v1.
func (vendor) Path(string, string, bool) string { return "/messages" }

// SetAuth sets x-api-key and, unless the channel set one, anthropic-version.
func (vendor) SetAuth(h http.Header, secret string) {
	if secret != "" {
		h.Set("X-Api-Key", secret)
	}
	if h.Get("Anthropic-Version") == "" {
		h.Set("Anthropic-Version", Version)
	}
}

// PassHeaders passes an Anthropic client's anthropic-beta header on, unless
// the channel sets its own.
func (vendor) PassHeaders(dst, client http.Header) {
	if b := client.Get("Anthropic-Beta"); b != "" && dst.Get("Anthropic-Beta") == "" {
		dst.Set("Anthropic-Beta", b)
	}
}

var _ ir.HeaderPasser = vendor{}

// Prepare sets the model and, when limit > 0, max_tokens.
func (vendor) Prepare(body []byte, a *ir.Admission, _, model string, limit int64) ([]byte, error) {
	return ir.SetModelAndLimit(body, a, model, "max_tokens", limit)
}

// BodyUsage reads the usage of a whole answer.
func (vendor) BodyUsage(body []byte) (usage.Usage, bool) {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return usage.Usage{}, false
	}
	u, err := ResponseUsage(body)
	return u, err == nil && u.Source != usage.SourceNone
}

// BodyText appends the text, thinking and tool inputs of a whole answer.
func (vendor) BodyText(dst, body []byte) []byte {
	var r struct {
		Content []ContentBlock `json:"content"`
	}
	_ = json.Unmarshal(body, &r)
	for _, c := range r.Content {
		dst = append(append(append(dst, c.Text...), c.Thinking...), c.Input...)
	}
	return dst
}

// NewMeter returns the meter of one stream.
func (vendor) NewMeter(bool) ir.Meter { return &meter{} }

// meter reads a Messages stream: its split usage, the text of its deltas,
// message_stop and error events.
type meter struct {
	su           StreamUsage
	done, failed bool
	text         []byte
}

func (m *meter) Event(ev sse.Event) bool {
	_ = m.su.Event(ev.Name, ev.Data)
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
	case "content_block_delta":
		if len(m.text) < ir.MaxText {
			for _, k := range []string{"text", "thinking", "partial_json"} {
				if s, ok := jsonfield.Path(ev.Data, "delta", k); ok {
					if str, ok := jsonfield.String(ev.Data[s.Start:s.End]); ok {
						m.text = append(m.text, str...)
					}
					break
				}
			}
		}
	}
	return true
}

func (m *meter) Usage() (usage.Usage, bool) { return m.su.Usage() }
func (m *meter) Text() []byte               { return m.text }
func (m *meter) Done() bool                 { return m.done }
func (m *meter) Failed() bool               { return m.failed }

func (m *meter) End(dst []byte) ([]byte, bool) { return dst, m.done }
