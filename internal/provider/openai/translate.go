package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// openAIParams are the chat completions request fields this package reads;
// any other field is refused rather than dropped.
var params = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true, "n": true, "stop": true, "stream": true,
	"stream_options": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true,
	"reasoning_effort": true, "response_format": true, "seed": true, "presence_penalty": true,
	"frequency_penalty": true, "user": true, "store": true, "metadata": true,
}

func decodeRequest(body []byte) (ir.Request, error) {
	if err := ir.CheckFields(body, params, "OpenAI"); err != nil {
		return ir.Request{}, err
	}
	var in Request
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Request{}, ir.BadRequest(err, "invalid chat completions request")
	}
	r := ir.Request{
		Temperature: in.Temperature, TopP: in.TopP, Seed: in.Seed,
		Presence: in.PresencePenalty, Frequency: in.FrequencyPenalty,
		ParallelTools: in.ParallelToolCalls, User: in.User,
	}
	r.MaxTokens = in.MaxCompletionTokens
	if r.MaxTokens == nil {
		r.MaxTokens = in.MaxTokens
	}
	if in.N != nil && *in.N != 1 {
		return ir.Request{}, &ir.UnsupportedError{Feature: "n other than 1"}
	}
	if in.StreamOptions != nil {
		r.IncludeUsage = in.StreamOptions.IncludeUsage
	}
	if len(in.Stop) > 0 && string(in.Stop) != "null" {
		var one string
		if err := json.Unmarshal(in.Stop, &one); err == nil {
			r.Stop = []string{one}
		} else if err := json.Unmarshal(in.Stop, &r.Stop); err != nil {
			return ir.Request{}, ir.BadRequest(err, "stop must be a string or an array of strings")
		}
	}
	if in.ReasoningEffort != "" {
		if _, ok := ir.BudgetForEffort(in.ReasoningEffort); !ok {
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("reasoning_effort %q", in.ReasoningEffort)}
		}
		r.Thinking = &ir.Thinking{Effort: in.ReasoningEffort}
	}
	if f := in.ResponseFormat; f != nil && f.Type != "text" {
		switch f.Type {
		case "json_object":
			r.Format = &ir.ResponseFormat{Kind: "json_object"}
		case "json_schema":
			if f.JSONSchema == nil {
				return ir.Request{}, ir.BadRequest(nil, "response_format json_schema needs json_schema")
			}
			r.Format = &ir.ResponseFormat{Kind: "json_schema", Name: f.JSONSchema.Name, Schema: f.JSONSchema.Schema, Strict: f.JSONSchema.Strict}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("response_format %q", f.Type)}
		}
	}
	for _, t := range in.Tools {
		if t.Type != "function" {
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("tool type %q", t.Type)}
		}
		r.Tools = append(r.Tools, ir.Tool{Name: t.Function.Name, Description: t.Function.Description, Schema: t.Function.Parameters})
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		tc, err := decodeToolChoice(in.ToolChoice)
		if err != nil {
			return ir.Request{}, err
		}
		r.ToolChoice = tc
	}
	for i, m := range in.Messages {
		if m.Name != "" {
			return ir.Request{}, &ir.UnsupportedError{Feature: "message name"}
		}
		switch m.Role {
		case "system", "developer":
			if len(r.Messages) > 0 {
				return ir.Request{}, &ir.UnsupportedError{Feature: "a " + m.Role + " message after the conversation started"}
			}
			parts, err := decodeContent(m.Content, false)
			if err != nil {
				return ir.Request{}, fmt.Errorf("message %d: %w", i, err)
			}
			for _, p := range parts {
				r.System = append(r.System, p.Text)
			}
		case "user":
			parts, err := decodeContent(m.Content, true)
			if err != nil {
				return ir.Request{}, fmt.Errorf("message %d: %w", i, err)
			}
			r.Messages = append(r.Messages, ir.Message{Role: ir.RoleUser, Parts: parts})
		case "assistant":
			var parts []ir.Part
			if m.ReasoningContent != "" {
				parts = append(parts, ir.Part{Kind: ir.PartThinking, Text: m.ReasoningContent})
			}
			content, err := decodeContent(m.Content, false)
			if err != nil {
				return ir.Request{}, fmt.Errorf("message %d: %w", i, err)
			}
			parts = append(parts, content...)
			if m.Refusal != nil && *m.Refusal != "" {
				parts = append(parts, ir.Part{Kind: ir.PartText, Text: *m.Refusal})
			}
			for _, tc := range m.ToolCalls {
				args, err := ir.ArgsObject(tc.Function.Arguments)
				if err != nil {
					return ir.Request{}, ir.BadRequest(err, "message %d: tool call %s arguments", i, tc.ID)
				}
				parts = append(parts, ir.Part{Kind: ir.PartToolCall, Id: tc.ID, Name: tc.Function.Name, Args: args})
			}
			r.Messages = append(r.Messages, ir.Message{Role: ir.RoleAssistant, Parts: parts})
		case "tool":
			content, err := decodeContent(m.Content, false)
			if err != nil {
				return ir.Request{}, fmt.Errorf("message %d: %w", i, err)
			}
			res := ir.Part{Kind: ir.PartToolResult, Id: m.ToolCallID, Result: content}
			if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == ir.RoleUser {
				if ps := r.Messages[n-1].Parts; len(ps) > 0 && ps[len(ps)-1].Kind == ir.PartToolResult {
					r.Messages[n-1].Parts = append(ps, res)
					continue
				}
			}
			r.Messages = append(r.Messages, ir.Message{Role: ir.RoleUser, Parts: []ir.Part{res}})
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("message role %q", m.Role)}
		}
	}
	return r, nil
}

