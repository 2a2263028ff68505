package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"baimo/internal/provider/anthropic"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

var anthropicParams = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "metadata": true,
	"stop_sequences": true, "stream": true, "temperature": true, "top_p": true, "top_k": true,
	"tools": true, "tool_choice": true, "thinking": true,
}

// defaultMaxTokens is sent to Anthropic, which requires max_tokens, when the
// client set none.
const defaultMaxTokens = 4096

func decodeAnthropicRequest(body []byte) (request, error) {
	if err := checkFields(body, anthropicParams, "Anthropic"); err != nil {
		return request{}, err
	}
	var in anthropic.Request
	if err := json.Unmarshal(body, &in); err != nil {
		return request{}, badRequest(err, "invalid Messages request")
	}
	r := request{temperature: in.Temperature, topP: in.TopP, topK: in.TopK, stop: in.StopSequences}
	if in.MaxTokens > 0 {
		mt := in.MaxTokens
		r.maxTokens = &mt
	}
	if in.Metadata != nil {
		r.user = in.Metadata.UserID
	}
	if len(in.System) > 0 && string(in.System) != "null" {
		parts, err := decodeAnthropicContent(in.System)
		if err != nil {
			return request{}, fmt.Errorf("system: %w", err)
		}
		for _, p := range parts {
			if p.kind != partText {
				return request{}, badRequest(nil, "system blocks must be text")
			}
			r.system = append(r.system, p.text)
		}
	}
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("server tool %q", t.Type)}
		}
		r.tools = append(r.tools, toolDef{name: t.Name, description: t.Description, schema: t.InputSchema})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			r.toolChoice = &toolChoice{mode: toolAuto}
		case "any":
			r.toolChoice = &toolChoice{mode: toolAny}
		case "none":
			r.toolChoice = &toolChoice{mode: toolNone}
		case "tool":
			r.toolChoice = &toolChoice{mode: toolName, name: tc.Name}
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("tool_choice %q", tc.Type)}
		}
		if tc.DisableParallelToolUse {
			f := false
			r.parallelTools = &f
		}
	}
	if th := in.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			r.thinking = &thinking{budget: th.BudgetTokens, include: true}
		case "disabled":
			r.thinking = &thinking{disabled: true}
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("thinking type %q", th.Type)}
		}
	}
	for i, m := range in.Messages {
		parts, err := decodeAnthropicContent(m.Content)
		if err != nil {
			return request{}, fmt.Errorf("message %d: %w", i, err)
		}
		switch m.Role {
		case "user":
			r.messages = append(r.messages, message{role: roleUser, parts: parts})
		case "assistant":
			r.messages = append(r.messages, message{role: roleAssistant, parts: parts})
		default:
			return request{}, badRequest(nil, "message %d: unknown role %q", i, m.Role)
		}
	}
	return r, nil
}

func decodeAnthropicContent(raw json.RawMessage) ([]part, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []part{{kind: partText, text: s}}, nil
	}
	var blocks []anthropic.ContentBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, badRequest(err, "content must be a string or an array of blocks")
	}
	out := make([]part, 0, len(blocks))
	for _, b := range blocks {
		p, err := decodeAnthropicBlock(b)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func decodeAnthropicBlock(b anthropic.ContentBlock) (part, error) {
	switch b.Type {
	case "text":
		return part{kind: partText, text: b.Text}, nil
	case "image":
		if b.Source == nil {
			return part{}, badRequest(nil, "image block without source")
		}
		switch b.Source.Type {
		case "base64":
			return part{kind: partImage, mime: b.Source.MediaType, data: b.Source.Data}, nil
		case "url":
			return part{kind: partImage, url: b.Source.URL}, nil
		}
		return part{}, &UnsupportedError{Feature: fmt.Sprintf("image source %q", b.Source.Type)}
	case "thinking":
		return part{kind: partThinking, text: b.Thinking, signature: b.Signature}, nil
	case "redacted_thinking":
		return part{kind: partRedactedThinking, text: b.Data}, nil
	case "tool_use":
		args := b.Input
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage(`{}`)
		}
		return part{kind: partToolCall, id: b.ID, name: b.Name, args: args}, nil
	case "tool_result":
		p := part{kind: partToolResult, id: b.ToolUseID, isError: b.IsError}
		if len(b.Content) > 0 && string(b.Content) != "null" {
			res, err := decodeAnthropicContent(b.Content)
			if err != nil {
				return part{}, fmt.Errorf("tool_result: %w", err)
			}
			for _, r := range res {
				if r.kind != partText && r.kind != partImage {
					return part{}, &UnsupportedError{Feature: "tool_result content other than text and images"}
				}
			}
			p.result = res
		}
		return p, nil
	}
	return part{}, &UnsupportedError{Feature: fmt.Sprintf("content block %q", b.Type)}
}

