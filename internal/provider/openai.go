package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"baimo/internal/provider/openaiwire"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// openAIParams are the chat completions request fields this package reads;
// any other field is refused rather than dropped.
var openAIParams = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true, "n": true, "stop": true, "stream": true,
	"stream_options": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true,
	"reasoning_effort": true, "response_format": true, "seed": true, "presence_penalty": true,
	"frequency_penalty": true, "user": true, "store": true, "metadata": true,
}

// checkFields refuses top-level fields outside known, naming the first in
// sorted order so the error is stable.
func checkFields(body []byte, known map[string]bool, vendor string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return badRequest(err, "request body is not a JSON object")
	}
	var bad []string
	for k := range fields {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	first := bad[0]
	for _, k := range bad[1:] {
		first = min(first, k)
	}
	return &UnsupportedError{Feature: fmt.Sprintf("%s parameter %q", vendor, first)}
}

func decodeOpenAIRequest(body []byte) (request, error) {
	if err := checkFields(body, openAIParams, "OpenAI"); err != nil {
		return request{}, err
	}
	var in openaiwire.Request
	if err := json.Unmarshal(body, &in); err != nil {
		return request{}, badRequest(err, "invalid chat completions request")
	}
	r := request{
		temperature: in.Temperature, topP: in.TopP, seed: in.Seed,
		presence: in.PresencePenalty, frequency: in.FrequencyPenalty,
		parallelTools: in.ParallelToolCalls, user: in.User,
	}
	r.maxTokens = in.MaxCompletionTokens
	if r.maxTokens == nil {
		r.maxTokens = in.MaxTokens
	}
	if in.N != nil && *in.N != 1 {
		return request{}, &UnsupportedError{Feature: "n other than 1"}
	}
	if in.StreamOptions != nil {
		r.includeUsage = in.StreamOptions.IncludeUsage
	}
	if len(in.Stop) > 0 && string(in.Stop) != "null" {
		var one string
		if err := json.Unmarshal(in.Stop, &one); err == nil {
			r.stop = []string{one}
		} else if err := json.Unmarshal(in.Stop, &r.stop); err != nil {
			return request{}, badRequest(err, "stop must be a string or an array of strings")
		}
	}
	if in.ReasoningEffort != "" {
		if _, ok := budgetForEffort(in.ReasoningEffort); !ok {
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("reasoning_effort %q", in.ReasoningEffort)}
		}
		r.thinking = &thinking{effort: in.ReasoningEffort}
	}
	if f := in.ResponseFormat; f != nil && f.Type != "text" {
		switch f.Type {
		case "json_object":
			r.format = &responseFormat{kind: "json_object"}
		case "json_schema":
			if f.JSONSchema == nil {
				return request{}, badRequest(nil, "response_format json_schema needs json_schema")
			}
			r.format = &responseFormat{kind: "json_schema", name: f.JSONSchema.Name, schema: f.JSONSchema.Schema}
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("response_format %q", f.Type)}
		}
	}
	for _, t := range in.Tools {
		if t.Type != "function" {
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("tool type %q", t.Type)}
		}
		r.tools = append(r.tools, toolDef{name: t.Function.Name, description: t.Function.Description, schema: t.Function.Parameters})
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		tc, err := decodeOpenAIToolChoice(in.ToolChoice)
		if err != nil {
			return request{}, err
		}
		r.toolChoice = tc
	}
	for i, m := range in.Messages {
		if m.Name != "" {
			return request{}, &UnsupportedError{Feature: "message name"}
		}
		switch m.Role {
		case "system", "developer":
			if len(r.messages) > 0 {
				return request{}, &UnsupportedError{Feature: "a " + m.Role + " message after the conversation started"}
			}
			parts, err := decodeOpenAIContent(m.Content, false)
			if err != nil {
				return request{}, fmt.Errorf("message %d: %w", i, err)
			}
			for _, p := range parts {
				r.system = append(r.system, p.text)
			}
		case "user":
			parts, err := decodeOpenAIContent(m.Content, true)
			if err != nil {
				return request{}, fmt.Errorf("message %d: %w", i, err)
			}
			r.messages = append(r.messages, message{role: roleUser, parts: parts})
		case "assistant":
			var parts []part
			if m.ReasoningContent != "" {
				parts = append(parts, part{kind: partThinking, text: m.ReasoningContent})
			}
			content, err := decodeOpenAIContent(m.Content, false)
			if err != nil {
				return request{}, fmt.Errorf("message %d: %w", i, err)
			}
			parts = append(parts, content...)
			if m.Refusal != nil && *m.Refusal != "" {
				parts = append(parts, part{kind: partText, text: *m.Refusal})
			}
			for _, tc := range m.ToolCalls {
				args, err := argsObject(tc.Function.Arguments)
				if err != nil {
					return request{}, badRequest(err, "message %d: tool call %s arguments", i, tc.ID)
				}
				parts = append(parts, part{kind: partToolCall, id: tc.ID, name: tc.Function.Name, args: args})
			}
			r.messages = append(r.messages, message{role: roleAssistant, parts: parts})
		case "tool":
			content, err := decodeOpenAIContent(m.Content, false)
			if err != nil {
				return request{}, fmt.Errorf("message %d: %w", i, err)
			}
			res := part{kind: partToolResult, id: m.ToolCallID, result: content}
			if n := len(r.messages); n > 0 && r.messages[n-1].role == roleUser {
				if ps := r.messages[n-1].parts; len(ps) > 0 && ps[len(ps)-1].kind == partToolResult {
					r.messages[n-1].parts = append(ps, res)
					continue
				}
			}
			r.messages = append(r.messages, message{role: roleUser, parts: []part{res}})
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("message role %q", m.Role)}
		}
	}
	return r, nil
}

