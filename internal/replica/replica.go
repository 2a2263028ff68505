// Package replica runs pools of self-hosted inference replicas (vLLM,
// SGLang, or baimo's simulated replica) for the gateway: it scrapes each
// replica's metrics, places requests with internal/schedule's policies and
// queue, hands the gateway a lease that holds the replica's load until the
// request ends, and shares the prefix index between gateway nodes through
// Redis.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
	"baimo/internal/schedule"
)

// Options configure a pool.
type Options struct {
	Name   string
	Engine Engine
	// URLs are the replicas' OpenAI-compatible base URLs (ending in /v1;
	// one without gets /v1). Their metrics are read from /metrics at the
	// same host.
	URLs   []string
	Secret string // sent as a bearer token to the replicas, if set
	Policy string // a schedule policy name (default "prefix")
	// ScrapeInterval is how often each replica's metrics are read (default
	// 50ms, within 10ms..1s).
	ScrapeInterval time.Duration
	Pool           schedule.PoolConfig
	Queue          schedule.QueueConfig
	Clock          clock.Clock
	Log            *slog.Logger
	Client         *http.Client // for scrapes; default a client with short timeouts
}

// Pool is one running pool.
type Pool struct {
	name          string
	engine        Engine
	secret        string
	reps          []*replicaState
	sp            *schedule.Pool
	sched         *schedule.Scheduler
	clk           clock.Clock
	log           *slog.Logger
	client        *http.Client
	scrapeEvery   time.Duration
	scrapeTimeout time.Duration
	shared        atomic.Pointer[Sharer]
}

type replicaState struct {
	base, metricsURL string
	scrapeErrors     atomic.Int64
}

// New checks opt and returns a pool; Run starts its scrapes and queue.
func New(opt Options) (*Pool, error) {
	if len(opt.URLs) == 0 || len(opt.URLs) > schedule.MaxReplicas {
		return nil, fmt.Errorf("pool %s: 1 to %d replicas, not %d", opt.Name, schedule.MaxReplicas, len(opt.URLs))
	}
	if opt.Engine == "" {
		opt.Engine = VLLM
	}
	if _, ok := names[opt.Engine]; !ok {
		return nil, fmt.Errorf("pool %s: unknown engine %q", opt.Name, opt.Engine)
	}
	if opt.Policy == "" {
		opt.Policy = "prefix"
	}
	pol, err := schedule.NewPolicy(opt.Policy)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", opt.Name, err)
	}
	if opt.ScrapeInterval == 0 {
		opt.ScrapeInterval = 50 * time.Millisecond
	}
	if opt.ScrapeInterval < 10*time.Millisecond || opt.ScrapeInterval > time.Second {
		return nil, fmt.Errorf("pool %s: scrape interval %s outside 10ms..1s", opt.Name, opt.ScrapeInterval)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	p := &Pool{name: opt.Name, engine: opt.Engine, secret: opt.Secret, clk: opt.Clock, log: opt.Log, client: opt.Client,
		scrapeEvery: opt.ScrapeInterval, scrapeTimeout: max(4*opt.ScrapeInterval, 200*time.Millisecond)}
	if p.client == nil {
		p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute,
			ResponseHeaderTimeout: time.Second}}
	}
	var names []string
	for i, raw := range opt.URLs {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("pool %s: replica %d: %q is not an http(s) URL", opt.Name, i, raw)
		}
		base := u.String()
		if !strings.HasSuffix(u.Path, "/v1") {
			base += "/v1"
		}
		root := strings.TrimSuffix(base, "/v1")
		p.reps = append(p.reps, &replicaState{base: base, metricsURL: root + "/metrics"})
		names = append(names, u.Host+strings.TrimSuffix(u.Path, "/v1"))
	}
	p.sp, err = schedule.NewPool(names, opt.Pool)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", opt.Name, err)
	}
	p.sched = schedule.NewScheduler(p.sp, pol, opt.Queue)
	return p, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Scheduler exposes the pool's scheduler (for stats and tests).
func (p *Pool) Scheduler() *schedule.Scheduler { return p.sched }

// Run scrapes the replicas, pumps the queue and ages the prefix index until
// ctx ends.
func (p *Pool) Run(ctx context.Context) {
	for i := range p.reps {
		go p.scrapeLoop(ctx, i)
	}
	go func() {
		t := p.clk.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C():
				p.sp.Index().Expire(now)
			}
		}
	}()
	p.sched.Run(ctx, 10*time.Millisecond, p.clk.Now, func(d time.Duration) <-chan time.Time { return p.clk.NewTimer(d).C() })
}

