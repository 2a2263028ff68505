package route

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Active probes. Without them an open breaker waits out its open period and
// then risks a real request; a parked key waits for the operator or the park
// timer. A Prober checks such channels and keys with a request that costs no
// tokens (a vendor's model list) and relaxes their state when it answers:
//
//   - An open breaker goes to half-open, not closed. A model list proves the
//     endpoint is reachable and the key accepted, not that inference works (a
//     vendor's overloaded model still answers GET /models), so real requests
//     must still confirm it: half-open admits Breaker.Probes of them and
//     opens again on the first failure, where closing would let a whole
//     window of failures through.
//   - A key parked for an authentication fault (401, 403, invalid key) is
//     unparked, in half-open, only when the probe answers 2xx. Keys parked
//     for balance or quota are never probed: a model list answers 200 with an
//     empty balance, so it cannot prove such a key works.
//
// A failed probe changes nothing: probes only ever relax state, so a probe
// endpoint that a vendor does not implement (404) costs nothing but the
// probe. Failed probes of the same target back off exponentially, up to
// 2^maxProbeBackoffShift intervals, so a dead key is not hammered. So do
// probes that misled: when real traffic undoes what a probe relaxed (the
// model list answers but chat keeps failing), each probe of the next open
// period or park waits twice as long, until the target is healthy again;
// otherwise such a target would cost one failed real request per interval.

const (
	maxProbeBody         = 64 << 10 // bytes of a probe's answer read, so the connection can be reused
	maxProbesPerRound    = 1024
	maxProbeBackoffShift = 4 // failed probes back off to at most 16 intervals
)

// Probe results, in ProbeStatus.Result.
const (
	ProbeOK          = "ok"
	ProbeTimeout     = "timeout"
	ProbeUnreachable = "unreachable" // no HTTP answer: connection refused, reset, TLS, DNS
)

// ProbeFunc checks whether ch answers with key, without spending tokens. It
// returns the HTTP status of the answer, or an error if none arrived. It
// must return when ctx ends.
type ProbeFunc func(ctx context.Context, ch *Channel, key *Key) (status int, err error)

// ProbeTarget is the request a probe sends: GET URL with Header. Keys go in
// Header, never in URL, so errors and logs cannot carry them.
type ProbeTarget struct {
	URL    string
	Header http.Header
}