// argsObject parses a tool call's arguments string into a JSON object.
func argsObject(s string) (json.RawMessage, error) {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage(`{}`), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return json.RawMessage(`{}`), nil
	}
	return json.RawMessage(s), nil
}

func decodeOpenAIToolChoice(raw json.RawMessage) (*toolChoice, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &toolChoice{mode: toolAuto}, nil
		case "none":
			return &toolChoice{mode: toolNone}, nil
		case "required":
			return &toolChoice{mode: toolAny}, nil
		}
		return nil, &UnsupportedError{Feature: fmt.Sprintf("tool_choice %q", s)}
	}
	var o struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, badRequest(err, "invalid tool_choice")
	}
	if o.Type != "function" || o.Function.Name == "" {
		return nil, &UnsupportedError{Feature: fmt.Sprintf("tool_choice type %q", o.Type)}
	}
	return &toolChoice{mode: toolName, name: o.Function.Name}, nil
}

// decodeOpenAIContent reads a string or an array of parts; images only when
// allowed.
func decodeOpenAIContent(raw json.RawMessage, images bool) ([]part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []part{{kind: partText, text: s}}, nil
	}
	var cps []openaiwire.ContentPart
	if err := json.Unmarshal(raw, &cps); err != nil {
		return nil, badRequest(err, "content must be a string or an array of parts")
	}
	var out []part
	for _, cp := range cps {
		switch {
		case cp.Type == "text":
			out = append(out, part{kind: partText, text: cp.Text})
		case cp.Type == "image_url" && images && cp.ImageURL != nil:
			if mime, data, ok := parseDataURL(cp.ImageURL.URL); ok {
				out = append(out, part{kind: partImage, mime: mime, data: data})
			} else {
				out = append(out, part{kind: partImage, url: cp.ImageURL.URL})
			}
		default:
			return nil, &UnsupportedError{Feature: fmt.Sprintf("content part %q", cp.Type)}
		}
	}
	return out, nil
}

