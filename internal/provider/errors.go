package provider

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/openaiwire"
)

// decodeError reads an upstream error body of format f. A body that is not
// the format's error shape keeps the status and becomes the message
// (shortened).
func decodeError(f Format, status int, body []byte) apiError {
	e := apiError{status: status, kind: KindForStatus(status)}
	switch f {
	case FormatOpenAI:
		var w openaiwire.Error
		if json.Unmarshal(body, &w) == nil && w.Error.Message != "" {
			e.message = w.Error.Message
		}
	case FormatAnthropic:
		var w anthropic.Error
		if json.Unmarshal(body, &w) == nil && w.Error.Message != "" {
			e.message = w.Error.Message
			if w.Error.Type != "" {
				e.kind, _ = anthropicKind(w.Error.Type)
			}
		}
	case FormatGemini:
		var w []gemini.Error // the REST API sometimes wraps it in an array
		var one gemini.Error
		if json.Unmarshal(body, &one) == nil && one.Error.Message != "" {
			w = []gemini.Error{one}
		} else {
			_ = json.Unmarshal(body, &w)
		}
		if len(w) > 0 && w[0].Error.Message != "" {
			e.message = w[0].Error.Message
			if w[0].Error.Status != "" {
				e.kind, _ = geminiKind(w[0].Error.Status, status)
			}
		}
	}
	if e.message == "" {
		msg := strings.TrimSpace(string(body))
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText]
		}
		msg = strings.ToValidUTF8(msg, string(utf8.RuneError))
		if msg == "" {
			msg = "upstream error"
		}
		e.message = msg
	}
	if e.status < 400 || e.status > 599 {
		e.status = 502
	}
	return e
}

// encodeError writes e in format f.
func encodeError(f Format, e apiError) []byte {
	var v any
	switch f {
	case FormatAnthropic:
		v = anthropic.Error{Type: "error", Error: anthropic.ErrorDetail{Type: anthropicErrorType(e.kind), Message: e.message}}
	case FormatGemini:
		v = gemini.Error{Error: gemini.ErrorDetail{Code: e.status, Message: e.message, Status: geminiStatus(e.kind)}}
	default:
		v = openaiwire.Error{Error: openaiwire.ErrorDetail{Message: e.message, Type: openAIErrorType(e.kind)}}
	}
	b, _ := json.Marshal(v)
	return b
}
