// Package route chooses the upstream channel and key that serve one request,
// and keeps the health of every channel and key: circuit breakers, parked
// keys, vendor-imposed limits (RPM, TPM, concurrency), retry-after cooldowns
// and latency averages.
//
// A public model is served by several channels (DeepSeek direct, a reseller,
// an own vLLM pool), each holding several upstream keys. Channels are grouped
// by priority; inside the first group that has a usable channel a policy picks
// one (by default power of two choices on latency × load; or weighted random,
// least in-flight, lowest latency, lowest cost, or a blend). A Plan walks the choices for one request: after a failure that
// Classify deems retryable it yields the next candidate, within a bounded
// number of attempts and a total time budget.
//
// The package knows nothing of prices: the cost policy asks a caller-supplied
// CostFunc. All time comes from an injected clock.Clock. Choosing is cheap
// (atomics on the hot path, no allocation in steady state); state changes on
// failures take a per-breaker mutex.
package route

import (
	"errors"
	"fmt"
	"time"
)

// Limits on configuration size, so a bad config cannot make selection slow.
const (
	MaxChannelsPerModel = 256  // channels that may serve one public model
	MaxKeysPerChannel   = 1024 // upstream keys in one channel
	MaxAttemptsLimit    = 10   // upper bound for Model.MaxAttempts
	MaxRate             = 1e9  // upper bound for any RPM or TPM figure
)

// Defaults used when a config field is zero. They are meant to need no tuning.
const (
	DefaultMaxAttempts     = 3
	DefaultMaxTotal        = 2 * time.Minute
	DefaultExplore         = 0.02 // share of latency/blend picks that explore at random
	DefaultFailures        = 5
	DefaultWindow          = 30 * time.Second
	DefaultOpenFor         = 30 * time.Second
	DefaultProbes          = 1
	DefaultParkFor         = time.Hour
	DefaultCooldown        = time.Second     // 429 without retry-after
	DefaultMaxCooldown     = 5 * time.Minute // cap on an upstream's retry-after
	DefaultExpectedOutput  = 256             // output tokens assumed for latency scores
	rpmBurstShare          = 6               // vendor RPM: at most 1/6 of a minute's requests at once
	nanosPerMinute         = int64(time.Minute)
	defaultWeight          = 1
	maxWeight              = 1_000_000
	maxPriority            = 1_000_000
	maxIDLen               = 256
	maxExpectedOutput      = 1 << 20
	maxEstimatedTokens     = 1 << 32
	maxBreakerFailures     = 1_000_000
	maxBreakerProbes       = 1000
	maxBlendTermWeight     = 1000.0
	minBreakerWindow       = time.Millisecond
	maxConfiguredDurations = 7 * 24 * time.Hour
)

// Policy names the rule that picks a channel inside a priority group.
type Policy string

// Policies.
const (
	// PolicyBalanced is the default: power of two choices. It draws two
	// usable channels at random in proportion to weight and keeps the one
	// with the lower expected latency × (in-flight + 1) / weight (the "peak
	// EWMA" rule). It needs no tuning, spreads load by weight while
	// channels are alike, moves it away from slow or busy ones, and costs
	// the same whatever the number of channels.
	PolicyBalanced Policy = "balanced"
	// PolicyBlend scores every channel of the group by a weighted sum of
	// normalised latency, in-flight requests, cost and (inverse) weight,
	// and takes the lowest; Model.Blend sets the weights (default
	// DefaultBlend).
	PolicyBlend Policy = "blend"
	// PolicyWeighted picks at random in proportion to Channel.Weight.
	PolicyWeighted Policy = "weighted"
	// PolicyLeastInFlight picks the channel with the fewest requests in
	// flight relative to its weight.
	PolicyLeastInFlight Policy = "least_in_flight"
	// PolicyLatency picks the lowest expected latency: EWMA time to first
	// token plus EWMA per-token time times the expected output length.
	PolicyLatency Policy = "latency"
	// PolicyCost picks the cheapest channel for this request as told by the
	// request's CostFunc; channels it cannot rate come last.
	PolicyCost Policy = "cost"
)

// DefaultBlend is the blend PolicyBlend uses when a model sets none: latency
// and load count equally, weights break the rest, cost only when asked for.
var DefaultBlend = Blend{Latency: 1, InFlight: 1, Weight: 0.5}

// Blend weighs the terms of PolicyBlend. Each term is normalised to [0,1]
// over the candidates of the group before weighting.
type Blend struct {
	Latency  float64 `yaml:"latency"`
	InFlight float64 `yaml:"in_flight"`
	Cost     float64 `yaml:"cost"`
	Weight   float64 `yaml:"weight"`
}

