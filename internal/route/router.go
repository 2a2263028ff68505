package route

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/clock"
)

// ErrUnknownModel is returned by Plan for a model no channel serves.
var ErrUnknownModel = errors.New("route: no channel serves this model")

// ErrUnknownKey is returned by Unpark and Reset for an unknown channel or key.
var ErrUnknownKey = errors.New("route: unknown channel or key")

// Options are the router's dependencies. Zero fields get working defaults.
type Options struct {
	Clock  clock.Clock   // default clock.Real
	Rand   func() uint64 // default math/rand/v2.Uint64; must be safe for concurrent use in production
	Logger *slog.Logger  // default slog.Default()
	// OnPark, if set, is called (outside any lock) when a key is parked, so
	// the operator can be told. It must not block.
	OnPark func(ParkedKey)
}

// Router picks channels and keeps their health. It is safe for concurrent
// use. Update swaps the configuration while keeping the state of channels,
// keys and latency averages whose ids remain.
type Router struct {
	clk    clock.Clock
	rnd    func() uint64
	log    *slog.Logger
	onPark func(ParkedKey)

	tab atomic.Pointer[table]

	mu       sync.Mutex // serialises Update; guards the maps below
	chStates map[string]*channelState

	probes probeLog // results of active probes (probe.go)
}

// table is one immutable configuration, resolved for fast selection.
type table struct {
	models      map[string]*model
	channels    map[string]*channel
	chBreaker   Breaker
	keyBreaker  Breaker
	parkFor     int64
	maxCooldown int64
}

type model struct {
	cfg     Model
	members []member   // sorted by priority, stable
	groups  []int      // start index of each priority group, plus len(members)
	cum     []int64    // cum[i]: total weight of i's group up to and including i
	pol     policyKind // cfg.Policy, resolved (plan.go)
}

type member struct {
	ch     *channel
	st     *channelState // ch.st, one hop nearer
	params *limitParams  // &ch.params
	lat    *latency
	// cool[j] is when ch.keys[j] may serve this model again after the
	// vendor rate limited it for this model (Unix ns).
	cool      []*atomic.Int64
	weight    int64
	invWeight float64
	fweight   float64
}

type channel struct {
	cfg    *Channel
	st     *channelState
	params limitParams
	keys   []keyRef
}

type keyRef struct {
	cfg    *Key
	st     *keyState
	params limitParams
}

// channelState is the mutable state of a channel, kept across Updates. The
// fields read for every candidate on the selection path (meter, cooldown,
// breaker state and open-until) come first, to share one cache line.
type channelState struct {
	m        meter
	cooldown atomic.Int64 // Unix ns before which the channel is not used
	br       breaker
	rr       atomic.Uint64
	keys     map[string]*keyState // guarded by Router.mu
	lat      map[string]*latency  // per model, guarded by Router.mu
}

// keyState is the mutable state of one upstream key.
type keyState struct {
	br     breaker
	m      meter
	parked atomic.Int64 // Unix ns until which the key is parked; 0 if not
	// cool holds, per model, when the key may serve it again after a 429
	// for that model: vendors rate limit a key per model. Guarded by
	// Router.mu; the atomics are read on the selection path.
	cool map[string]*atomic.Int64

	mu         sync.Mutex
	parkReason string
	parkedAt   int64
}

// latency holds the EWMAs of one channel for one model, in nanoseconds.
type latency struct {
	ttft     atomic.Int64
	perToken atomic.Int64
	samples  atomic.Int64
}

// ewmaShift sets the EWMA weight of a new sample to 1/8.
const ewmaShift = 3

func (l *latency) add(ttft, perToken time.Duration) {
	if ttft > 0 {
		ewmaAdd(&l.ttft, int64(ttft), l.samples.Load() == 0)
	}
	if perToken > 0 {
		ewmaAdd(&l.perToken, int64(perToken), l.perToken.Load() == 0)
	}
	l.samples.Add(1)
}

func ewmaAdd(v *atomic.Int64, x int64, first bool) {
	for {
		old := v.Load()
		next := x
		if !first && old != 0 {
			next = old + (x-old)>>ewmaShift
		}
		if v.CompareAndSwap(old, next) {
			return
		}
	}
}

