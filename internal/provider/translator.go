package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"baimo/internal/clock"
	"baimo/internal/jsonfield"
	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/provider/responses"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// formats are the wire formats' sides, by ir.Format.
var formats = [...]struct {
	codec  ir.Codec
	client ir.Client
	vendor ir.Vendor
}{
	ir.FormatOpenAI:    {openai.Codec, openai.Client, openai.Vendor},
	ir.FormatAnthropic: {anthropic.Codec, anthropic.Client, anthropic.Vendor},
	ir.FormatGemini:    {gemini.Codec, gemini.Client, gemini.Vendor},
	ir.FormatResponses: {responses.Codec, responses.Client, responses.Vendor},
}

func known(f ir.Format) bool { return f > ir.FormatUnknown && int(f) < len(formats) }

// CodecOf returns format f's codec (nil for an unknown format).
func CodecOf(f ir.Format) ir.Codec {
	if !known(f) {
		return nil
	}
	return formats[f].codec
}

// ClientOf returns format f as clients call the gateway in it (nil for an
// unknown format).
func ClientOf(f ir.Format) ir.Client {
	if !known(f) {
		return nil
	}
	return formats[f].client
}

// VendorOf returns format f as the gateway calls upstreams in it (nil for
// an unknown format).
func VendorOf(f ir.Format) ir.Vendor {
	if !known(f) {
		return nil
	}
	return formats[f].vendor
}

// NewTranslator returns the Translator of one request from a client of one
// format to an upstream of another, or of the same (which passes bodies and
// events through, patched only where it must). clk stamps OpenAI's
// "created" field (nil means the wall clock).
func NewTranslator(client, upstream ir.Format, clk clock.Clock) (Translator, error) {
	if !known(client) {
		return nil, fmt.Errorf("provider: unknown client format %d", client)
	}
	if !known(upstream) {
		return nil, fmt.Errorf("provider: unknown upstream format %d", upstream)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	v := formats[upstream].vendor
	if client == upstream {
		return &passthrough{vendor: v, codec: formats[client].codec, clock: clk}, nil
	}
	return &translator{client: client, upstream: upstream, clock: clk, vendor: v}, nil
}

// passthrough serves a client of the upstream's own format: the body is
// patched (model, usage in streams, an output limit) and everything the
// upstream sends is passed on byte for byte, metered on the way.
type passthrough struct {
	vendor      ir.Vendor
	codec       ir.Codec
	clock       clock.Clock
	meter       ir.Meter // made on the first event: an answer that is not streamed needs none
	clientUsage bool
	secret      string // the upstream key (SetHeaders), scrubbed from error events
	endpoint    string
	adm         *ir.Admission
}

var _ Translator = (*passthrough)(nil)

func (p *passthrough) Request(r Request) (ir.Upstream, error) {
	p.clientUsage = r.Admission != nil && r.Admission.ClientUsage
	a := r.Admission
	if a == nil {
		a = &ir.Admission{Stream: r.Stream}
	}
	p.endpoint, p.adm = r.Endpoint, a
	body, err := p.vendor.Prepare(r.Body, a, r.Endpoint, r.Model, r.Limit)
	if err != nil {
		return ir.Upstream{}, &ir.BadRequestError{Msg: "the request body could not be patched for the upstream", Err: err}
	}
	return ir.Upstream{Body: body, Path: p.vendor.Path(r.Endpoint, r.Model, r.Stream)}, nil
}

// Response passes body on with its usage: read by the vendor's parser
// for the endpoint (the units a media request says where its answer says
// none; body is nil for an answer relayed as raw bytes).
func (p *passthrough) Response(body []byte) ([]byte, usage.Usage, error) {
	if um, ok := p.vendor.(ir.UnitMeter); ok {
		if u, handled := um.EndpointUsage(p.endpoint, p.adm, body); handled {
			return body, u, nil
		}
	}
	u, _ := p.vendor.BodyUsage(body)
	return body, u, nil
}

// Stream passes ev on, appended to dst, unless the meter holds it back (a
// usage chunk the client did not ask for). The one event that is not passed
// byte for byte is the upstream's error event: its message is scrubbed
// (Scrub) and the error written again in the format's own shape, since an
// upstream may echo its address, key or account there.
func (p *passthrough) Stream(dst []byte, ev sse.Event) ([]byte, error) {
	m := p.Meter()
	failed := m.Failed()
	if !m.Event(ev) {
		return dst, nil
	}
	if !failed && m.Failed() {
		return appendStreamError(p.codec, dst, scrubbedStreamError(p.codec, ev.Data, p.secret)), nil
	}
	return append(dst, ev.Raw...), nil
}

// scrubbedStreamError reads an error event's data as format c's error (its
// status from a numeric error.code, as Google writes it, else 500), scrubbed
// of secret and of what Scrub finds.
func scrubbedStreamError(c ir.Codec, data []byte, secret string) ir.APIError {
	status := http.StatusInternalServerError
	if s, ok := jsonfield.Path(data, "error", "code"); ok {
		if n, err := strconv.Atoi(string(data[s.Start:s.End])); err == nil && n >= 400 && n <= 599 {
			status = n
		}
	}
	e := c.DecodeError(status, data)
	e.Message = Scrub(e.Message, secret)
	return e
}

func (p *passthrough) StreamEnd(dst []byte) ([]byte, error) {
	m := p.Meter()
	if m.Failed() {
		return dst, ir.ErrStreamFailed
	}
	out, complete := m.End(dst)
	if complete {
		return out, nil
	}
	return appendStreamError(p.codec, dst, ir.StreamBroken), ir.ErrStreamIncomplete
}

func (p *passthrough) StreamUsage() (usage.Usage, bool) { return p.Meter().Usage() }

func (p *passthrough) Meter() ir.Meter {
	if p.meter == nil {
		p.meter = p.vendor.NewMeter(p.clientUsage)
	}
	return p.meter
}

func (p *passthrough) BodyText(dst, body []byte) []byte { return p.vendor.BodyText(dst, body) }

func (p *passthrough) SetHeaders(dst, client http.Header, secret string) {
	p.secret = secret
	p.vendor.SetAuth(dst, secret)
	if p.adm != nil && p.adm.ContentType != "" {
		dst.Set("Content-Type", p.adm.ContentType) // a multipart upload, with its boundary
	}
	if hp, ok := p.vendor.(ir.HeaderPasser); ok {
		hp.PassHeaders(dst, client)
	}
}

// translator composes a decoder of the upstream format with an encoder of the
// client format; the upstream's meter reads the usage that is billed.
type translator struct {
	client, upstream ir.Format
	clock            clock.Clock
	vendor           ir.Vendor
	clientModel      string
	req              ir.Request // the decoded client request (for stream options)
	meter            ir.Meter
	secret           string // the upstream key (SetHeaders), scrubbed from errors

	dec ir.Decoder
	p   ir.Pipe
}

var _ Translator = (*translator)(nil)

func (t *translator) Request(r Request) (ir.Upstream, error) {
	req, err := CodecOf(t.client).DecodeRequest(r.Body)
	if err != nil {
		return ir.Upstream{}, t.named(err)
	}
	req.Stream = r.Stream
	if r.Limit > 0 {
		limit := r.Limit
		req.MaxTokens = &limit
	}
	t.req, t.clientModel = req, r.ClientModel
	up, err := CodecOf(t.upstream).EncodeRequest(req, r.Model)
	if err != nil {
		return ir.Upstream{}, t.named(err)
	}
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
	if !resp.HasUsage {
		return out, usage.Usage{}, nil
	}
	return out, resp.Usage, nil
}

func (t *translator) init() {
	if t.dec != nil {
		return
	}
	t.dec = CodecOf(t.upstream).NewDecoder()
	t.p.Enc = scrubbing{CodecOf(t.client).NewEncoder(&t.p.Em, &t.req, t.clock.Now()), t.secret}
	t.p.ClientModel = t.clientModel
}

func (t *translator) Stream(dst []byte, ev sse.Event) ([]byte, error) {
	t.init()
	t.Meter().Event(ev)
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
		return dst, fmt.Errorf("%w: %s stream: %s", ir.ErrUpstream, t.upstream, Scrub(err.Error(), t.secret))
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
		err = fmt.Errorf("%w: %s", ir.ErrStreamFailed, Scrub(t.p.FailMsg, t.secret))
	case t.p.Ended:
	case t.p.Finished:
		t.p.End()
	default:
		t.p.Fail(ir.StreamBroken)
		err = ir.ErrStreamIncomplete
	}
	dst, t.p.Em.Out = t.p.Em.Out, nil
	return dst, err
}

