package provider

import (
	"errors"
	"fmt"

	"baimo/internal/clock"
	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// translator composes a decoder of the upstream format with an encoder of the
// client format.
type translator struct {
	client, upstream ir.Format
	clock            clock.Clock
	clientModel      string
	req              ir.Request // the decoded client request (for stream options)

	dec ir.Decoder
	p   ir.Pipe
}

var _ Translator = (*translator)(nil)

// codecs are the formats' codecs, by Format.
var codecs = [...]ir.Codec{ir.FormatOpenAI: openai.Codec, ir.FormatAnthropic: anthropic.Codec, ir.FormatGemini: gemini.Codec}

// CodecOf returns format f's codec, or nil for an unknown format.
func CodecOf(f ir.Format) ir.Codec {
	if int(f) < len(codecs) {
		return codecs[f]
	}
	return nil
}

func (t *translator) Request(r Request) (ir.Upstream, error) {
	req, err := CodecOf(t.client).DecodeRequest(r.Body)
	if err != nil {
		return ir.Upstream{}, t.named(err)
	}
	req.Stream = r.Stream
	t.req, t.clientModel = req, r.ClientModel
	up, err := CodecOf(t.upstream).EncodeRequest(req, r.Model)
	if err != nil {
		return ir.Upstream{}, t.named(err)
	}
	up.Stream = r.Stream
	return up, nil
}

// named fills in the upstream format of an *UnsupportedError.
func (t *translator) named(err error) error {
	var ue *ir.UnsupportedError
	if errors.As(err, &ue) && ue.To == ir.FormatUnknown {
		ue.To = t.upstream
	}
	return err
}

func (t *translator) Response(body []byte) ([]byte, usage.Usage, error) {
	resp, err := CodecOf(t.upstream).DecodeResponse(body)
	if err != nil {
		return nil, usage.Usage{}, fmt.Errorf("%w: %s response: %v", ir.ErrUpstream, t.upstream, err)
	}
	if t.clientModel != "" {
		resp.Model = t.clientModel
	}
	out, err := CodecOf(t.client).EncodeResponse(resp, &t.req, t.clock.Now())
	if err != nil {
		return nil, usage.Usage{}, fmt.Errorf("encode %s response: %w", t.client, err)
	}
	return out, resp.Usage, nil
}

func (t *translator) init() {
	if t.dec != nil {
		return
	}
	t.dec = CodecOf(t.upstream).NewDecoder()
	t.p.Enc = CodecOf(t.client).NewEncoder(&t.p.Em, &t.req, t.clock.Now())
	t.p.ClientModel = t.clientModel
}

func (t *translator) Stream(dst []byte, ev sse.Event) ([]byte, error) {
	t.init()
	if t.p.Over() {
		return dst, nil
	}
	t.p.Em.Out = dst
	err := t.dec.Event(ev, &t.p)
	if err == nil {
		err = t.p.Em.Err
	}
	if err != nil {
		if !t.p.Over() {
			t.p.Fail(ir.APIError{Status: 502, Kind: ir.KindServer, Message: "malformed upstream stream"})
		}
		dst, t.p.Em.Out = t.p.Em.Out, nil
		return dst, fmt.Errorf("%w: %s stream: %v", ir.ErrUpstream, t.upstream, err)
	}
	dst, t.p.Em.Out = t.p.Em.Out, nil
	return dst, nil
}

func (t *translator) StreamEnd(dst []byte) ([]byte, error) {
	t.init()
	t.p.Em.Out = dst
	var err error
	switch {
	case t.p.Failed:
		err = fmt.Errorf("%w: %s", ir.ErrStreamFailed, t.p.FailMsg)
	case t.p.Ended:
	case t.p.Finished:
		t.p.End()
	default:
		t.p.Fail(ir.APIError{Status: 502, Kind: ir.KindServer, Message: "upstream stream ended early"})
		err = ir.ErrStreamIncomplete
	}
	dst, t.p.Em.Out = t.p.Em.Out, nil
	return dst, err
}

func (t *translator) StreamUsage() (usage.Usage, bool) { return t.p.U, t.p.HasUsage }

func (t *translator) Error(status int, body []byte) (int, []byte) {
	return CodecOf(t.client).EncodeError(CodecOf(t.upstream).DecodeError(status, body))
}