// New returns a router for cfg.
func New(cfg Config, opts Options) (*Router, error) {
	r := &Router{
		clk:      opts.Clock,
		rnd:      opts.Rand,
		log:      opts.Logger,
		onPark:   opts.OnPark,
		chStates: map[string]*channelState{},
	}
	if r.clk == nil {
		r.clk = clock.Real{}
	}
	if r.rnd == nil {
		r.rnd = rand.Uint64
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if err := r.Update(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// Update validates cfg and makes it current. State (breakers, parked keys,
// in-flight counts, meters, latency) carries over for ids that remain.
func (r *Router) Update(cfg Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tab, err := r.build(cfg)
	if err != nil {
		return fmt.Errorf("route config: %w", err)
	}
	r.tab.Store(tab)
	return nil
}

func (r *Router) build(cfg Config) (*table, error) {
	tab := &table{
		models:      map[string]*model{},
		channels:    map[string]*channel{},
		chBreaker:   cfg.ChannelBreaker.withDefaults(),
		keyBreaker:  cfg.KeyBreaker.withDefaults(),
		parkFor:     int64(cfg.ParkFor),
		maxCooldown: int64(cfg.MaxCooldown),
	}
	if tab.parkFor == 0 {
		tab.parkFor = int64(DefaultParkFor)
	}
	if tab.maxCooldown == 0 {
		tab.maxCooldown = int64(DefaultMaxCooldown)
	}
	if tab.parkFor < 0 || tab.maxCooldown < 0 {
		return nil, errors.New("park_for and max_cooldown must not be negative")
	}
	if err := tab.chBreaker.validate(); err != nil {
		return nil, fmt.Errorf("channel_breaker: %w", err)
	}
	if err := tab.keyBreaker.validate(); err != nil {
		return nil, fmt.Errorf("key_breaker: %w", err)
	}
	defaults := cfg.Defaults.withDefaults(Model{})
	if err := defaults.validate(); err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	modelCfg := map[string]Model{}
	for _, m := range cfg.Models {
		if err := checkID(m.Name); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		if _, dup := modelCfg[m.Name]; dup {
			return nil, fmt.Errorf("model %q listed twice", m.Name)
		}
		m = m.withDefaults(defaults)
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("model %q: %w", m.Name, err)
		}
		modelCfg[m.Name] = m
	}

	live := map[string]bool{}
	for i := range cfg.Channels {
		c := cfg.Channels[i] // a private copy; Attempts point into it
		if err := r.addChannel(tab, &c, live); err != nil {
			return nil, fmt.Errorf("channel %q: %w", c.ID, err)
		}
	}
	for name, m := range tab.models {
		if mc, ok := modelCfg[name]; ok {
			m.cfg = mc
		} else {
			m.cfg = defaults
			m.cfg.Name = name
		}
		if len(m.members) > MaxChannelsPerModel {
			return nil, fmt.Errorf("model %q: %d channels, at most %d", name, len(m.members), MaxChannelsPerModel)
		}
		slices.SortStableFunc(m.members, func(a, b member) int { return a.ch.cfg.Priority - b.ch.cfg.Priority })
		for i := range m.members {
			if i == 0 || m.members[i].ch.cfg.Priority != m.members[i-1].ch.cfg.Priority {
				m.groups = append(m.groups, i)
			}
		}
		m.groups = append(m.groups, len(m.members))
		m.cum = make([]int64, len(m.members))
		for g := 0; g+1 < len(m.groups); g++ {
			var sum int64
			for i := m.groups[g]; i < m.groups[g+1]; i++ {
				sum += m.members[i].weight
				m.cum[i] = sum
			}
		}
		m.prepare()
	}
	for name := range modelCfg {
		if _, ok := tab.models[name]; !ok {
			return nil, fmt.Errorf("model %q: no channel serves it", name)
		}
	}
	// Forget state of channels that left the config.
	for id := range r.chStates {
		if !live[id] {
			delete(r.chStates, id)
		}
	}
	return tab, nil
}

func (r *Router) addChannel(tab *table, c *Channel, live map[string]bool) error {
	if err := checkID(c.ID); err != nil {
		return err
	}
	if _, dup := tab.channels[c.ID]; dup {
		return errors.New("listed twice")
	}
	if c.Weight == 0 {
		c.Weight = defaultWeight
	}
	if c.Weight < 0 || c.Weight > maxWeight {
		return fmt.Errorf("weight %d out of range 1..%d", c.Weight, maxWeight)
	}
	if c.Priority < -maxPriority || c.Priority > maxPriority {
		return fmt.Errorf("priority %d out of range", c.Priority)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if len(c.Keys) == 0 || len(c.Keys) > MaxKeysPerChannel {
		return fmt.Errorf("%d keys, want 1..%d", len(c.Keys), MaxKeysPerChannel)
	}
	if len(c.Models) == 0 {
		return errors.New("serves no model")
	}
	st := r.chStates[c.ID]
	if st == nil {
		st = &channelState{keys: map[string]*keyState{}, lat: map[string]*latency{}}
		r.chStates[c.ID] = st
	}
	live[c.ID] = true
	ch := &channel{cfg: c, st: st, params: paramsOf(c.Limits)}
	liveKeys := map[string]bool{}
	c.Keys = slices.Clone(c.Keys)
	for i := range c.Keys {
		k := &c.Keys[i]
		if err := checkID(k.ID); err != nil {
			return fmt.Errorf("key: %w", err)
		}
		if liveKeys[k.ID] {
			return fmt.Errorf("key %q listed twice", k.ID)
		}
		if err := k.Limits.validate(); err != nil {
			return fmt.Errorf("key %q: %w", k.ID, err)
		}
		liveKeys[k.ID] = true
		ks := st.keys[k.ID]
		if ks == nil {
			ks = &keyState{}
			st.keys[k.ID] = ks
		}
		ch.keys = append(ch.keys, keyRef{cfg: k, st: ks, params: paramsOf(k.Limits)})
	}
	for id := range st.keys {
		if !liveKeys[id] {
			delete(st.keys, id)
		}
	}
	c.Models = slices.Clone(c.Models)
	liveModels := map[string]bool{}
	for _, name := range c.Models {
		if err := checkID(name); err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if liveModels[name] {
			return fmt.Errorf("model %q listed twice", name)
		}
		liveModels[name] = true
		lat := st.lat[name]
		if lat == nil {
			lat = &latency{}
			st.lat[name] = lat
		}
		m := tab.models[name]
		if m == nil {
			m = &model{}
			tab.models[name] = m
		}
		cool := make([]*atomic.Int64, len(ch.keys))
		for j := range ch.keys {
			ks := ch.keys[j].st
			if ks.cool == nil {
				ks.cool = map[string]*atomic.Int64{}
			}
			if ks.cool[name] == nil {
				ks.cool[name] = new(atomic.Int64)
			}
			cool[j] = ks.cool[name]
		}
		m.members = append(m.members, member{ch: ch, st: st, params: &ch.params, lat: lat, cool: cool,
			weight: int64(c.Weight), invWeight: 1 / float64(c.Weight), fweight: float64(c.Weight)})
	}
	for name := range st.lat {
		if !liveModels[name] {
			delete(st.lat, name)
		}
	}
	tab.channels[c.ID] = ch
	return nil
}

func checkID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("id longer than %d bytes", maxIDLen)
	}
	return nil
}

// now returns the clock's time in Unix nanoseconds.
func (r *Router) now() int64 { return r.clk.Now().UnixNano() }

// Unpark makes a parked key usable again (operator action).
func (r *Router) Unpark(channelID, keyID string) error {
	k, err := r.key(channelID, keyID)
	if err != nil {
		return err
	}
	k.st.parked.Store(0)
	k.st.br.reset()
	r.log.Info("route: key unparked", "channel", channelID, "key", keyID)
	return nil
}

// Park takes a key out of rotation as if it had failed with reason: for an
// operator, or to apply a park reported by another gateway node. It logs
// but does not call Options.OnPark, so replicated parks do not echo.
func (r *Router) Park(channelID, keyID, reason string) error {
	k, err := r.key(channelID, keyID)
	if err != nil {
		return err
	}
	tab := r.tab.Load()
	r.park(tab, tab.channels[channelID], k, r.now(), reason, false)
	return nil
}

// UsesCost reports whether choosing a channel for model asks Request.Cost
// (the cost and blend policies), so a caller may leave it nil otherwise.
func (r *Router) UsesCost(model string) bool {
	m := r.tab.Load().models[model]
	return m != nil && (m.pol == polCost || m.pol == polBlend)
}

// ResetChannel closes the breaker of a channel and clears its cooldown
// (operator action).
func (r *Router) ResetChannel(channelID string) error {
	ch := r.tab.Load().channels[channelID]
	if ch == nil {
		return fmt.Errorf("reset %q: %w", channelID, ErrUnknownKey)
	}
	ch.st.br.reset()
	ch.st.cooldown.Store(0)
	return nil
}

func (r *Router) key(channelID, keyID string) (*keyRef, error) {
	ch := r.tab.Load().channels[channelID]
	if ch != nil {
		for i := range ch.keys {
			if ch.keys[i].cfg.ID == keyID {
				return &ch.keys[i], nil
			}
		}
	}
	return nil, fmt.Errorf("%s/%s: %w", channelID, keyID, ErrUnknownKey)
}

// park takes a key out of rotation until an operator or the park timer
// brings it back.
func (r *Router) park(tab *table, ch *channel, k *keyRef, now int64, reason string, notify bool) {
	if k.st.parked.Load() > now {
		return
	}
	k.st.mu.Lock()
	k.st.parkReason = reason
	k.st.parkedAt = now
	k.st.mu.Unlock()
	k.st.parked.Store(now + tab.parkFor)
	p := ParkedKey{
		Channel: ch.cfg.ID, Key: k.cfg.ID, Reason: reason,
		Since: time.Unix(0, now).UTC(), Until: time.Unix(0, now+tab.parkFor).UTC(),
	}
	r.log.Warn("route: key parked", "channel", p.Channel, "key", p.Key, "reason", reason, "until", p.Until)
	if notify && r.onPark != nil {
		r.onPark(p)
	}
}