func decodeToolChoice(raw json.RawMessage) (*ir.ToolChoice, error) {
	return ir.DecodeToolChoice(raw, func(obj json.RawMessage) (string, string, error) {
		var o struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		err := json.Unmarshal(obj, &o)
		return o.Type, o.Function.Name, err
	})
}

// decodeOpenAIContent reads a string or an array of parts; images only when
// allowed.
func decodeContent(raw json.RawMessage, images bool) ([]ir.Part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []ir.Part{{Kind: ir.PartText, Text: s}}, nil
	}
	var cps []ContentPart
	if err := json.Unmarshal(raw, &cps); err != nil {
		return nil, ir.BadRequest(err, "content must be a string or an array of parts")
	}
	var out []ir.Part
	for _, cp := range cps {
		switch {
		case cp.Type == "text":
			out = append(out, ir.Part{Kind: ir.PartText, Text: cp.Text})
		case cp.Type == "image_url" && images && cp.ImageURL != nil:
			out = append(out, ir.ImagePart(cp.ImageURL.URL))
		default:
			return nil, &ir.UnsupportedError{Feature: fmt.Sprintf("content part %q", cp.Type)}
		}
	}
	return out, nil
}

func encodeRequest(r ir.Request, model string) (ir.Upstream, error) {
	if r.TopK != nil {
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "top_k"}
	}
	out := Request{
		Model: model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, ParallelToolCalls: r.ParallelTools, Seed: r.Seed,
		PresencePenalty: r.Presence, FrequencyPenalty: r.Frequency, User: r.User,
	}
	if r.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if len(r.Stop) > 0 {
		b, _ := json.Marshal(r.Stop)
		out.Stop = b
	}
	if th := r.Thinking; th != nil && !th.Disabled {
		switch {
		case th.Effort != "":
			out.ReasoningEffort = th.Effort
		case th.Budget != 0:
			out.ReasoningEffort = ir.EffortForBudget(th.Budget)
		}
	}
	if f := r.Format; f != nil {
		out.ResponseFormat = &ResponseFormat{Type: f.Kind}
		if f.Kind == "json_schema" {
			name := f.Name
			if name == "" {
				name = "response"
			}
			out.ResponseFormat.JSONSchema = &JSONSchema{Name: name, Schema: f.Schema, Strict: f.Strict}
		}
	}
	for _, t := range r.Tools {
		out.Tools = append(out.Tools, Tool{Type: "function", Function: Function{Name: t.Name, Description: t.Description, Parameters: t.Schema}})
	}
	if tc := r.ToolChoice; tc != nil {
		var v any
		switch tc.Mode {
		case ir.ToolAuto:
			v = "auto"
		case ir.ToolNone:
			v = "none"
		case ir.ToolAny:
			v = "required"
		case ir.ToolName:
			v = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		}
		out.ToolChoice, _ = json.Marshal(v)
	}
	for _, s := range r.System {
		out.Messages = append(out.Messages, Message{Role: "system", Content: ir.JSONString(s)})
	}
	for i, m := range r.Messages {
		msgs, err := encodeMessage(m)
		if err != nil {
			return ir.Upstream{}, fmt.Errorf("message %d: %w", i, err)
		}
		out.Messages = append(out.Messages, msgs...)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return ir.Upstream{}, fmt.Errorf("encode chat completions request: %w", err)
	}
	return ir.Upstream{Body: body, Path: vendor{}.Path(ir.EndpointChat, model, r.Stream)}, nil
}

