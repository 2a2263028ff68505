package provider

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
)

// Fault says whose fault an upstream's error answer is: what routing does
// with the key and channel, and what the client is told.
type Fault uint8

// Faults.
const (
	// FaultServer: the upstream failed (5xx, an unknown status). It counts
	// towards the channel's breaker; another channel may be tried.
	FaultServer Fault = iota
	// FaultRequest: the request itself was refused (a malformed body, a
	// model the account may not use, content policy). The client gets the
	// upstream's words, scrubbed; no key is parked and nothing is retried.
	FaultRequest
	// FaultKey: the upstream key or account is unusable (invalid, out of
	// balance, suspended). The key is parked; another may be tried.
	FaultKey
	// FaultRate: the upstream is rate limiting this key (for this model);
	// the key rests for RetryAfter and another may be tried.
	FaultRate
)

var faultNames = [...]string{"server", "request", "key", "rate"}

// String returns the fault's name.
func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "unknown"
}

// UpstreamFault is what routing learns from an upstream's error answer.
type UpstreamFault struct {
	Fault      Fault
	Code       string        // the vendor's error code, type or status, if any
	RetryAfter time.Duration // the upstream's Retry-After, if any
}

// keyFaultCodes are vendor error codes that mean the key or its account
// is unusable, whatever the status (compared case-insensitively).
var keyFaultCodes = []string{
	"insufficient_quota",         // OpenAI (sent with 429)
	"insufficient_balance",       // DeepSeek and others
	"insufficient_user_quota",    // one-api style resellers
	"billing_hard_limit_reached", // OpenAI
	"billing_error",              // Anthropic
	"arrearage",                  // Alibaba DashScope
	"invalid_api_key",            // OpenAI
	"account_deactivated",        // OpenAI
	"authentication_error",       // Anthropic
	"api_key_invalid",            // Gemini (400 with reason API_KEY_INVALID)
	"unauthenticated",            // Gemini
}

// accountWords, in any 4xx, say the key's account cannot pay or is shut
// (Anthropic answers a low credit balance with a 400). Compared in lower
// case.
var accountWords = []string{"api key", "credit balance", "insufficient balance", "billing", "arrear",
	"account has been", "account is", "suspended", "deactivated"}

// keyWords, in a 403 or a permission error, say it is about the key or its
// account rather than the request (compared in lower case).
var keyWords = []string{"api key", "api-key", "apikey", "x-api-key", "account", "organization", "billing",
	"balance", "credit", "quota", "suspended", "deactivated", "disabled", "project", "consumer", "subscription",
	"payment", "arrear", "expired", "revoked", "unauthorized", "authenticat"}

// UpstreamError is the one mapping of an upstream's error answer (its
// format f, status, body and Retry-After) to the client's error and to what
// routing learns. The upstream's own message reaches the client only when
// the fault is the request's (a 400, 404, 413 or 422, or a 403 or
// permission error about the request), and only scrubbed of URLs, hosts,
// keys and account identifiers (and of secrets, the channel's own keys and
// address); otherwise the client gets the gateway's words.
func UpstreamError(f ir.Format, status int, body []byte, retryAfter time.Duration, secrets ...string) (*apierr.Error, UpstreamFault) {
	ae := CodecOf(f).DecodeError(status, body)
	uf := UpstreamFault{Code: errorCode(body), RetryAfter: retryAfter}
	msg := strings.ToLower(ae.Message)
	permission := ae.Kind == ir.KindPermission || strings.EqualFold(uf.Code, "permission_error") ||
		strings.EqualFold(uf.Code, "permission_denied")
	switch {
	case isKeyFault(uf.Code):
		uf.Fault = FaultKey
	case status == 401 || status == 402:
		uf.Fault = FaultKey
	case status >= 400 && status < 500 && containsAny(msg, accountWords):
		uf.Fault = FaultKey
	case status == 403 || permission:
		uf.Fault = FaultRequest
		if containsAny(msg, keyWords) {
			uf.Fault = FaultKey
		}
	case status == 429:
		uf.Fault = FaultRate
	case status == 400 || status == 404 || status == 413 || status == 422:
		uf.Fault = FaultRequest
	default:
		uf.Fault = FaultServer
	}
	var e *apierr.Error
	switch uf.Fault {
	case FaultRequest:
		st := status
		if st < 400 || st > 499 {
			st = 400
		}
		e = &apierr.Error{Status: st, Type: requestErrorType(st), Code: "upstream_rejected",
			Message: "Upstream: " + Scrub(ae.Message, secrets...)}
	case FaultRate:
		e = apierr.RateLimited("The upstream model server is rate limiting requests; retry later.", retryAfter)
	case FaultKey:
		e = apierr.UpstreamFailed("The upstream model server refused the gateway's request ("+strconv.Itoa(status)+").", nil)
	default:
		switch status {
		case 503, 529:
			e = &apierr.Error{Status: status, Type: "api_error", Code: "upstream_overloaded",
				Message: "The upstream model server is overloaded; retry later.", RetryAfter: retryAfter}
		default:
			e = apierr.UpstreamFailed("The upstream model server failed ("+strconv.Itoa(status)+").", nil)
		}
	}
	return e, uf
}

