package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/gateway"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
)

var anthropicInbound = gateway.Inbound{Format: ir.FormatAnthropic, Endpoint: gateway.Messages}

// messages serves Anthropic's POST /v1/messages. The key comes in x-api-key
// (or Authorization: Bearer); anthropic-version is accepted and not required.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	s.GW.Serve(w, r, anthropicInbound, WriteAnthropicError)
}

// countMessageTokens serves Anthropic's POST /v1/messages/count_tokens.
func (s *Server) countMessageTokens(w http.ResponseWriter, r *http.Request) {
	s.GW.ServeCountTokens(w, r, anthropicInbound, WriteAnthropicError)
}

// WriteAnthropicError writes e in Anthropic's error shape:
// {"type":"error","error":{"type":"invalid_request_error","message":"..."}}.
func WriteAnthropicError(w http.ResponseWriter, e *apierr.Error) {
	writeFormatError(w, ir.FormatAnthropic, e)
}

// writeFormatError writes e in format f's error shape, with Retry-After when
// e has one.
func writeFormatError(w http.ResponseWriter, f ir.Format, e *apierr.Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	b := append(provider.ErrorBody(f, e.Status, ir.KindForStatus(e.Status), e.Message), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
