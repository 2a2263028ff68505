// Package config reads baimo's YAML configuration: upstream channels, the
// simulator, limits and timeouts. Secrets come from environment variables
// (${NAME}) and are never logged or echoed; a channel whose key variable is
// unset is inactive rather than an error.
//
// Every error names the file, the field and what is wrong.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"baimo/internal/ratelimit"
	"baimo/internal/route"
)

// Config is the whole configuration.
type Config struct {
	Sim      Sim       `yaml:"sim"`
	Limits   Limits    `yaml:"limits"`
	Channels []Channel `yaml:"channels"`
	// Pools are self-hosted replica pools (pools.go).
	Pools   []Pool  `yaml:"pools"`
	Usage   Usage   `yaml:"usage"`
	Billing Billing `yaml:"billing"`
	Routing Routing `yaml:"routing"`
	// RateLimits are the limits baimo puts on its own users.
	RateLimits RateLimits `yaml:"rate_limits"`
	// Console configures the web console at /ui.
	Console Console `yaml:"console"`
	// Responses configures the Responses API's stored responses.
	Responses Responses `yaml:"responses"`
	// Batches configures batch work (batches.go).
	Batches Batches `yaml:"batches"`
	// Telemetry configures OpenTelemetry export (telemetry.go); off by
	// default.
	Telemetry Telemetry `yaml:"telemetry"`
}

// Responses configures the responses the gateway stores for the Responses
// API (previous_response_id, background, retrieval).
type Responses struct {
	// Retention is how long a stored response is kept (default 720h, 30
	// days, as OpenAI keeps them); negative keeps them until deleted.
	Retention Duration `yaml:"retention"`
}

// Routing tunes channel selection and health; every field has a default.
type Routing struct {
	Defaults       route.Model   `yaml:"defaults"`
	Models         []route.Model `yaml:"models"`
	ChannelBreaker route.Breaker `yaml:"channel_breaker"`
	KeyBreaker     route.Breaker `yaml:"key_breaker"`
	ParkFor        Duration      `yaml:"park_for"`
	MaxCooldown    Duration      `yaml:"max_cooldown"`
	// Probes, if present (even empty), turns on active health probes; off
	// by default.
	Probes *Probes `yaml:"probes"`
}

// Probes configures active health probes: every Interval (default 30s),
// channels and keys whose breaker is open are checked by fetching the
// vendor's model list, which costs no tokens; each probe gives up after
// Timeout (default 5s, at most the interval), and at most Concurrency
// (default 4) run at once. ParkedKeys probes keys parked for an
// authentication fault too, and brings one back only if the probe answers
// 2xx.
type Probes struct {
	Interval    Duration `yaml:"interval"`
	Timeout     Duration `yaml:"timeout"`
	Concurrency int      `yaml:"concurrency"`
	ParkedKeys  bool     `yaml:"parked_keys"`
}

// Route returns the prober's configuration, with defaults.
func (p Probes) Route() route.ProbeConfig {
	return route.ProbeConfig{Interval: p.Interval.D(), Timeout: p.Timeout.D(), Concurrency: p.Concurrency,
		ParkedKeys: p.ParkedKeys}.WithDefaults()
}

// RateLimits are RPM, TPM and concurrency limits per API key, per tenant and
// per key and model. Zero means no limit. With Redis set, all gateway nodes
// share them.
type RateLimits struct {
	Key    ratelimit.Rates `yaml:"key"`
	Tenant ratelimit.Rates `yaml:"tenant"`
	// Model applies to each key and model pair.
	Model ratelimit.Rates `yaml:"model"`
	// Keys overrides Key for the API keys named by id.
	Keys  map[string]ratelimit.Rates `yaml:"keys"`
	Redis *RedisLimits               `yaml:"redis"`
}

// Limited reports whether any rate limit is configured.
func (r *RateLimits) Limited() bool {
	if !r.Key.Zero() || !r.Tenant.Zero() || !r.Model.Zero() {
		return true
	}
	for _, rates := range r.Keys {
		if !rates.Zero() {
			return true
		}
	}
	return false
}

// PerNode reports whether rate limits are configured but each node would
// count only its own requests: the store is shared by several nodes
// (PostgreSQL) and no Redis is set.
func (r *RateLimits) PerNode(sharedStore bool) bool {
	return sharedStore && r.Limited() && (r.Redis == nil || r.Redis.Addr == "")
}

