// Package apierr is the one error type that request handlers return: it
// carries the HTTP status and the user-safe fields every API format needs, so
// one place per format (OpenAI, Anthropic, Gemini) writes it. Internal detail
// goes in Cause, which is logged and never shown.
package apierr

import (
	"fmt"
	"net/http"
	"time"
)

// Error is an error to show a client.
type Error struct {
	Status     int
	Type       string // OpenAI error type: invalid_request_error, authentication_error, ...
	Code       string // OpenAI error code: invalid_api_key, model_not_found, ...
	Param      string // the request field at fault, if any
	Message    string // user-safe text
	RetryAfter time.Duration
	Cause      error // internal detail: logged, never shown
}

// Error returns the user-safe message and the cause.
func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// BadRequest is a 400 about a field of the request.
func BadRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request", Param: param,
		Message: fmt.Sprintf(format, args...)}
}

// InvalidJSON is a 400 for a body that is not JSON.
func InvalidJSON(cause error) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json",
		Message: "We could not parse the JSON body of your request. Send a valid JSON object.", Cause: cause}
}

// TooLarge is a 413 for a body over the limit.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("The request body is larger than the limit of %d bytes.", limit)}
}

// Unauthorized is a 401.
func Unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key", Message: msg}
}

// ModelNotAllowed is a 403 for a model the key may not use.
func ModelNotAllowed(model string) *Error {
	return &Error{Status: http.StatusForbidden, Type: "permission_error", Code: "model_not_allowed", Param: "model",
		Message: fmt.Sprintf("This API key is not allowed to use the model `%s`.", model)}
}

// ModelNotFound is a 404 for a model no channel serves.
func ModelNotFound(model string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("The model `%s` does not exist or is not served by this gateway.", model)}
}

// NotFound is a 404 for a path or an object.
func NotFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Message: msg}
}

// RateLimited is a 429.
func RateLimited(msg string, retryAfter time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "rate_limit_exceeded",
		Message: msg, RetryAfter: retryAfter}
}

// UpstreamFailed is a 502.
func UpstreamFailed(msg string, cause error) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_error", Message: msg, Cause: cause}
}

// UpstreamTimeout is a 504.
func UpstreamTimeout(cause error) *Error {
	return &Error{Status: http.StatusGatewayTimeout, Type: "api_error", Code: "upstream_timeout",
		Message: "The upstream model server did not answer in time.", Cause: cause}
}

// Internal is a 500 that hides its cause.
func Internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Type: "api_error", Code: "internal_error",
		Message: "The gateway failed to handle the request. It has been logged.", Cause: cause}
}

// Unavailable is a 503, for a gateway shutting down or a store that is down.
func Unavailable(msg string, cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "unavailable", Message: msg, Cause: cause}
}
