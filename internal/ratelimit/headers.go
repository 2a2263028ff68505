package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// SetHeaders sets on h the rate-limit headers OpenAI sends and its clients
// read: x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the
// tightest bucket of each kind, and, on a refusal, retry-after (whole
// seconds, rounded up) and retry-after-ms.
func SetHeaders(h http.Header, r Result) {
	if q := r.Requests; q.Limit > 0 {
		h.Set("x-ratelimit-limit-requests", strconv.FormatInt(q.Limit, 10))
		h.Set("x-ratelimit-remaining-requests", strconv.FormatInt(max(q.Remaining, 0), 10))
		h.Set("x-ratelimit-reset-requests", formatReset(q.Reset))
	}
	if q := r.Tokens; q.Limit > 0 {
		h.Set("x-ratelimit-limit-tokens", strconv.FormatInt(q.Limit, 10))
		h.Set("x-ratelimit-remaining-tokens", strconv.FormatInt(max(q.Remaining, 0), 10))
		h.Set("x-ratelimit-reset-tokens", formatReset(q.Reset))
	}
	if !r.Allowed && !r.Degraded && !r.TooLarge {
		ms := max(r.RetryAfter.Milliseconds(), 1)
		h.Set("retry-after", strconv.FormatInt((ms+999)/1000, 10))
		h.Set("retry-after-ms", strconv.FormatInt(ms, 10))
	}
}

// formatReset writes a duration the way OpenAI does ("20ms", "1.5s",
// "6m0s"): Go's notation, rounded to the millisecond.
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}
