package responses

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
)

// params are the request fields translation reads; any other is refused
// rather than dropped. previous_response_id and background are resolved by
// the gateway before a request reaches the codec; store, metadata,
// truncation (the gateway never truncates), include (reasoning is always
// returned) and a service tier of auto or default do not change the answer.
var params = map[string]bool{
	"model": true, "input": true, "instructions": true, "previous_response_id": true, "store": true,
	"background": true, "stream": true, "max_output_tokens": true, "temperature": true, "top_p": true,
	"tools": true, "tool_choice": true, "parallel_tool_calls": true, "text": true, "reasoning": true,
	"metadata": true, "user": true, "truncation": true, "include": true, "service_tier": true,
	"stream_options": true, "prompt_cache_key": true, "safety_identifier": true,
}

// NewID returns a fresh id with the API's prefix (resp_, msg_, fc_, rs_):
// 24 random bytes in hex. Tests replace it.
var NewID = func(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func decodeRequest(body []byte) (ir.Request, error) {
	if err := ir.CheckFields(body, params, "Responses"); err != nil {
		return ir.Request{}, err
	}
	var in Request
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Request{}, ir.BadRequest(err, "invalid Responses request")
	}
	if in.PreviousResponseID != nil && *in.PreviousResponseID != "" {
		return ir.Request{}, &ir.UnsupportedError{Feature: "previous_response_id"}
	}
	r := ir.Request{MaxTokens: in.MaxOutputTokens, Temperature: in.Temperature, TopP: in.TopP,
		ParallelTools: in.ParallelToolCalls, User: in.User, Stream: in.Stream}
	if in.Instructions != nil && *in.Instructions != "" {
		r.System = append(r.System, *in.Instructions)
	}
	for _, inc := range in.Include {
		if strings.Contains(inc, "logprobs") {
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("include %q", inc)}
		}
	}
	if rs := in.Reasoning; rs != nil && rs.Effort != nil && *rs.Effort != "" {
		switch e := *rs.Effort; e {
		case "none":
			r.Thinking = &ir.Thinking{Disabled: true}
		default:
			if _, ok := ir.BudgetForEffort(e); !ok {
				return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("reasoning effort %q", e)}
			}
			r.Thinking = &ir.Thinking{Effort: e}
		}
	}
	if t := in.Text; t != nil && t.Format != nil && t.Format.Type != "text" {
		switch t.Format.Type {
		case "json_object":
			r.Format = &ir.ResponseFormat{Kind: "json_object"}
		case "json_schema":
			if len(t.Format.Schema) == 0 {
				return ir.Request{}, ir.BadRequest(nil, "text.format json_schema needs a schema")
			}
			r.Format = &ir.ResponseFormat{Kind: "json_schema", Name: t.Format.Name, Schema: t.Format.Schema, Strict: t.Format.Strict}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("text.format %q", t.Format.Type)}
		}
	}
	for _, t := range in.Tools {
		if t.Type != "function" {
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("tool type %q", t.Type)}
		}
		if t.Name == "" {
			return ir.Request{}, ir.BadRequest(nil, "a function tool needs a name")
		}
		r.Tools = append(r.Tools, ir.Tool{Name: t.Name, Description: t.Description, Schema: t.Parameters})
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		tc, err := decodeToolChoice(in.ToolChoice)
		if err != nil {
			return ir.Request{}, err
		}
		r.ToolChoice = tc
	}
	if err := decodeInput(&r, in.Input); err != nil {
		return ir.Request{}, err
	}
	return r, nil
}

func decodeToolChoice(raw json.RawMessage) (*ir.ToolChoice, error) {
	return ir.DecodeToolChoice(raw, func(obj json.RawMessage) (string, string, error) {
		var o struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		err := json.Unmarshal(obj, &o)
		return o.Type, o.Name, err
	})
}

