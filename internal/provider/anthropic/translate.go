package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

var params = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "metadata": true,
	"stop_sequences": true, "stream": true, "temperature": true, "top_p": true, "top_k": true,
	"tools": true, "tool_choice": true, "thinking": true,
}

// defaultMaxTokens is sent to Anthropic, which requires max_tokens, when the
// client set none.
const DefaultMaxTokens = 4096

func decodeRequest(body []byte) (ir.Request, error) {
	if err := ir.CheckFields(body, params, "Anthropic"); err != nil {
		return ir.Request{}, err
	}
	var in Request
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Request{}, ir.BadRequest(err, "invalid Messages request")
	}
	r := ir.Request{Temperature: in.Temperature, TopP: in.TopP, TopK: in.TopK, Stop: in.StopSequences}
	if in.MaxTokens > 0 {
		mt := in.MaxTokens
		r.MaxTokens = &mt
	}
	if in.Metadata != nil {
		r.User = in.Metadata.UserID
	}
	if len(in.System) > 0 && string(in.System) != "null" {
		parts, err := decodeContent(in.System)
		if err != nil {
			return ir.Request{}, fmt.Errorf("system: %w", err)
		}
		for _, p := range parts {
			if p.Kind != ir.PartText {
				return ir.Request{}, ir.BadRequest(nil, "system blocks must be text")
			}
			r.System = append(r.System, p.Text)
		}
	}
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("server tool %q", t.Type)}
		}
		r.Tools = append(r.Tools, ir.Tool{Name: t.Name, Description: t.Description, Schema: t.InputSchema})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolAuto}
		case "any":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolAny}
		case "none":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolNone}
		case "tool":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolName, Name: tc.Name}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("tool_choice %q", tc.Type)}
		}
		if tc.DisableParallelToolUse {
			f := false
			r.ParallelTools = &f
		}
	}
	if th := in.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			r.Thinking = &ir.Thinking{Budget: th.BudgetTokens, Include: true}
		case "disabled":
			r.Thinking = &ir.Thinking{Disabled: true}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("thinking type %q", th.Type)}
		}
	}
	for i, m := range in.Messages {
		parts, err := decodeContent(m.Content)
		if err != nil {
			return ir.Request{}, fmt.Errorf("message %d: %w", i, err)
		}
		switch m.Role {
		case "user":
			r.Messages = append(r.Messages, ir.Message{Role: ir.RoleUser, Parts: parts})
		case "assistant":
			r.Messages = append(r.Messages, ir.Message{Role: ir.RoleAssistant, Parts: parts})
		default:
			return ir.Request{}, ir.BadRequest(nil, "message %d: unknown role %q", i, m.Role)
		}
	}
	return r, nil
}

