package sqlcore

import (
	"fmt"
	"testing"

	"baimo/internal/usage"
)

// TestAttemptsText reads attempts as every release stored them and writes
// them back.
func TestAttemptsText(t *testing.T) {
	tests := []struct {
		name, stored string
		want         []usage.Attempt
	}{
		{"none", "", nil},
		{"JSON of the first releases", `[{"channel":"sim","status":200,"duration_ns":5}]`,
			[]usage.Attempt{{Channel: "sim", Status: 200, Duration: 5}}},
		{"text without keys", "a%2Cb,502,upstream,7;,200,,9",
			[]usage.Attempt{{Channel: "a,b", Status: 502, ErrorClass: usage.ErrUpstream, Duration: 7}, {Channel: "sim", Status: 200, Duration: 9}}},
		{"text with keys", "backup,429,upstream,7,k1;,200,,9,k0",
			[]usage.Attempt{{Channel: "backup", Key: "k1", Status: 429, ErrorClass: usage.ErrUpstream, Duration: 7}, {Channel: "sim", Key: "k0", Status: 200, Duration: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAttempts(tt.stored, "sim")
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("parseAttempts(%q) = %+v, want %+v", tt.stored, got, tt.want)
			}
			again, err := parseAttempts(formatAttempts(&usage.Record{Channel: "sim", Attempts: got}), "sim")
			if err != nil || fmt.Sprint(again) != fmt.Sprint(tt.want) {
				t.Fatalf("round trip = %+v, %v; want %+v", again, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"sim,200", "sim,x,,1", "sim,200,,1,k0,extra"} {
		if _, err := parseAttempts(bad, "sim"); err == nil {
			t.Errorf("parseAttempts(%q) read it", bad)
		}
	}
}