func (b Blend) zero() bool { return b == Blend{} }

// Limits are what a vendor allows one channel or key. Zero means no limit.
type Limits struct {
	RPM         int64 `yaml:"rpm"`         // requests per minute
	TPM         int64 `yaml:"tpm"`         // tokens (prompt + output) per minute
	Concurrency int64 `yaml:"concurrency"` // requests in flight
}

func (l Limits) validate() error {
	if l.RPM < 0 || l.TPM < 0 || l.Concurrency < 0 {
		return errors.New("limits must not be negative")
	}
	if l.RPM > MaxRate || l.TPM > MaxRate || l.Concurrency > MaxRate {
		return fmt.Errorf("limits above %d", int64(MaxRate))
	}
	return nil
}

// Key is one upstream credential of a channel. The secret itself is not
// route's business: Data carries whatever the caller needs (a reference to
// the secret, an account id) and is handed back in every Attempt.
type Key struct {
	ID     string `yaml:"id"`
	Limits Limits `yaml:"limits"`
	Data   any    `yaml:"-"`
}

// Channel is one way to reach a set of models: a vendor endpoint or a pool.
type Channel struct {
	ID       string   `yaml:"id"`
	Priority int      `yaml:"priority"` // lower is tried first
	Weight   int      `yaml:"weight"`   // relative share; 0 means 1
	Models   []string `yaml:"models"`   // public model names it serves
	Limits   Limits   `yaml:"limits"`
	Keys     []Key    `yaml:"keys"`
	Data     any      `yaml:"-"` // caller's own (base URL, adapter, price entry), handed back
}

// Model is the routing configuration of one public model. Every field has a
// working default.
type Model struct {
	Name           string        `yaml:"name"`
	Policy         Policy        `yaml:"policy"`          // "" means PolicyBalanced
	Blend          Blend         `yaml:"blend"`           // zero means DefaultBlend
	Explore        float64       `yaml:"explore"`         // 0 means DefaultExplore; negative disables
	MaxAttempts    int           `yaml:"max_attempts"`    // 0 means DefaultMaxAttempts
	MaxTotal       time.Duration `yaml:"max_total"`       // 0 means DefaultMaxTotal
	ExpectedOutput int           `yaml:"expected_output"` // 0 means DefaultExpectedOutput
}

// Breaker configures a circuit breaker: it opens after Failures consecutive
// failures that all fall within Window, stays open for OpenFor, then admits
// Probes probe requests; it closes when all of them succeed and opens again
// on the first that fails.
type Breaker struct {
	Failures int           `yaml:"failures"`
	Window   time.Duration `yaml:"window"`
	OpenFor  time.Duration `yaml:"open_for"`
	Probes   int           `yaml:"probes"`
}

func (b Breaker) withDefaults() Breaker {
	if b.Failures == 0 {
		b.Failures = DefaultFailures
	}
	if b.Window == 0 {
		b.Window = DefaultWindow
	}
	if b.OpenFor == 0 {
		b.OpenFor = DefaultOpenFor
	}
	if b.Probes == 0 {
		b.Probes = DefaultProbes
	}
	return b
}

func (b Breaker) validate() error {
	switch {
	case b.Failures < 1 || b.Failures > maxBreakerFailures:
		return fmt.Errorf("breaker failures %d out of range 1..%d", b.Failures, maxBreakerFailures)
	case b.Window < minBreakerWindow || b.Window > maxConfiguredDurations:
		return fmt.Errorf("breaker window %s out of range", b.Window)
	case b.OpenFor < minBreakerWindow || b.OpenFor > maxConfiguredDurations:
		return fmt.Errorf("breaker open_for %s out of range", b.OpenFor)
	case b.Probes < 1 || b.Probes > maxBreakerProbes:
		return fmt.Errorf("breaker probes %d out of range 1..%d", b.Probes, maxBreakerProbes)
	}
	return nil
}

// Config is the whole routing configuration. Models not listed in Models but
// named by a channel get Defaults.
type Config struct {
	Defaults       Model         `yaml:"defaults"`
	Models         []Model       `yaml:"models"`
	Channels       []Channel     `yaml:"channels"`
	ChannelBreaker Breaker       `yaml:"channel_breaker"`
	KeyBreaker     Breaker       `yaml:"key_breaker"`
	ParkFor        time.Duration `yaml:"park_for"`     // 0 means DefaultParkFor
	MaxCooldown    time.Duration `yaml:"max_cooldown"` // 0 means DefaultMaxCooldown
}

