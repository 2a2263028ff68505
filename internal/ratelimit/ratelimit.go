// Package ratelimit enforces baimo's own limits on its users: requests per
// minute (GCRA), tokens per minute (a reservation of the estimate before the
// call, settled with the actual count after it) and concurrent requests, for
// any set of buckets a request falls under (its key, its tenant, the tenant
// on this model, ...).
//
// One Acquire checks every applicable limit at once and takes from all or
// none, so concurrent requests cannot slip past a limit between checks. Local
// keeps the state in process; Redis shares it between gateway nodes with one
// round trip per Acquire (a Lua script). Both run the same integer arithmetic
// and give identical answers for the same sequence and clock.
//
// Arithmetic: time is in milliseconds; a limit of R per minute is a GCRA
// meter whose debt grows by 60000 per request (or per token) and shrinks by R
// per millisecond; a use is allowed while the debt stays within Burst×60000.
// Every figure stays below 2^53, so Lua's doubles are exact too.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"baimo/internal/clock"
)

// Limits on what one request may ask, so the arithmetic stays exact.
const (
	MaxLimits      = 8             // buckets one request may fall under
	MaxRate        = 1_000_000_000 // largest RPM or TPM
	MaxConcurrency = 1_000_000     // largest concurrency limit
	MaxKeyLen      = 200           // longest bucket key
	unit           = 60_000        // debt per request or token: ms in a minute
)

// ErrInvalid is returned for a malformed Request.
var ErrInvalid = errors.New("ratelimit: invalid request")

// ErrUnavailable is returned by a shared limiter that cannot reach its store
// and is configured to fail closed.
var ErrUnavailable = errors.New("ratelimit: limiter store unavailable")

// Limit is one bucket a request falls under. Zero fields mean no such limit.
type Limit struct {
	// Key names the bucket, e.g. "key:7f3a", "tenant:acme",
	// "tenant:acme|model:gpt-4o". Requests naming the same Key share it.
	Key         string
	RPM         int64 // requests per minute
	Burst       int64 // requests allowed at once; 0 means RPM; at most RPM
	TPM         int64 // tokens per minute (prompt + output)
	Concurrency int64 // requests in flight
}

// Request asks for one request's admission.
type Request struct {
	Limits []Limit
	// Tokens is the reservation: prompt tokens plus the capped max_tokens.
	// Release settles it with the actual count.
	Tokens int64
	// Now, if not zero, is the request's arrival time from the same clock
	// the limiter was built with; it saves a clock read.
	Now time.Time
}

// Kind says which limit refused a request.
type Kind uint8

// Kinds.
const (
	KindNone        Kind = iota // allowed
	KindRequests                // RPM
	KindTokens                  // TPM
	KindConcurrency             // concurrent requests
)

var kindNames = [...]string{"none", "requests", "tokens", "concurrency"}

// String returns the kind's name for logs and error messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Quota is the state of the tightest limit of one kind, as OpenAI's
// x-ratelimit-* headers report it.
type Quota struct {
	Limit     int64         // the per-minute figure; 0 if no limit applies
	Remaining int64         // uses left now
	Reset     time.Duration // until the meter is back to its full allowance
}

// Result is the verdict on one Acquire.
type Result struct {
	Allowed    bool
	Refused    Kind          // which limit refused, if not allowed
	RefusedKey string        // the bucket that refused
	RetryAfter time.Duration // when the refused request could pass; 0 with TooLarge
	TooLarge   bool          // the token reservation exceeds the limit outright
	Degraded   bool          // allowed unchecked: the store failed and the limiter fails open
	Requests   Quota
	Tokens     Quota
	Lease      Lease // pass to Release when the request ends (allowed only)
}

// Lease is what Release needs to undo an admission: the concurrency slots and
// the token reservation. It is a value; copying it is fine.
type Lease struct {
	n        int
	keys     [MaxLimits]string
	tpm      [MaxLimits]int64
	conc     [MaxLimits]bool
	tokens   int64
	id       string             // Redis: the member in the concurrency sets
	buckets  [MaxLimits]*bucket // Local
	released bool
}

