package route

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Check is what a probe an operator asked for found (Router.Check).
type Check struct {
	Channel string
	Key     string    // the key the probe used (k0, k1, ...)
	At      time.Time // when the probe ended, by the router's clock
	OK      bool
	Status  int    // the answer's HTTP status; 0 when none came
	Result  string // ok, http_<status>, timeout, unreachable
	Latency time.Duration
	Parked  bool // the key was parked when probed
}

// MaxCheckTimeout bounds how long Check waits for an answer.
const MaxCheckTimeout = 30 * time.Second

// Check probes channelID now with one of its keys, keyID, or with "" the
// first key not parked (the first key if all are), and reports what it
// found and how long the answer took. Unlike the Prober's probes it changes
// no state: an operator who sees a parked key answer unparks it, and the
// channel's breaker still waits for real traffic.
func (r *Router) Check(ctx context.Context, probe ProbeFunc, channelID, keyID string, timeout time.Duration) (Check, error) {
	if probe == nil {
		return Check{}, errors.New("route: check needs a probe function")
	}
	if timeout <= 0 || timeout > MaxCheckTimeout {
		timeout = MaxCheckTimeout
	}
	ch := r.tab.Load().channels[channelID]
	if ch == nil || len(ch.keys) == 0 {
		return Check{}, fmt.Errorf("check %q: %w", channelID, ErrUnknownKey)
	}
	start := r.now()
	k := &ch.keys[0]
	if keyID != "" {
		var err error
		if k, err = r.key(channelID, keyID); err != nil {
			return Check{}, fmt.Errorf("check: %w", err)
		}
	} else {
		for i := range ch.keys {
			if ch.keys[i].st.parked.Load() <= start {
				k = &ch.keys[i]
				break
			}
		}
	}
	parked := k.st.parked.Load() > start
	pctx, cancel := context.WithTimeout(ctx, timeout)
	status, err := probe(pctx, ch.cfg, k.cfg)
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return Check{}, fmt.Errorf("check %q: %w", channelID, ctx.Err())
	}
	end := r.now()
	c := Check{Channel: channelID, Key: k.cfg.ID, At: time.Unix(0, end).UTC(), Status: status,
		Latency: time.Duration(end - start), Parked: parked}
	if err != nil {
		c.Status = 0
	}
	c.OK, c.Result = probeResult(status, err, timedOut)
	r.log.Info("route: channel checked", "channel", channelID, "key", c.Key, "result", c.Result, "latency", c.Latency)
	return c, nil
}