// check names the first limit that the limiter would refuse to apply.
func (r *RateLimits) check() error {
	for _, l := range []struct {
		name  string
		rates ratelimit.Rates
	}{{"key", r.Key}, {"tenant", r.Tenant}, {"model", r.Model}} {
		if err := l.rates.Check(); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	for id, rates := range r.Keys {
		if err := rates.Check(); err != nil {
			return fmt.Errorf("keys.%s: %w", id, err)
		}
	}
	if rl := r.Redis; rl != nil {
		if rl.Timeout < 0 || rl.Timeout.D() > 10*time.Second {
			return fmt.Errorf("redis.timeout: %s is outside 0..10s", rl.Timeout.D())
		}
		if rl.LeaseTTL != 0 && (rl.LeaseTTL.D() < time.Second || rl.LeaseTTL.D() > time.Hour) {
			return fmt.Errorf("redis.lease_ttl: %s is outside 1s..1h", rl.LeaseTTL.D())
		}
	}
	return nil
}

// RedisLimits points the rate limits at a Redis shared by all nodes.
type RedisLimits struct {
	Addr   string `yaml:"addr"`
	Prefix string `yaml:"prefix"`
	// FailOpen lets requests through unchecked while Redis is down (logged);
	// false refuses them. Money limits never depend on Redis.
	FailOpen bool `yaml:"fail_open"`
	// Timeout is the most a request waits for Redis before failing open or
	// closed (dial, write and read included); default 50ms.
	Timeout Duration `yaml:"timeout"`
	// LeaseTTL is how long a concurrency slot outlives a node that stopped
	// renewing it (died, or lost Redis); default 15s. Running requests'
	// slots are renewed every third of it, whatever their length.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Billing says how requests are priced.
type Billing struct {
	// Currency of accounts and usage records: CNY (default) or USD.
	Currency string `yaml:"currency"`
	// Ledger, on by default, holds each request's worst-case cost on its
	// tenant's account before the upstream call and settles it with the
	// usage record. Off, requests are metered and rated but not charged
	// (metering only).
	Ledger *bool `yaml:"ledger"`
	// AlertWebhook, if set, receives a JSON POST each time a budget crosses
	// one of its alert thresholds (they are logged either way).
	AlertWebhook string `yaml:"alert_webhook"`
	// FreeTier applies to tenants with free accounts: they may use only
	// models that cost nothing, within these daily quotas (0: none).
	FreeTier FreeTier `yaml:"free_tier"`
	// NodeTimeout is how long a gateway node sharing PostgreSQL may go
	// unseen before the others take it for dead and resolve its requests'
	// holds (at their last checkpoint, or voided and reported); default
	// 2m. Keep it above the longest database outage a node should ride
	// out.
	NodeTimeout Duration `yaml:"node_timeout"`
	// FreeModels are public model names served free of charge (a self-hosted
	// model, say); any other model without a price is refused.
	FreeModels []string `yaml:"free_models"`
	// ExchangeRates is a dated list of rates, used when an account's currency
	// differs from a price's: - {from: USD, to: CNY, effective_from: ..., rate: "7.1", source: ...}
	ExchangeRates yaml.Node `yaml:"exchange_rates"`
}

// Console configures the web console served at /ui.
type Console struct {
	// Disabled leaves /ui out.
	Disabled bool `yaml:"disabled"`
	// TimeZone is the reporting zone: day buckets and exports (IANA name;
	// default Asia/Shanghai).
	TimeZone string `yaml:"time_zone"`
	// SecureCookies marks the console's cookies Secure even when baimo
	// itself does not terminate TLS (behind an HTTPS proxy).
	SecureCookies bool `yaml:"secure_cookies"`
}

// Sim configures the built-in simulated upstream.
type Sim struct {
	Enabled      *bool    `yaml:"enabled"` // default true
	TTFT         Duration `yaml:"ttft"`
	TPOT         Duration `yaml:"tpot"`
	OutputTokens int      `yaml:"output_tokens"`
}

// FreeTier is the daily quota of free accounts.
type FreeTier struct {
	DailyTokens   int64  `yaml:"daily_tokens"`
	DailyRequests int64  `yaml:"daily_requests"`
	TimeZone      string `yaml:"time_zone"` // IANA name; default Asia/Shanghai
}

// LedgerOn reports whether requests are charged to accounts.
func (b Billing) LedgerOn() bool { return b.Ledger == nil || *b.Ledger }

// On reports whether the simulator runs.
func (s Sim) On() bool { return s.Enabled == nil || *s.Enabled }

// Limits bounds what one request may take.
type Limits struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxUploadBytes bounds the body of an upload (image edits, audio to
	// transcribe): default 25 MiB, OpenAI's own limit.
	MaxUploadBytes    int64    `yaml:"max_upload_bytes"`
	MaxResponseBytes  int64    `yaml:"max_response_bytes"`
	FirstByteTimeout  Duration `yaml:"first_byte_timeout"`
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
	RequestTimeout    Duration `yaml:"request_timeout"`
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`
	// StoreTimeout bounds the wait for the database before the upstream
	// call (the key lookup, then the free-tier totals and the hold
	// together): a database that does not answer is a 503 within it.
	StoreTimeout Duration `yaml:"store_timeout"`
	// ClientWriteTimeout bounds each write to a client: one that stops
	// reading is cut after it (default 30s).
	ClientWriteTimeout Duration `yaml:"client_write_timeout"`
	// CommitTimeout bounds how long a finished answer waits for its usage
	// record and settlement to commit before its final byte is written
	// (default 10s); past it the answer is cut short, unbilled answers are
	// never completed.
	CommitTimeout Duration `yaml:"commit_timeout"`
	// MaxChoices bounds n (candidateCount) of one request (default 16).
	MaxChoices int64 `yaml:"max_choices"`
}

// Usage configures how usage records are written.
type Usage struct {
	BatchSize  int      `yaml:"batch_size"`
	BatchDelay Duration `yaml:"batch_delay"`
	QueueSize  int      `yaml:"queue_size"`
	// AuditEvery counts the prompt of one vendor-metered chat request in this
	// many with baimo's exact tokenizer, to audit what vendors bill
	// (GET /admin/audit/vendors); 0 means the default 10, negative none.
	AuditEvery int `yaml:"audit_every"`
}

// Channel is one upstream: a vendor endpoint or a self-hosted server.
type Channel struct {
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"`
	BaseURL string `yaml:"base_url"`
	APIKey  Secret `yaml:"api_key"`
	// APIKeys are further upstream keys of the same account or of others;
	// requests are spread across them and a failing key is set aside.
	APIKeys  []Secret          `yaml:"api_keys"`
	Priority int               `yaml:"priority"` // lower is tried first
	Weight   int               `yaml:"weight"`   // share inside a priority group
	Limits   route.Limits      `yaml:"limits"`   // what the vendor allows this channel
	Models   ModelMap          `yaml:"models"`
	Headers  map[string]string `yaml:"headers"`
	// Disabled turns the channel off without deleting it.
	Disabled bool `yaml:"disabled"`
	// BatchAPI says the vendor has its own batch API (OpenAI-shaped
	// /files and /batches under base_url): batches of its models in mode
	// vendor (or auto) are passed to it at the vendor's batch price.
	BatchAPI bool `yaml:"batch_api"`

	// Active is false when the channel's key variable is unset.
	Active bool `yaml:"-"`
	// InactiveReason says why a channel is not active.
	InactiveReason string `yaml:"-"`
}

// Kinds of channel.
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
	// KindResponses is an upstream that serves OpenAI's Responses API
	// natively (/v1/responses): Responses requests pass through to it.
	KindResponses = "responses"
)

// Keys returns the channel's usable upstream keys; a channel that names no key
// variable at all (a local server) has one empty key.
func (c *Channel) Keys() []Secret {
	var out []Secret
	named := false
	for _, k := range append([]Secret{c.APIKey}, c.APIKeys...) {
		if k.Var != "" || k.Set {
			named = true
		}
		if k.Set {
			out = append(out, k)
		}
	}
	if !named {
		return []Secret{{}}
	}
	return out
}

// ModelMap maps public model names to upstream model names. In YAML it is a
// list (same name both sides) or a mapping.
type ModelMap map[string]string

// UnmarshalYAML accepts a sequence of names or a mapping public: upstream.
func (m *ModelMap) UnmarshalYAML(n *yaml.Node) error {
	out := ModelMap{}
	switch n.Kind {
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			out[s] = s
		}
	case yaml.MappingNode:
		var mm map[string]string
		if err := n.Decode(&mm); err != nil {
			return err
		}
		for k, v := range mm {
			if v == "" {
				v = k
			}
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: models must be a list of names or a mapping public: upstream", n.Line)
	}
	*m = out
	return nil
}

// Secret is a value that may come from the environment and is never printed.
type Secret struct {
	value string
	// Var is the environment variable it came from, if any.
	Var string
	// Set is false when Var was named but is unset or empty.
	Set bool
}

// NewSecret returns a literal secret (a channel's key kept in the database).
func NewSecret(v string) Secret { return Secret{value: v, Set: v != ""} }

// Value returns the secret itself.
func (s Secret) Value() string { return s.value }

// String hides the secret.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "[redacted]"
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// UnmarshalYAML reads a literal or a ${VAR} reference.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var raw string
	if err := n.Decode(&raw); err != nil {
		return err
	}
	if m := envRef.FindStringSubmatch(raw); m != nil {
		s.Var = m[1]
		s.value = os.Getenv(m[1])
		s.Set = s.value != ""
		return nil
	}
	if strings.Contains(raw, "${") {
		return fmt.Errorf("line %d: a secret is either a literal or exactly ${VAR}", n.Line)
	}
	s.value, s.Set = raw, raw != ""
	return nil
}