func encodeMessage(m ir.Message) ([]Message, error) {
	var out []Message
	if m.Role == ir.RoleAssistant {
		am := Message{Role: "assistant"}
		var text strings.Builder
		for _, p := range m.Parts {
			switch p.Kind {
			case ir.PartText:
				text.WriteString(p.Text)
			case ir.PartThinking, ir.PartRedactedThinking:
				// Earlier turns' thinking is not sent across vendors.
			case ir.PartToolCall:
				am.ToolCalls = append(am.ToolCalls, ToolCall{ID: p.Id, Type: "function", Function: FunctionCall{Name: p.Name, Arguments: ir.CompactJSON(p.Args)}})
			default:
				return nil, &ir.UnsupportedError{Feature: "an image in an assistant message"}
			}
		}
		if text.Len() > 0 || len(am.ToolCalls) == 0 {
			am.Content = ir.JSONString(text.String())
		} else {
			am.Content = json.RawMessage("null")
		}
		return append(out, am), nil
	}
	var content []ContentPart
	for _, p := range m.Parts {
		switch p.Kind {
		case ir.PartToolResult:
			tm := Message{Role: "tool", ToolCallID: p.Id}
			for _, rp := range p.Result {
				if rp.Kind != ir.PartText {
					return nil, &ir.UnsupportedError{Feature: "an image in a tool result"}
				}
			}
			text := ir.TextOf(p.Result)
			if p.IsError {
				text = "Error: " + text
			}
			tm.Content = ir.JSONString(text)
			out = append(out, tm)
		case ir.PartText:
			content = append(content, ContentPart{Type: "text", Text: p.Text})
		case ir.PartImage:
			u := p.Url
			if u == "" {
				u = "data:" + p.Mime + ";base64," + p.Data
			}
			content = append(content, ContentPart{Type: "image_url", ImageURL: &ImageURL{URL: u}})
		default:
			return nil, &ir.UnsupportedError{Feature: "thinking or tool calls in a user message"}
		}
	}
	if len(content) == 0 {
		return out, nil
	}
	um := Message{Role: "user"}
	if len(content) == 1 && content[0].Type == "text" {
		um.Content = ir.JSONString(content[0].Text)
	} else {
		b, err := json.Marshal(content)
		if err != nil {
			return nil, err
		}
		um.Content = b
	}
	return append(out, um), nil
}

func stopReason(s string) ir.StopReason {
	switch s {
	case "length":
		return ir.StopMaxTokens
	case "tool_calls", "function_call":
		return ir.StopToolUse
	case "content_filter":
		return ir.StopContentFilter
	case "stop", "":
		return ir.StopEnd
	}
	return ir.StopOther
}

func finishReason(r ir.StopReason) string {
	switch r {
	case ir.StopMaxTokens:
		return "length"
	case ir.StopToolUse:
		return "tool_calls"
	case ir.StopContentFilter, ir.StopRefusal:
		return "content_filter"
	}
	return "stop"
}

func decodeResponse(body []byte) (ir.Response, error) {
	var in Response
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Response{}, err
	}
	r := ir.Response{Id: in.ID, Model: in.Model}
	r.Usage, r.HasUsage = in.Usage.Normalised()
	if len(in.Choices) == 0 {
		return r, nil
	}
	c := in.Choices[0]
	if c.Message.ReasoningContent != "" {
		r.Parts = append(r.Parts, ir.Part{Kind: ir.PartThinking, Text: c.Message.ReasoningContent})
	}
	if c.Message.Content != nil && *c.Message.Content != "" {
		r.Parts = append(r.Parts, ir.Part{Kind: ir.PartText, Text: *c.Message.Content})
	}
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		r.Parts = append(r.Parts, ir.Part{Kind: ir.PartText, Text: *c.Message.Refusal})
		r.Stop = ir.StopRefusal
	}
	for _, tc := range c.Message.ToolCalls {
		args, err := ir.ArgsObject(tc.Function.Arguments)
		if err != nil {
			return ir.Response{}, fmt.Errorf("tool call %s arguments: %w", tc.ID, err)
		}
		r.Parts = append(r.Parts, ir.Part{Kind: ir.PartToolCall, Id: tc.ID, Name: tc.Function.Name, Args: args})
	}
	if c.FinishReason != nil && r.Stop != ir.StopRefusal {
		r.Stop = stopReason(*c.FinishReason)
	}
	return r, nil
}

func encodeResponse(r ir.Response, created int64) ([]byte, error) {
	msg := ResponseMessage{Role: "assistant"}
	var text, reasoning strings.Builder
	for _, p := range r.Parts {
		switch p.Kind {
		case ir.PartText:
			text.WriteString(p.Text)
		case ir.PartThinking:
			reasoning.WriteString(p.Text)
		case ir.PartToolCall:
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: p.Id, Type: "function", Function: FunctionCall{Name: p.Name, Arguments: ir.CompactJSON(p.Args)}})
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	msg.ReasoningContent = reasoning.String()
	finish := finishReason(r.Stop)
	out := Response{
		ID: r.Id, Object: "chat.completion", Created: created, Model: r.Model,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: &finish}},
	}
	u := FromNormalised(r.Usage)
	out.Usage = &u
	return json.Marshal(out)
}

