package route

import (
	"errors"
	"testing"
)

// TestPin: a pinned request reaches only its channel and key, however the
// others are weighted; it does not fail over; a pin to a channel or key
// that does not serve the model is refused at Plan.
func TestPin(t *testing.T) {
	r, _ := newRouter(t, Config{Channels: []Channel{ch("a", 0, 100, "a0", "a1", "a2"), ch("b", 0, 1, "b0"), ch("c", 1, 1, "c0")}})
	for i := 0; i < 50; i++ {
		p := plan(t, r, Request{Pin: &Pin{Channel: "b", Key: "b0"}})
		a := next(t, &p)
		if a.Channel.ID != "b" || a.Key.ID != "b0" {
			t.Fatalf("pinned to b/b0, got %s/%s", a.Channel.ID, a.Key.ID)
		}
		p.Done(&a, ok200)
	}
	for i := 0; i < 50; i++ {
		p := plan(t, r, Request{Pin: &Pin{Channel: "a", Key: "a1"}})
		a := next(t, &p)
		if a.Channel.ID != "a" || a.Key.ID != "a1" {
			t.Fatalf("pinned to a/a1, got %s/%s", a.Channel.ID, a.Key.ID)
		}
		p.Done(&a, ok200)
	}
	p := plan(t, r, Request{Pin: &Pin{Channel: "c", Key: "c0"}})
	a := next(t, &p)
	if d := p.Done(&a, err5); !d.Retry {
		t.Fatalf("a 502 should allow a retry, got %+v", d)
	}
	if a, err := p.Next(); err == nil {
		t.Errorf("a pinned request failed over to %s/%s", a.Channel.ID, a.Key.ID)
	}
	for _, pin := range []Pin{{"z", "z0"}, {"a", "b0"}, {"b", ""}} {
		if _, err := r.Plan(Request{Model: "m", Pin: &pin}); !errors.Is(err, ErrPinned) {
			t.Errorf("pin %+v: %v, want ErrPinned", pin, err)
		}
	}
}