// HTTPProbe returns a ProbeFunc that GETs the target built by target
// (typically the vendor's model list). Redirects are not followed, since
// they would carry the key's header elsewhere; a 3xx counts as a failure.
// At most 64 KiB of the answer is read and none of it is kept.
func HTTPProbe(rt http.RoundTripper, target func(ch *Channel, key *Key) (ProbeTarget, error)) ProbeFunc {
	if rt == nil {
		rt = http.DefaultTransport
	}
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return func(ctx context.Context, ch *Channel, key *Key) (int, error) {
		t, err := target(ch, key)
		if err != nil {
			return 0, fmt.Errorf("probe target: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
		if err != nil {
			return 0, fmt.Errorf("probe request: %w", err)
		}
		for k, v := range t.Header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// ProbeStatus is the last probe of one channel with one key, for the admin
// API.
type ProbeStatus struct {
	Channel string
	Key     string // the key the probe used
	// For says why the probe ran: channel_breaker, key_breaker, parked_key
	// (comma-separated when one probe served several).
	For      string
	At       time.Time // when the probe ended, by the router's clock
	OK       bool
	Result   string // ok, http_<status>, timeout, unreachable
	Action   string // what the probe changed: channel_half_open, key_half_open, unparked; "" for nothing
	Failures int    // consecutive failed probes for the same open period or park
	Next     time.Time
}

// probeLog keeps the last probe of each channel and key. Its size is bounded
// by the configured keys: entries of removed channels and keys are dropped.
type probeLog struct {
	mu sync.Mutex
	m  map[probeID]*probeRecord
}

type probeID struct{ channel, key string }

type probeRecord struct {
	status   ProbeStatus
	episode  probeEpisode // which open period or park the failures count for
	next     int64        // Unix ns before which the target is not probed again
	misleads int          // relaxations undone by real traffic since the target was last healthy
	pending  bool         // the last probe relaxed the target and traffic has not confirmed it yet
}

// probeEpisode identifies what a probe was about, so failures of an earlier
// open period do not delay probes of a later one.
type probeEpisode struct {
	purpose     probePurpose
	chEpoch     int64
	keyEpoch    int64
	parkedUntil int64
}

// Probes returns the last probe of each channel and key probed, sorted by
// channel and key. It is empty when no Prober runs.
func (r *Router) Probes() []ProbeStatus {
	tab := r.tab.Load()
	r.probes.mu.Lock()
	defer r.probes.mu.Unlock()
	out := make([]ProbeStatus, 0, len(r.probes.m))
	for id, rec := range r.probes.m {
		if tab.key(id.channel, id.key) != nil {
			out = append(out, rec.status)
		}
	}
	slices.SortFunc(out, func(a, b ProbeStatus) int {
		if c := strings.Compare(a.Channel, b.Channel); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

func (t *table) key(channelID, keyID string) *keyRef {
	ch := t.channels[channelID]
	if ch == nil {
		return nil
	}
	for i := range ch.keys {
		if ch.keys[i].cfg.ID == keyID {
			return &ch.keys[i]
		}
	}
	return nil
}

type probePurpose uint8

const (
	forChannel probePurpose = 1 << iota // the channel's breaker is open
	forKey                              // the key's breaker is open
	forParked                           // the key is parked for an authentication fault
)

func (p probePurpose) String() string {
	var parts []string
	for _, x := range []struct {
		bit  probePurpose
		name string
	}{{forChannel, "channel_breaker"}, {forKey, "key_breaker"}, {forParked, "parked_key"}} {
		if p&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	return strings.Join(parts, ",")
}

// probeTarget is one probe to send and what it may relax.
type probeTarget struct {
	ch  *channel
	key *keyRef
	probeEpisode
	last int64 // when it was last probed; 0 if never
}

// authParkReasons are the park reasons (as Classify writes them, after
// "key:") that a successful model list disproves. Balance and quota reasons
// are absent on purpose.
var authParkReasons = []string{
	"http_401", "http_403", "invalid_api_key", "authentication_error", "permission_error", "account_deactivated",
}

// probeableParkReason reports whether a key parked for reason may be
// unparked by a probe. Parks replicated from another node carry a
// "remote:" prefix; operators' own reasons are never probed.
func probeableParkReason(reason string) bool {
	reason = strings.TrimPrefix(reason, "remote:")
	reason, ok := strings.CutPrefix(reason, "key:")
	if !ok {
		return false
	}
	for _, a := range authParkReasons {
		if strings.EqualFold(reason, a) {
			return true
		}
	}
	return false
}

// ProberOptions are a Prober's optional dependencies.
type ProberOptions struct {
	Logger *slog.Logger // default: the router's
	// Tick, if set, starts each round instead of a ticker; tests drive the
	// prober with it. Which targets are due is decided by the router's
	// clock either way.
	Tick <-chan time.Time
}

// Prober runs active health probes against a Router's channels and keys.
type Prober struct {
	r     *Router
	cfg   ProbeConfig
	probe ProbeFunc
	log   *slog.Logger
	tick  <-chan time.Time
}

// NewProber returns a prober for r; cfg gets its defaults and is validated.
func NewProber(r *Router, cfg ProbeConfig, probe ProbeFunc, opts ProberOptions) (*Prober, error) {
	if r == nil || probe == nil {
		return nil, errors.New("route: prober needs a router and a probe function")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	p := &Prober{r: r, cfg: cfg, probe: probe, log: opts.Logger, tick: opts.Tick}
	if p.log == nil {
		p.log = r.log
	}
	return p, nil
}

// Run probes, a round at a time, until ctx ends, and returns once the
// probes in flight have stopped.
func (p *Prober) Run(ctx context.Context) {
	tick := p.tick
	if tick == nil {
		// Ticks are finer than the interval so that a probe is due within a
		// quarter interval of its time, whatever the ticker's jitter.
		t := p.r.clk.NewTicker(p.cfg.Interval / 4)
		defer t.Stop()
		tick = t.C()
	}
	p.log.Info("route: active probes on", "interval", p.cfg.Interval, "timeout", p.cfg.Timeout,
		"concurrency", p.cfg.Concurrency, "parked_keys", p.cfg.ParkedKeys)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		p.Round(ctx)
	}
}

// Round probes once every target that is due and returns when all of them
// have answered or timed out; it returns how many it probed. A round probes
// at most Concurrency × (Interval / Timeout) targets, so that even when all
// of them stall it takes about one interval; the targets probed longest ago
// go first and the rest wait for the next round.
func (p *Prober) Round(ctx context.Context) int {
	targets := p.due(p.r.now())
	limit := min(maxProbesPerRound, p.cfg.Concurrency*max(1, int(p.cfg.Interval/p.cfg.Timeout)))
	if len(targets) > limit {
		slices.SortStableFunc(targets, func(a, b probeTarget) int { return cmp.Compare(a.last, b.last) })
		targets = targets[:limit]
	}
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	n := 0
	for _, t := range targets {
		if !acquire(ctx, sem) {
			break
		}
		n++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.run(ctx, t)
		}()
	}
	wg.Wait()
	return n
}

// acquire takes a slot of sem, or reports false once ctx has ended.
func acquire(ctx context.Context, sem chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case sem <- struct{}{}:
		return true
	}
}

// due lists the targets to probe now, in channel order.
func (p *Prober) due(now int64) []probeTarget {
	tab := p.r.tab.Load()
	ids := make([]string, 0, len(tab.channels))
	for id := range tab.channels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []probeTarget
	for _, id := range ids {
		out = p.channelTargets(out, tab.channels[id], now)
	}
	// Drop what is not due, and forget probes of removed keys.
	p.r.probes.mu.Lock()
	defer p.r.probes.mu.Unlock()
	kept := out[:0]
	wanted := make(map[probeID]bool, len(out))
	for _, t := range out {
		id := probeID{t.ch.cfg.ID, t.key.cfg.ID}
		wanted[id] = true
		rec := p.r.probes.m[id]
		if rec != nil {
			t.last = rec.status.At.UnixNano()
			next := rec.next
			if rec.episode != t.probeEpisode {
				// A new open period or park: failures of the old one do
				// not count, but a relaxation that traffic undid does.
				next = t.last + int64(p.cfg.Interval<<min(rec.misleads+rec.undone(), maxProbeBackoffShift))
			}
			if now < next {
				continue
			}
		}
		kept = append(kept, t)
	}
	for id, rec := range p.r.probes.m {
		k := tab.key(id.channel, id.key)
		switch {
		case k == nil:
			delete(p.r.probes.m, id) // removed from the config
		case !wanted[id] && (rec.misleads > 0 || rec.pending) && healthy(tab.channels[id.channel], k, now):
			rec.misleads, rec.pending = 0, false
		}
	}
	return kept
}

// undone is 1 if the record's last probe relaxed its target and the target
// is now in another open period or park without having been healthy in
// between: real traffic undid what the probe did. Called when the episode
// has changed.
func (rec *probeRecord) undone() int {
	if rec.pending {
		return 1
	}
	return 0
}

// healthy reports whether real traffic has confirmed ch and k: both
// breakers closed and the key not parked.
func healthy(ch *channel, k *keyRef, now int64) bool {
	return BreakerState(ch.st.br.state.Load()) == Closed && BreakerState(k.st.br.state.Load()) == Closed &&
		k.st.parked.Load() <= now
}

// channelTargets appends the probes ch needs now.
func (p *Prober) channelTargets(out []probeTarget, ch *channel, now int64) []probeTarget {
	start := len(out)
	spare := -1 // a key fit to probe the channel with: not parked, breaker not open
	for i := range ch.keys {
		k := &ch.keys[i]
		if until := k.st.parked.Load(); until > now {
			if !p.cfg.ParkedKeys {
				continue
			}
			k.st.mu.Lock()
			reason := k.st.parkReason
			k.st.mu.Unlock()
			if probeableParkReason(reason) {
				out = append(out, probeTarget{ch: ch, key: k, probeEpisode: probeEpisode{purpose: forParked, parkedUntil: until}})
			}
			continue
		}
		if epoch, open := k.st.br.openEpoch(now); open {
			out = append(out, probeTarget{ch: ch, key: k, probeEpisode: probeEpisode{purpose: forKey, keyEpoch: epoch}})
			continue
		}
		if spare < 0 {
			spare = i
		}
	}
	epoch, open := ch.st.br.openEpoch(now)
	if !open {
		return out
	}
	if spare >= 0 {
		return append(out, probeTarget{ch: ch, key: &ch.keys[spare], probeEpisode: probeEpisode{purpose: forChannel, chEpoch: epoch}})
	}
	// Every key is parked or has its own breaker open: let one key probe
	// serve the channel too. If all are parked the channel waits.
	for i := start; i < len(out); i++ {
		if out[i].purpose == forKey {
			out[i].purpose |= forChannel
			out[i].chEpoch = epoch
			break
		}
	}
	return out
}

// run sends one probe and applies its result.
func (p *Prober) run(ctx context.Context, t probeTarget) {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	status, err := p.probe(pctx, t.ch.cfg, t.key.cfg)
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the result says nothing of the upstream
	}
	now := p.r.now()
	st := ProbeStatus{Channel: t.ch.cfg.ID, Key: t.key.cfg.ID, For: t.purpose.String(), At: time.Unix(0, now).UTC()}
	st.OK, st.Result = probeResult(status, err, timedOut)
	if st.OK {
		st.Action = p.relax(t, now)
	}

	p.r.probes.mu.Lock()
	if p.r.probes.m == nil {
		p.r.probes.m = map[probeID]*probeRecord{}
	}
	id := probeID{st.Channel, st.Key}
	rec := p.r.probes.m[id]
	if rec == nil {
		rec = &probeRecord{}
		p.r.probes.m[id] = rec
	}
	if rec.episode != t.probeEpisode {
		rec.misleads += rec.undone()
	} else if !st.OK {
		st.Failures = rec.status.Failures
	}
	if !st.OK {
		st.Failures++
	}
	wait := p.cfg.Interval << min(st.Failures, maxProbeBackoffShift)
	rec.status, rec.episode, rec.next, rec.pending = st, t.probeEpisode, now+int64(wait), st.Action != ""
	rec.status.Next = time.Unix(0, rec.next).UTC()
	p.r.probes.mu.Unlock()

	attrs := []any{"channel", st.Channel, "key", st.Key, "for", st.For, "result", st.Result}
	switch {
	case st.Action != "":
		p.log.Info("route: probe succeeded", append(attrs, "action", st.Action)...)
	case err != nil:
		p.log.Debug("route: probe failed", append(attrs, "failures", st.Failures, "err", err)...)
	default:
		p.log.Debug("route: probe answered", append(attrs, "failures", st.Failures)...)
	}
}

// probeResult names what a probe found: ok for a 2xx answer, http_<status>
// for another, timeout or unreachable when none came.
func probeResult(status int, err error, timedOut bool) (ok bool, result string) {
	switch {
	case err == nil && status >= 200 && status < 300:
		return true, ProbeOK
	case err == nil:
		return false, "http_" + strconv.Itoa(status)
	case timedOut:
		return false, ProbeTimeout
	default:
		return false, ProbeUnreachable
	}
}

// relax applies a successful probe and says what it changed. Each change is
// conditional on the state the target was chosen in, so a probe that
// started before a newer failure does not undo it.
func (p *Prober) relax(t probeTarget, now int64) string {
	var did []string
	if t.purpose&forChannel != 0 && t.ch.st.br.probeSucceeded(now, t.chEpoch) {
		did = append(did, "channel_half_open")
	}
	if t.purpose&forKey != 0 && t.key.st.br.probeSucceeded(now, t.keyEpoch) {
		did = append(did, "key_half_open")
	}
	if t.purpose&forParked != 0 && t.key.st.parked.CompareAndSwap(t.parkedUntil, 0) {
		t.key.st.br.trial(now)
		did = append(did, "unparked")
	}
	return strings.Join(did, ",")
}