// toolID makes an id acceptable to Anthropic (^[a-zA-Z0-9_-]+$).
func toolID(id string) string {
	if id == "" {
		return "toolu_none"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, id)
}

func encodeAnthropicRequest(r request, model string) (Upstream, error) {
	switch {
	case r.format != nil:
		return Upstream{}, &UnsupportedError{Feature: "structured output (response_format, responseMimeType or responseSchema)"}
	case r.seed != nil:
		return Upstream{}, &UnsupportedError{Feature: "seed"}
	case r.presence != nil:
		return Upstream{}, &UnsupportedError{Feature: "presence_penalty"}
	case r.frequency != nil:
		return Upstream{}, &UnsupportedError{Feature: "frequency_penalty"}
	}
	out := anthropic.Request{
		Model: model, Temperature: r.temperature, TopP: r.topP, TopK: r.topK,
		StopSequences: r.stop, Stream: r.stream, MaxTokens: defaultMaxTokens,
	}
	maxSet := r.maxTokens != nil
	if maxSet {
		out.MaxTokens = *r.maxTokens
	}
	if r.user != "" {
		out.Metadata = &anthropic.Metadata{UserID: r.user}
	}
	if th := r.thinking; th != nil && !th.disabled {
		budget := th.budget
		if th.effort != "" {
			budget, _ = budgetForEffort(th.effort)
		}
		if budget < 0 {
			budget, _ = budgetForEffort("medium")
		}
		if budget > 0 {
			budget = max(budget, 1024)
			if budget >= out.MaxTokens {
				if maxSet {
					if out.MaxTokens <= 1024 {
						return Upstream{}, &UnsupportedError{Feature: "thinking with a token limit of 1024 or less"}
					}
					budget = out.MaxTokens - 1
				} else {
					out.MaxTokens = budget + defaultMaxTokens
				}
			}
			out.Thinking = &anthropic.Thinking{Type: "enabled", BudgetTokens: budget}
		}
	}
	if len(r.system) == 1 {
		out.System = jsonString(r.system[0])
	} else if len(r.system) > 1 {
		blocks := make([]anthropic.TextBlock, len(r.system))
		for i, s := range r.system {
			blocks[i] = anthropic.TextBlock{Type: "text", Text: s}
		}
		out.System, _ = json.Marshal(blocks)
	}
	for _, t := range r.tools {
		schema := t.schema
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anthropic.Tool{Name: t.name, Description: t.description, InputSchema: schema})
	}
	if tc := r.toolChoice; tc != nil {
		c := &anthropic.ToolChoice{}
		switch tc.mode {
		case toolAuto:
			c.Type = "auto"
		case toolNone:
			c.Type = "none"
		case toolAny:
			c.Type = "any"
		case toolName:
			c.Type, c.Name = "tool", tc.name
		}
		out.ToolChoice = c
	}
	if r.parallelTools != nil && !*r.parallelTools && len(r.tools) > 0 {
		if out.ToolChoice == nil {
			out.ToolChoice = &anthropic.ToolChoice{Type: "auto"}
		}
		out.ToolChoice.DisableParallelToolUse = out.ToolChoice.Type != "none"
	}
	for i, m := range r.messages {
		blocks, err := encodeAnthropicBlocks(m)
		if err != nil {
			return Upstream{}, fmt.Errorf("message %d: %w", i, err)
		}
		if len(blocks) == 0 {
			continue
		}
		roleName := "user"
		if m.role == roleAssistant {
			roleName = "assistant"
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == roleName {
			// Merge consecutive turns of one role, as Anthropic would.
			var prev []json.RawMessage
			if err := json.Unmarshal(out.Messages[n-1].Content, &prev); err != nil {
				return Upstream{}, err
			}
			blocks = append(prev, blocks...)
			out.Messages = out.Messages[:n-1]
		}
		content, err := json.Marshal(blocks)
		if err != nil {
			return Upstream{}, err
		}
		out.Messages = append(out.Messages, anthropic.Message{Role: roleName, Content: content})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return Upstream{}, fmt.Errorf("encode Messages request: %w", err)
	}
	return Upstream{Body: body, Path: "messages"}, nil
}

