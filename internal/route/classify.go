package route

import (
	"strconv"
	"strings"
	"time"
)

// Outcome is what happened to one attempt, as the forwarding code saw it.
type Outcome struct {
	ConnectErr       bool          // dial, TLS or reset before any response header
	FirstByteTimeout bool          // no response byte within the first-byte timeout
	Status           int           // HTTP status; 0 if none arrived
	ErrorCode        string        // vendor error code or type from the body, if any
	RetryAfter       time.Duration // the upstream's retry-after, if any
	ClientGotBytes   bool          // any byte of the answer already reached the client
	Canceled         bool          // the client went away; says nothing of the upstream
	Broken           bool          // the upstream failed after its response began (stream cut, bad body)
	// Fault is whose fault an error answer was, as the upstream's format
	// read it; FaultUnknown leaves the decision to Status and ErrorCode.
	Fault Fault

	// Filled on success, for latency averages and token meters.
	TTFT     time.Duration // time to first token
	PerToken time.Duration // mean time per output token after the first
	Tokens   int64         // tokens the vendor counted (prompt + output); 0 if none
}

// Fault says whose fault an upstream's error answer is.
type Fault uint8

// Faults.
const (
	FaultUnknown Fault = iota // not read: decide by status and code
	FaultServer               // the upstream failed
	FaultRequest              // the request was refused: the client's error
	FaultKey                  // the key or its account is unusable
	FaultRate                 // the key is rate limited (for this model)
)

// Effect is what an outcome does to the health of the channel and key.
type Effect uint8

// Effects.
const (
	EffectNone     Effect = iota // nothing learned (client's fault, cancelled)
	EffectSuccess                // the upstream worked
	EffectFailure                // counts towards the breakers
	EffectPark                   // the key is unusable (auth, balance): park it
	EffectCooldown               // rate limited: rest the key for RetryAfter
)

var effectNames = [...]string{"none", "success", "failure", "park", "cooldown"}

// String returns the effect's name for logs and usage records.
func (e Effect) String() string {
	if int(e) < len(effectNames) {
		return effectNames[e]
	}
	return "unknown"
}

// Decision is Classify's verdict on an outcome.
type Decision struct {
	Retry      bool          // try the next candidate
	Effect     Effect        // what the outcome does to health
	RetryAfter time.Duration // for EffectCooldown; 0 means the default
	Reason     string        // short machine-readable reason
}

// keyFaultCodes are vendor error codes that mean the key itself is unusable
// (compared case-insensitively).
var keyFaultCodes = []string{
	"insufficient_quota",         // OpenAI (sent with 429)
	"insufficient_balance",       // DeepSeek and others
	"insufficient_user_quota",    // one-api style resellers
	"billing_hard_limit_reached", // OpenAI
	"arrearage",                  // Alibaba DashScope
	"invalid_api_key",
	"account_deactivated",
	"authentication_error", // Anthropic
	"permission_error",     // Anthropic
}

// Classify decides whether an attempt may be retried on another candidate and
// what it says about the upstream's health. Never retry once a byte reached
// the client, nor on a client-fault 4xx; retry on connect errors, first-byte
// timeouts, 408, 429 and 5xx, and on key faults (401, 402, 403, balance
// errors) after parking the key.
func Classify(o Outcome) Decision {
	d := classify(o)
	if o.ClientGotBytes || o.Canceled {
		d.Retry = false
	}
	return d
}

func classify(o Outcome) Decision {
	switch {
	case o.Canceled && o.Status == 0:
		return Decision{Effect: EffectNone, Reason: "canceled"}
	case o.ConnectErr:
		return Decision{Retry: true, Effect: EffectFailure, Reason: "connect"}
	case o.FirstByteTimeout:
		return Decision{Retry: true, Effect: EffectFailure, Reason: "first_byte_timeout"}
	case o.Broken:
		return Decision{Retry: true, Effect: EffectFailure, Reason: "broken"}
	}
	switch o.Fault {
	case FaultRequest:
		return Decision{Effect: EffectNone, Reason: "client_error"}
	case FaultKey:
		return Decision{Retry: true, Effect: EffectPark, Reason: "key:" + strings.ToLower(o.ErrorCode)}
	case FaultRate:
		return Decision{Retry: true, Effect: EffectCooldown, RetryAfter: o.RetryAfter, Reason: "rate_limited"}
	case FaultServer:
		return Decision{Retry: true, Effect: EffectFailure, RetryAfter: o.RetryAfter, Reason: "http_" + strconv.Itoa(o.Status)}
	}
	if isKeyFault(o.ErrorCode) {
		return Decision{Retry: true, Effect: EffectPark, Reason: "key:" + strings.ToLower(o.ErrorCode)}
	}
	s := o.Status
	switch {
	case s >= 200 && s < 400:
		return Decision{Effect: EffectSuccess, Reason: "ok"}
	case s == 401 || s == 402 || s == 403:
		return Decision{Retry: true, Effect: EffectPark, Reason: "key:http_" + strconv.Itoa(s)}
	case s == 429:
		return Decision{Retry: true, Effect: EffectCooldown, RetryAfter: o.RetryAfter, Reason: "rate_limited"}
	case s == 408:
		return Decision{Retry: true, Effect: EffectFailure, Reason: "upstream_timeout"}
	case s >= 500 && s < 600:
		return Decision{Retry: true, Effect: EffectFailure, RetryAfter: o.RetryAfter, Reason: "http_" + strconv.Itoa(s)}
	case s >= 400 && s < 500:
		// The upstream answered sensibly; the request was at fault.
		return Decision{Effect: EffectNone, Reason: "client_error"}
	case s == 0:
		return Decision{Effect: EffectNone, Reason: "no_status"}
	default:
		return Decision{Retry: true, Effect: EffectFailure, Reason: "bad_status"}
	}
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
