package ir

import "time"

// Codec translates one wire format to and from the internal representation.
// Each format package has one (openai.Codec, anthropic.Codec, gemini.Codec);
// a Translator composes the client's and the upstream's.
type Codec interface {
	// DecodeRequest reads a client's request body. A feature the IR cannot
	// carry is an *UnsupportedError, a malformed body a *BadRequestError.
	DecodeRequest(body []byte) (Request, error)
	// EncodeRequest writes r as a request to model.
	EncodeRequest(r Request, model string) (Upstream, error)
	// DecodeResponse reads a whole (not streamed) upstream answer.
	DecodeResponse(body []byte) (Response, error)
	// EncodeResponse writes r for a client that sent req, at now.
	EncodeResponse(r Response, req *Request, now time.Time) ([]byte, error)
	// NewDecoder returns a decoder of one upstream stream.
	NewDecoder() Decoder
	// NewEncoder returns an encoder of one client stream into em, for a
	// client that sent req, at now.
	NewEncoder(em *Emitter, req *Request, now time.Time) Encoder
	// DecodeError reads an upstream error answer.
	DecodeError(status int, body []byte) APIError
	// EncodeError writes e for a client: the status and body to send.
	EncodeError(e APIError) (int, []byte)
}
