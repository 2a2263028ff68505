package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		want map[string]string
	}{
		{
			name: "allowed",
			r: Result{Allowed: true,
				Requests: Quota{Limit: 60, Remaining: 59, Reset: time.Second},
				Tokens:   Quota{Limit: 150000, Remaining: 149000, Reset: 400 * time.Millisecond}},
			want: map[string]string{
				"X-Ratelimit-Limit-Requests": "60", "X-Ratelimit-Remaining-Requests": "59", "X-Ratelimit-Reset-Requests": "1s",
				"X-Ratelimit-Limit-Tokens": "150000", "X-Ratelimit-Remaining-Tokens": "149000", "X-Ratelimit-Reset-Tokens": "400ms",
			},
		},
		{
			name: "refused",
			r: Result{Refused: KindRequests, RetryAfter: 1500 * time.Millisecond,
				Requests: Quota{Limit: 3, Remaining: 0, Reset: 6*time.Minute + 1234567*time.Microsecond}},
			want: map[string]string{
				"X-Ratelimit-Limit-Requests": "3", "X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Reset-Requests": "6m1.235s",
				"Retry-After": "2", "Retry-After-Ms": "1500",
			},
		},
		{
			name: "too large has no retry-after",
			r:    Result{Refused: KindTokens, TooLarge: true, Tokens: Quota{Limit: 1000, Remaining: 1000}},
			want: map[string]string{
				"X-Ratelimit-Limit-Tokens": "1000", "X-Ratelimit-Remaining-Tokens": "1000", "X-Ratelimit-Reset-Tokens": "0s",
			},
		},
		{name: "no limits", r: Result{Allowed: true}, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			SetHeaders(h, tt.r)
			if len(h) != len(tt.want) {
				t.Errorf("got %d headers %v, want %d", len(h), h, len(tt.want))
			}
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