func decodeContent(raw json.RawMessage) ([]ir.Part, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []ir.Part{{Kind: ir.PartText, Text: s}}, nil
	}
	var blocks []ContentBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, ir.BadRequest(err, "content must be a string or an array of blocks")
	}
	out := make([]ir.Part, 0, len(blocks))
	for _, b := range blocks {
		p, err := decodeBlock(b)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func decodeBlock(b ContentBlock) (ir.Part, error) {
	switch b.Type {
	case "text":
		return ir.Part{Kind: ir.PartText, Text: b.Text}, nil
	case "image":
		if b.Source == nil {
			return ir.Part{}, ir.BadRequest(nil, "image block without source")
		}
		switch b.Source.Type {
		case "base64":
			return ir.Part{Kind: ir.PartImage, Mime: b.Source.MediaType, Data: b.Source.Data}, nil
		case "url":
			return ir.Part{Kind: ir.PartImage, Url: b.Source.URL}, nil
		}
		return ir.Part{}, &ir.UnsupportedError{Feature: fmt.Sprintf("image source %q", b.Source.Type)}
	case "thinking":
		return ir.Part{Kind: ir.PartThinking, Text: b.Thinking, Signature: b.Signature}, nil
	case "redacted_thinking":
		return ir.Part{Kind: ir.PartRedactedThinking, Text: b.Data}, nil
	case "tool_use":
		args := b.Input
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage(`{}`)
		}
		return ir.Part{Kind: ir.PartToolCall, Id: b.ID, Name: b.Name, Args: args}, nil
	case "tool_result":
		p := ir.Part{Kind: ir.PartToolResult, Id: b.ToolUseID, IsError: b.IsError}
		if len(b.Content) > 0 && string(b.Content) != "null" {
			res, err := decodeContent(b.Content)
			if err != nil {
				return ir.Part{}, fmt.Errorf("tool_result: %w", err)
			}
			for _, r := range res {
				if r.Kind != ir.PartText && r.Kind != ir.PartImage {
					return ir.Part{}, &ir.UnsupportedError{Feature: "tool_result content other than text and images"}
				}
			}
			p.Result = res
		}
		return p, nil
	}
	return ir.Part{}, &ir.UnsupportedError{Feature: fmt.Sprintf("content block %q", b.Type)}
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

func encodeRequest(r ir.Request, model string) (ir.Upstream, error) {
	switch {
	case r.Format != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "structured output (response_format, responseMimeType or responseSchema)"}
	case r.Seed != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "seed"}
	case r.Presence != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "presence_penalty"}
	case r.Frequency != nil:
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "frequency_penalty"}
	}
	out := Request{
		Model: model, Temperature: r.Temperature, TopP: r.TopP, TopK: r.TopK,
		StopSequences: r.Stop, Stream: r.Stream, MaxTokens: DefaultMaxTokens,
	}
	maxSet := r.MaxTokens != nil
	if maxSet {
		out.MaxTokens = *r.MaxTokens
	}
	if r.User != "" {
		out.Metadata = &Metadata{UserID: r.User}
	}
	if th := r.Thinking; th != nil && !th.Disabled {
		budget := th.Budget
		if th.Effort != "" {
			budget, _ = ir.BudgetForEffort(th.Effort)
		}
		if budget < 0 {
			budget, _ = ir.BudgetForEffort("medium")
		}
		if budget > 0 {
			budget = max(budget, 1024)
			if budget >= out.MaxTokens {
				if maxSet {
					if out.MaxTokens <= 1024 {
						return ir.Upstream{}, &ir.UnsupportedError{Feature: "thinking with a token limit of 1024 or less"}
					}
					budget = out.MaxTokens - 1
				} else {
					out.MaxTokens = budget + DefaultMaxTokens
				}
			}
			out.Thinking = &Thinking{Type: "enabled", BudgetTokens: budget}
		}
	}
	if len(r.System) == 1 {
		out.System = ir.JSONString(r.System[0])
	} else if len(r.System) > 1 {
		blocks := make([]TextBlock, len(r.System))
		for i, s := range r.System {
			blocks[i] = TextBlock{Type: "text", Text: s}
		}
		out.System, _ = json.Marshal(blocks)
	}
	for _, t := range r.Tools {
		schema := t.Schema
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, Tool{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	if tc := r.ToolChoice; tc != nil {
		c := &ToolChoice{}
		switch tc.Mode {
		case ir.ToolAuto:
			c.Type = "auto"
		case ir.ToolNone:
			c.Type = "none"
		case ir.ToolAny:
			c.Type = "any"
		case ir.ToolName:
			c.Type, c.Name = "tool", tc.Name
		}
		out.ToolChoice = c
	}
	if r.ParallelTools != nil && !*r.ParallelTools && len(r.Tools) > 0 {
		if out.ToolChoice == nil {
			out.ToolChoice = &ToolChoice{Type: "auto"}
		}
		out.ToolChoice.DisableParallelToolUse = out.ToolChoice.Type != "none"
	}
	for i, m := range r.Messages {
		blocks, err := encodeBlocks(m)
		if err != nil {
			return ir.Upstream{}, fmt.Errorf("message %d: %w", i, err)
		}
		if len(blocks) == 0 {
			continue
		}
		roleName := "user"
		if m.Role == ir.RoleAssistant {
			roleName = "assistant"
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == roleName {
			// Merge consecutive turns of one role, as Anthropic would.
			var prev []json.RawMessage
			if err := json.Unmarshal(out.Messages[n-1].Content, &prev); err != nil {
				return ir.Upstream{}, err
			}
			blocks = append(prev, blocks...)
			out.Messages = out.Messages[:n-1]
		}
		content, err := json.Marshal(blocks)
		if err != nil {
			return ir.Upstream{}, err
		}
		out.Messages = append(out.Messages, Message{Role: roleName, Content: content})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return ir.Upstream{}, fmt.Errorf("encode Messages request: %w", err)
	}
	return ir.Upstream{Body: body, Path: vendor{}.Path(ir.EndpointMessages, model, r.Stream)}, nil
}

func marshalRaw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func image(p ir.Part) ImageBlock {
	if p.Url != "" {
		return ImageBlock{Type: "image", Source: ImageSource{Type: "url", URL: p.Url}}
	}
	return ImageBlock{Type: "image", Source: ImageSource{Type: "base64", MediaType: p.Mime, Data: p.Data}}
}

// encodeAnthropicBlocks writes one message's blocks, tool results first as
// Anthropic requires.
func encodeBlocks(m ir.Message) ([]json.RawMessage, error) {
	var results, rest []json.RawMessage
	for _, p := range m.Parts {
		switch p.Kind {
		case ir.PartText:
			if p.Text != "" {
				rest = append(rest, marshalRaw(TextBlock{Type: "text", Text: p.Text}))
			}
		case ir.PartImage:
			if m.Role == ir.RoleAssistant {
				return nil, &ir.UnsupportedError{Feature: "an image in an assistant message"}
			}
			rest = append(rest, marshalRaw(image(p)))
		case ir.PartThinking, ir.PartRedactedThinking:
			// Earlier turns' thinking is not sent across vendors.
		case ir.PartToolCall:
			rest = append(rest, marshalRaw(ToolUseBlock{Type: "tool_use", ID: toolID(p.Id), Name: p.Name, Input: p.Args}))
		case ir.PartToolResult:
			b := ToolResultBlock{Type: "tool_result", ToolUseID: toolID(p.Id), IsError: p.IsError}
			onlyText := true
			for _, rp := range p.Result {
				onlyText = onlyText && rp.Kind == ir.PartText
			}
			if onlyText {
				b.Content = ir.TextOf(p.Result)
			} else {
				var blocks []any
				for _, rp := range p.Result {
					if rp.Kind == ir.PartText {
						blocks = append(blocks, TextBlock{Type: "text", Text: rp.Text})
					} else {
						blocks = append(blocks, image(rp))
					}
				}
				b.Content = blocks
			}
			results = append(results, marshalRaw(b))
		}
	}
	return append(results, rest...), nil
}

func stop(s string) ir.StopReason {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return ir.StopMaxTokens
	case "stop_sequence":
		return ir.StopSequence
	case "tool_use":
		return ir.StopToolUse
	case "pause_turn":
		return ir.StopPause
	case "refusal":
		return ir.StopRefusal
	case "end_turn", "":
		return ir.StopEnd
	}
	return ir.StopOther
}

func stopReason(r ir.StopReason) string {
	switch r {
	case ir.StopMaxTokens:
		return "max_tokens"
	case ir.StopSequence:
		return "stop_sequence"
	case ir.StopToolUse:
		return "tool_use"
	case ir.StopContentFilter, ir.StopRefusal:
		return "refusal"
	case ir.StopPause:
		return "pause_turn"
	}
	return "end_turn"
}

func decodeResponse(body []byte) (ir.Response, error) {
	var in Response
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Response{}, err
	}
	r := ir.Response{Id: in.ID, Model: in.Model, Usage: in.Usage.Normalise(), HasUsage: true}
	if in.StopReason != nil {
		r.Stop = stop(*in.StopReason)
	}
	if in.StopSequence != nil {
		r.StopSeq = *in.StopSequence
	}
	for _, raw := range in.Content {
		var b ContentBlock
		if err := json.Unmarshal(raw, &b); err != nil {
			return ir.Response{}, err
		}
		switch b.Type {
		case "text", "thinking", "redacted_thinking", "tool_use":
			p, err := decodeBlock(b)
			if err != nil {
				return ir.Response{}, err
			}
			r.Parts = append(r.Parts, p)
		}
	}
	return r, nil
}

