package responses

import (
	"time"

	"baimo/internal/provider/ir"
)

// Codec translates the Responses API to and from the internal
// representation.
var Codec ir.Codec = codec{}

type codec struct{}

func (codec) DecodeRequest(body []byte) (ir.Request, error) { return decodeRequest(body) }

func (codec) EncodeRequest(r ir.Request, model string) (ir.Upstream, error) {
	return encodeRequest(r, model)
}

func (codec) DecodeResponse(body []byte) (ir.Response, error) { return decodeResponse(body) }

func (codec) EncodeResponse(r ir.Response, req *ir.Request, now time.Time) ([]byte, error) {
	return encodeResponse(r, req, now.Unix())
}

func (codec) NewDecoder() ir.Decoder { return &decoder{} }

func (codec) NewEncoder(em *ir.Emitter, req *ir.Request, now time.Time) ir.Encoder {
	return &encoder{em: em, req: req, created: now.Unix()}
}

func (codec) DecodeError(status int, body []byte) ir.APIError { return decodeError(status, body) }

func (codec) EncodeError(e ir.APIError) (int, []byte) { return encodeError(e) }
