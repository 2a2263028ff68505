package httpapi

import "testing"

func TestDriftPercent(t *testing.T) {
	for _, tt := range []struct {
		v, c int64
		want string
	}{{20, 17, "17.65"}, {17, 17, "0.00"}, {10, 17, "-41.18"}, {1, 3, "-66.67"}, {5, 0, "n/a"}, {2000001, 2000000, "0.00"}, {1000050, 1000000, "0.01"}} {
		if got := DriftPercent(tt.v, tt.c); got != tt.want {
			t.Errorf("DriftPercent(%d, %d) = %s, want %s", tt.v, tt.c, got, tt.want)
		}
	}
}
