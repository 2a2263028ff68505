package route

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeUpstream is a vendor's model list: it answers each key (the
// Authorization header) with the status set for it, 200 by default.
type fakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	status map[string]int
	hits   map[string]int
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{status: map[string]int{}, hits: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		u.mu.Lock()
		u.hits[auth]++
		code, ok := u.status[auth]
		u.mu.Unlock()
		if !ok {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) set(auth string, code int) {
	u.mu.Lock()
	u.status[auth] = code
	u.mu.Unlock()
}

func (u *fakeUpstream) hitsFor(auth string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[auth]
}

// modelList probes baseURL/models with the key's Data as Authorization.
func modelList(baseURL string) ProbeFunc {
	return HTTPProbe(nil, func(ch *Channel, key *Key) (ProbeTarget, error) {
		h := http.Header{}
		if s, _ := key.Data.(string); s != "" {
			h.Set("Authorization", s)
		}
		return ProbeTarget{URL: baseURL + "/v1/models", Header: h}, nil
	})
}

func keyed(id string, keys ...string) Channel {
	c := Channel{ID: id, Models: []string{"m"}}
	for _, k := range keys {
		c.Keys = append(c.Keys, Key{ID: k, Data: "Bearer " + k})
	}
	return c
}

func newProber(t *testing.T, r *Router, cfg ProbeConfig, fn ProbeFunc) *Prober {
	t.Helper()
	p, err := NewProber(r, cfg, fn, ProberOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("NewProber: %v", err)
	}
	return p
}

func chanState(t *testing.T, r *Router, id string) ChannelState {
	t.Helper()
	for _, c := range r.Snapshot().Channels {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no channel %q in snapshot", id)
	return ChannelState{}
}

func keyStateOf(t *testing.T, r *Router, chID, keyID string) KeyState {
	t.Helper()
	for _, k := range chanState(t, r, chID).Keys {
		if k.ID == keyID {
			return k
		}
	}
	t.Fatalf("no key %s/%s in snapshot", chID, keyID)
	return KeyState{}
}

func probeOf(r *Router, chID, keyID string) (ProbeStatus, bool) {
	for _, s := range r.Probes() {
		if s.Channel == chID && s.Key == keyID {
			return s, true
		}
	}
	return ProbeStatus{}, false
}

// openChannel trips the channel breaker of a one-channel router.
func openChannel(t *testing.T, r *Router) {
	t.Helper()
	one(t, r, err5)
	if st := chanState(t, r, "a").Breaker.State; st != "open" {
		t.Fatalf("breaker %s after a failure, want open", st)
	}
}

var probeRouting = Config{
	Channels:       []Channel{keyed("a", "k1")},
	ChannelBreaker: Breaker{Failures: 1, OpenFor: time.Hour},
	KeyBreaker:     Breaker{Failures: 100},
}

func TestProbeHalfOpensOpenBreaker(t *testing.T) {
	up := newFakeUpstream(t)
	r, clk := newRouter(t, probeRouting)
	openChannel(t, r)
	p := newProber(t, r, ProbeConfig{Interval: 30 * time.Second}, modelList(up.URL))

	if n := p.Round(context.Background()); n != 1 {
		t.Fatalf("probed %d targets, want 1", n)
	}
	if st := chanState(t, r, "a").Breaker.State; st != "half_open" {
		t.Fatalf("breaker %s after a good probe, want half_open", st)
	}
	s, ok := probeOf(r, "a", "k1")
	if !ok || !s.OK || s.Result != ProbeOK || s.Action != "channel_half_open" || s.For != "channel_breaker" || !s.At.Equal(clk.Now()) {
		t.Fatalf("probe status %+v", s)
	}
	if up.hitsFor("Bearer k1") != 1 {
		t.Fatalf("upstream saw %d probes with the key, want 1", up.hitsFor("Bearer k1"))
	}
	// Real traffic now confirms it, long before the hour is over.
	if got := one(t, r, ok200); got != "a" {
		t.Fatalf("picked %s", got)
	}
	if st := chanState(t, r, "a").Breaker.State; st != "closed" {
		t.Fatalf("breaker %s after a good request, want closed", st)
	}
	// Nothing left to probe.
	clk.Advance(time.Minute)
	if n := p.Round(context.Background()); n != 0 {
		t.Fatalf("probed %d targets with every breaker closed", n)
	}
}

func TestProbeFailureLeavesBreakerOpen(t *testing.T) {
	tests := []struct {
		name   string
		status int
		down   bool
		want   string
	}{
		{"5xx", http.StatusServiceUnavailable, false, "http_503"},
		{"no model list", http.StatusNotFound, false, "http_404"},
		{"redirect", http.StatusFound, false, "http_302"},
		{"down", 0, true, ProbeUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			up.set("Bearer k1", tt.status)
			if tt.down {
				up.Close()
			}
			r, clk := newRouter(t, probeRouting)
			openChannel(t, r)
			until := chanState(t, r, "a").Breaker.OpenUntil
			p := newProber(t, r, ProbeConfig{Interval: 30 * time.Second}, modelList(up.URL))

			p.Round(context.Background())
			b := chanState(t, r, "a").Breaker
			if b.State != "open" || !b.OpenUntil.Equal(until) {
				t.Fatalf("after a failed probe: %+v, want open until %v", b, until)
			}
			s, _ := probeOf(r, "a", "k1")
			if s.OK || s.Result != tt.want || s.Action != "" || s.Failures != 1 {
				t.Fatalf("probe status %+v, want result %s", s, tt.want)
			}
			// Failed probes back off: not again after one interval, but after two.
			clk.Advance(30 * time.Second)
			if n := p.Round(context.Background()); n != 0 {
				t.Fatalf("probed again after one interval")
			}
			clk.Advance(30 * time.Second)
			if n := p.Round(context.Background()); n != 1 {
				t.Fatalf("not probed again after two intervals")
			}
			if s, _ := probeOf(r, "a", "k1"); s.Failures != 2 || !s.Next.Equal(clk.Now().Add(4*30*time.Second)) {
				t.Fatalf("second failure: %+v", s)
			}
			// The open period ends as configured; no probe is needed after it.
			clk.Set(until)
			if n := p.Round(context.Background()); n != 0 {
				t.Fatalf("probed a breaker whose open period is over")
			}
			if got := one(t, r, ok200); got != "a" {
				t.Fatalf("no half-open request after the open period")
			}
		})
	}
}

func TestProbeSuccessDoesNotUndoALaterTrip(t *testing.T) {
	r, clk := newRouter(t, Config{
		Channels:       []Channel{keyed("a", "k1")},
		ChannelBreaker: Breaker{Failures: 1, OpenFor: time.Minute},
		KeyBreaker:     Breaker{Failures: 100},
	})
	openChannel(t, r)
	// While the probe is in flight the open period ends, a real request
	// fails and opens the breaker again: the probe's success is older news.
	p := newProber(t, r, ProbeConfig{Interval: 30 * time.Second}, func(context.Context, *Channel, *Key) (int, error) {
		clk.Advance(time.Minute)
		pl, err := r.Plan(Request{Model: "m"})
		if err != nil {
			t.Errorf("Plan: %v", err)
			return http.StatusOK, nil
		}
		a, err := pl.Next()
		if err != nil {
			t.Errorf("no half-open request after the open period: %v", err)
			return http.StatusOK, nil
		}
		pl.Done(&a, err5)
		return http.StatusOK, nil
	})
	p.Round(context.Background())
	b := chanState(t, r, "a").Breaker
	if b.State != "open" || b.Trips != 2 {
		t.Fatalf("breaker %+v, want open after the second trip", b)
	}
	if s, _ := probeOf(r, "a", "k1"); !s.OK || s.Action != "" {
		t.Fatalf("probe status %+v, want ok with no action", s)
	}
}

func TestMisledProbesBackOff(t *testing.T) {
	// The model list answers, chat keeps failing: each probe half-opens the
	// breaker and the next real request opens it again.
	r, clk := newRouter(t, probeRouting)
	openChannel(t, r)
	p := newProber(t, r, ProbeConfig{Interval: time.Minute}, func(context.Context, *Channel, *Key) (int, error) {
		return http.StatusOK, nil
	})
	rounds := func(want ...int) {
		t.Helper()
		for i, w := range want {
			if n := p.Round(context.Background()); n != w {
				t.Fatalf("round %d of %v probed %d", i, want, n)
			}
			clk.Advance(time.Minute)
		}
	}
	rounds(1)
	one(t, r, err5) // real traffic undoes the probe
	rounds(0, 1)    // so the next probe waits two intervals
	one(t, r, err5)
	rounds(0, 0, 0, 1) // then four
	if got := one(t, r, ok200); got != "a" || chanState(t, r, "a").Breaker.State != "closed" {
		t.Fatalf("breaker not closed by a good request")
	}
	rounds(0) // healthy: the count starts again
	one(t, r, err5)
	if n := p.Round(context.Background()); n != 1 {
		t.Fatalf("after recovery, a new trip waited for a probe: probed %d", n)
	}
}

func TestProbeUnparksAuthKeyOnlyOn200(t *testing.T) {
	up := newFakeUpstream(t)
	up.set("Bearer bad", http.StatusUnauthorized)
	r, clk := newRouter(t, Config{
		Channels: []Channel{keyed("a", "bad", "poor", "good")},
		ParkFor:  24 * time.Hour,
	})
	// Park "bad" for a 401 and "poor" for an empty balance, as the request
	// path does.
	for _, o := range []Outcome{{Status: 401}, {Status: 402, ErrorCode: "insufficient_balance"}} {
		k, err := r.key("a", map[int]string{401: "bad", 402: "poor"}[o.Status])
		if err != nil {
			t.Fatal(err)
		}
		tab := r.tab.Load()
		r.park(tab, tab.channels["a"], k, r.now(), Classify(o).Reason, false)
	}
	if n := len(r.Parked()); n != 2 {
		t.Fatalf("%d keys parked, want 2", n)
	}

	// Parked keys are not probed unless asked for.
	off := newProber(t, r, ProbeConfig{Interval: time.Minute}, modelList(up.URL))
	if n := off.Round(context.Background()); n != 0 {
		t.Fatalf("probed %d parked keys with parked_keys off", n)
	}

	p := newProber(t, r, ProbeConfig{Interval: time.Minute, ParkedKeys: true}, modelList(up.URL))
	if n := p.Round(context.Background()); n != 1 {
		t.Fatalf("probed %d targets, want only the key parked for auth", n)
	}
	if !keyStateOf(t, r, "a", "bad").Parked {
		t.Fatalf("key unparked by a probe that answered 401")
	}
	if s, _ := probeOf(r, "a", "bad"); s.OK || s.Result != "http_401" || s.For != "parked_key" {
		t.Fatalf("probe status %+v", s)
	}
	if up.hitsFor("Bearer poor") != 0 || up.hitsFor("Bearer good") != 0 {
		t.Fatalf("probed keys that needed none")
	}

	// The operator fixes the key upstream; the next due probe answers 200.
	up.set("Bearer bad", http.StatusOK)
	clk.Advance(time.Minute)
	if n := p.Round(context.Background()); n != 0 {
		t.Fatalf("failed probe not backed off")
	}
	clk.Advance(time.Minute)
	p.Round(context.Background())
	ks := keyStateOf(t, r, "a", "bad")
	if ks.Parked || ks.Breaker.State != "half_open" {
		t.Fatalf("after a 200: parked %v, breaker %s; want unparked in half_open", ks.Parked, ks.Breaker.State)
	}
	if s, _ := probeOf(r, "a", "bad"); !s.OK || s.Action != "unparked" || s.Failures != 0 {
		t.Fatalf("probe status %+v", s)
	}
	if ps := r.Parked(); len(ps) != 1 || ps[0].Key != "poor" {
		t.Fatalf("parked now %+v, want only the key without balance", ps)
	}
}

func TestProbeableParkReason(t *testing.T) {
	tests := []struct {
		reason string
		want   bool
	}{
		{"key:http_401", true},
		{"key:http_403", true},
		{"key:INVALID_API_KEY", true},
		{"remote:key:authentication_error", true},
		{"key:http_402", false},
		{"key:insufficient_balance", false},
		{"key:insufficient_quota", false},
		{"remote:insufficient_balance", false},
		{"operator: rotating", false},
		{"http_401", false},
	}
	for _, tt := range tests {
		if got := probeableParkReason(tt.reason); got != tt.want {
			t.Errorf("probeableParkReason(%q) = %v, want %v", tt.reason, got, tt.want)
		}
	}
}

func TestProbeKeyBreakerAndAllKeysParked(t *testing.T) {
	r, _ := newRouter(t, Config{
		Channels:       []Channel{keyed("a", "k1", "k2")},
		ChannelBreaker: Breaker{Failures: 100},
		KeyBreaker:     Breaker{Failures: 1, OpenFor: time.Hour},
	})
	one(t, r, err5) // opens the key breaker of the key it used
	var open string
	for _, k := range chanState(t, r, "a").Keys {
		if k.Breaker.State == "open" {
			open = k.ID
		}
	}
	var probed []string
	p := newProber(t, r, ProbeConfig{Interval: time.Minute}, func(_ context.Context, _ *Channel, k *Key) (int, error) {
		probed = append(probed, k.ID)
		return http.StatusOK, nil
	})
	p.Round(context.Background())
	if len(probed) != 1 || probed[0] != open {
		t.Fatalf("probed %v, want only %s", probed, open)
	}
	if s, _ := probeOf(r, "a", open); s.Action != "key_half_open" {
		t.Fatalf("probe status %+v", s)
	}

	// A channel whose keys are all parked is not probed: no key could.
	r2, _ := newRouter(t, probeRouting)
	openChannel(t, r2)
	if err := r2.Park("a", "k1", "operator"); err != nil {
		t.Fatal(err)
	}
	probed = nil
	p2 := newProber(t, r2, ProbeConfig{Interval: time.Minute, ParkedKeys: true}, func(_ context.Context, _ *Channel, k *Key) (int, error) {
		probed = append(probed, k.ID)
		return http.StatusOK, nil
	})
	if n := p2.Round(context.Background()); n != 0 || len(probed) != 0 {
		t.Fatalf("probed %v", probed)
	}
}

func TestProbeTimeout(t *testing.T) {
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers nothing until the client gives up
	}))
	defer stalled.Close()
	r, _ := newRouter(t, probeRouting)
	openChannel(t, r)
	p := newProber(t, r, ProbeConfig{Interval: time.Second, Timeout: 20 * time.Millisecond}, modelList(stalled.URL))

	p.Round(context.Background()) // returns only because the probe gives up
	if s, _ := probeOf(r, "a", "k1"); s.OK || s.Result != ProbeTimeout {
		t.Fatalf("probe status %+v, want timeout", s)
	}
	if st := chanState(t, r, "a").Breaker.State; st != "open" {
		t.Fatalf("breaker %s after a timed-out probe, want open", st)
	}
}