func marshalRaw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func anthropicImage(p part) anthropic.ImageBlock {
	if p.url != "" {
		return anthropic.ImageBlock{Type: "image", Source: anthropic.ImageSource{Type: "url", URL: p.url}}
	}
	return anthropic.ImageBlock{Type: "image", Source: anthropic.ImageSource{Type: "base64", MediaType: p.mime, Data: p.data}}
}

// encodeAnthropicBlocks writes one message's blocks, tool results first as
// Anthropic requires.
func encodeAnthropicBlocks(m message) ([]json.RawMessage, error) {
	var results, rest []json.RawMessage
	for _, p := range m.parts {
		switch p.kind {
		case partText:
			if p.text != "" {
				rest = append(rest, marshalRaw(anthropic.TextBlock{Type: "text", Text: p.text}))
			}
		case partImage:
			if m.role == roleAssistant {
				return nil, &UnsupportedError{Feature: "an image in an assistant message"}
			}
			rest = append(rest, marshalRaw(anthropicImage(p)))
		case partThinking, partRedactedThinking:
			// Earlier turns' thinking is not sent across vendors.
		case partToolCall:
			rest = append(rest, marshalRaw(anthropic.ToolUseBlock{Type: "tool_use", ID: toolID(p.id), Name: p.name, Input: p.args}))
		case partToolResult:
			b := anthropic.ToolResultBlock{Type: "tool_result", ToolUseID: toolID(p.id), IsError: p.isError}
			onlyText := true
			for _, rp := range p.result {
				onlyText = onlyText && rp.kind == partText
			}
			if onlyText {
				b.Content = textOf(p.result)
			} else {
				var blocks []any
				for _, rp := range p.result {
					if rp.kind == partText {
						blocks = append(blocks, anthropic.TextBlock{Type: "text", Text: rp.text})
					} else {
						blocks = append(blocks, anthropicImage(rp))
					}
				}
				b.Content = blocks
			}
			results = append(results, marshalRaw(b))
		}
	}
	return append(results, rest...), nil
}

func anthropicStop(s string) stopReason {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return stopMaxTokens
	case "stop_sequence":
		return stopSequence
	case "tool_use":
		return stopToolUse
	case "pause_turn":
		return stopPause
	case "refusal":
		return stopRefusal
	case "end_turn", "":
		return stopEnd
	}
	return stopOther
}

func anthropicStopReason(r stopReason) string {
	switch r {
	case stopMaxTokens:
		return "max_tokens"
	case stopSequence:
		return "stop_sequence"
	case stopToolUse:
		return "tool_use"
	case stopContentFilter, stopRefusal:
		return "refusal"
	case stopPause:
		return "pause_turn"
	}
	return "end_turn"
}

func decodeAnthropicResponse(body []byte) (response, error) {
	var in anthropic.Response
	if err := json.Unmarshal(body, &in); err != nil {
		return response{}, err
	}
	r := response{id: in.ID, model: in.Model, usage: in.Usage.Normalise(), hasUsage: true}
	if in.StopReason != nil {
		r.stop = anthropicStop(*in.StopReason)
	}
	if in.StopSequence != nil {
		r.stopSeq = *in.StopSequence
	}
	for _, raw := range in.Content {
		var b anthropic.ContentBlock
		if err := json.Unmarshal(raw, &b); err != nil {
			return response{}, err
		}
		switch b.Type {
		case "text", "thinking", "redacted_thinking", "tool_use":
			p, err := decodeAnthropicBlock(b)
			if err != nil {
				return response{}, err
			}
			r.parts = append(r.parts, p)
		}
	}
	return r, nil
}