// decodeInput reads input (a string, or an array of items) into r's
// messages. Consecutive assistant items (a message, reasoning, function
// calls) make one assistant turn; consecutive function call outputs one
// user turn of tool results.
func decodeInput(r *ir.Request, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return ir.BadRequest(err, "invalid input")
		}
		r.Messages = append(r.Messages, ir.Message{Role: ir.RoleUser, Parts: []ir.Part{{Kind: ir.PartText, Text: s}}})
		return nil
	}
	var items []Item
	if err := json.Unmarshal(raw, &items); err != nil {
		return ir.BadRequest(err, "input must be a string or an array of input items")
	}
	// tools: whether the last message is a user turn of tool results only.
	add := func(role ir.Role, p ir.Part, tools bool) {
		if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == role {
			last := &r.Messages[n-1]
			if role == ir.RoleAssistant || (tools && allToolResults(last.Parts)) {
				last.Parts = append(last.Parts, p)
				return
			}
		}
		r.Messages = append(r.Messages, ir.Message{Role: role, Parts: []ir.Part{p}})
	}
	for i, it := range items {
		switch it.Type {
		case "", "message":
			parts, err := decodeContent(it.Content, it.Role == "user" || it.Role == "system" || it.Role == "developer")
			if err != nil {
				return fmt.Errorf("input %d: %w", i, err)
			}
			switch it.Role {
			case "system", "developer":
				if len(r.Messages) > 0 {
					return &ir.UnsupportedError{Feature: "a " + it.Role + " message after the conversation started"}
				}
				for _, p := range parts {
					if p.Kind != ir.PartText {
						return &ir.UnsupportedError{Feature: "an image in a " + it.Role + " message"}
					}
					r.System = append(r.System, p.Text)
				}
			case "user":
				if len(parts) > 0 {
					r.Messages = append(r.Messages, ir.Message{Role: ir.RoleUser, Parts: parts})
				}
			case "assistant":
				for _, p := range parts {
					add(ir.RoleAssistant, p, false)
				}
			default:
				return &ir.UnsupportedError{Feature: fmt.Sprintf("message role %q", it.Role)}
			}
		case "function_call":
			args := "{}"
			if it.Arguments != nil {
				args = *it.Arguments
			}
			obj, err := ir.ArgsObject(args)
			if err != nil {
				return ir.BadRequest(err, "input %d: function call %s arguments", i, it.CallID)
			}
			if it.CallID == "" || it.Name == "" {
				return ir.BadRequest(nil, "input %d: a function_call needs a call_id and a name", i)
			}
			add(ir.RoleAssistant, ir.Part{Kind: ir.PartToolCall, Id: it.CallID, Name: it.Name, Args: obj}, false)
		case "function_call_output":
			if it.CallID == "" {
				return ir.BadRequest(nil, "input %d: a function_call_output needs a call_id", i)
			}
			res, err := decodeContent(it.Output, true)
			if err != nil {
				return fmt.Errorf("input %d: %w", i, err)
			}
			add(ir.RoleUser, ir.Part{Kind: ir.PartToolResult, Id: it.CallID, Result: res}, true)
		case "reasoning":
			var text strings.Builder
			var content []Part
			_ = json.Unmarshal(it.Content, &content)
			for _, p := range append(content, it.summary()...) {
				text.WriteString(p.Text)
			}
			add(ir.RoleAssistant, ir.Part{Kind: ir.PartThinking, Text: text.String(), Signature: it.EncryptedContent}, false)
		default:
			return &ir.UnsupportedError{Feature: fmt.Sprintf("input item type %q", it.Type)}
		}
	}
	return nil
}

func allToolResults(ps []ir.Part) bool {
	for _, p := range ps {
		if p.Kind != ir.PartToolResult {
			return false
		}
	}
	return len(ps) > 0
}