func encodeOpenAIRequest(r request, model string) (Upstream, error) {
	if r.topK != nil {
		return Upstream{}, &UnsupportedError{Feature: "top_k"}
	}
	out := openaiwire.Request{
		Model: model, MaxTokens: r.maxTokens, Temperature: r.temperature, TopP: r.topP,
		Stream: r.stream, ParallelToolCalls: r.parallelTools, Seed: r.seed,
		PresencePenalty: r.presence, FrequencyPenalty: r.frequency, User: r.user,
	}
	if r.stream {
		out.StreamOptions = &openaiwire.StreamOptions{IncludeUsage: true}
	}
	if len(r.stop) > 0 {
		b, _ := json.Marshal(r.stop)
		out.Stop = b
	}
	if th := r.thinking; th != nil && !th.disabled {
		switch {
		case th.effort != "":
			out.ReasoningEffort = th.effort
		case th.budget != 0:
			out.ReasoningEffort = effortForBudget(th.budget)
		}
	}
	if f := r.format; f != nil {
		out.ResponseFormat = &openaiwire.ResponseFormat{Type: f.kind}
		if f.kind == "json_schema" {
			name := f.name
			if name == "" {
				name = "response"
			}
			out.ResponseFormat.JSONSchema = &openaiwire.JSONSchema{Name: name, Schema: f.schema}
		}
	}
	for _, t := range r.tools {
		out.Tools = append(out.Tools, openaiwire.Tool{Type: "function", Function: openaiwire.Function{Name: t.name, Description: t.description, Parameters: t.schema}})
	}
	if tc := r.toolChoice; tc != nil {
		var v any
		switch tc.mode {
		case toolAuto:
			v = "auto"
		case toolNone:
			v = "none"
		case toolAny:
			v = "required"
		case toolName:
			v = map[string]any{"type": "function", "function": map[string]string{"name": tc.name}}
		}
		out.ToolChoice, _ = json.Marshal(v)
	}
	for _, s := range r.system {
		out.Messages = append(out.Messages, openaiwire.Message{Role: "system", Content: jsonString(s)})
	}
	for i, m := range r.messages {
		msgs, err := encodeOpenAIMessage(m)
		if err != nil {
			return Upstream{}, fmt.Errorf("message %d: %w", i, err)
		}
		out.Messages = append(out.Messages, msgs...)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return Upstream{}, fmt.Errorf("encode chat completions request: %w", err)
	}
	return Upstream{Body: body, Path: "chat/completions"}, nil
}

// compactJSON returns raw without insignificant space.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func encodeOpenAIMessage(m message) ([]openaiwire.Message, error) {
	var out []openaiwire.Message
	if m.role == roleAssistant {
		am := openaiwire.Message{Role: "assistant"}
		var text strings.Builder
		for _, p := range m.parts {
			switch p.kind {
			case partText:
				text.WriteString(p.text)
			case partThinking, partRedactedThinking:
				// Earlier turns' thinking is not sent across vendors.
			case partToolCall:
				am.ToolCalls = append(am.ToolCalls, openaiwire.ToolCall{ID: p.id, Type: "function", Function: openaiwire.FunctionCall{Name: p.name, Arguments: compactJSON(p.args)}})
			default:
				return nil, &UnsupportedError{Feature: "an image in an assistant message"}
			}
		}
		if text.Len() > 0 || len(am.ToolCalls) == 0 {
			am.Content = jsonString(text.String())
		} else {
			am.Content = json.RawMessage("null")
		}
		return append(out, am), nil
	}
	var content []openaiwire.ContentPart
	for _, p := range m.parts {
		switch p.kind {
		case partToolResult:
			tm := openaiwire.Message{Role: "tool", ToolCallID: p.id}
			for _, rp := range p.result {
				if rp.kind != partText {
					return nil, &UnsupportedError{Feature: "an image in a tool result"}
				}
			}
			text := textOf(p.result)
			if p.isError {
				text = "Error: " + text
			}
			tm.Content = jsonString(text)
			out = append(out, tm)
		case partText:
			content = append(content, openaiwire.ContentPart{Type: "text", Text: p.text})
		case partImage:
			u := p.url
			if u == "" {
				u = "data:" + p.mime + ";base64," + p.data
			}
			content = append(content, openaiwire.ContentPart{Type: "image_url", ImageURL: &openaiwire.ImageURL{URL: u}})
		default:
			return nil, &UnsupportedError{Feature: "thinking or tool calls in a user message"}
		}
	}
	if len(content) == 0 {
		return out, nil
	}
	um := openaiwire.Message{Role: "user"}
	if len(content) == 1 && content[0].Type == "text" {
		um.Content = jsonString(content[0].Text)
	} else {
		b, err := json.Marshal(content)
		if err != nil {
			return nil, err
		}
		um.Content = b
	}
	return append(out, um), nil
}