func encodeAnthropicResponse(r response) ([]byte, error) {
	content := []any{}
	for _, p := range r.parts {
		switch p.kind {
		case partText:
			content = append(content, anthropic.TextBlock{Type: "text", Text: p.text})
		case partThinking:
			content = append(content, anthropic.ThinkingBlock{Type: "thinking", Thinking: p.text, Signature: p.signature})
		case partRedactedThinking:
			content = append(content, anthropic.RedactedThinkingBlock{Type: "redacted_thinking", Data: p.text})
		case partToolCall:
			content = append(content, anthropic.ToolUseBlock{Type: "tool_use", ID: toolID(p.id), Name: p.name, Input: p.args})
		}
	}
	stop := anthropicStopReason(r.stop)
	var seq *string
	if r.stop == stopSequence && r.stopSeq != "" {
		seq = &r.stopSeq
	}
	return json.Marshal(struct {
		ID           string          `json:"id"`
		Type         string          `json:"type"`
		Role         string          `json:"role"`
		Model        string          `json:"model"`
		Content      []any           `json:"content"`
		StopReason   string          `json:"stop_reason"`
		StopSequence *string         `json:"stop_sequence"`
		Usage        anthropic.Usage `json:"usage"`
	}{r.id, "message", "assistant", r.model, content, stop, seq, anthropic.FromNormalised(r.usage)})
}

// anthropicDecoder reads a Messages stream.
type anthropicDecoder struct {
	usage  anthropic.Usage
	tools  int
	blocks map[int]int // content block index → tool call index, for tool_use blocks
	// argless holds the tool_use blocks that have had no argument bytes yet:
	// a call without arguments is closed with "{}" so OpenAI clients, which
	// parse the arguments string, get an object.
	argless map[int]bool
}

