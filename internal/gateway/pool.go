package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/config"
	"baimo/internal/provider/ir"
	"baimo/internal/replica"
	"baimo/internal/schedule"
)

// A replica pool routes as one channel: the router treats it as it treats a
// vendor channel (priority group, breaker), and when it is chosen the pool
// places the request on one of its replicas (internal/replica). The
// replica's lease holds its load from just before the request is sent until
// the attempt ends, whatever ends it: an answer, an upstream error, a client
// that left.

// poolRoute is what a channel needs to route to a pool.
type poolRoute struct {
	pool         *replica.Pool
	defaultClass schedule.Class
	keys         map[string]schedule.Class
	tenants      map[string]schedule.Class
	header       string
}

// NewPoolChannel builds the channel of a replica pool.
func NewPoolChannel(c config.Pool, p *replica.Pool) *Channel {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	ch := &Channel{Name: c.Name, Kind: config.KindOpenAI, BaseURL: strings.TrimRight(c.Replicas[0], "/"), Models: c.Models,
		header: h, Priority: c.Priority, Weight: 1, format: ir.FormatOpenAI, secrets: []string{c.APIKey.Value()}}
	pr := &poolRoute{pool: p, keys: map[string]schedule.Class{}, tenants: map[string]schedule.Class{}, header: c.ClassHeader}
	pr.defaultClass, _ = schedule.ParseClass(c.DefaultClass)
	for k, cl := range c.Keys {
		pr.keys[k], _ = schedule.ParseClass(cl)
	}
	for t, cl := range c.Tenants {
		pr.tenants[t], _ = schedule.ParseClass(cl)
	}
	ch.pool = pr
	return ch
}

type trafficKey struct{}

type traffic struct {
	class    schedule.Class
	deadline time.Time
}

// WithTraffic marks a request's context with its traffic class and, for
// batch work, its deadline; a replica pool then queues and gates it as that
// class. The batch API marks its lines so.
func WithTraffic(ctx context.Context, class schedule.Class, deadline time.Time) context.Context {
	return context.WithValue(ctx, trafficKey{}, traffic{class: class, deadline: deadline})
}

// class decides a request's traffic class: the context's mark, else the
// key's class, else the tenant's, else the pool's default; a client's header
// may lower it (never raise it).
func (pr *poolRoute) class(r *http.Request, keyID, tenant string) (schedule.Class, time.Time) {
	if t, ok := r.Context().Value(trafficKey{}).(traffic); ok {
		return t.class, t.deadline
	}
	c, ok := pr.keys[keyID]
	if !ok {
		if c, ok = pr.tenants[tenant]; !ok {
			c = pr.defaultClass
		}
	}
	if pr.header != "" {
		if v := r.Header.Get(pr.header); v != "" {
			if hc, err := schedule.ParseClass(strings.ToLower(strings.TrimSpace(v))); err == nil && hc > c {
				c = hc
			}
		}
	}
	return c, time.Time{}
}

// maxPromptForIndex bounds the prompt text hashed for the prefix index.
const maxPromptForIndex = 256 << 10

// renderPrompt lays out a request's prompt as the prefix index hashes it:
// each message's role and content in order, so a conversation's next turn
// renders with the previous one as its prefix.
func renderPrompt(p ir.Prompt) []byte {
	var b []byte
	for _, m := range p.Messages {
		b = append(b, m.Role...)
		b = append(b, 0)
		b = append(b, m.Content...)
		b = append(b, 0)
		if len(b) > maxPromptForIndex {
			return b[:maxPromptForIndex]
		}
	}
	for _, t := range p.Texts {
		b = append(b, t...)
		b = append(b, 0)
		if len(b) > maxPromptForIndex {
			return b[:maxPromptForIndex]
		}
	}
	return b
}

// acquireReplica places the request on a replica of the channel's pool.
// overflow means the pool is saturated and the request should go to the
// next channel; an error means answer with it (nil error and nil lease: the
// client left).
func (g *Gateway) acquireReplica(ctx context.Context, r *http.Request, req *request) (lease *replica.Lease, overflow bool, aerr *apierr.Error) {
	pr := req.channel.pool
	prompt, _ := g.promptTokens(req)
	class, deadline := pr.class(r, req.key.ID, req.key.TenantID)
	l, err := pr.pool.Acquire(ctx, replica.Request{Model: req.model, PromptTokens: int(prompt), Prompt: renderPrompt(g.promptText(req)),
		Class: class, Tenant: req.key.TenantID, Free: g.opt.FreeTier != nil && g.opt.FreeTier(req.key.TenantID), Deadline: deadline})
	var shed *replica.ShedError
	switch {
	case err == nil:
		return l, false, nil
	case errors.Is(err, replica.ErrOverflow):
		return nil, true, nil
	case errors.As(err, &shed):
		return nil, false, apierr.RateLimited("The self-hosted servers for model "+req.model+" are saturated; retry after the time in the retry-after header.", shed.RetryAfter)
	case r.Context().Err() != nil:
		return nil, false, nil
	}
	return nil, false, apierr.Unavailable("No self-hosted server for model "+req.model+" took the request in time; retry later.", err)
}

// PoolStats returns the figures of every replica pool, for the admin API.
func (g *Gateway) PoolStats() []replica.Stats {
	var out []replica.Stats
	for _, ch := range g.pools {
		out = append(out, ch.pool.pool.Stats())
	}
	return out
}
