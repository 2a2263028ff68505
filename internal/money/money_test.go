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
		{"0", 0, "0"},
		{"-0", 0, "0"},
		{"+1.99", 1_990_000_000, "1.99"},
		{"0.999999999", 999_999_999, "0.999999999"},
		{"-9223372036.854775807", -math.MaxInt64, "-9223372036.854775807"},
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
	for _, bad := range []string{"", "-", "+", ".", "1.0000000001", "1e5", "abc", "9223372036.854775808", "99999999999",
		"1.:", "1./", "1:", "/1", "18446744073709551616", "18446744073.709551615"} {
		if _, err := ParseNanos(bad); err == nil {
			t.Errorf("ParseNanos(%q) succeeded, want error", bad)
		}
	}
}

func TestParseAmount(t *testing.T) {
	a, err := Parse("12.5", USD)
	if err != nil || a != New(12_500_000_000, USD) {
		t.Errorf("Parse(12.5, USD) = %v, %v", a, err)
	}
	if s := a.String(); s != "12.5 USD" {
		t.Errorf("String() = %q, want \"12.5 USD\"", s)
	}
	if _, err := Parse("12,5", USD); err == nil {
		t.Error("Parse(12,5) succeeded, want error")
	}
	if !Zero(CNY).IsZero() || New(1, CNY).IsZero() || New(-1, CNY).IsZero() {
		t.Error("IsZero is true only for zero")
	}
}

// TestAddSubMulNanos covers every sign combination at and beyond the edges of
// int64: a sum or product that does not fit is ErrOverflow, never a wrap.
func TestAddSubMulNanos(t *testing.T) {
	const maxI, minI = math.MaxInt64, math.MinInt64
	tests := []struct {
		op   string
		x, y int64
		want int64
		err  error
	}{
		{"add", 5, -3, 2, nil},
		{"add", -5, 3, -2, nil},
		{"add", 3, -3, 0, nil},
		{"add", 0, 7, 7, nil},
		{"add", -7, 0, -7, nil},
		{"add", maxI, 0, maxI, nil},
		{"add", maxI, minI, -1, nil},
		{"add", maxI, 1, 0, ErrOverflow},
		{"add", maxI, maxI, 0, ErrOverflow},
		{"add", minI, -1, 0, ErrOverflow},
		{"add", minI, minI, 0, ErrOverflow}, // wraps to exactly 0
		{"sub", 5, 8, -3, nil},
		{"sub", -5, -8, 3, nil},
		{"sub", 0, maxI, -maxI, nil},
		{"sub", -1, maxI, minI, nil},
		{"sub", -2, maxI, 0, ErrOverflow},
		{"sub", 0, minI, 0, ErrOverflow},
		{"sub", -1, minI, 0, ErrOverflow}, // -1 - MinInt64 fits, but -MinInt64 does not
		{"sub", maxI, -1, 0, ErrOverflow},
		{"mul", 0, maxI, 0, nil},
		{"mul", minI, 0, 0, nil},
		{"mul", -3, -4, 12, nil},
		{"mul", 3, -4, -12, nil},
		{"mul", minI, 1, minI, nil},
		{"mul", minI / 2, 2, minI, nil},
		{"mul", -(minI / 2), -2, minI, nil},
		{"mul", minI, -1, 0, ErrOverflow},
		{"mul", maxI/2 + 1, 2, 0, ErrOverflow},
		{"mul", 1 << 32, 1 << 32, 0, ErrOverflow},
	}
	for _, tt := range tests {
		var got int64
		var err error
		switch tt.op {
		case "add":
			got, err = AddNanos(tt.x, tt.y)
		case "sub":
			got, err = SubNanos(tt.x, tt.y)
		case "mul":
			got, err = MulNanos(tt.x, tt.y)
		}
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("%s(%d, %d) = %d, %v; want %d, %v", tt.op, tt.x, tt.y, got, err, tt.want, tt.err)
		}
	}
}

func TestAmountAddSub(t *testing.T) {
	tests := []struct {
		op   string
		a, b Amount
		want Amount
		err  error
	}{
		{"add", New(5, CNY), New(-7, CNY), New(-2, CNY), nil},
		{"sub", New(5, CNY), New(7, CNY), New(-2, CNY), nil},
		{"sub", New(5, CNY), New(-7, CNY), New(12, CNY), nil},
		{"sub", New(-1, CNY), New(math.MaxInt64, CNY), New(math.MinInt64, CNY), nil},
		{"sub", New(0, CNY), New(math.MinInt64, CNY), Amount{}, ErrOverflow},
		{"add", New(math.MaxInt64, CNY), New(1, CNY), Amount{}, ErrOverflow},
		{"add", New(1, CNY), New(1, USD), Amount{}, ErrCurrencyMismatch},
		{"sub", New(1, CNY), New(1, USD), Amount{}, ErrCurrencyMismatch},
	}
	for _, tt := range tests {
		var got Amount
		var err error
		if tt.op == "add" {
			got, err = tt.a.Add(tt.b)
		} else {
			got, err = tt.a.Sub(tt.b)
		}
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("%v %s %v = %v, %v; want %v, %v", tt.a, tt.op, tt.b, got, err, tt.want, tt.err)
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