func openAIStop(s string) stopReason {
	switch s {
	case "length":
		return stopMaxTokens
	case "tool_calls", "function_call":
		return stopToolUse
	case "content_filter":
		return stopContentFilter
	case "stop", "":
		return stopEnd
	}
	return stopOther
}

func openAIFinish(r stopReason) string {
	switch r {
	case stopMaxTokens:
		return "length"
	case stopToolUse:
		return "tool_calls"
	case stopContentFilter, stopRefusal:
		return "content_filter"
	}
	return "stop"
}

func decodeOpenAIResponse(body []byte) (response, error) {
	var in openaiwire.Response
	if err := json.Unmarshal(body, &in); err != nil {
		return response{}, err
	}
	r := response{id: in.ID, model: in.Model}
	if in.Usage != nil {
		r.usage, r.hasUsage = in.Usage.Normalise(), true
	}
	if len(in.Choices) == 0 {
		return r, nil
	}
	c := in.Choices[0]
	if c.Message.ReasoningContent != "" {
		r.parts = append(r.parts, part{kind: partThinking, text: c.Message.ReasoningContent})
	}
	if c.Message.Content != nil && *c.Message.Content != "" {
		r.parts = append(r.parts, part{kind: partText, text: *c.Message.Content})
	}
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		r.parts = append(r.parts, part{kind: partText, text: *c.Message.Refusal})
		r.stop = stopRefusal
	}
	for _, tc := range c.Message.ToolCalls {
		args, err := argsObject(tc.Function.Arguments)
		if err != nil {
			return response{}, fmt.Errorf("tool call %s arguments: %w", tc.ID, err)
		}
		r.parts = append(r.parts, part{kind: partToolCall, id: tc.ID, name: tc.Function.Name, args: args})
	}
	if c.FinishReason != nil && r.stop != stopRefusal {
		r.stop = openAIStop(*c.FinishReason)
	}
	return r, nil
}