func encodeResponse(r ir.Response) ([]byte, error) {
	content := []any{}
	for _, p := range r.Parts {
		switch p.Kind {
		case ir.PartText:
			content = append(content, TextBlock{Type: "text", Text: p.Text})
		case ir.PartThinking:
			content = append(content, ThinkingBlock{Type: "thinking", Thinking: p.Text, Signature: p.Signature})
		case ir.PartRedactedThinking:
			content = append(content, RedactedThinkingBlock{Type: "redacted_thinking", Data: p.Text})
		case ir.PartToolCall:
			content = append(content, ToolUseBlock{Type: "tool_use", ID: toolID(p.Id), Name: p.Name, Input: p.Args})
		}
	}
	stop := stopReason(r.Stop)
	var seq *string
	if r.Stop == ir.StopSequence && r.StopSeq != "" {
		seq = &r.StopSeq
	}
	return json.Marshal(struct {
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		Role         string  `json:"role"`
		Model        string  `json:"model"`
		Content      []any   `json:"content"`
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
		Usage        Usage   `json:"usage"`
	}{r.Id, "message", "assistant", r.Model, content, stop, seq, FromNormalised(r.Usage)})
}

// anthropicDecoder reads a Messages stream.
type decoder struct {
	usage  Usage
	tools  int
	blocks map[int]int // content block index → tool call index, for tool_use blocks
	// argless holds the tool_use blocks that have had no argument bytes yet:
	// a call without arguments is closed with "{}" so OpenAI clients, which
	// parse the arguments string, get an object.
	argless map[int]bool
}

