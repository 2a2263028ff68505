package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Pool is a pool of self-hosted inference replicas (vLLM, SGLang or baimo's
// simulated replica) serving the same models. The gateway places each
// request on one replica by a scheduling policy, tracks every replica's load
// and scrapes its metrics; the pool routes alongside the vendor channels
// that serve the same models: in its priority group, with vendor channels of
// a later group taking its overflow.
type Pool struct {
	Name   string `yaml:"name"`
	Engine string `yaml:"engine"` // vllm (default), sglang or sim
	// Replicas are the servers' OpenAI-compatible base URLs (…/v1, or the
	// server's root); their metrics are read from /metrics.
	Replicas []string `yaml:"replicas"`
	Models   ModelMap `yaml:"models"`
	APIKey   Secret   `yaml:"api_key"` // the replicas' key (vLLM --api-key), if any
	// Priority is the routing priority group (lower is tried first).
	Priority int `yaml:"priority"`
	// Policy: round_robin, random, least_request, power_of_two, prefix
	// (default) or score.
	Policy         string   `yaml:"policy"`
	ScrapeInterval Duration `yaml:"scrape_interval"` // default 50ms, 10ms..1s
	StaleAfter     Duration `yaml:"stale_after"`     // default 2s
	// Overflow sends interactive and standard requests that find every
	// replica saturated to the model's vendor channels rather than
	// queueing them.
	Overflow bool `yaml:"overflow"`
	// Traffic classes: DefaultClass (interactive, standard or batch;
	// default interactive), per API key id in Keys, per tenant in Tenants,
	// and, if ClassHeader is set, from that request header (clients may only
	// lower their class).
	DefaultClass string            `yaml:"default_class"`
	Keys         map[string]string `yaml:"key_classes"`
	Tenants      map[string]string `yaml:"tenant_classes"`
	ClassHeader  string            `yaml:"class_header"`
	Queue        PoolQueue         `yaml:"queue"`
	// ShareIndex shares the prefix index with the other gateway nodes
	// through Redis (share_index: {redis: host:port, prefix: baimo:}).
	ShareIndex *ShareIndex `yaml:"share_index"`
	Disabled   bool        `yaml:"disabled"`
}

// PoolQueue bounds the gateway-side queue of a saturated pool and the gate
// that keeps batch work to idle capacity.
type PoolQueue struct {
	MaxQueued          int      `yaml:"max_queued"`           // default 1024
	MaxPerTenant       int      `yaml:"max_per_tenant"`       // default 256
	MaxWaitInteractive Duration `yaml:"max_wait_interactive"` // default 5s
	MaxWaitStandard    Duration `yaml:"max_wait_standard"`    // default 30s
	BatchMargin        Duration `yaml:"batch_margin"`         // default 1h
	BatchMaxInFlight   int64    `yaml:"batch_max_in_flight"`  // per replica; default no limit
	BatchMaxTPOT       Duration `yaml:"batch_max_tpot"`       // default no limit
	RetryAfter         Duration `yaml:"retry_after"`          // default 1s
}

// ShareIndex points a pool's prefix index at a Redis shared by the nodes.
type ShareIndex struct {
	Redis  string `yaml:"redis"`
	Prefix string `yaml:"prefix"`
}

var trafficClasses = map[string]bool{"interactive": true, "standard": true, "batch": true}

func (c *Config) checkPools(channelNames map[string]bool) error {
	for i := range c.Pools {
		p := &c.Pools[i]
		field := func(f string) string { return fmt.Sprintf("pools[%d].%s", i, f) }
		if !channelName.MatchString(p.Name) {
			return fmt.Errorf("%s: %q must be 1-64 letters, digits, '_', '.' or '-'", field("name"), p.Name)
		}
		if channelNames[p.Name] {
			return fmt.Errorf("%s: %q is used by a channel or another pool", field("name"), p.Name)
		}
		channelNames[p.Name] = true
		switch p.Engine {
		case "":
			p.Engine = "vllm"
		case "vllm", "sglang", "sim":
		default:
			return fmt.Errorf("%s: unknown engine %q (vllm, sglang or sim)", field("engine"), p.Engine)
		}
		if len(p.Replicas) == 0 || len(p.Replicas) > 64 {
			return fmt.Errorf("%s: a pool has 1 to 64 replicas, not %d", field("replicas"), len(p.Replicas))
		}
		seen := map[string]bool{}
		for j, r := range p.Replicas {
			u, err := url.Parse(r)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s[%d]: %q is not an http(s) URL", field("replicas"), j, r)
			}
			p.Replicas[j] = strings.TrimRight(r, "/")
			if seen[p.Replicas[j]] {
				return fmt.Errorf("%s[%d]: %q is listed twice", field("replicas"), j, r)
			}
			seen[p.Replicas[j]] = true
		}
		if len(p.Models) == 0 {
			return fmt.Errorf("%s: a pool serves at least one model", field("models"))
		}
		switch p.Policy {
		case "":
			p.Policy = "prefix"
		case "round_robin", "random", "least_request", "power_of_two", "prefix", "score":
		default:
			return fmt.Errorf("%s: unknown policy %q (round_robin, random, least_request, power_of_two, prefix or score)", field("policy"), p.Policy)
		}
		if p.ScrapeInterval == 0 {
			p.ScrapeInterval = Duration(50 * time.Millisecond)
		}
		if d := p.ScrapeInterval.D(); d < 10*time.Millisecond || d > time.Second {
			return fmt.Errorf("%s: %s is outside 10ms..1s", field("scrape_interval"), d)
		}
		if p.StaleAfter == 0 {
			p.StaleAfter = Duration(2 * time.Second)
		}
		if p.StaleAfter.D() < p.ScrapeInterval.D() || p.StaleAfter.D() > time.Minute {
			return fmt.Errorf("%s: %s must be between the scrape interval and 1m", field("stale_after"), p.StaleAfter.D())
		}
		if p.DefaultClass == "" {
			p.DefaultClass = "interactive"
		}
		if !trafficClasses[p.DefaultClass] {
			return fmt.Errorf("%s: %q is not interactive, standard or batch", field("default_class"), p.DefaultClass)
		}
		for t, cl := range p.Tenants {
			if !trafficClasses[cl] {
				return fmt.Errorf("%s[%s]: %q is not interactive, standard or batch", field("tenant_classes"), t, cl)
			}
		}
		for k, cl := range p.Keys {
			if !trafficClasses[cl] {
				return fmt.Errorf("%s[%s]: %q is not interactive, standard or batch", field("key_classes"), k, cl)
			}
		}
		q := p.Queue
		if q.MaxQueued < 0 || q.MaxPerTenant < 0 || q.BatchMaxInFlight < 0 || q.MaxWaitInteractive < 0 || q.MaxWaitStandard < 0 ||
			q.BatchMargin < 0 || q.BatchMaxTPOT < 0 || q.RetryAfter < 0 {
			return fmt.Errorf("%s: limits must not be negative", field("queue"))
		}
		if q.MaxQueued > 1_000_000 || q.MaxPerTenant > 1_000_000 {
			return fmt.Errorf("%s: max_queued and max_per_tenant are at most 1000000", field("queue"))
		}
		if s := p.ShareIndex; s != nil && s.Redis == "" {
			return fmt.Errorf("%s: redis (host:port) is required", field("share_index"))
		}
	}
	return nil
}