// StreamUsage is the usage the upstream's meter read: the same parser as a
// passthrough of that format uses, so a vendor's answer bills the same
// whatever the client's format.
func (t *translator) StreamUsage() (usage.Usage, bool) { return t.Meter().Usage() }

func (t *translator) Meter() ir.Meter {
	if t.meter == nil {
		t.meter = t.vendor.NewMeter(false)
	}
	return t.meter
}

func (t *translator) BodyText(dst, body []byte) []byte { return t.vendor.BodyText(dst, body) }

func (t *translator) SetHeaders(dst, _ http.Header, secret string) {
	t.secret = secret
	t.vendor.SetAuth(dst, secret)
}

// scrubbing is a client's stream encoder that scrubs the upstream's error
// messages (Scrub) before the client sees them.
type scrubbing struct {
	ir.Encoder
	secret string
}

func (s scrubbing) Fail(e ir.APIError) {
	e.Message = Scrub(e.Message, s.secret)
	s.Encoder.Fail(e)
}

// StreamError appends, to dst, the error event that ends a stream of format
// f in its own shape (the gateway's, when it cuts a stream short).
func StreamError(f ir.Format, dst []byte, status int, message string) []byte {
	return appendStreamError(CodecOf(f), dst, ir.APIError{Status: status, Kind: ir.KindForStatus(status), Message: message})
}

func appendStreamError(c ir.Codec, dst []byte, e ir.APIError) []byte {
	var em ir.Emitter
	em.Out = dst
	c.NewEncoder(&em, &ir.Request{}, time.Time{}).Fail(e)
	return em.Out
}
