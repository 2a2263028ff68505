package route

import "sync/atomic"

// rate is a lock-free GCRA meter: tat is the theoretical arrival time in
// Unix nanoseconds. A use of cost nanoseconds is allowed when the new tat
// stays within burst of now.
type rate struct {
	tat atomic.Int64
}

// fits reports, without taking anything, whether cost would be allowed now.
func (r *rate) fits(now, cost, burst int64) bool {
	return max(r.tat.Load(), now)+cost-now <= burst
}

// take consumes cost if it fits.
func (r *rate) take(now, cost, burst int64) bool {
	for {
		old := r.tat.Load()
		next := max(old, now) + cost
		if next-now > burst {
			return false
		}
		if r.tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

// give returns cost nanoseconds of use (a refund or a rollback).
func (r *rate) give(cost int64) { r.tat.Add(-cost) }

// limitParams are the GCRA figures derived from Limits once, at config time.
type limitParams struct {
	reqCost, reqBurst int64 // per request; 0 cost means no RPM limit
	tokCost, tokBurst int64 // per token; 0 cost means no TPM limit
	concurrency       int64 // 0 means none
}

func paramsOf(l Limits) limitParams {
	var p limitParams
	if l.RPM > 0 {
		p.reqCost = ceilDiv(nanosPerMinute, l.RPM)
		// Vendors often enforce RPM over sub-minute windows: do not let a
		// whole minute's requests out at once.
		p.reqBurst = max(p.reqCost, nanosPerMinute/rpmBurstShare)
	}
	if l.TPM > 0 {
		p.tokCost = ceilDiv(nanosPerMinute, l.TPM)
		p.tokBurst = nanosPerMinute // one request may use a whole minute's tokens
	}
	p.concurrency = l.Concurrency
	return p
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// meter is the in-flight count and rate meters of one channel or key.
type meter struct {
	inFlight atomic.Int64
	req      rate
	tok      rate
}

// fits reports whether one more request of tokens would pass p now.
func (m *meter) fits(p *limitParams, now, tokens int64) bool {
	if p.concurrency > 0 && m.inFlight.Load() >= p.concurrency {
		return false
	}
	if p.reqCost > 0 && !m.req.fits(now, p.reqCost, p.reqBurst) {
		return false
	}
	if p.tokCost > 0 && tokens > 0 && !m.tok.fits(now, tokenCost(p, tokens), p.tokBurst) {
		return false
	}
	return true
}

// tokenCost is the meter time of tokens, saturating instead of overflowing.
func tokenCost(p *limitParams, tokens int64) int64 {
	if tokens > maxEstimatedTokens {
		tokens = maxEstimatedTokens
	}
	return tokens * p.tokCost
}

// take admits one request of tokens or changes nothing.
func (m *meter) take(p *limitParams, now, tokens int64) bool {
	n := m.inFlight.Add(1)
	if p.concurrency > 0 && n > p.concurrency {
		m.inFlight.Add(-1)
		return false
	}
	if p.reqCost > 0 && !m.req.take(now, p.reqCost, p.reqBurst) {
		m.inFlight.Add(-1)
		return false
	}
	if p.tokCost > 0 && tokens > 0 && !m.tok.take(now, tokenCost(p, tokens), p.tokBurst) {
		m.req.give(p.reqCost)
		m.inFlight.Add(-1)
		return false
	}
	return true
}

// untake undoes a take whose request was never sent.
func (m *meter) untake(p *limitParams, tokens int64) {
	if p.tokCost > 0 && tokens > 0 {
		m.tok.give(tokenCost(p, tokens))
	}
	if p.reqCost > 0 {
		m.req.give(p.reqCost)
	}
	m.inFlight.Add(-1)
}

// done ends a request that reserved reserved tokens and used used.
func (m *meter) done(p *limitParams, reserved, used int64) {
	m.inFlight.Add(-1)
	if p.tokCost > 0 && reserved != used {
		m.tok.give(tokenCost(p, reserved) - tokenCost(p, max(used, 0)))
	}
}
