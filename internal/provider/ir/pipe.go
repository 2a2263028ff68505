package ir

import (
	"baimo/internal/sse"
	"baimo/internal/usage"
	"bytes"
	"encoding/json"
	"fmt"
)

// decoder turns upstream stream events into calls on a pipe.
type Decoder interface {
	Event(ev sse.Event, p *Pipe) error
}

// encoder writes client stream events for the calls a decoder makes. The
// pipe guarantees start comes first and nothing follows end or fail.
type Encoder interface {
	Start(id, model string, u usage.Usage)
	Text(s string)
	Thinking(s string)
	Signature(s string)
	ToolCall(i int, id, name string)
	ToolArgs(i int, frag string)
	Finish(r StopReason, seq string)
	Usage(u usage.Usage)
	Fail(e APIError)
	End()
}

// emitter collects a client's stream bytes and the first encoding error.
type Emitter struct {
	Out []byte
	Err error
}

func (e *Emitter) Event(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		if e.Err == nil {
			e.Err = err
		}
		return
	}
	e.Out = sse.AppendData(e.Out, name, b)
}

func (e *Emitter) Raw(name string, data []byte) { e.Out = sse.AppendData(e.Out, name, data) }

func (e *Emitter) SetErr(err error) {
	if e.Err == nil {
		e.Err = err
	}
}

// pipe sits between a decoder and an encoder: it keeps the stream's state and
// the order of calls.
type Pipe struct {
	Enc         Encoder
	Em          Emitter
	ClientModel string

	Started, Finished, Ended, Failed bool
	Tools                            int // tool calls started
	Args                             map[int][]byte
	ArgBytes                         int
	FailMsg                          string

	U        usage.Usage
	HasUsage bool
}

func (p *Pipe) Over() bool { return p.Ended || p.Failed }

func (p *Pipe) Start(id, model string, u *usage.Usage) {
	if p.Started || p.Over() {
		if u != nil {
			p.Usage(*u)
		}
		return
	}
	p.Started = true
	if p.ClientModel != "" {
		model = p.ClientModel
	}
	if u != nil {
		p.U, p.HasUsage = *u, true
	}
	p.Enc.Start(id, model, p.U)
}

func (p *Pipe) Ensure() bool {
	if p.Over() || p.Em.Err != nil {
		return false
	}
	if !p.Started {
		p.Start("", "", nil)
	}
	return true
}

// content reports whether content may still be written: the stream has not
// ended and the upstream has not finished (content after a finish is a
// protocol violation of the upstream and is ignored).
func (p *Pipe) Content() bool { return !p.Finished && p.Ensure() }

func (p *Pipe) Text(s string) {
	if s != "" && p.Content() {
		p.Enc.Text(s)
	}
}

func (p *Pipe) Thinking(s string) {
	if s != "" && p.Content() {
		p.Enc.Thinking(s)
	}
}

func (p *Pipe) Signature(s string) {
	if s != "" && p.Content() {
		p.Enc.Signature(s)
	}
}

func (p *Pipe) ToolCall(i int, id, name string) {
	if i >= MaxToolCalls {
		p.Em.SetErr(fmt.Errorf("more than %d tool calls", MaxToolCalls))
		return
	}
	if p.Finished || p.Over() {
		return
	}
	if name == "" || i != p.Tools {
		p.Em.SetErr(fmt.Errorf("tool call %d (of %d) without a name or out of order", i, p.Tools))
		return
	}
	if id == "" {
		id = fmt.Sprintf("call_%d", i)
	}
	if p.Content() {
		p.Tools++
		p.Enc.ToolCall(i, id, name)
	}
}

func (p *Pipe) ToolArgs(i int, frag string) {
	if p.Finished || p.Over() {
		return
	}
	if i < 0 || i >= p.Tools {
		p.Em.SetErr(fmt.Errorf("arguments for tool call %d, which was not started", i))
		return
	}
	if frag != "" && p.Content() {
		// The arguments are kept (bounded) to check, when the upstream
		// finishes, that each call's add up to a JSON object: a stream that
		// completes never hands a client broken arguments.
		if p.ArgBytes+len(frag) > MaxToolArgs {
			p.Em.SetErr(fmt.Errorf("tool call arguments over %d bytes", MaxToolArgs))
			return
		}
		if p.Args == nil {
			p.Args = map[int][]byte{}
		}
		p.Args[i] = append(p.Args[i], frag...)
		p.ArgBytes += len(frag)
		p.Enc.ToolArgs(i, frag)
	}
}

// checkArgs reports whether every tool call's arguments are empty or a JSON
// object.
func (p *Pipe) CheckArgs() bool {
	for i, a := range p.Args {
		if t := bytes.TrimSpace(a); len(t) > 0 && (t[0] != '{' || !json.Valid(t)) {
			p.Em.SetErr(fmt.Errorf("tool call %d: arguments are not a JSON object", i))
			return false
		}
	}
	p.Args, p.ArgBytes = nil, 0
	return true
}

func (p *Pipe) Finish(r StopReason, seq string) {
	if p.Ensure() && !p.Finished && p.CheckArgs() {
		p.Finished = true
		p.Enc.Finish(r, seq)
	}
}

func (p *Pipe) Usage(u usage.Usage) {
	p.U, p.HasUsage = u, true
	if !p.Over() {
		p.Enc.Usage(u)
	}
}

func (p *Pipe) Fail(e APIError) {
	if p.Over() {
		return
	}
	p.Failed, p.FailMsg = true, e.Message
	p.Enc.Fail(e)
}

func (p *Pipe) End() {
	if p.Ensure() {
		p.Ended = true
		p.Enc.End()
	}
}
