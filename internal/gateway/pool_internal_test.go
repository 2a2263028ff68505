package gateway

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"baimo/internal/config"
	"baimo/internal/schedule"
)

func TestPoolTrafficClass(t *testing.T) {
	ch := NewPoolChannel(config.Pool{Name: "p", Replicas: []string{"http://127.0.0.1:1/v1"}, DefaultClass: "standard",
		Keys: map[string]string{"key_b": "batch"}, Tenants: map[string]string{"vip": "interactive"}, ClassHeader: "X-Traffic-Class"}, nil)
	pr := ch.pool
	for _, tc := range []struct {
		key, tenant, header string
		want                schedule.Class
	}{
		{"k", "t", "", schedule.Standard},
		{"k", "vip", "", schedule.Interactive},
		{"key_b", "vip", "", schedule.Batch},         // the key's class comes before the tenant's
		{"k", "vip", "batch", schedule.Batch},        // a client may lower its class
		{"k", "t", "interactive", schedule.Standard}, // but not raise it
		{"k", "t", "nonsense", schedule.Standard},    // nor name a class that does not exist
	} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		if tc.header != "" {
			r.Header.Set("X-Traffic-Class", tc.header)
		}
		if c, _ := pr.class(r, tc.key, tc.tenant); c != tc.want {
			t.Errorf("key %s tenant %s header %q: class %v, want %v", tc.key, tc.tenant, tc.header, c, tc.want)
		}
	}
	dl := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	r := httptest.NewRequest("POST", "/", nil).WithContext(WithTraffic(context.Background(), schedule.Batch, dl))
	if c, d := pr.class(r, "k", "vip"); c != schedule.Batch || !d.Equal(dl) {
		t.Errorf("a request marked batch by its context: %v %v", c, d)
	}
}