func (d *anthropicDecoder) event(ev sse.Event, p *pipe) error {
	if len(ev.Data) == 0 {
		return nil
	}
	var e struct {
		Type         string                  `json:"type"`
		Index        int                     `json:"index"`
		Message      *anthropic.Response     `json:"message"`
		ContentBlock *anthropic.ContentBlock `json:"content_block"`
		Delta        *struct {
			Type         string  `json:"type"`
			Text         string  `json:"text"`
			Thinking     string  `json:"thinking"`
			Signature    string  `json:"signature"`
			PartialJSON  string  `json:"partial_json"`
			StopReason   *string `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage *anthropic.Usage       `json:"usage"`
		Error *anthropic.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return err
	}
	switch e.Type {
	case "message_start":
		if e.Message == nil {
			return errors.New("message_start without message")
		}
		d.usage.Merge(e.Message.Usage)
		u := d.usage.Normalise()
		p.start(e.Message.ID, e.Message.Model, &u)
	case "content_block_start":
		if e.ContentBlock == nil {
			return errors.New("content_block_start without content_block")
		}
		switch b := e.ContentBlock; b.Type {
		case "text":
			p.text(b.Text)
		case "thinking":
			p.thinking(b.Thinking)
			p.signature(b.Signature)
		case "tool_use":
			if d.blocks == nil {
				d.blocks = map[int]int{}
			}
			if d.argless == nil {
				d.argless = map[int]bool{}
			}
			d.blocks[e.Index] = d.tools
			p.toolCall(d.tools, b.ID, b.Name)
			if in := compactJSON(b.Input); in != "" && in != "{}" && in != "null" {
				p.toolArgs(d.tools, in)
			} else {
				d.argless[e.Index] = true
			}
			d.tools++
		}
	case "content_block_delta":
		if e.Delta == nil {
			return errors.New("content_block_delta without delta")
		}
		switch e.Delta.Type {
		case "text_delta":
			p.text(e.Delta.Text)
		case "thinking_delta":
			p.thinking(e.Delta.Thinking)
		case "signature_delta":
			p.signature(e.Delta.Signature)
		case "input_json_delta":
			// Deltas of blocks not passed on (server tool blocks) are skipped.
			if i, ok := d.blocks[e.Index]; ok && e.Delta.PartialJSON != "" {
				delete(d.argless, e.Index)
				p.toolArgs(i, e.Delta.PartialJSON)
			}
		}
	case "content_block_stop":
		if d.argless[e.Index] {
			delete(d.argless, e.Index)
			p.toolArgs(d.blocks[e.Index], "{}")
		}
	case "message_delta":
		d.closeArgless(p)
		if e.Usage != nil {
			d.usage.Merge(*e.Usage)
			p.usage(d.usage.Normalise())
		}
		if e.Delta != nil && e.Delta.StopReason != nil {
			seq := ""
			if e.Delta.StopSequence != nil {
				seq = *e.Delta.StopSequence
			}
			p.finish(anthropicStop(*e.Delta.StopReason), seq)
		}
	case "message_stop":
		d.closeArgless(p)
		if !p.finished {
			p.finish(stopEnd, "")
		}
		p.end()
	case "error":
		a := apiError{status: 500, kind: KindServer, message: "upstream error"}
		if e.Error != nil {
			a.kind, a.status = anthropicKind(e.Error.Type)
			a.message = e.Error.Message
		}
		p.fail(a)
	}
	return nil
}

// closeArgless gives every tool call still without arguments "{}", in order,
// for a stream that finishes without closing its blocks.
func (d *anthropicDecoder) closeArgless(p *pipe) {
	if len(d.argless) == 0 {
		return
	}
	idx := make([]int, 0, len(d.argless))
	for b := range d.argless {
		idx = append(idx, b)
	}
	slices.Sort(idx)
	for _, b := range idx {
		p.toolArgs(d.blocks[b], "{}")
	}
	clear(d.argless)
}

// anthropicEncoder writes a Messages stream.
type anthropicEncoder struct {
	em        *emitter
	u         usage.Usage
	block     int    // index of the next block
	open      string // type of the open block, "" if none
	toolBlock map[int]int
	stop      stopReason
	stopSeq   string
}

// Stream event shapes, fields in Anthropic's order.
type (
	aMessageStart struct {
		Type    string   `json:"type"`
		Message aMessage `json:"message"`
	}
	aMessage struct {
		ID           string          `json:"id"`
		Type         string          `json:"type"`
		Role         string          `json:"role"`
		Model        string          `json:"model"`
		Content      []any           `json:"content"`
		StopReason   *string         `json:"stop_reason"`
		StopSequence *string         `json:"stop_sequence"`
		Usage        anthropic.Usage `json:"usage"`
	}
	aBlockStart struct {
		Type         string `json:"type"`
		Index        int    `json:"index"`
		ContentBlock any    `json:"content_block"`
	}
	aBlockDelta struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Delta any    `json:"delta"`
	}
	aBlockStop struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	aTextDelta struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	aThinkingDelta struct {
		Type     string `json:"type"`
		Thinking string `json:"thinking"`
	}
	aSignatureDelta struct {
		Type      string `json:"type"`
		Signature string `json:"signature"`
	}
	aJSONDelta struct {
		Type        string `json:"type"`
		PartialJSON string `json:"partial_json"`
	}
	aMessageDelta struct {
		Type  string          `json:"type"`
		Delta aStop           `json:"delta"`
		Usage anthropic.Usage `json:"usage"`
	}
	aStop struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
)

func (e *anthropicEncoder) start(id, model string, u usage.Usage) {
	e.u = u
	au := anthropic.FromNormalised(u)
	zero := int64(0)
	au.OutputTokens = &zero
	e.em.event("message_start", aMessageStart{Type: "message_start", Message: aMessage{
		ID: id, Type: "message", Role: "assistant", Model: model, Content: []any{}, Usage: au,
	}})
}

func (e *anthropicEncoder) closeBlock() {
	if e.open == "" {
		return
	}
	e.em.event("content_block_stop", aBlockStop{Type: "content_block_stop", Index: e.block})
	e.block++
	e.open = ""
}

func (e *anthropicEncoder) openBlock(typ string, block any) {
	if e.open == typ && typ != "tool_use" {
		return
	}
	e.closeBlock()
	e.open = typ
	e.em.event("content_block_start", aBlockStart{Type: "content_block_start", Index: e.block, ContentBlock: block})
}

func (e *anthropicEncoder) delta(index int, d any) {
	e.em.event("content_block_delta", aBlockDelta{Type: "content_block_delta", Index: index, Delta: d})
}

func (e *anthropicEncoder) text(s string) {
	e.openBlock("text", anthropic.TextBlock{Type: "text"})
	e.delta(e.block, aTextDelta{Type: "text_delta", Text: s})
}

func (e *anthropicEncoder) thinking(s string) {
	e.openBlock("thinking", anthropic.ThinkingBlock{Type: "thinking"})
	e.delta(e.block, aThinkingDelta{Type: "thinking_delta", Thinking: s})
}

func (e *anthropicEncoder) signature(s string) {
	if e.open == "thinking" {
		e.delta(e.block, aSignatureDelta{Type: "signature_delta", Signature: s})
	}
}

func (e *anthropicEncoder) toolCall(i int, id, name string) {
	e.openBlock("tool_use", anthropic.ToolUseBlock{Type: "tool_use", ID: toolID(id), Name: name, Input: json.RawMessage(`{}`)})
	if e.toolBlock == nil {
		e.toolBlock = map[int]int{}
	}
	e.toolBlock[i] = e.block
}

func (e *anthropicEncoder) toolArgs(i int, frag string) {
	b, ok := e.toolBlock[i]
	if !ok {
		e.em.setErr(fmt.Errorf("arguments for unknown tool call %d", i))
		return
	}
	e.delta(b, aJSONDelta{Type: "input_json_delta", PartialJSON: frag})
}

func (e *anthropicEncoder) finish(r stopReason, seq string) {
	e.closeBlock()
	e.stop, e.stopSeq = r, seq
}

func (e *anthropicEncoder) usage(u usage.Usage) { e.u = u }

func (e *anthropicEncoder) fail(a apiError) {
	e.em.raw("error", encodeError(FormatAnthropic, a))
}

func (e *anthropicEncoder) end() {
	e.closeBlock()
	var seq *string
	if e.stop == stopSequence && e.stopSeq != "" {
		seq = &e.stopSeq
	}
	e.em.event("message_delta", aMessageDelta{
		Type:  "message_delta",
		Delta: aStop{StopReason: anthropicStopReason(e.stop), StopSequence: seq},
		Usage: anthropic.FromNormalised(e.u),
	})
	e.em.event("message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"})
}

func anthropicKind(typ string) (ErrorKind, int) {
	switch typ {
	case "invalid_request_error":
		return KindInvalidRequest, 400
	case "authentication_error":
		return KindAuth, 401
	case "permission_error":
		return KindPermission, 403
	case "not_found_error":
		return KindNotFound, 404
	case "request_too_large":
		return KindTooLarge, 413
	case "rate_limit_error":
		return KindRateLimit, 429
	case "overloaded_error":
		return KindOverloaded, 529
	case "timeout_error":
		return KindTimeout, 504
	}
	return KindServer, 500
}

func anthropicErrorType(k ErrorKind) string {
	switch k {
	case KindInvalidRequest:
		return "invalid_request_error"
	case KindAuth:
		return "authentication_error"
	case KindPermission:
		return "permission_error"
	case KindNotFound:
		return "not_found_error"
	case KindTooLarge:
		return "request_too_large"
	case KindRateLimit:
		return "rate_limit_error"
	case KindOverloaded:
		return "overloaded_error"
	case KindTimeout:
		return "timeout_error"
	}
	return "api_error"
}
