package httpapi

import (
	"net/http"

	"baimo/internal/apierr"
	"baimo/internal/gateway"
	"baimo/internal/provider/ir"
)

var anthropicInbound = gateway.Inbound{Format: ir.FormatAnthropic, Endpoint: gateway.Messages}

// messages serves Anthropic's POST /v1/messages. The key comes in x-api-key
// (or Authorization: Bearer); anthropic-version is accepted and not required.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	if e := s.GW.Serve(w, r, anthropicInbound); e != nil {
		WriteAnthropicError(w, e)
	}
}

// countMessageTokens serves Anthropic's POST /v1/messages/count_tokens.
func (s *Server) countMessageTokens(w http.ResponseWriter, r *http.Request) {
	if e := s.GW.ServeCountTokens(w, r, anthropicInbound); e != nil {
		WriteAnthropicError(w, e)
	}
}

// WriteAnthropicError writes e in Anthropic's error shape:
// {"type":"error","error":{"type":"invalid_request_error","message":"..."}}.
func WriteAnthropicError(w http.ResponseWriter, e *apierr.Error) {
	writeError(w, ir.FormatAnthropic, e)
}