// requestErrorType is OpenAI's error type for a request fault of status.
func requestErrorType(status int) string {
	switch status {
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "invalid_request_error"
	}
	return "invalid_request_error"
}

// errorCode is the vendor's error code: the reason of Google's details
// (API_KEY_INVALID), else OpenAI's code (or type), Anthropic's type,
// Google's status.
func errorCode(body []byte) string {
	if d, ok := jsonfield.Path(body, "error", "details"); ok && body[d.Start] == '[' {
		reason := ""
		_ = jsonfield.EachElement(body[d.Start:d.End], func(e jsonfield.Span) bool {
			item := body[d.Start+e.Start : d.Start+e.End]
			if r, ok := jsonfield.Find(item, "reason"); ok {
				reason, _ = jsonfield.String(item[r.Start:r.End])
			}
			return reason == ""
		})
		if reason != "" {
			return reason
		}
	}
	for _, f := range []string{"code", "type", "status"} {
		if s, ok := jsonfield.Path(body, "error", f); ok {
			if c, ok := jsonfield.String(body[s.Start:s.End]); ok && c != "" {
				return c
			}
		}
	}
	return ""
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func isKeyFault(code string) bool {
	if code == "" {
		return false
	}
	for _, c := range keyFaultCodes {
		if strings.EqualFold(code, c) {
			return true
		}
	}
	return false
}

// ErrorBody renders e for a client of format f: the status and body to send.
// It is the one writer of every error a client sees, the gateway's own and
// the upstream's alike.
func ErrorBody(f ir.Format, e *apierr.Error) (int, []byte) {
	c := CodecOf(f)
	if c == nil {
		c = CodecOf(ir.FormatOpenAI)
	}
	kind := ir.KindForStatus(e.Status)
	if e.Status == 529 {
		kind = ir.KindOverloaded
	}
	return c.EncodeError(ir.APIError{Status: e.Status, Kind: kind, Message: e.Message, Type: e.Type, Code: e.Code, Param: e.Param})
}

// WriteError writes e for a client of format f, before anything else was
// written: its status, body (ErrorBody) and Retry-After. It is the one
// writer of error answers.
func WriteError(w http.ResponseWriter, f ir.Format, e *apierr.Error) {
	status, body := ErrorBody(f, e)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Redacted replaces what Scrub removes.
const Redacted = "[redacted]"

var scrubbers = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+`), // URLs
	regexp.MustCompile(`(?i)\bbearer\s+[^\s"',]+`),             // credentials in a header
	regexp.MustCompile(`(?i)\b(?:api[_-]?key|key|token|secret|access[_-]?token)\s*[=:]\s*[^\s"'&,]+`),
	regexp.MustCompile(`\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,}`),                                                                                 // sk-... keys
	regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{20,}`),                                                                                            // Google API keys
	regexp.MustCompile(`(?i)\b(?:org|proj|acct|user|project)[-_][A-Za-z0-9]{6,}`),                                                              // account ids
	regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`),                                                                     // e-mail addresses
	regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b`),                                                                                 // IPv4 addresses
	regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ai|cn|dev|cloud|app|internal|local|co)(?::\d+)?\b`), // host names
	regexp.MustCompile(`(?i)\blocalhost(?::\d+)?\b|\[[0-9a-f:]*:[0-9a-f:]*\](?::\d+)?`),                                                        // loopback, IPv6
	regexp.MustCompile(`(?i)\b[a-z0-9]+(?:-[a-z0-9]+)+:\d{2,5}\b`),                                                                             // host-name:port (gpu-box-3:8000)
	regexp.MustCompile(`\b[A-Za-z0-9_\-]{32,}\b`),                                                                                              // long opaque tokens
}

// accountID finds an identifier named as an account's, a project's or an
// organisation's ("project 847362519034", "projects/847362519034",
// "organization: 5f3c2b1a"): a word with a digit after such a name. The name
// stays, the identifier goes.
var accountID = regexp.MustCompile(`(?i)\b((?:project|organi[sz]ation|org|account|user|tenant|customer|workspace|consumer)s?(?:[ _-]?id)?[\s:=#/"'(]+)[A-Za-z0-9_\-]*[0-9][A-Za-z0-9_\-]*`)

// redact replaces every s in msg; a secret shorter than 4 bytes is not
// worth the damage to the message.
func redact(msg, s string) string {
	if len(s) < 4 {
		return msg
	}
	return strings.ReplaceAll(msg, s, Redacted)
}

// maxScrubbed bounds an upstream message passed on to a client.
const maxScrubbed = 1000

// Scrub removes from an upstream message what must not reach a client or a
// log: URLs, host names and addresses, keys and tokens, account identifiers
// and e-mail addresses, and each of secrets (the channel's keys, its base
// URL) wherever it appears. It also bounds the message's length.
func Scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		msg = redact(msg, s)
		// An address is also redacted where only its host appears (an
		// upstream that echoes the Host header it got).
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			msg = redact(redact(msg, u.Host), u.Hostname())
		}
	}
	for _, re := range scrubbers {
		msg = re.ReplaceAllString(msg, Redacted)
	}
	msg = accountID.ReplaceAllString(msg, "${1}"+Redacted)
	if len(msg) > maxScrubbed {
		msg = strings.ToValidUTF8(msg[:maxScrubbed], "") + "…"
	}
	return msg
}
