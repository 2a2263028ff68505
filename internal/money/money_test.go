package money

import (
	"errors"
	"math"
	"testing"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		out  string
	}{
		{"0.0005", 500_000, "0.0005"},
		{"1", Scale, "1"},
		{"-3.25", -3_250_000_000, "-3.25"},
		{"0.000000001", 1, "0.000000001"},
		{".5", 500_000_000, "0.5"},
		{"9223372036.854775807", math.MaxInt64, "9223372036.854775807"},
	}
	for _, tt := range tests {
		got, err := ParseNanos(tt.in)
		if err != nil {
			t.Fatalf("ParseNanos(%q): %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("ParseNanos(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if s := FormatNanos(got); s != tt.out {
			t.Errorf("FormatNanos(%d) = %q, want %q", got, s, tt.out)
		}
	}
	for _, bad := range []string{"", "-", "1.0000000001", "1e5", "abc", "9223372036.854775808", "99999999999"} {
		if _, err := ParseNanos(bad); err == nil {
			t.Errorf("ParseNanos(%q) succeeded, want error", bad)
		}
	}
}

func TestCheckedArithmetic(t *testing.T) {
	if _, err := AddNanos(math.MaxInt64, 1); !errors.Is(err, ErrOverflow) {
		t.Errorf("AddNanos overflow: err = %v", err)
	}
	if _, err := MulNanos(math.MaxInt64/2+1, 2); !errors.Is(err, ErrOverflow) {
		t.Errorf("MulNanos overflow: err = %v", err)
	}
	if got, err := MulNanos(-3, 4); err != nil || got != -12 {
		t.Errorf("MulNanos(-3,4) = %d, %v", got, err)
	}
	if got, err := MulNanos(math.MinInt64, 1); err != nil || got != math.MinInt64 {
		t.Errorf("MulNanos(min,1) = %d, %v", got, err)
	}
	if _, err := New(1, CNY).Add(New(1, USD)); !errors.Is(err, ErrCurrencyMismatch) {
		t.Errorf("mixed add: err = %v", err)
	}
}