// Request is what the gateway knows of a request when it places it.
type Request struct {
	Model        string
	PromptTokens int
	// Prompt is the rendered prompt's text, hashed into 64-byte blocks for
	// the prefix index; nil places the request by load alone.
	Prompt   []byte
	Class    schedule.Class
	Tenant   string
	Free     bool
	Deadline time.Time
}

// ErrOverflow means every replica is saturated and the pool sends the
// request to the model's vendor channels instead.
var ErrOverflow = errors.New("replica pool saturated: overflow to vendor channels")

// ShedError refuses a request: the pool is saturated (or its queue full)
// and the request is free-tier, or there is nowhere to queue it.
type ShedError struct {
	Pool       string
	RetryAfter time.Duration
}

func (e *ShedError) Error() string {
	return fmt.Sprintf("replica pool %s is saturated; retry after %s", e.Pool, e.RetryAfter)
}

// Lease is a request's place on a replica: the replica's base URL and its
// load, held from just before the request is sent until End. Every method
// is safe to call after End.
type Lease struct {
	BaseURL string
	Replica int
	// Decision is the policy's choice.
	Decision schedule.Decision
	t        *schedule.Ticket
	p        *Pool
}

// FirstToken records the first token (or, for a whole answer, its
// arrival) at now.
func (l *Lease) FirstToken(now time.Time) { l.t.FirstToken(now) }

// Token records a later streamed token at now.
func (l *Lease) Token(now time.Time) { l.t.Token(now) }

// End releases the replica's load however the request ended: answered,
// failed, or cancelled by its client. Calling it twice is harmless.
func (l *Lease) End() {
	l.t.End()
	l.p.sched.Kick()
}

// Acquire places r on a replica, waiting in the pool's queue if it is
// saturated. It returns a lease, ErrOverflow, a *ShedError, or ctx's error
// if the client left while it waited.
func (p *Pool) Acquire(ctx context.Context, r Request) (*Lease, error) {
	sr := &schedule.Request{Model: r.Model, PromptTokens: max(r.PromptTokens, 1), Class: r.Class, Tenant: r.Tenant,
		Free: r.Free, Deadline: r.Deadline}
	if len(r.Prompt) >= schedule.TextBlockBytes {
		sr.Blocks = schedule.AppendTextBlocks(make([]uint64, 0, len(r.Prompt)/schedule.TextBlockBytes), schedule.ModelSeed(r.Model), r.Prompt)
		sr.BlockTokens = float64(sr.PromptTokens) * schedule.TextBlockBytes / float64(len(r.Prompt))
	}
	w, err := p.sched.Acquire(ctx, sr, p.clk.Now)
	switch {
	case errors.Is(err, schedule.ErrShed):
		return nil, &ShedError{Pool: p.name, RetryAfter: p.sched.RetryAfter()}
	case err != nil:
		return nil, err
	case w.Outcome == schedule.Overflow:
		return nil, ErrOverflow
	}
	return &Lease{BaseURL: p.reps[w.Decision.Replica].base, Replica: w.Decision.Replica, Decision: w.Decision, t: w.Ticket, p: p}, nil
}

// ReplicaStats are one replica's figures for metrics and the admin API.
type ReplicaStats struct {
	schedule.ReplicaStats
	URL          string
	ScrapeErrors int64
	// IndexBlocks is how many prompt blocks the gateway's index holds for
	// the replica.
	IndexBlocks int
}

// Stats are a pool's figures.
type Stats struct {
	Name     string
	Engine   Engine
	Policy   string
	Replicas []ReplicaStats
	Classes  [3]schedule.ClassStats
}

// Stats returns the pool's figures now.
func (p *Pool) Stats() Stats {
	st := Stats{Name: p.name, Engine: p.engine, Policy: p.sched.Policy().Name(), Classes: p.sched.Stats()}
	for i, rs := range p.sp.Stats(p.clk.Now()) {
		st.Replicas = append(st.Replicas, ReplicaStats{ReplicaStats: rs, URL: p.reps[i].base,
			ScrapeErrors: p.reps[i].scrapeErrors.Load(), IndexBlocks: p.sp.Index().Blocks(i)})
	}
	return st
}