func (m Model) withDefaults(d Model) Model {
	if m.Policy == "" {
		m.Policy = d.Policy
	}
	if m.Policy == "" {
		m.Policy = PolicyBalanced
	}
	if m.Blend.zero() {
		m.Blend = d.Blend
	}
	if m.Blend.zero() {
		m.Blend = DefaultBlend
	}
	if m.Explore == 0 {
		m.Explore = d.Explore
	}
	if m.Explore == 0 {
		m.Explore = DefaultExplore
	}
	if m.MaxAttempts == 0 {
		m.MaxAttempts = d.MaxAttempts
	}
	if m.MaxAttempts == 0 {
		m.MaxAttempts = DefaultMaxAttempts
	}
	if m.MaxTotal == 0 {
		m.MaxTotal = d.MaxTotal
	}
	if m.MaxTotal == 0 {
		m.MaxTotal = DefaultMaxTotal
	}
	if m.ExpectedOutput == 0 {
		m.ExpectedOutput = d.ExpectedOutput
	}
	if m.ExpectedOutput == 0 {
		m.ExpectedOutput = DefaultExpectedOutput
	}
	return m
}

func (m Model) validate() error {
	switch m.Policy {
	case PolicyBalanced, PolicyBlend, PolicyWeighted, PolicyLeastInFlight, PolicyLatency, PolicyCost:
	default:
		return fmt.Errorf("unknown policy %q", m.Policy)
	}
	for _, w := range []float64{m.Blend.Latency, m.Blend.InFlight, m.Blend.Cost, m.Blend.Weight} {
		if !(w >= 0 && w <= maxBlendTermWeight) { // also rejects NaN
			return fmt.Errorf("blend weight %v out of range 0..%v", w, maxBlendTermWeight)
		}
	}
	if !(m.Explore <= 1) {
		return fmt.Errorf("explore %v above 1", m.Explore)
	}
	if m.MaxAttempts < 1 || m.MaxAttempts > MaxAttemptsLimit {
		return fmt.Errorf("max_attempts %d out of range 1..%d", m.MaxAttempts, MaxAttemptsLimit)
	}
	if m.MaxTotal < time.Millisecond || m.MaxTotal > maxConfiguredDurations {
		return fmt.Errorf("max_total %s out of range", m.MaxTotal)
	}
	if m.ExpectedOutput < 0 || m.ExpectedOutput > maxExpectedOutput {
		return fmt.Errorf("expected_output %d out of range", m.ExpectedOutput)
	}
	return nil
}

// Defaults and bounds of active probes.
const (
	DefaultProbeInterval    = 30 * time.Second
	DefaultProbeTimeout     = 5 * time.Second
	DefaultProbeConcurrency = 4
	MinProbeInterval        = time.Second
	MaxProbeInterval        = 24 * time.Hour
	MaxProbeTimeout         = time.Minute
	MaxProbeConcurrency     = 64
)

// ProbeConfig configures active health probes (see Prober): every Interval,
// channels and keys whose breaker is open are checked with a request that
// costs no tokens, each bounded by Timeout, at most Concurrency at a time.
// With ParkedKeys, keys parked for an authentication fault (401, 403,
// invalid key) are probed too. Zero fields get defaults.
type ProbeConfig struct {
	Interval    time.Duration `yaml:"interval"`
	Timeout     time.Duration `yaml:"timeout"`
	Concurrency int           `yaml:"concurrency"`
	ParkedKeys  bool          `yaml:"parked_keys"`
}

// WithDefaults returns c with zero fields set to their defaults. The default
// timeout is never longer than the interval.
func (c ProbeConfig) WithDefaults() ProbeConfig {
	if c.Interval == 0 {
		c.Interval = DefaultProbeInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultProbeTimeout, c.Interval)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultProbeConcurrency
	}
	return c
}

// Validate checks a configuration that has its defaults. Errors name the
// YAML field.
func (c ProbeConfig) Validate() error {
	switch {
	case c.Interval < MinProbeInterval || c.Interval > MaxProbeInterval:
		return fmt.Errorf("interval: %s is outside %s..%s", c.Interval, MinProbeInterval, MaxProbeInterval)
	case c.Timeout <= 0 || c.Timeout > MaxProbeTimeout:
		return fmt.Errorf("timeout: %s is outside 0..%s", c.Timeout, MaxProbeTimeout)
	case c.Timeout > c.Interval:
		return fmt.Errorf("timeout: %s is longer than the interval %s", c.Timeout, c.Interval)
	case c.Concurrency < 1 || c.Concurrency > MaxProbeConcurrency:
		return fmt.Errorf("concurrency: %d is outside 1..%d", c.Concurrency, MaxProbeConcurrency)
	}
	return nil
}