// decodeContent reads a string or an array of content parts; images only
// when allowed.
func decodeContent(raw json.RawMessage, images bool) ([]ir.Part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		s, ok := jsonfield.String(raw)
		if !ok {
			return nil, ir.BadRequest(nil, "invalid content")
		}
		if s == "" {
			return nil, nil
		}
		return []ir.Part{{Kind: ir.PartText, Text: s}}, nil
	}
	var ps []Part
	if err := json.Unmarshal(raw, &ps); err != nil {
		return nil, ir.BadRequest(err, "content must be a string or an array of parts")
	}
	var out []ir.Part
	for _, p := range ps {
		switch {
		case p.Type == "input_text" || p.Type == "output_text" || p.Type == "text":
			out = append(out, ir.Part{Kind: ir.PartText, Text: p.Text})
		case p.Type == "refusal":
			out = append(out, ir.Part{Kind: ir.PartText, Text: p.Refusal})
		case p.Type == "input_image" && images && p.ImageURL != "":
			out = append(out, ir.ImagePart(p.ImageURL))
		case p.Type == "input_image" && p.FileID != "":
			return nil, &ir.UnsupportedError{Feature: "an input_image by file_id"}
		default:
			return nil, &ir.UnsupportedError{Feature: fmt.Sprintf("content part %q", p.Type)}
		}
	}
	return out, nil
}

// encodeRequest writes r as a Responses request to an upstream that serves
// the API natively. store is false: the gateway keeps the conversation.
func encodeRequest(r ir.Request, model string) (ir.Upstream, error) {
	switch {
	case r.TopK != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "top_k"}
	case len(r.Stop) > 0:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "stop sequences"}
	case r.Seed != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "seed"}
	case r.Presence != nil || r.Frequency != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "presence and frequency penalties"}
	}
	no := false
	out := Request{Model: model, MaxOutputTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, ParallelToolCalls: r.ParallelTools, User: r.User, Store: &no}
	if len(r.System) > 0 {
		s := strings.Join(r.System, "\n\n")
		out.Instructions = &s
	}
	if th := r.Thinking; th != nil {
		e := th.Effort
		switch {
		case th.Disabled:
			e = "none"
		case e == "" && th.Budget != 0:
			e = ir.EffortForBudget(th.Budget)
		}
		if e != "" {
			out.Reasoning = &Reasoning{Effort: &e}
		}
	}
	if f := r.Format; f != nil {
		tf := &TextFormat{Type: f.Kind}
		if f.Kind == "json_schema" {
			tf.Name, tf.Schema, tf.Strict = f.Name, f.Schema, f.Strict
			if tf.Name == "" {
				tf.Name = "response"
			}
		}
		out.Text = &TextConfig{Format: tf}
	}
	for _, t := range r.Tools {
		out.Tools = append(out.Tools, Tool{Type: "function", Name: t.Name, Description: t.Description, Parameters: t.Schema})
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
			v = map[string]string{"type": "function", "name": tc.Name}
		}
		out.ToolChoice, _ = json.Marshal(v)
	}
	var items []Item
	for i, m := range r.Messages {
		its, err := encodeMessage(m)
		if err != nil {
			return ir.Upstream{}, fmt.Errorf("message %d: %w", i, err)
		}
		items = append(items, its...)
	}
	if items == nil {
		items = []Item{}
	}
	var err error
	if out.Input, err = json.Marshal(items); err != nil {
		return ir.Upstream{}, err
	}
	body, err := json.Marshal(out)
	if err != nil {
		return ir.Upstream{}, fmt.Errorf("encode Responses request: %w", err)
	}
	return ir.Upstream{Body: body, Path: "/responses"}, nil
}

// encodeMessage writes one message as input items.
func encodeMessage(m ir.Message) ([]Item, error) {
	var out []Item
	var content []Part
	role, textType := "user", "input_text"
	if m.Role == ir.RoleAssistant {
		role, textType = "assistant", "output_text"
	}
	flush := func() {
		if len(content) > 0 {
			c, _ := json.Marshal(content)
			out = append(out, Item{Type: "message", Role: role, Content: c})
			content = nil
		}
	}
	for _, p := range m.Parts {
		switch p.Kind {
		case ir.PartText:
			content = append(content, Part{Type: textType, Text: p.Text})
		case ir.PartImage:
			if m.Role == ir.RoleAssistant {
				return nil, &ir.UnsupportedError{Feature: "an image in an assistant message"}
			}
			u := p.Url
			if u == "" {
				u = "data:" + p.Mime + ";base64," + p.Data
			}
			content = append(content, Part{Type: "input_image", ImageURL: u})
		case ir.PartThinking, ir.PartRedactedThinking:
			// Earlier turns' thinking is not sent across vendors.
		case ir.PartToolCall:
			flush()
			args := ir.CompactJSON(p.Args)
			out = append(out, Item{Type: "function_call", CallID: p.Id, Name: p.Name, Arguments: &args})
		case ir.PartToolResult:
			flush()
			for _, rp := range p.Result {
				if rp.Kind != ir.PartText {
					return nil, &ir.UnsupportedError{Feature: "an image in a tool result"}
				}
			}
			text := ir.TextOf(p.Result)
			if p.IsError {
				text = "Error: " + text
			}
			out = append(out, Item{Type: "function_call_output", CallID: p.Id, Output: ir.JSONString(text)})
		}
	}
	flush()
	return out, nil
}

