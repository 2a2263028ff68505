package route

import (
	"slices"
	"strings"
	"time"
)

// Snapshot is the routing state at one moment, as plain values for the admin
// API. Times are zero when not set.
type Snapshot struct {
	At       time.Time
	Channels []ChannelState
	Models   []ModelState
}

// BreakerInfo is the state of one circuit breaker.
type BreakerInfo struct {
	State     string    // closed, open, half_open
	Failures  int       // consecutive failures in the current window
	OpenUntil time.Time // when an open breaker will admit probes
	Trips     int64     // times it has opened
}

// ChannelState is the state of one channel.
type ChannelState struct {
	ID            string
	Priority      int
	Weight        int
	Breaker       BreakerInfo
	InFlight      int64
	CooldownUntil time.Time
	Keys          []KeyState
}

// KeyState is the state of one upstream key.
type KeyState struct {
	ID            string
	Breaker       BreakerInfo
	InFlight      int64
	CooldownUntil time.Time // the latest of CooldownModels
	// CooldownModels says until when the key rests, per model, after the
	// vendor rate limited it for that model.
	CooldownModels map[string]time.Time
	Parked         bool
	ParkedSince    time.Time
	ParkedUntil    time.Time
	ParkReason     string
}

// ModelState lists a model's channels in the order they are considered.
type ModelState struct {
	Name     string
	Policy   Policy
	Channels []MemberState
}

// MemberState is one channel's latency averages for one model.
type MemberState struct {
	Channel  string
	Priority int
	TTFT     time.Duration // EWMA time to first token
	PerToken time.Duration // EWMA time per output token
	Samples  int64
}

// ParkedKey describes a key taken out of rotation.
type ParkedKey struct {
	Channel string
	Key     string
	Reason  string
	Since   time.Time
	Until   time.Time
}

// Snapshot returns the current state. It allocates and is meant for the admin
// API, not the request path.
func (r *Router) Snapshot() Snapshot {
	tab := r.tab.Load()
	now := r.now()
	s := Snapshot{At: time.Unix(0, now).UTC()}
	for _, ch := range tab.channels {
		cs := ChannelState{
			ID: ch.cfg.ID, Priority: ch.cfg.Priority, Weight: ch.cfg.Weight,
			Breaker:       breakerInfo(&ch.st.br),
			InFlight:      ch.st.m.inFlight.Load(),
			CooldownUntil: timeIfAfter(ch.st.cooldown.Load(), now),
		}
		for i := range ch.keys {
			k := &ch.keys[i]
			ks := KeyState{
				ID:       k.cfg.ID,
				Breaker:  breakerInfo(&k.st.br),
				InFlight: k.st.m.inFlight.Load(),
			}
			r.mu.Lock() // the per-model cooldown map changes on Update
			for model, until := range k.st.cool {
				if t := timeIfAfter(until.Load(), now); !t.IsZero() {
					if ks.CooldownModels == nil {
						ks.CooldownModels = map[string]time.Time{}
					}
					ks.CooldownModels[model] = t
					if t.After(ks.CooldownUntil) {
						ks.CooldownUntil = t
					}
				}
			}
			r.mu.Unlock()
			if until := k.st.parked.Load(); until > now {
				k.st.mu.Lock()
				ks.Parked, ks.ParkReason = true, k.st.parkReason
				ks.ParkedSince = time.Unix(0, k.st.parkedAt).UTC()
				k.st.mu.Unlock()
				ks.ParkedUntil = time.Unix(0, until).UTC()
			}
			cs.Keys = append(cs.Keys, ks)
		}
		s.Channels = append(s.Channels, cs)
	}
	slices.SortFunc(s.Channels, func(a, b ChannelState) int { return strings.Compare(a.ID, b.ID) })
	for name, m := range tab.models {
		ms := ModelState{Name: name, Policy: m.cfg.Policy}
		for i := range m.members {
			mem := &m.members[i]
			ms.Channels = append(ms.Channels, MemberState{
				Channel:  mem.ch.cfg.ID,
				Priority: mem.ch.cfg.Priority,
				TTFT:     time.Duration(mem.lat.ttft.Load()),
				PerToken: time.Duration(mem.lat.perToken.Load()),
				Samples:  mem.lat.samples.Load(),
			})
		}
		s.Models = append(s.Models, ms)
	}
	slices.SortFunc(s.Models, func(a, b ModelState) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// Parked lists the keys parked now.
func (r *Router) Parked() []ParkedKey {
	var out []ParkedKey
	for _, ch := range r.Snapshot().Channels {
		for _, k := range ch.Keys {
			if k.Parked {
				out = append(out, ParkedKey{Channel: ch.ID, Key: k.ID, Reason: k.ParkReason, Since: k.ParkedSince, Until: k.ParkedUntil})
			}
		}
	}
	return out
}

func breakerInfo(b *breaker) BreakerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	bi := BreakerInfo{
		State:    BreakerState(b.state.Load()).String(),
		Failures: int(b.failures.Load()),
		Trips:    b.trips,
	}
	if BreakerState(b.state.Load()) == Open {
		bi.OpenUntil = time.Unix(0, b.openUntil.Load()).UTC()
	}
	return bi
}

func timeIfAfter(ns, now int64) time.Time {
	if ns <= now {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