// Duration is a time.Duration written as "200ms" or "1m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use 200ms, 30s, 5m)", n.Line, s)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 8 << 20
	}
	if c.Limits.MaxUploadBytes == 0 {
		c.Limits.MaxUploadBytes = 25 << 20
	}
	if c.Limits.MaxResponseBytes == 0 {
		c.Limits.MaxResponseBytes = 64 << 20
	}
	def(&c.Limits.FirstByteTimeout, 60*time.Second)
	def(&c.Limits.StreamIdleTimeout, 120*time.Second)
	def(&c.Limits.RequestTimeout, 10*time.Minute)
	def(&c.Limits.ShutdownTimeout, 30*time.Second)
	def(&c.Limits.StoreTimeout, 2*time.Second)
	def(&c.Billing.NodeTimeout, 2*time.Minute)
	def(&c.Limits.ClientWriteTimeout, 30*time.Second)
	def(&c.Limits.CommitTimeout, 10*time.Second)
	if c.Limits.MaxChoices == 0 {
		c.Limits.MaxChoices = 16
	}
	def(&c.Sim.TTFT, 200*time.Millisecond)
	def(&c.Sim.TPOT, 20*time.Millisecond)
	if c.Sim.OutputTokens == 0 {
		c.Sim.OutputTokens = 16
	}
	if c.Billing.FreeTier.TimeZone == "" {
		c.Billing.FreeTier.TimeZone = "Asia/Shanghai"
	}
	if c.Console.TimeZone == "" {
		c.Console.TimeZone = "Asia/Shanghai"
	}
	def(&c.Responses.Retention, 30*24*time.Hour)
	c.Batches.applyDefaults()
	c.Telemetry.applyDefaults()
	if c.Billing.Currency == "" {
		c.Billing.Currency = "CNY"
	}
	if c.Usage.BatchSize == 0 {
		c.Usage.BatchSize = 256
	}
	// usage.batch_delay defaults to 0: a batch commits at once and the next
	// one fills while it does (group commit), since answers wait for it.
	if c.Usage.AuditEvery == 0 {
		c.Usage.AuditEvery = 10
	}
	if c.Usage.QueueSize == 0 {
		c.Usage.QueueSize = 8192
	}
}

