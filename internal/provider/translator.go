package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"baimo/internal/clock"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// translator composes a decoder of the upstream format with an encoder of the
// client format.
type translator struct {
	client, upstream Format
	clock            clock.Clock
	clientModel      string
	req              request // the decoded client request (for stream options)

	dec decoder
	p   pipe
}

var _ Translator = (*translator)(nil)

func (t *translator) Request(r Request) (Upstream, error) {
	var (
		ir  request
		err error
	)
	switch t.client {
	case FormatOpenAI:
		ir, err = decodeOpenAIRequest(r.Body)
	case FormatAnthropic:
		ir, err = decodeAnthropicRequest(r.Body)
	case FormatGemini:
		ir, err = decodeGeminiRequest(r.Body)
	}
	if err != nil {
		return Upstream{}, t.named(err)
	}
	ir.stream = r.Stream
	t.req, t.clientModel = ir, r.ClientModel
	var up Upstream
	switch t.upstream {
	case FormatOpenAI:
		up, err = encodeOpenAIRequest(ir, r.Model)
	case FormatAnthropic:
		up, err = encodeAnthropicRequest(ir, r.Model)
	case FormatGemini:
		up, err = encodeGeminiRequest(ir, r.Model)
	}
	if err != nil {
		return Upstream{}, t.named(err)
	}
	up.Stream = r.Stream
	return up, nil
}

// named fills in the upstream format of an *UnsupportedError.
func (t *translator) named(err error) error {
	var ue *UnsupportedError
	if errors.As(err, &ue) && ue.To == FormatUnknown {
		ue.To = t.upstream
	}
	return err
}

func (t *translator) Response(body []byte) ([]byte, usage.Usage, error) {
	var (
		resp response
		err  error
	)
	switch t.upstream {
	case FormatOpenAI:
		resp, err = decodeOpenAIResponse(body)
	case FormatAnthropic:
		resp, err = decodeAnthropicResponse(body)
	case FormatGemini:
		resp, err = decodeGeminiResponse(body)
	}
	if err != nil {
		return nil, usage.Usage{}, fmt.Errorf("%w: %s response: %v", ErrUpstream, t.upstream, err)
	}
	if t.clientModel != "" {
		resp.model = t.clientModel
	}
	var out []byte
	switch t.client {
	case FormatOpenAI:
		out, err = encodeOpenAIResponse(resp, t.clock.Now().Unix())
	case FormatAnthropic:
		out, err = encodeAnthropicResponse(resp)
	case FormatGemini:
		out, err = encodeGeminiResponse(resp, t.includeThoughts())
	}
	if err != nil {
		return nil, usage.Usage{}, fmt.Errorf("encode %s response: %w", t.client, err)
	}
	return out, resp.usage, nil
}

// includeThoughts reports whether a Gemini client wants thinking parts.
func (t *translator) includeThoughts() bool {
	return t.req.thinking != nil && t.req.thinking.include
}

func (t *translator) init() {
	if t.dec != nil {
		return
	}
	switch t.upstream {
	case FormatOpenAI:
		t.dec = &openAIDecoder{}
	case FormatAnthropic:
		t.dec = &anthropicDecoder{}
	default:
		t.dec = &geminiDecoder{}
	}
	switch t.client {
	case FormatOpenAI:
		t.p.enc = &openAIEncoder{em: &t.p.em, includeUsage: t.req.includeUsage, created: t.clock.Now().Unix()}
	case FormatAnthropic:
		t.p.enc = &anthropicEncoder{em: &t.p.em}
	default:
		t.p.enc = &geminiEncoder{em: &t.p.em, includeThoughts: t.includeThoughts()}
	}
	t.p.clientModel = t.clientModel
}

func (t *translator) Stream(dst []byte, ev sse.Event) ([]byte, error) {
	t.init()
	if t.p.over() {
		return dst, nil
	}
	t.p.em.out = dst
	err := t.dec.event(ev, &t.p)
	if err == nil {
		err = t.p.em.err
	}
	if err != nil {
		if !t.p.over() {
			t.p.fail(apiError{status: 502, kind: KindServer, message: "malformed upstream stream"})
		}
		dst, t.p.em.out = t.p.em.out, nil
		return dst, fmt.Errorf("%w: %s stream: %v", ErrUpstream, t.upstream, err)
	}
	dst, t.p.em.out = t.p.em.out, nil
	return dst, nil
}

func (t *translator) StreamEnd(dst []byte) ([]byte, error) {
	t.init()
	t.p.em.out = dst
	var err error
	switch {
	case t.p.failed:
		err = fmt.Errorf("%w: %s", ErrStreamFailed, t.p.failMsg)
	case t.p.ended:
	case t.p.finished:
		t.p.end()
	default:
		t.p.fail(apiError{status: 502, kind: KindServer, message: "upstream stream ended early"})
		err = ErrStreamIncomplete
	}
	dst, t.p.em.out = t.p.em.out, nil
	return dst, err
}

func (t *translator) StreamUsage() (usage.Usage, bool) { return t.p.u, t.p.hasUsage }

func (t *translator) Error(status int, body []byte) (int, []byte) {
	e := decodeError(t.upstream, status, body)
	if t.client != FormatAnthropic && e.status == 529 {
		e.status = 503 // 529 is Anthropic's alone
	}
	return e.status, encodeError(t.client, e)
}

