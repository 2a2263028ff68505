package gateway_test

import (
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"

	"baimo/internal/gateway"
)

// TestRequestIDSuffixRandomBits: the suffix the gateway adds to a client's
// X-Request-Id carries at least 96 random bits (holds, settlements and
// records are keyed by the id, so a client must not be able to make two
// requests share one): it is 12 bytes, and over 256 ids from the same
// client id every one of its 96 bits takes both values. A fixed, counted
// or time-derived bit fails this (the chance that a truly random bit shows
// one value 256 times is 2^-255).
func TestRequestIDSuffixRandomBits(t *testing.T) {
	const n = 256
	var ones, zeros [96]int
	seen := map[string]bool{}
	for range n {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Header.Set("X-Request-Id", "trace-1")
		id := gateway.RequestID(r)
		suffix, ok := strings.CutPrefix(id, "trace-1.")
		if !ok {
			t.Fatalf("id %q does not keep the client's id", id)
		}
		b, err := hex.DecodeString(suffix)
		if err != nil || len(b) < 12 {
			t.Fatalf("suffix %q is not 12 bytes of hex", suffix)
		}
		if seen[suffix] {
			t.Fatalf("suffix %q came twice", suffix)
		}
		seen[suffix] = true
		for i := range 96 {
			if b[i/8]>>(i%8)&1 == 1 {
				ones[i]++
			} else {
				zeros[i]++
			}
		}
	}
	for i := range 96 {
		if ones[i] == 0 || zeros[i] == 0 {
			t.Errorf("bit %d of the suffix never varies (%d ones, %d zeros in %d ids)", i, ones[i], zeros[i], n)
		}
	}
	// Without a usable client id, every request still gets a distinct id.
	for _, h := range []string{"", "has space", strings.Repeat("x", 129)} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		if h != "" {
			r.Header.Set("X-Request-Id", h)
		}
		a, b := gateway.RequestID(r), gateway.RequestID(r)
		if a == b || strings.Contains(a, " ") || len(a) > 128 {
			t.Errorf("X-Request-Id %q: ids %q, %q", h, a, b)
		}
	}
}