// Load reads and checks the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, b)
}

// Parse reads and checks a configuration; name is used in errors.
func Parse(name string, b []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.applyDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

var channelName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// CheckChannel checks one channel (from the file, or added at run time),
// trims its base URL and sets Active and InactiveReason; errors name fields
// after prefix ("channels[2].").
func CheckChannel(ch *Channel, prefix string) error {
	field := func(f string) string { return prefix + f }
	if !channelName.MatchString(ch.Name) {
		return fmt.Errorf("%s: %q must be 1-64 letters, digits, '_', '.' or '-'", field("name"), ch.Name)
	}
	switch ch.Kind {
	case KindOpenAI, KindAnthropic, KindGemini, KindResponses:
	case "":
		return fmt.Errorf("%s: missing (one of openai, anthropic, gemini, responses)", field("kind"))
	default:
		return fmt.Errorf("%s: unknown kind %q (one of openai, anthropic, gemini, responses)", field("kind"), ch.Kind)
	}
	u, err := url.Parse(ch.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", field("base_url"), ch.BaseURL)
	}
	ch.BaseURL = strings.TrimRight(ch.BaseURL, "/")
	if len(ch.Models) == 0 {
		return fmt.Errorf("%s: a channel serves at least one model", field("models"))
	}
	for pub, up := range ch.Models {
		if strings.TrimSpace(pub) == "" || strings.TrimSpace(up) == "" {
			return fmt.Errorf("%s: empty model name", field("models"))
		}
	}
	switch {
	case ch.Disabled:
		ch.InactiveReason = "disabled in config"
	case len(ch.Keys()) == 0:
		ch.InactiveReason = "environment variable " + ch.APIKey.Var + " is not set"
		for _, k := range ch.APIKeys {
			if k.Var != "" {
				ch.InactiveReason = "no key variable is set (" + ch.APIKey.Var + ", " + k.Var + ", ...)"
				break
			}
		}
	default:
		ch.Active = true
	}
	return nil
}

func (c *Config) check() error {
	seen := map[string]bool{}
	for i := range c.Channels {
		ch := &c.Channels[i]
		if seen[ch.Name] {
			return fmt.Errorf("channels[%d].name: %q is used by another channel", i, ch.Name)
		}
		seen[ch.Name] = true
		if err := CheckChannel(ch, fmt.Sprintf("channels[%d].", i)); err != nil {
			return err
		}
	}
	if err := c.checkPools(seen); err != nil {
		return err
	}
	if w := c.Billing.AlertWebhook; w != "" {
		if u, err := url.Parse(w); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("billing.alert_webhook: %q is not an http(s) URL", w)
		}
	}
	if c.Billing.FreeTier.DailyTokens < 0 || c.Billing.FreeTier.DailyRequests < 0 {
		return fmt.Errorf("billing.free_tier: quotas must not be negative")
	}
	if err := c.Batches.check(); err != nil {
		return err
	}
	if err := c.Telemetry.check(); err != nil {
		return err
	}
	if _, err := time.LoadLocation(c.Console.TimeZone); err != nil {
		return fmt.Errorf("console.time_zone: %q: %v", c.Console.TimeZone, err)
	}
	if _, err := time.LoadLocation(c.Billing.FreeTier.TimeZone); err != nil {
		return fmt.Errorf("billing.free_tier.time_zone: %q: %v", c.Billing.FreeTier.TimeZone, err)
	}
	if c.Billing.Currency != "CNY" && c.Billing.Currency != "USD" {
		return fmt.Errorf("billing.currency: %q is not CNY or USD", c.Billing.Currency)
	}
	if nt := c.Billing.NodeTimeout.D(); nt < time.Second || nt > time.Hour {
		return fmt.Errorf("billing.node_timeout: %s is outside 1s..1h", nt)
	}
	if st := c.Limits.StoreTimeout.D(); st < 10*time.Millisecond || st > time.Minute {
		return fmt.Errorf("limits.store_timeout: %s is outside 10ms..1m", st)
	}
	if c.Limits.MaxBodyBytes < 1024 {
		return fmt.Errorf("limits.max_body_bytes: %d is below 1024", c.Limits.MaxBodyBytes)
	}
	if p := c.Routing.Probes; p != nil {
		if err := p.Route().Validate(); err != nil {
			return fmt.Errorf("routing.probes.%w", err)
		}
	}
	if err := c.RateLimits.check(); err != nil {
		return fmt.Errorf("rate_limits.%w", err)
	}
	if c.Usage.BatchSize < 1 || c.Usage.BatchSize > 10000 {
		return fmt.Errorf("usage.batch_size: %d is outside 1..10000", c.Usage.BatchSize)
	}
	if c.Usage.QueueSize < c.Usage.BatchSize {
		return fmt.Errorf("usage.queue_size: %d is below usage.batch_size", c.Usage.QueueSize)
	}
	return nil
}
