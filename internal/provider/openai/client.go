package openai

import (
	"encoding/json"
	"net/http"
	"strings"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
)

// Client is the OpenAI-compatible API as clients call the gateway in it.
var Client ir.Client = client{}

type client struct{}

// Secret returns the key of Authorization: Bearer, or of x-api-key.
func (client) Secret(r *http.Request) string { return ir.BearerOrAPIKey(r.Header) }

// The request members the gateway acts on, in the order of admitFields.
var admitNames = []string{"model", "stream", "stream_options", "messages", "prompt", "input",
	"max_tokens", "max_completion_tokens", "n", "best_of", "service_tier", "tools"}

const (
	fModel = iota
	fStream
	fStreamOptions
	fMessages
	fPrompt
	fInput
	fMaxTokens
	fMaxCompletionTokens
	fN
	fBestOf
	fServiceTier
	fTools
	numAdmit
)

// Admit reads a chat completions, completions or embeddings request. The
// members it acts on must be spelled plainly and once (see
// jsonfield.Members); max_tokens, max_completion_tokens, n and best_of must
// be positive integers; a service_tier other than auto or default (flex,
// priority, scale, which vendors price apart) is refused.
func (client) Admit(t ir.Target, body []byte) (ir.Admission, error) {
	if isMedia(t.Endpoint) {
		return admitMedia(t, body) // media.go
	}
	var a ir.Admission
	if !json.Valid(body) {
		return a, ir.ErrInvalidJSON
	}
	var sp [numAdmit]jsonfield.Span
	if err := jsonfield.Members(body, admitNames, sp[:]); err != nil {
		return a, ambiguous(err)
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
	if a.Stream, err = ir.BoolField(val(fStream), "stream"); err != nil {
		return a, err
	}
	if a.Stream && t.Endpoint == ir.EndpointEmbeddings {
		return a, &ir.FieldError{Param: "stream", Message: "This endpoint does not stream."}
	}
	if v := val(fStreamOptions); v != nil && !jsonfield.IsNull(v) {
		if v[0] != '{' {
			return a, &ir.FieldError{Param: "stream_options", Message: "stream_options must be an object."}
		}
		var in [1]jsonfield.Span
		if err := jsonfield.Members(v, []string{"include_usage"}, in[:]); err != nil {
			return a, ambiguousIn("stream_options", err)
		}
		if in[0].Start >= 0 {
			if a.ClientUsage, err = ir.BoolField(v[in[0].Start:in[0].End], "stream_options.include_usage"); err != nil {
				return a, err
			}
		}
		a.ClientUsage = a.ClientUsage && a.Stream
	}
	for _, f := range [...]int{fMaxTokens, fMaxCompletionTokens} {
		n, err := ir.CountField(val(f), admitNames[f])
		if err != nil {
			return a, err
		}
		if n > a.MaxOutput {
			a.MaxOutput, a.MaxOutputField = n, admitNames[f]
		}
	}
	for _, f := range [...]int{fN, fBestOf} {
		n, err := ir.CountField(val(f), admitNames[f])
		if err != nil {
			return a, err
		}
		if n > a.Choices { // best_of answers are generated, and billed, server-side
			a.Choices, a.ChoicesField = n, admitNames[f]
		}
	}
	if v := val(fServiceTier); v != nil && !jsonfield.IsNull(v) {
		s, ok := jsonfield.String(v)
		if !ok || (s != "auto" && s != "default") {
			return a, &ir.FieldError{Param: "service_tier",
				Message: "Only the default service tier is offered through this gateway (service_tier auto or default)."}
		}
	}
	switch t.Endpoint {
	case ir.EndpointChat:
		v := val(fMessages)
		if v == nil || v[0] != '[' {
			return a, &ir.FieldError{Param: "messages", Message: "The messages parameter must be an array of messages."}
		}
		n := 0
		_ = jsonfield.EachElement(v, func(jsonfield.Span) bool { n++; return n < 2 })
		if n == 0 {
			return a, &ir.FieldError{Param: "messages", Message: "The messages array must not be empty."}
		}
	case ir.EndpointCompletions:
		if v := val(fPrompt); v == nil || jsonfield.IsNull(v) {
			return a, &ir.FieldError{Param: "prompt", Message: "You must provide a prompt parameter."}
		}
	case ir.EndpointEmbeddings:
		if v := val(fInput); v == nil || jsonfield.IsNull(v) {
			return a, &ir.FieldError{Param: "input", Message: "You must provide an input parameter."}
		}
	}
	return a, nil
}

// ambiguous turns a *jsonfield.AmbiguousError into the client's error.
func ambiguous(err error) error { return ambiguousIn("", err) }

func ambiguousIn(parent string, err error) error {
	if ae, ok := err.(*jsonfield.AmbiguousError); ok {
		return ir.Ambiguous(parent, ae)
	}
	return err
}

// wireMessage is the part of a chat message that a chat template frames.
type wireMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// Prompt returns the prompt of a chat request (messages framed by role,
// tool calls as their JSON, the tools' definitions as a system message), or
// of a completions or embeddings request (its texts; token ids are counted
// as they are).
func (client) Prompt(t ir.Target, body []byte) ir.Prompt {
	if isMedia(t.Endpoint) {
		return mediaPrompt(t, body)
	}
	var p ir.Prompt
	if s, ok := jsonfield.Find(body, "messages"); ok {
		var wm []wireMessage
		if err := json.Unmarshal(body[s.Start:s.End], &wm); err == nil {
			p.Messages = make([]ir.PromptMessage, 0, len(wm)+1)
			for _, m := range wm {
				c := contentText(m.Content)
				if len(m.ToolCalls) > 0 && string(m.ToolCalls) != "null" {
					c += string(m.ToolCalls)
				}
				p.Messages = append(p.Messages, ir.PromptMessage{Role: m.Role, Content: c, Name: m.Name})
			}
			if t, ok := jsonfield.Find(body, "tools"); ok && !jsonfield.IsNull(body[t.Start:t.End]) {
				p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: string(body[t.Start:t.End])})
			}
			return p
		}
	}
	for _, field := range []string{"prompt", "input"} {
		s, ok := jsonfield.Find(body, field)
		if !ok {
			continue
		}
		v := body[s.Start:s.End]
		if v[0] == '"' {
			str, _ := jsonfield.String(v)
			p.Texts = append(p.Texts, str)
			continue
		}
		var list []string
		if json.Unmarshal(v, &list) == nil {
			p.Texts = append(p.Texts, list...)
			continue
		}
		// Token ids (one list, or a list of lists) are already tokens.
		var ids []json.RawMessage
		if json.Unmarshal(v, &ids) == nil {
			for _, id := range ids {
				var inner []json.RawMessage
				if json.Unmarshal(id, &inner) == nil {
					p.Tokens += int64(len(inner))
				} else {
					p.Tokens++
				}
			}
		}
	}
	return p
}

// contentText returns the text of a content value: a string, or the text
// parts of an array of parts.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] == 'n' {
		return ""
	}
	if raw[0] == '"' {
		s, _ := jsonfield.String(raw)
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return string(raw)
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}
