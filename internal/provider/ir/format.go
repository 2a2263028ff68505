package ir

import (
	"errors"
	"fmt"
)

// Format is a wire format.
type Format uint8

var formatNames = [...]string{"unknown", "openai", "anthropic", "gemini", "responses"}

// String returns the format's stable name.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// ParseFormat returns the Format named s ("openai", "anthropic", "gemini",
// "responses").
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if i > 0 && n == s {
			return Format(i), nil
		}
	}
	return FormatUnknown, fmt.Errorf("provider: unknown format %q", s)
}

// Upstream is a request ready to send upstream.
type Upstream struct {
	Body []byte
	// Path is below the channel's versioned base URL ("/chat/completions"
	// below https://api.openai.com/v1, "/messages" below
	// https://api.anthropic.com/v1, "/models/{model}:generateContent" below
	// https://generativelanguage.googleapis.com/v1beta): Vendor.Path.
	Path string
}

// ErrStreamIncomplete says an upstream stream ended without finishing.
var ErrStreamIncomplete = errors.New("provider: upstream stream ended early")

// ErrStreamFailed says the upstream reported an error in the middle of a
// stream (the client has been sent the error in its own format).
var ErrStreamFailed = errors.New("provider: upstream stream failed")

// ErrUpstream says an upstream answer could not be understood.
var ErrUpstream = errors.New("provider: malformed upstream answer")

// UnsupportedError says a request uses a feature the target format lacks.
type UnsupportedError struct {
	Feature string // what cannot be translated, as the client named it
	To      Format // the upstream format that lacks it
}

func (e *UnsupportedError) Error() string {
	if e.To == FormatUnknown {
		return e.Feature + " is not supported"
	}
	return fmt.Sprintf("%s is not supported by this model's %s upstream", e.Feature, e.To)
}

// HTTPStatus returns 400.
func (e *UnsupportedError) HTTPStatus() int { return 400 }

// BadRequestError says a client request body is malformed.
type BadRequestError struct {
	Msg string
	Err error // the underlying cause, if any
}

func (e *BadRequestError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *BadRequestError) Unwrap() error { return e.Err }

// HTTPStatus returns 400.
func (e *BadRequestError) HTTPStatus() int { return 400 }

func BadRequest(err error, format string, args ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...), Err: err}
}

// ErrorKind classifies an error for rendering in any format.
type ErrorKind uint8

// KindForStatus returns the error kind an HTTP status implies.
func KindForStatus(status int) ErrorKind {
	switch status {
	case 400, 422:
		return KindInvalidRequest
	case 401:
		return KindAuth
	case 403:
		return KindPermission
	case 404:
		return KindNotFound
	case 413:
		return KindTooLarge
	case 429:
		return KindRateLimit
	case 503, 529:
		return KindOverloaded
	case 504:
		return KindTimeout
	}
	if status >= 400 && status < 500 {
		return KindInvalidRequest
	}
	return KindServer
}

// Formats.
const (
	FormatUnknown   Format = iota
	FormatOpenAI           // OpenAI chat completions
	FormatAnthropic        // Anthropic Messages
	FormatGemini           // Google Gemini generateContent
	FormatResponses        // OpenAI Responses
)

// Error kinds, with the status each implies.
const (
	KindServer         ErrorKind = iota // 500
	KindInvalidRequest                  // 400
	KindAuth                            // 401
	KindPermission                      // 403
	KindNotFound                        // 404
	KindTooLarge                        // 413
	KindRateLimit                       // 429
	KindOverloaded                      // 503 (Anthropic 529)
	KindTimeout                         // 504
)