func TestProberStopsOnCancel(t *testing.T) {
	arrived := make(chan struct{}, 1)
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer stalled.Close()
	r, _ := newRouter(t, probeRouting)
	openChannel(t, r)
	tick := make(chan time.Time)
	p, err := NewProber(r, ProbeConfig{Interval: time.Hour, Timeout: time.Minute}, modelList(stalled.URL),
		ProberOptions{Logger: slog.New(slog.DiscardHandler), Tick: tick})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tick <- time.Time{}
	<-arrived // a probe is in flight, stalled for up to a minute
	cancel()
	<-done // Run returned, with the probe stopped
	if ps := r.Probes(); len(ps) != 0 {
		t.Fatalf("a probe cut by shutdown was recorded: %+v", ps)
	}
	if st := chanState(t, r, "a").Breaker.State; st != "open" {
		t.Fatalf("breaker %s, want open", st)
	}
}

func TestProbeConcurrencyAndRoundLimit(t *testing.T) {
	var chans []Channel
	for _, id := range strings.Fields("c0 c1 c2 c3 c4 c5 c6 c7") {
		chans = append(chans, keyed(id, "k"))
	}
	r, clk := newRouter(t, Config{Channels: chans, ChannelBreaker: Breaker{Failures: 1, OpenFor: 24 * time.Hour}, KeyBreaker: Breaker{Failures: 100}})
	for range chans {
		p := plan(t, r, Request{})
		a := next(t, &p)
		p.Done(&a, err5)
	}
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	fn := func(_ context.Context, ch *Channel, _ *Key) (int, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		seen[ch.ID]++
		mu.Unlock()
		return http.StatusServiceUnavailable, nil
	}
	// Interval = timeout: a round takes at most concurrency targets.
	p := newProber(t, r, ProbeConfig{Interval: time.Second, Timeout: time.Second, Concurrency: 3}, fn)
	if n := p.Round(context.Background()); n != 3 {
		t.Fatalf("first round probed %d, want 3", n)
	}
	clk.Advance(time.Millisecond) // the others are still due, and go first
	if n := p.Round(context.Background()); n != 3 {
		t.Fatalf("second round probed %d, want 3", n)
	}
	if len(seen) != 6 {
		t.Fatalf("two rounds probed %v, want six different channels", seen)
	}
	p = newProber(t, r, ProbeConfig{Interval: time.Hour, Concurrency: 2}, fn)
	clk.Advance(time.Hour)
	if n := p.Round(context.Background()); n != 8 {
		t.Fatalf("probed %d, want all 8", n)
	}
	if peak.Load() > 2 {
		t.Fatalf("%d probes at once, want at most 2", peak.Load())
	}
}

func TestProbeConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  ProbeConfig
		want string // "" for valid
	}{
		{ProbeConfig{}, ""},
		{ProbeConfig{Interval: 2 * time.Second}, ""},
		{ProbeConfig{Interval: 10 * time.Millisecond}, "interval: 10ms is outside 1s..24h0m0s"},
		{ProbeConfig{Interval: 48 * time.Hour}, "interval: 48h0m0s is outside"},
		{ProbeConfig{Interval: time.Minute, Timeout: 2 * time.Minute}, "timeout: 2m0s is outside"},
		{ProbeConfig{Interval: 10 * time.Second, Timeout: 20 * time.Second}, "timeout: 20s is longer than the interval 10s"},
		{ProbeConfig{Concurrency: 65}, "concurrency: 65 is outside 1..64"},
		{ProbeConfig{Concurrency: -1}, "concurrency: -1"},
	}
	for _, tt := range tests {
		err := tt.cfg.WithDefaults().Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if d := (ProbeConfig{Interval: 2 * time.Second}).WithDefaults(); d.Timeout != 2*time.Second || d.Concurrency != DefaultProbeConcurrency {
		t.Errorf("defaults %+v", d)
	}
	if _, err := NewProber(&Router{}, ProbeConfig{Interval: time.Millisecond}, func(context.Context, *Channel, *Key) (int, error) { return 200, nil }, ProberOptions{}); err == nil {
		t.Errorf("NewProber accepted a 1ms interval")
	}
	if _, err := NewProber(nil, ProbeConfig{}, nil, ProberOptions{}); err == nil {
		t.Errorf("NewProber accepted no router")
	}
}
