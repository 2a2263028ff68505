package ir

import (
	"strings"
	"unicode/utf8"
)

// ErrorFrom is the APIError for an upstream's error answer with status and
// body: the message and kind its format read from the body (msg "" when the
// body is not the format's error shape: the body itself, shortened, is the
// message; haveKind false: the kind the status implies). A status outside
// 400..599 becomes 502.
func ErrorFrom(status int, body []byte, msg string, kind ErrorKind, haveKind bool) APIError {
	e := APIError{Status: status, Kind: KindForStatus(status), Message: msg}
	if haveKind {
		e.Kind = kind
	}
	if e.Message == "" {
		m := strings.TrimSpace(string(body))
		if len(m) > MaxErrorText {
			m = m[:MaxErrorText]
		}
		m = strings.ToValidUTF8(m, string(utf8.RuneError))
		if m == "" {
			m = "upstream error"
		}
		e.Message = m
	}
	if e.Status < 400 || e.Status > 599 {
		e.Status = 502
	}
	return e
}

// Body returns the body of an encoded error, dropping its status: for error
// events inside a stream, whose HTTP status was sent long before.
func Body(_ int, body []byte) []byte { return body }

// StreamBroken is the error that ends a client's stream when the upstream's
// ended before its answer was complete.
var StreamBroken = APIError{Status: 502, Kind: KindServer, Type: "api_error", Code: "stream_broken",
	Message: "The upstream stream ended before it was complete."}
