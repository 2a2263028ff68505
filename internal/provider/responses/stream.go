package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// MaxOutput bounds the output an encoder keeps for the closing
// response.completed event, which repeats the whole answer: a longer
// answer fails the stream rather than grow without bound.
const MaxOutput = 32 << 20

// encoder writes a Responses event stream for the calls a decoder makes:
// response.created and response.in_progress, then for each output item its
// added event, its deltas and its done events, then response.completed (or
// response.incomplete) with the whole response. Every event carries its
// sequence_number.
type encoder struct {
	em      *ir.Emitter
	req     *ir.Request
	created int64
	seq     int64
	resp    Response
	u       usage.Usage
	stop    ir.StopReason

	// The open output item: kind "" (none), message, reasoning or
	// function_call, at index cur of resp.Output.
	kind      string
	cur       int
	text      strings.Builder // the open message's text or reasoning's text
	args      strings.Builder // the open function call's arguments
	signature string
	kept      int // bytes of output kept
}

func (e *encoder) event(typ string, fields ...any) {
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	b.Write(ir.JSONString(typ))
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString(`,"`)
		b.WriteString(fields[i].(string))
		b.WriteString(`":`)
		v, err := json.Marshal(fields[i+1])
		if err != nil {
			e.em.SetErr(err)
			return
		}
		b.Write(v)
	}
	b.WriteString(`,"sequence_number":`)
	fmt.Fprint(&b, e.seq)
	b.WriteByte('}')
	e.seq++
	e.em.Raw(typ, b.Bytes())
}

func (e *encoder) Start(_, model string, u usage.Usage) {
	e.resp = shell(NewID("resp_"), model, e.req, e.created)
	e.u = u
	e.event("response.created", "response", e.resp)
	e.event("response.in_progress", "response", e.resp)
}

// open closes the open item unless it is of kind, and opens one of kind.
func (e *encoder) open(kind string, it Item) bool {
	if e.kind == kind {
		return false
	}
	e.close()
	e.kind, e.cur = kind, len(e.resp.Output)
	e.resp.Output = append(e.resp.Output, it)
	e.event("response.output_item.added", "output_index", e.cur, "item", it)
	return true
}

// keep counts n bytes of output against MaxOutput.
func (e *encoder) keep(n int) bool {
	e.kept += n
	if e.kept > MaxOutput {
		e.em.SetErr(fmt.Errorf("an answer over %d bytes", MaxOutput))
		return false
	}
	return true
}

func (e *encoder) Text(s string) {
	if !e.keep(len(s)) {
		return
	}
	if e.open("message", Item{Type: "message", ID: NewID("msg_"), Status: "in_progress", Role: "assistant", Content: json.RawMessage(`[]`)}) {
		e.event("response.content_part.added", "item_id", e.item().ID, "output_index", e.cur, "content_index", 0,
			"part", outputText(""))
	}
	e.text.WriteString(s)
	e.event("response.output_text.delta", "item_id", e.item().ID, "output_index", e.cur, "content_index", 0,
		"delta", s, "logprobs", []any{})
}

func (e *encoder) Thinking(s string) {
	if !e.keep(len(s)) {
		return
	}
	if e.open("reasoning", Item{Type: "reasoning", ID: NewID("rs_"), Summary: &[]Part{}}) {
		e.event("response.content_part.added", "item_id", e.item().ID, "output_index", e.cur, "content_index", 0,
			"part", Part{Type: "reasoning_text"})
	}
	e.text.WriteString(s)
	e.event("response.reasoning_text.delta", "item_id", e.item().ID, "output_index", e.cur, "content_index", 0, "delta", s)
}

func (e *encoder) Signature(s string) {
	if e.kind == "reasoning" {
		e.signature += s
	}
}

func (e *encoder) ToolCall(_ int, id, name string) {
	e.close()
	empty := ""
	e.open("function_call", Item{Type: "function_call", ID: NewID("fc_"), Status: "in_progress", CallID: id, Name: name, Arguments: &empty})
}

func (e *encoder) ToolArgs(_ int, frag string) {
	if e.kind != "function_call" || !e.keep(len(frag)) {
		return
	}
	e.args.WriteString(frag)
	e.event("response.function_call_arguments.delta", "item_id", e.item().ID, "output_index", e.cur, "delta", frag)
}

func (e *encoder) item() *Item { return &e.resp.Output[e.cur] }