// decoder turns upstream stream events into calls on a pipe.
type decoder interface {
	event(ev sse.Event, p *pipe) error
}

// encoder writes client stream events for the calls a decoder makes. The
// pipe guarantees start comes first and nothing follows end or fail.
type encoder interface {
	start(id, model string, u usage.Usage)
	text(s string)
	thinking(s string)
	signature(s string)
	toolCall(i int, id, name string)
	toolArgs(i int, frag string)
	finish(r stopReason, seq string)
	usage(u usage.Usage)
	fail(e apiError)
	end()
}

// emitter collects a client's stream bytes and the first encoding error.
type emitter struct {
	out []byte
	err error
}

func (e *emitter) event(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		if e.err == nil {
			e.err = err
		}
		return
	}
	e.out = sse.AppendData(e.out, name, b)
}

func (e *emitter) raw(name string, data []byte) { e.out = sse.AppendData(e.out, name, data) }

func (e *emitter) setErr(err error) {
	if e.err == nil {
		e.err = err
	}
}

// pipe sits between a decoder and an encoder: it keeps the stream's state and
// the order of calls.
type pipe struct {
	enc         encoder
	em          emitter
	clientModel string

	started, finished, ended, failed bool
	tools                            int // tool calls started
	args                             map[int][]byte
	argBytes                         int
	failMsg                          string

	u        usage.Usage
	hasUsage bool
}

func (p *pipe) over() bool { return p.ended || p.failed }

func (p *pipe) start(id, model string, u *usage.Usage) {
	if p.started || p.over() {
		if u != nil {
			p.usage(*u)
		}
		return
	}
	p.started = true
	if p.clientModel != "" {
		model = p.clientModel
	}
	if u != nil {
		p.u, p.hasUsage = *u, true
	}
	p.enc.start(id, model, p.u)
}

func (p *pipe) ensure() bool {
	if p.over() || p.em.err != nil {
		return false
	}
	if !p.started {
		p.start("", "", nil)
	}
	return true
}

// content reports whether content may still be written: the stream has not
// ended and the upstream has not finished (content after a finish is a
// protocol violation of the upstream and is ignored).
func (p *pipe) content() bool { return !p.finished && p.ensure() }

func (p *pipe) text(s string) {
	if s != "" && p.content() {
		p.enc.text(s)
	}
}

func (p *pipe) thinking(s string) {
	if s != "" && p.content() {
		p.enc.thinking(s)
	}
}

func (p *pipe) signature(s string) {
	if s != "" && p.content() {
		p.enc.signature(s)
	}
}

func (p *pipe) toolCall(i int, id, name string) {
	if i >= maxToolCalls {
		p.em.setErr(fmt.Errorf("more than %d tool calls", maxToolCalls))
		return
	}
	if p.finished || p.over() {
		return
	}
	if name == "" || i != p.tools {
		p.em.setErr(fmt.Errorf("tool call %d (of %d) without a name or out of order", i, p.tools))
		return
	}
	if id == "" {
		id = fmt.Sprintf("call_%d", i)
	}
	if p.content() {
		p.tools++
		p.enc.toolCall(i, id, name)
	}
}

func (p *pipe) toolArgs(i int, frag string) {
	if p.finished || p.over() {
		return
	}
	if i < 0 || i >= p.tools {
		p.em.setErr(fmt.Errorf("arguments for tool call %d, which was not started", i))
		return
	}
	if frag != "" && p.content() {
		// The arguments are kept (bounded) to check, when the upstream
		// finishes, that each call's add up to a JSON object: a stream that
		// completes never hands a client broken arguments.
		if p.argBytes+len(frag) > maxToolArgs {
			p.em.setErr(fmt.Errorf("tool call arguments over %d bytes", maxToolArgs))
			return
		}
		if p.args == nil {
			p.args = map[int][]byte{}
		}
		p.args[i] = append(p.args[i], frag...)
		p.argBytes += len(frag)
		p.enc.toolArgs(i, frag)
	}
}

// checkArgs reports whether every tool call's arguments are empty or a JSON
// object.
func (p *pipe) checkArgs() bool {
	for i, a := range p.args {
		if t := bytes.TrimSpace(a); len(t) > 0 && (t[0] != '{' || !json.Valid(t)) {
			p.em.setErr(fmt.Errorf("tool call %d: arguments are not a JSON object", i))
			return false
		}
	}
	p.args, p.argBytes = nil, 0
	return true
}

func (p *pipe) finish(r stopReason, seq string) {
	if p.ensure() && !p.finished && p.checkArgs() {
		p.finished = true
		p.enc.finish(r, seq)
	}
}

func (p *pipe) usage(u usage.Usage) {
	p.u, p.hasUsage = u, true
	if !p.over() {
		p.enc.usage(u)
	}
}

func (p *pipe) fail(e apiError) {
	if p.over() {
		return
	}
	p.failed, p.failMsg = true, e.message
	if e.status == 529 {
		if _, ok := p.enc.(*anthropicEncoder); !ok {
			e.status = 503
		}
	}
	p.enc.fail(e)
}

func (p *pipe) end() {
	if p.ensure() {
		p.ended = true
		p.enc.end()
	}
}