func (d *decoder) Event(ev sse.Event, p *ir.Pipe) error {
	if len(ev.Data) == 0 {
		return nil
	}
	var e struct {
		Type         string        `json:"type"`
		Index        int           `json:"index"`
		Message      *Response     `json:"message"`
		ContentBlock *ContentBlock `json:"content_block"`
		Delta        *struct {
			Type         string  `json:"type"`
			Text         string  `json:"text"`
			Thinking     string  `json:"thinking"`
			Signature    string  `json:"signature"`
			PartialJSON  string  `json:"partial_json"`
			StopReason   *string `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage *Usage       `json:"usage"`
		Error *ErrorDetail `json:"error"`
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
		p.Start(e.Message.ID, e.Message.Model, &u)
	case "content_block_start":
		if e.ContentBlock == nil {
			return errors.New("content_block_start without content_block")
		}
		switch b := e.ContentBlock; b.Type {
		case "text":
			p.Text(b.Text)
		case "thinking":
			p.Thinking(b.Thinking)
			p.Signature(b.Signature)
		case "tool_use":
			if d.blocks == nil {
				d.blocks = map[int]int{}
			}
			if d.argless == nil {
				d.argless = map[int]bool{}
			}
			d.blocks[e.Index] = d.tools
			p.ToolCall(d.tools, b.ID, b.Name)
			if in := ir.CompactJSON(b.Input); in != "" && in != "{}" && in != "null" {
				p.ToolArgs(d.tools, in)
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
			p.Text(e.Delta.Text)
		case "thinking_delta":
			p.Thinking(e.Delta.Thinking)
		case "signature_delta":
			p.Signature(e.Delta.Signature)
		case "input_json_delta":
			// Deltas of blocks not passed on (server tool blocks) are skipped.
			if i, ok := d.blocks[e.Index]; ok && e.Delta.PartialJSON != "" {
				delete(d.argless, e.Index)
				p.ToolArgs(i, e.Delta.PartialJSON)
			}
		}
	case "content_block_stop":
		if d.argless[e.Index] {
			delete(d.argless, e.Index)
			p.ToolArgs(d.blocks[e.Index], "{}")
		}
	case "message_delta":
		d.closeArgless(p)
		if e.Usage != nil {
			d.usage.Merge(*e.Usage)
			p.Usage(d.usage.Normalise())
		}
		if e.Delta != nil && e.Delta.StopReason != nil {
			seq := ""
			if e.Delta.StopSequence != nil {
				seq = *e.Delta.StopSequence
			}
			p.Finish(stop(*e.Delta.StopReason), seq)
		}
	case "message_stop":
		d.closeArgless(p)
		if !p.Finished {
			p.Finish(ir.StopEnd, "")
		}
		p.End()
	case "error":
		a := ir.APIError{Status: 500, Kind: ir.KindServer, Message: "upstream error"}
		if e.Error != nil {
			a.Kind, a.Status = Kind(e.Error.Type)
			a.Message = e.Error.Message
		}
		p.Fail(a)
	}
	return nil
}

// closeArgless gives every tool call still without arguments "{}", in order,
// for a stream that finishes without closing its blocks.
func (d *decoder) closeArgless(p *ir.Pipe) {
	if len(d.argless) == 0 {
		return
	}
	idx := make([]int, 0, len(d.argless))
	for b := range d.argless {
		idx = append(idx, b)
	}
	slices.Sort(idx)
	for _, b := range idx {
		p.ToolArgs(d.blocks[b], "{}")
	}
	clear(d.argless)
}

// anthropicEncoder writes a Messages stream.
type encoder struct {
	em        *ir.Emitter
	u         usage.Usage
	block     int    // index of the next block
	open      string // type of the open block, "" if none
	toolBlock map[int]int
	stop      ir.StopReason
	stopSeq   string
}

// Stream event shapes, fields in Anthropic's order.
type (
	aMessageStart struct {
		Type    string   `json:"type"`
		Message aMessage `json:"message"`
	}
	aMessage struct {
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		Role         string  `json:"role"`
		Model        string  `json:"model"`
		Content      []any   `json:"content"`
		StopReason   *string `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
		Usage        Usage   `json:"usage"`
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
		Type  string `json:"type"`
		Delta aStop  `json:"delta"`
		Usage Usage  `json:"usage"`
	}
	aStop struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
)

func (e *encoder) Start(id, model string, u usage.Usage) {
	e.u = u
	au := FromNormalised(u)
	zero := int64(0)
	au.OutputTokens = &zero
	e.em.Event("message_start", aMessageStart{Type: "message_start", Message: aMessage{
		ID: id, Type: "message", Role: "assistant", Model: model, Content: []any{}, Usage: au,
	}})
}

func (e *encoder) closeBlock() {
	if e.open == "" {
		return
	}
	e.em.Event("content_block_stop", aBlockStop{Type: "content_block_stop", Index: e.block})
	e.block++
	e.open = ""
}

func (e *encoder) openBlock(typ string, block any) {
	if e.open == typ && typ != "tool_use" {
		return
	}
	e.closeBlock()
	e.open = typ
	e.em.Event("content_block_start", aBlockStart{Type: "content_block_start", Index: e.block, ContentBlock: block})
}

func (e *encoder) delta(index int, d any) {
	e.em.Event("content_block_delta", aBlockDelta{Type: "content_block_delta", Index: index, Delta: d})
}

func (e *encoder) Text(s string) {
	e.openBlock("text", TextBlock{Type: "text"})
	e.delta(e.block, aTextDelta{Type: "text_delta", Text: s})
}

func (e *encoder) Thinking(s string) {
	e.openBlock("thinking", ThinkingBlock{Type: "thinking"})
	e.delta(e.block, aThinkingDelta{Type: "thinking_delta", Thinking: s})
}

func (e *encoder) Signature(s string) {
	if e.open == "thinking" {
		e.delta(e.block, aSignatureDelta{Type: "signature_delta", Signature: s})
	}
}

func (e *encoder) ToolCall(i int, id, name string) {
	e.openBlock("tool_use", ToolUseBlock{Type: "tool_use", ID: toolID(id), Name: name, Input: json.RawMessage(`{}`)})
	if e.toolBlock == nil {
		e.toolBlock = map[int]int{}
	}
	e.toolBlock[i] = e.block
}

func (e *encoder) ToolArgs(i int, frag string) {
	b, ok := e.toolBlock[i]
	if !ok {
		e.em.SetErr(fmt.Errorf("arguments for unknown tool call %d", i))
		return
	}
	e.delta(b, aJSONDelta{Type: "input_json_delta", PartialJSON: frag})
}

func (e *encoder) Finish(r ir.StopReason, seq string) {
	e.closeBlock()
	e.stop, e.stopSeq = r, seq
}

func (e *encoder) Usage(u usage.Usage) { e.u = u }

func (e *encoder) Fail(a ir.APIError) {
	e.em.Raw("error", ir.Body(encodeError(a)))
}

func (e *encoder) End() {
	e.closeBlock()
	var seq *string
	if e.stop == ir.StopSequence && e.stopSeq != "" {
		seq = &e.stopSeq
	}
	e.em.Event("message_delta", aMessageDelta{
		Type:  "message_delta",
		Delta: aStop{StopReason: stopReason(e.stop), StopSequence: seq},
		Usage: FromNormalised(e.u),
	})
	e.em.Event("message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"})
}