// Limiter admits requests. Implementations are safe for concurrent use.
type Limiter interface {
	// Acquire checks all of req's limits at once and, if all allow it,
	// takes a request, the token reservation and a concurrency slot from
	// each. An error means the check could not be made (or req is invalid);
	// a refusal is a Result with Allowed false.
	Acquire(ctx context.Context, req Request) (Result, error)
	// Release ends an allowed request: it frees the concurrency slots and
	// settles the token reservation with usedTokens (refunding the rest, or
	// charging an overrun). Release on a zero or released Lease does nothing.
	Release(ctx context.Context, lease *Lease, usedTokens int64) error
}

func validate(req *Request) error {
	if len(req.Limits) > MaxLimits {
		return fmt.Errorf("%w: %d limits, at most %d", ErrInvalid, len(req.Limits), MaxLimits)
	}
	if req.Tokens < 0 || req.Tokens > MaxRate {
		return fmt.Errorf("%w: tokens %d out of range", ErrInvalid, req.Tokens)
	}
	for i, l := range req.Limits {
		switch {
		case l.Key == "" || len(l.Key) > MaxKeyLen:
			return fmt.Errorf("%w: limit %d: key length %d", ErrInvalid, i, len(l.Key))
		case l.RPM < 0 || l.RPM > MaxRate || l.TPM < 0 || l.TPM > MaxRate:
			return fmt.Errorf("%w: limit %q: rate out of range", ErrInvalid, l.Key)
		case l.Burst < 0 || l.Burst > l.RPM:
			return fmt.Errorf("%w: limit %q: burst %d not in 0..rpm", ErrInvalid, l.Key, l.Burst)
		case l.Concurrency < 0 || l.Concurrency > MaxConcurrency:
			return fmt.Errorf("%w: limit %q: concurrency out of range", ErrInvalid, l.Key)
		}
		for _, o := range req.Limits[:i] {
			if o.Key == l.Key {
				return fmt.Errorf("%w: limit %q listed twice", ErrInvalid, l.Key)
			}
		}
	}
	return nil
}

// perLimit is one bucket's debts after a check (after the commit if
// allowed). Both implementations produce these, in the same units, so the
// same code turns them into a Result.
type perLimit struct {
	rd, td int64
}

// verdict is what one check decided, in the store's integer units.
type verdict struct {
	refused    Kind
	refusedIdx int   // index into the limits of the refusing bucket
	retryMs    int64 // -1: never (too large)
	per        [MaxLimits]perLimit
}

// result turns a verdict into a Result.
func result(req *Request, v *verdict) Result {
	var r Result
	fillResult(&r, req, v)
	return r
}