// close ends the open item with its done events.
func (e *encoder) close() {
	if e.kind == "" {
		return
	}
	it := e.item()
	id := it.ID
	switch e.kind {
	case "message":
		text := e.text.String()
		part := outputText(text)
		it.Content, _ = json.Marshal([]Part{part})
		it.Status = "completed"
		e.event("response.output_text.done", "item_id", id, "output_index", e.cur, "content_index", 0, "text", text, "logprobs", []any{})
		e.event("response.content_part.done", "item_id", id, "output_index", e.cur, "content_index", 0, "part", part)
	case "reasoning":
		text := e.text.String()
		*it = reasoningItem(id, text, e.signature, false)
		e.event("response.reasoning_text.done", "item_id", id, "output_index", e.cur, "content_index", 0, "text", text)
		e.event("response.content_part.done", "item_id", id, "output_index", e.cur, "content_index", 0,
			"part", Part{Type: "reasoning_text", Text: text})
	case "function_call":
		args := e.args.String()
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		it.Arguments, it.Status = &args, "completed"
		e.event("response.function_call_arguments.done", "item_id", id, "output_index", e.cur, "name", it.Name, "arguments", args)
	}
	e.event("response.output_item.done", "output_index", e.cur, "item", *it)
	e.kind = ""
	e.text.Reset()
	e.args.Reset()
	e.signature = ""
}

func (e *encoder) Finish(r ir.StopReason, _ string) {
	e.close()
	e.stop = r
}

func (e *encoder) Usage(u usage.Usage) { e.u = u }

// Fail ends the stream: response.failed with the error when the response
// has started, else an error event. An item still open is left
// incomplete, without its done events (its content may be malformed).
func (e *encoder) Fail(a ir.APIError) {
	code := a.Code
	if code == "" {
		code = openai.ErrorType(a.Kind)
	}
	if e.resp.ID == "" {
		e.event("error", "code", code, "message", a.Message, "param", nilIfEmpty(a.Param))
		return
	}
	if e.kind != "" {
		e.item().Status = "incomplete"
		e.kind = ""
	}
	e.resp.Status = "failed"
	e.resp.Error = &ResponseError{Code: code, Message: a.Message}
	e.resp.Usage = FromNormalised(e.u)
	e.event("response.failed", "response", e.resp)
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (e *encoder) End() {
	e.close()
	status, inc := statusOf(e.stop)
	e.resp.Status, e.resp.IncompleteDetails = status, inc
	e.resp.Usage = FromNormalised(e.u)
	e.event("response."+status, "response", e.resp)
}

// decoder reads a Responses event stream from an upstream.
type decoder struct {
	tools    map[int]int // output_index → tool call index
	streamed map[int]bool
	refused  map[int]bool
	n        int
}

func (d *decoder) Event(ev sse.Event, p *ir.Pipe) error {
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		return nil
	}
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	if e.Type == "" {
		e.Type = string(ev.Name)
	}
	switch e.Type {
	case "response.created", "response.in_progress", "response.queued":
		var r Response
		if err := json.Unmarshal(e.Response, &r); err != nil {
			return err
		}
		p.Start(r.ID, r.Model, nil)
	case "response.output_item.added":
		if e.Item != nil && e.Item.Type == "function_call" {
			if d.tools == nil {
				d.tools, d.streamed = map[int]int{}, map[int]bool{}
			}
			d.tools[e.OutputIndex] = d.n
			p.ToolCall(d.n, e.Item.CallID, e.Item.Name)
			d.n++
		}
	case "response.output_text.delta", "response.refusal.delta":
		p.Text(e.Delta)
	case "response.reasoning_text.delta", "response.reasoning_summary_text.delta":
		p.Thinking(e.Delta)
	case "response.function_call_arguments.delta":
		if i, ok := d.tools[e.OutputIndex]; ok {
			d.streamed[e.OutputIndex] = true
			p.ToolArgs(i, e.Delta)
		}
	case "response.output_item.done":
		if e.Item == nil {
			return nil
		}
		switch e.Item.Type {
		case "function_call":
			// Arguments that came only whole, in the done event.
			if i, ok := d.tools[e.OutputIndex]; ok && !d.streamed[e.OutputIndex] && e.Item.Arguments != nil {
				p.ToolArgs(i, *e.Item.Arguments)
			}
		case "reasoning":
			p.Signature(e.Item.EncryptedContent)
		}
	case "response.completed", "response.incomplete":
		var r Response
		if err := json.Unmarshal(e.Response, &r); err != nil {
			return err
		}
		if r.Usage != nil {
			b, _ := json.Marshal(r.Usage)
			if u, ok := ParseUsage(b); ok {
				p.Usage(u)
			}
		}
		stop := stopOf(r.Status, r.IncompleteDetails, nil)
		if stop == ir.StopEnd && d.n > 0 {
			stop = ir.StopToolUse
		}
		p.Finish(stop, "")
		p.End()
	case "response.failed":
		var r Response
		_ = json.Unmarshal(e.Response, &r)
		msg := "the upstream response failed"
		if r.Error != nil && r.Error.Message != "" {
			msg = r.Error.Message
		}
		p.Fail(ir.APIError{Status: 500, Kind: ir.KindServer, Message: msg})
	case "error":
		msg := e.Message
		if msg == "" {
			msg = "upstream stream error"
		}
		p.Fail(ir.APIError{Status: 500, Kind: ir.KindServer, Message: msg})
	case "":
		return errors.New("an event without a type")
	}
	return nil
}