func Kind(typ string) (ir.ErrorKind, int) {
	switch typ {
	case "invalid_request_error":
		return ir.KindInvalidRequest, 400
	case "authentication_error":
		return ir.KindAuth, 401
	case "permission_error":
		return ir.KindPermission, 403
	case "not_found_error":
		return ir.KindNotFound, 404
	case "request_too_large":
		return ir.KindTooLarge, 413
	case "rate_limit_error":
		return ir.KindRateLimit, 429
	case "overloaded_error":
		return ir.KindOverloaded, 529
	case "timeout_error":
		return ir.KindTimeout, 504
	}
	return ir.KindServer, 500
}

func ErrorType(k ir.ErrorKind) string {
	switch k {
	case ir.KindInvalidRequest:
		return "invalid_request_error"
	case ir.KindAuth:
		return "authentication_error"
	case ir.KindPermission:
		return "permission_error"
	case ir.KindNotFound:
		return "not_found_error"
	case ir.KindTooLarge:
		return "request_too_large"
	case ir.KindRateLimit:
		return "rate_limit_error"
	case ir.KindOverloaded:
		return "overloaded_error"
	case ir.KindTimeout:
		return "timeout_error"
	}
	return "api_error"
}

// decodeError reads an Anthropic error answer.
func decodeError(status int, body []byte) ir.APIError {
	var w Error
	if json.Unmarshal(body, &w) != nil || w.Error.Message == "" {
		return ir.ErrorFrom(status, body, "", 0, false)
	}
	kind, _ := Kind(w.Error.Type)
	return ir.ErrorFrom(status, body, w.Error.Message, kind, w.Error.Type != "")
}

// encodeError writes e in Anthropic's error shape.
func encodeError(e ir.APIError) (int, []byte) {
	b, _ := json.Marshal(Error{Type: "error", Error: ErrorDetail{Type: ErrorType(e.Kind), Message: e.Message}})
	return e.Status, b
}