// openAIDecoder reads an OpenAI chat completions stream.
type decoder struct {
	tools int            // tool calls started
	seen  map[int]int    // upstream tool_calls index → our index
	ids   map[int]string // upstream tool_calls index → its call's id
}

func (d *decoder) Event(ev sse.Event, p *ir.Pipe) error {
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		return nil
	}
	if sse.IsDone(data) {
		if p.Finished {
			p.End()
			return nil
		}
		return errors.New("[DONE] before a finish_reason")
	}
	var c struct {
		Chunk
		Error *ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.Error != nil {
		p.Fail(ir.APIError{Status: 500, Kind: ir.KindServer, Message: c.Error.Message})
		return nil
	}
	p.Start(c.ID, c.Model, nil)
	if u, ok := c.Usage.Normalised(); ok {
		p.Usage(u)
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue // n is always 1; a stray index is ignored
		}
		dl := ch.Delta
		if dl.ReasoningContent != nil {
			p.Thinking(*dl.ReasoningContent)
		}
		if dl.Content != nil {
			p.Text(*dl.Content)
		}
		if dl.Refusal != nil {
			p.Text(*dl.Refusal)
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
				p.ToolCall(i, tc.ID, tc.Function.Name)
			}
			p.ToolArgs(i, tc.Function.Arguments)
		}
		if u, ok := ch.Usage.Normalised(); ok {
			p.Usage(u)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			p.Finish(stopReason(*ch.FinishReason), "")
		}
	}
	return nil
}

// openAIEncoder writes a chat.completion.chunk stream.
type encoder struct {
	em           *ir.Emitter
	includeUsage bool
	created      int64
	id, model    string
	u            usage.Usage
}

func (e *encoder) chunk(d Delta, finish *string) {
	e.em.Event("", Chunk{
		ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
		Choices: []ChunkChoice{{Index: 0, Delta: d, FinishReason: finish}},
	})
}

func (e *encoder) Start(id, model string, u usage.Usage) {
	e.id, e.model, e.u = id, model, u
	empty := ""
	e.chunk(Delta{Role: "assistant", Content: &empty}, nil)
}

func (e *encoder) Text(s string) { e.chunk(Delta{Content: &s}, nil) }

func (e *encoder) Thinking(s string) {
	e.chunk(Delta{ReasoningContent: &s}, nil)
}

func (e *encoder) Signature(string) {}

func (e *encoder) ToolCall(i int, id, name string) {
	e.chunk(Delta{ToolCalls: []ToolCall{{Index: &i, ID: id, Type: "function", Function: FunctionCall{Name: name}}}}, nil)
}

func (e *encoder) ToolArgs(i int, frag string) {
	e.chunk(Delta{ToolCalls: []ToolCall{{Index: &i, Function: FunctionCall{Arguments: frag}}}}, nil)
}

func (e *encoder) Finish(r ir.StopReason, _ string) {
	f := finishReason(r)
	e.chunk(Delta{}, &f)
}

func (e *encoder) Usage(u usage.Usage) { e.u = u }

func (e *encoder) Fail(a ir.APIError) {
	e.em.Raw("", ir.Body(encodeError(a)))
}

func (e *encoder) End() {
	if e.includeUsage {
		u := FromNormalised(e.u)
		e.em.Event("", Chunk{
			ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
			Choices: []ChunkChoice{}, Usage: &u,
		})
	}
	e.em.Raw("", []byte("[DONE]"))
}

func ErrorType(k ir.ErrorKind) string {
	switch k {
	case ir.KindInvalidRequest, ir.KindTooLarge:
		return "invalid_request_error"
	case ir.KindAuth:
		return "authentication_error"
	case ir.KindPermission:
		return "permission_error"
	case ir.KindNotFound:
		return "not_found_error"
	case ir.KindRateLimit:
		return "rate_limit_error"
	case ir.KindTimeout:
		return "timeout_error"
	}
	return "server_error"
}

// decodeError reads an OpenAI-shaped error answer.
func decodeError(status int, body []byte) ir.APIError {
	var w Error
	msg := ""
	if json.Unmarshal(body, &w) == nil {
		msg = w.Error.Message
	}
	return ir.ErrorFrom(status, body, msg, 0, false)
}

// encodeError writes e in OpenAI's error shape. Anthropic's 529
// (overloaded) is 503 here: OpenAI clients do not know it.
func encodeError(e ir.APIError) (int, []byte) {
	if e.Status == 529 {
		e.Status = 503
	}
	d := ErrorDetail{Message: e.Message, Type: e.Type}
	if d.Type == "" {
		d.Type = ErrorType(e.Kind)
	}
	if e.Code != "" {
		d.Code = e.Code
	}
	if e.Param != "" {
		d.Param = &e.Param
	}
	b, _ := json.Marshal(Error{Error: d})
	return e.Status, b
}