// decodeResponse reads a response object.
func decodeResponse(body []byte) (ir.Response, error) {
	var in struct {
		Response
		Output []Item `json:"output"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Response{}, err
	}
	r := ir.Response{Id: in.ID, Model: in.Model}
	if in.Usage != nil {
		b, _ := json.Marshal(in.Usage)
		r.Usage, r.HasUsage = ParseUsage(b)
	}
	if in.Status == "failed" {
		msg := "the upstream response failed"
		if in.Error != nil && in.Error.Message != "" {
			msg = in.Error.Message
		}
		return ir.Response{}, errors.New(msg)
	}
	parts, err := outputParts(in.Output)
	if err != nil {
		return ir.Response{}, err
	}
	r.Parts = parts
	r.Stop = stopOf(in.Status, in.IncompleteDetails, parts)
	return r, nil
}

// outputParts turns output items into parts.
func outputParts(items []Item) ([]ir.Part, error) {
	var out []ir.Part
	for _, it := range items {
		switch it.Type {
		case "message":
			ps, err := decodeContent(it.Content, false)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
		case "reasoning":
			var content []Part
			_ = json.Unmarshal(it.Content, &content)
			var text strings.Builder
			for _, p := range append(content, it.summary()...) {
				text.WriteString(p.Text)
			}
			if text.Len() > 0 || it.EncryptedContent != "" {
				out = append(out, ir.Part{Kind: ir.PartThinking, Text: text.String(), Signature: it.EncryptedContent})
			}
		case "function_call":
			args := ""
			if it.Arguments != nil {
				args = *it.Arguments
			}
			obj, err := ir.ArgsObject(args)
			if err != nil {
				return nil, fmt.Errorf("function call %s arguments: %w", it.CallID, err)
			}
			out = append(out, ir.Part{Kind: ir.PartToolCall, Id: it.CallID, Name: it.Name, Args: obj})
		}
	}
	return out, nil
}

// stopOf is the stop reason of a response's status.
func stopOf(status string, inc *IncompleteDetails, parts []ir.Part) ir.StopReason {
	if status == "incomplete" && inc != nil {
		switch inc.Reason {
		case "max_output_tokens":
			return ir.StopMaxTokens
		case "content_filter":
			return ir.StopContentFilter
		}
		return ir.StopOther
	}
	for _, p := range parts {
		if p.Kind == ir.PartToolCall {
			return ir.StopToolUse
		}
	}
	return ir.StopEnd
}

// statusOf is a response's status and incomplete details for a stop reason.
func statusOf(r ir.StopReason) (string, *IncompleteDetails) {
	switch r {
	case ir.StopMaxTokens:
		return "incomplete", &IncompleteDetails{Reason: "max_output_tokens"}
	case ir.StopContentFilter:
		return "incomplete", &IncompleteDetails{Reason: "content_filter"}
	}
	return "completed", nil
}

// shell is the response object for a client that sent req, before its
// output: the request's settings echoed as the API does.
func shell(id, model string, req *ir.Request, created int64) Response {
	r := Response{ID: id, Object: "response", CreatedAt: created, Status: "in_progress", Model: model,
		Output: []Item{}, ParallelToolCalls: true, Temperature: req.Temperature, TopP: req.TopP,
		MaxOutputTokens: req.MaxTokens, Truncation: "disabled", Tools: []Tool{}, ToolChoice: json.RawMessage(`"auto"`),
		Text: TextConfig{Format: &TextFormat{Type: "text"}}, Metadata: json.RawMessage(`{}`)}
	if len(req.System) > 0 {
		s := strings.Join(req.System, "\n\n")
		r.Instructions = &s
	}
	if req.ParallelTools != nil {
		r.ParallelToolCalls = *req.ParallelTools
	}
	if req.User != "" {
		u := req.User
		r.User = &u
	}
	if th := req.Thinking; th != nil {
		e := th.Effort
		if th.Disabled {
			e = "none"
		}
		if e != "" {
			r.Reasoning.Effort = &e
		}
	}
	if f := req.Format; f != nil {
		r.Text.Format = &TextFormat{Type: f.Kind, Name: f.Name, Schema: f.Schema, Strict: f.Strict}
	}
	for _, t := range req.Tools {
		r.Tools = append(r.Tools, Tool{Type: "function", Name: t.Name, Description: t.Description, Parameters: t.Schema})
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case ir.ToolNone:
			r.ToolChoice = json.RawMessage(`"none"`)
		case ir.ToolAny:
			r.ToolChoice = json.RawMessage(`"required"`)
		case ir.ToolName:
			r.ToolChoice, _ = json.Marshal(map[string]string{"type": "function", "name": tc.Name})
		}
	}
	return r
}

// encodeResponse writes r as a response object.
func encodeResponse(r ir.Response, req *ir.Request, created int64) ([]byte, error) {
	out := shell(NewID("resp_"), r.Model, req, created)
	out.Status, out.IncompleteDetails = statusOf(r.Stop)
	itemStatus := "completed"
	if out.Status == "incomplete" {
		itemStatus = "incomplete"
	}
	var text []Part
	flush := func() {
		if len(text) > 0 {
			c, _ := json.Marshal(text)
			out.Output = append(out.Output, Item{Type: "message", ID: NewID("msg_"), Status: itemStatus, Role: "assistant", Content: c})
			text = nil
		}
	}
	for _, p := range r.Parts {
		switch p.Kind {
		case ir.PartText:
			if n := len(text); n > 0 {
				text[n-1].Text += p.Text
			} else {
				text = append(text, outputText(p.Text))
			}
		case ir.PartThinking, ir.PartRedactedThinking:
			flush()
			out.Output = append(out.Output, reasoningItem(NewID("rs_"), p.Text, p.Signature, p.Kind == ir.PartRedactedThinking))
		case ir.PartToolCall:
			flush()
			args := ir.CompactJSON(p.Args)
			out.Output = append(out.Output, Item{Type: "function_call", ID: NewID("fc_"), Status: "completed",
				CallID: p.Id, Name: p.Name, Arguments: &args})
		}
	}
	flush()
	out.Usage = FromNormalised(r.Usage)
	return json.Marshal(out)
}

var emptyAnnotations = json.RawMessage(`[]`)

func outputText(s string) Part {
	a := emptyAnnotations
	return Part{Type: "output_text", Text: s, Annotations: &a}
}

// reasoningItem is a reasoning output item: its text as reasoning_text
// content, an Anthropic or Gemini signature (or redacted thinking's data)
// as its encrypted content, which a follow-up on the same channel sends
// back.
func reasoningItem(id, text, signature string, redacted bool) Item {
	it := Item{Type: "reasoning", ID: id, Summary: &[]Part{}, EncryptedContent: signature}
	if redacted {
		it.EncryptedContent = text
		return it
	}
	if text != "" {
		it.Content, _ = json.Marshal([]Part{{Type: "reasoning_text", Text: text}})
	}
	return it
}

// decodeError reads an error answer: OpenAI's shape, which the Responses
// API shares.
func decodeError(status int, body []byte) ir.APIError { return openai.Codec.DecodeError(status, body) }

// encodeError writes e in OpenAI's error shape.
func encodeError(e ir.APIError) (int, []byte) { return openai.Codec.EncodeError(e) }
