package route

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	up := newFakeUpstream(t)
	up.set("Bearer bad", http.StatusUnauthorized)
	r, clk := newRouter(t, Config{Channels: []Channel{keyed("a", "bad", "good")}, ParkFor: time.Hour})
	tab := r.tab.Load()
	k, err := r.key("a", "bad")
	if err != nil {
		t.Fatal(err)
	}
	r.park(tab, tab.channels["a"], k, r.now(), "key:http_401", false)
	// The probe takes 250 ms by the router's clock.
	slow := func(ctx context.Context, ch *Channel, key *Key) (int, error) {
		clk.Advance(250 * time.Millisecond)
		return modelList(up.URL)(ctx, ch, key)
	}
	tests := []struct {
		name, key  string
		probe      ProbeFunc
		want       Check
		wantParked bool
	}{
		{"first key not parked", "", slow, Check{Channel: "a", Key: "good", OK: true, Status: 200, Result: "ok", Latency: 250 * time.Millisecond}, true},
		{"a parked key, asked for", "bad", slow, Check{Channel: "a", Key: "bad", Status: 401, Result: "http_401", Latency: 250 * time.Millisecond, Parked: true}, true},
		{"no answer", "good", func(context.Context, *Channel, *Key) (int, error) { return 0, errors.New("connection refused") },
			Check{Channel: "a", Key: "good", Result: "unreachable"}, true},
		{"timeout", "good", func(ctx context.Context, _ *Channel, _ *Key) (int, error) { <-ctx.Done(); return 0, ctx.Err() },
			Check{Channel: "a", Key: "good", Result: "timeout"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Check(context.Background(), tt.probe, "a", tt.key, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if got.At.IsZero() {
				t.Errorf("At is zero")
			}
			got.At = time.Time{}
			if got != tt.want {
				t.Errorf("Check = %+v\nwant    %+v", got, tt.want)
			}
			// A check changes nothing: the parked key stays parked.
			if p := keyStateOf(t, r, "a", "bad").Parked; p != tt.wantParked {
				t.Errorf("bad parked = %v after the check", p)
			}
		})
	}
	if _, err := r.Check(context.Background(), slow, "nope", "", time.Second); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown channel: err = %v", err)
	}
	if _, err := r.Check(context.Background(), slow, "a", "k9", time.Second); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: err = %v", err)
	}
	if len(r.Probes()) != 0 {
		t.Errorf("a check was kept as a prober's probe: %+v", r.Probes())
	}
}