func encodeOpenAIResponse(r response, created int64) ([]byte, error) {
	msg := openaiwire.ResponseMessage{Role: "assistant"}
	var text, reasoning strings.Builder
	for _, p := range r.parts {
		switch p.kind {
		case partText:
			text.WriteString(p.text)
		case partThinking:
			reasoning.WriteString(p.text)
		case partToolCall:
			msg.ToolCalls = append(msg.ToolCalls, openaiwire.ToolCall{ID: p.id, Type: "function", Function: openaiwire.FunctionCall{Name: p.name, Arguments: compactJSON(p.args)}})
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	msg.ReasoningContent = reasoning.String()
	finish := openAIFinish(r.stop)
	out := openaiwire.Response{
		ID: r.id, Object: "chat.completion", Created: created, Model: r.model,
		Choices: []openaiwire.Choice{{Index: 0, Message: msg, FinishReason: &finish}},
	}
	u := openaiwire.FromNormalised(r.usage)
	out.Usage = &u
	return json.Marshal(out)
}

// openAIDecoder reads an OpenAI chat completions stream.
type openAIDecoder struct {
	tools int            // tool calls started
	seen  map[int]int    // upstream tool_calls index → our index
	ids   map[int]string // upstream tool_calls index → its call's id
}

func (d *openAIDecoder) event(ev sse.Event, p *pipe) error {
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		return nil
	}
	if sse.IsDone(data) {
		if p.finished {
			p.end()
			return nil
		}
		return errors.New("[DONE] before a finish_reason")
	}
	var c struct {
		openaiwire.Chunk
		Error *openaiwire.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.Error != nil {
		p.fail(apiError{status: 500, kind: KindServer, message: c.Error.Message})
		return nil
	}
	p.start(c.ID, c.Model, nil)
	if c.Usage != nil {
		p.usage(c.Usage.Normalise())
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue // n is always 1; a stray index is ignored
		}
		dl := ch.Delta
		if dl.ReasoningContent != nil {
			p.thinking(*dl.ReasoningContent)
		}
		if dl.Content != nil {
			p.text(*dl.Content)
		}
		if dl.Refusal != nil {
			p.text(*dl.Refusal)
		}
		for _, tc := range dl.ToolCalls {
			up := 0
			if tc.Index != nil {
				up = *tc.Index
			}
			i, ok := d.seen[up]
			if !ok || (tc.ID != "" && tc.ID != d.ids[up]) {
				if d.seen == nil {
					d.seen, d.ids = map[int]int{}, map[int]string{}
				}
				i = d.tools
				d.tools++
				d.seen[up], d.ids[up] = i, tc.ID
				p.toolCall(i, tc.ID, tc.Function.Name)
			}
			p.toolArgs(i, tc.Function.Arguments)
		}
		if ch.Usage != nil {
			p.usage(ch.Usage.Normalise())
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			p.finish(openAIStop(*ch.FinishReason), "")
		}
	}
	return nil
}

// openAIEncoder writes a chat.completion.chunk stream.
type openAIEncoder struct {
	em           *emitter
	includeUsage bool
	created      int64
	id, model    string
	u            usage.Usage
}

func (e *openAIEncoder) chunk(d openaiwire.Delta, finish *string) {
	e.em.event("", openaiwire.Chunk{
		ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
		Choices: []openaiwire.ChunkChoice{{Index: 0, Delta: d, FinishReason: finish}},
	})
}

func (e *openAIEncoder) start(id, model string, u usage.Usage) {
	e.id, e.model, e.u = id, model, u
	empty := ""
	e.chunk(openaiwire.Delta{Role: "assistant", Content: &empty}, nil)
}

func (e *openAIEncoder) text(s string) { e.chunk(openaiwire.Delta{Content: &s}, nil) }

func (e *openAIEncoder) thinking(s string) {
	e.chunk(openaiwire.Delta{ReasoningContent: &s}, nil)
}

func (e *openAIEncoder) signature(string) {}

func (e *openAIEncoder) toolCall(i int, id, name string) {
	e.chunk(openaiwire.Delta{ToolCalls: []openaiwire.ToolCall{{Index: &i, ID: id, Type: "function", Function: openaiwire.FunctionCall{Name: name}}}}, nil)
}

func (e *openAIEncoder) toolArgs(i int, frag string) {
	e.chunk(openaiwire.Delta{ToolCalls: []openaiwire.ToolCall{{Index: &i, Function: openaiwire.FunctionCall{Arguments: frag}}}}, nil)
}

func (e *openAIEncoder) finish(r stopReason, _ string) {
	f := openAIFinish(r)
	e.chunk(openaiwire.Delta{}, &f)
}

func (e *openAIEncoder) usage(u usage.Usage) { e.u = u }

func (e *openAIEncoder) fail(a apiError) {
	e.em.raw("", encodeError(FormatOpenAI, a))
}

func (e *openAIEncoder) end() {
	if e.includeUsage {
		u := openaiwire.FromNormalised(e.u)
		e.em.event("", openaiwire.Chunk{
			ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
			Choices: []openaiwire.ChunkChoice{}, Usage: &u,
		})
	}
	e.em.raw("", []byte("[DONE]"))
}

func openAIErrorType(k ErrorKind) string {
	switch k {
	case KindInvalidRequest, KindTooLarge:
		return "invalid_request_error"
	case KindAuth:
		return "authentication_error"
	case KindPermission:
		return "permission_error"
	case KindNotFound:
		return "not_found_error"
	case KindRateLimit:
		return "rate_limit_error"
	case KindTimeout:
		return "timeout_error"
	}
	return "server_error"
}