// fillResult sets the verdict's fields of a zero Result in place (a Result
// is large enough that copies show on the local path).
func fillResult(r *Result, req *Request, v *verdict) {
	r.Allowed, r.Refused = v.refused == KindNone, v.refused
	if !r.Allowed {
		r.RefusedKey = req.Limits[v.refusedIdx].Key
		if v.retryMs < 0 {
			r.TooLarge = true
		} else {
			r.RetryAfter = time.Duration(v.retryMs) * time.Millisecond
		}
	}
	// Report the tightest bucket of each kind: the refusing one if it
	// refused for that kind, else the one with the least left.
	reqIdx, tokIdx := -1, -1
	var reqLeft, tokLeft int64
	for i := range req.Limits {
		l := &req.Limits[i]
		p := &v.per[i]
		if l.RPM > 0 {
			if left := (burstOf(l)*unit - p.rd) / unit; reqIdx < 0 || left < reqLeft {
				reqIdx, reqLeft = i, left
			}
		}
		if l.TPM > 0 {
			if left := max(l.TPM*unit-p.td, 0) / unit; tokIdx < 0 || left < tokLeft {
				tokIdx, tokLeft = i, left
			}
		}
	}
	if v.refused == KindRequests {
		l := &req.Limits[v.refusedIdx]
		reqIdx, reqLeft = v.refusedIdx, (burstOf(l)*unit-v.per[v.refusedIdx].rd)/unit
	}
	if v.refused == KindTokens {
		l := &req.Limits[v.refusedIdx]
		tokIdx, tokLeft = v.refusedIdx, max(l.TPM*unit-v.per[v.refusedIdx].td, 0)/unit
	}
	if reqIdx >= 0 {
		rpm := req.Limits[reqIdx].RPM
		r.Requests = Quota{Limit: rpm, Remaining: reqLeft, Reset: ms(cdiv(v.per[reqIdx].rd, rpm))}
	}
	if tokIdx >= 0 {
		tpm := req.Limits[tokIdx].TPM
		r.Tokens = Quota{Limit: tpm, Remaining: tokLeft, Reset: ms(cdiv(v.per[tokIdx].td, tpm))}
	}
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// The meter arithmetic, mirrored line for line in the Lua script.

// leak returns debt d, last updated at t, as of now for a rate per minute.
func leak(d, t, now, rate int64) int64 {
	if d <= 0 || rate <= 0 {
		return max(d, 0)
	}
	el := now - t
	if el <= 0 {
		return d
	}
	// Debt never exceeds a minute's worth (rate×unit), so a minute clears
	// it; capping keeps el×rate below 2^53.
	el = min(el, unit)
	return max(d-el*rate, 0)
}

// cdiv is the ceiling of a/b for a >= 0, b > 0.
func cdiv(a, b int64) int64 { return (a + b - 1) / b }

// burstOf is a limit's request burst.
func burstOf(l *Limit) int64 {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.RPM
}

// nowMs is t, or the clock's time when t is zero, in Unix milliseconds.
func nowMs(clk clock.Clock, t time.Time) int64 {
	if t.IsZero() {
		return clk.Now().UnixMilli()
	}
	return t.UnixMilli()
}

// Rates is the configurable part of a Limit, as it appears in config files
// and key records; For names the bucket.
//
// RPM is a sustained rate with a burst: from an idle meter, Burst requests
// pass at once and one more every 60/RPM seconds after, so any window of w
// seconds admits at most Burst + RPM×w/60. Burst defaults to RPM (a client
// may spend a minute's allowance at once), so `rpm: 30` admits up to 40
// requests in the first 20 s and 60 in the first minute from idle, 30 a
// minute after; a smaller Burst (down to 1: evenly spaced) bounds that.
type Rates struct {
	RPM         int64 `yaml:"rpm"`
	Burst       int64 `yaml:"burst"`
	TPM         int64 `yaml:"tpm"`
	Concurrency int64 `yaml:"concurrency"`
}

// Check reports what in r the limiter would refuse (ErrInvalid), so a
// configuration is refused at start rather than every request at run time.
func (r Rates) Check() error {
	switch {
	case r.RPM < 0 || r.RPM > MaxRate:
		return fmt.Errorf("rpm %d is outside 0..%d", r.RPM, int64(MaxRate))
	case r.TPM < 0 || r.TPM > MaxRate:
		return fmt.Errorf("tpm %d is outside 0..%d", r.TPM, int64(MaxRate))
	case r.Burst < 0 || r.Burst > r.RPM:
		return fmt.Errorf("burst %d is outside 0..rpm (%d); 0 means rpm", r.Burst, r.RPM)
	case r.Concurrency < 0 || r.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency %d is outside 0..%d", r.Concurrency, int64(MaxConcurrency))
	}
	return nil
}

// For returns the Limit of these rates on the bucket named key.
func (r Rates) For(key string) Limit {
	return Limit{Key: key, RPM: r.RPM, Burst: r.Burst, TPM: r.TPM, Concurrency: r.Concurrency}
}

// Zero reports whether r sets no limit at all (the bucket can be left out).
func (r Rates) Zero() bool { return r == Rates{} }
