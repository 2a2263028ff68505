package money

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

func TestMulDiv(t *testing.T) {
	tests := []struct {
		name       string
		x, y, z, d int64
		want       int64
		err        error
	}{
		{"exact", 1_000_000, 2_000_000_000, 1, 1_000_000, 2_000_000_000, nil},
		{"half up", 1, 5, 1, 10, 1, nil},                              // 0.5 -> 1
		{"below half", 1, 4, 1, 10, 0, nil},                           // 0.4 -> 0
		{"negative half", -1, 5, 1, 10, -1, nil},                      // -0.5 -> -1
		{"negative below half", -1, 4, 1, 10, 0, nil},                 // -0.4 -> 0
		{"qwen-long per 1K", 3, 500_000_000, 1, 1000, 1_500_000, nil}, // 3 tokens at 0.0005/1K
		{"128-bit intermediate", math.MaxInt64, 1_000_000, 1, 1_000_000, math.MaxInt64, nil},
		{"third factor", 7, 3, 2, 4, 11, nil}, // 42/4 = 10.5 -> 11
		{"overflow quotient", math.MaxInt64, 2, 1, 1, 0, ErrOverflow},
		{"overflow 192", math.MaxInt64, math.MaxInt64, math.MaxInt64, 1, 0, ErrOverflow},
		{"zero divisor", 1, 1, 1, 0, 0, ErrDivideByZero},
		{"min int", math.MinInt64, 1, 1, 1, math.MinInt64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MulDiv3(tt.x, tt.y, tt.z, tt.d)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Errorf("MulDiv3(%d,%d,%d,%d) = %d, want %d", tt.x, tt.y, tt.z, tt.d, got, tt.want)
			}
		})
	}
}

func TestRoundMinor(t *testing.T) {
	tests := []struct {
		in, want int64
	}{
		{5_000_000, 10_000_000},    // 0.005 -> 0.01
		{4_999_999, 0},             // 0.004999999 -> 0
		{-5_000_000, -10_000_000},  // -0.005 -> -0.01
		{123_456_789, 120_000_000}, // 0.123456789 -> 0.12
		{125_000_000, 130_000_000}, // 0.125 -> 0.13 (half away from zero, not to even)
	}
	for _, tt := range tests {
		got, err := RoundMinor(tt.in, CNY)
		if err != nil || got != tt.want {
			t.Errorf("RoundMinor(%d) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestRoundAll(t *testing.T) {
	tests := []struct {
		name  string
		lines []int64
		want  []int64
		err   error
	}{
		{"three thirds", []int64{3_333_333, 3_333_333, 3_333_334}, []int64{0, 0, 10_000_000}, nil},
		{"largest remainder", []int64{6_000_000, 6_000_000, 8_000_000}, []int64{10_000_000, 0, 10_000_000}, nil},
		{"exact", []int64{10_000_000, 20_000_000}, []int64{10_000_000, 20_000_000}, nil},
		{"negative", []int64{-6_000_000, -6_000_000}, []int64{-10_000_000, 0}, nil},
		{"mixed", []int64{-1, 1}, nil, ErrMixedSigns},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]int64, len(tt.lines))
			err := RoundAll(tt.lines, CNY, dst)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			for i := range dst {
				if dst[i] != tt.want[i] {
					t.Fatalf("RoundAll(%v) = %v, want %v", tt.lines, dst, tt.want)
				}
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	got, err := Allocate(100, []int64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 34 || got[1] != 33 || got[2] != 33 {
		t.Errorf("Allocate(100, 1:1:1) = %v", got)
	}
	got, err = Allocate(-10, []int64{1, 2})
	if err != nil || got[0] != -3 || got[1] != -7 {
		t.Errorf("Allocate(-10, 1:2) = %v, %v", got, err)
	}
	if _, err := Allocate(1, []int64{0, 0}); !errors.Is(err, ErrDivideByZero) {
		t.Errorf("zero weights: err = %v", err)
	}
}

func TestRatio(t *testing.T) {
	r, err := ParseRatio("0.5")
	if err != nil || r != (Ratio{1, 2}) {
		t.Fatalf("ParseRatio(0.5) = %v, %v", r, err)
	}
	m, err := r.Mul(Ratio{Num: 2, Den: 1})
	if err != nil || !m.IsOne() {
		t.Errorf("0.5*2 = %v, %v", m, err)
	}
	if s := (Ratio{Num: 1, Den: 3}).String(); s != "1/3" {
		t.Errorf("1/3 String = %q", s)
	}
	if s := (Ratio{Num: 23, Den: 20}).String(); s != "1.15" {
		t.Errorf("23/20 String = %q", s)
	}
	if _, err := (Ratio{Num: math.MaxInt64, Den: 1}).Mul(Ratio{Num: 3, Den: 1}); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflowing Mul: err = %v", err)
	}
}

func FuzzMulDiv3(f *testing.F) {
	f.Add(int64(3), int64(500_000_000), int64(1), int64(1000))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(-1), int64(math.MaxInt64))
	f.Add(int64(-7), int64(5), int64(3), int64(2))
	f.Fuzz(func(t *testing.T, x, y, z, d int64) {
		got, err := MulDiv3(x, y, z, d)
		if d <= 0 {
			if err == nil {
				t.Fatalf("d=%d: no error", d)
			}
			return
		}
		// Reference: big.Int, half away from zero.
		p := new(big.Int).Mul(big.NewInt(x), big.NewInt(y))
		p.Mul(p, big.NewInt(z))
		ap := new(big.Int).Abs(p)
		q, r := new(big.Int).QuoRem(ap, big.NewInt(d), new(big.Int))
		if new(big.Int).Mul(r, big.NewInt(2)).Cmp(big.NewInt(d)) >= 0 {
			q.Add(q, big.NewInt(1))
		}
		if p.Sign() < 0 {
			q.Neg(q)
		}
		if err != nil {
			if !errors.Is(err, ErrOverflow) {
				t.Fatalf("MulDiv3(%d,%d,%d,%d): unexpected error %v", x, y, z, d, err)
			}
			if q.IsInt64() && ap.BitLen() <= 128 {
				t.Fatalf("MulDiv3(%d,%d,%d,%d): overflow, want %v", x, y, z, d, q)
			}
			return
		}
		if q.Int64() != got {
			t.Fatalf("MulDiv3(%d,%d,%d,%d) = %d, want %v", x, y, z, d, got, q)
		}
	})
}

func FuzzParseNanos(f *testing.F) {
	for _, s := range []string{"0.0005", "-3.25", "9223372036.854775807", "", ".", "1e5", "+.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNanos(s)
		if err != nil {
			return
		}
		back, err := ParseNanos(FormatNanos(n))
		if err != nil || back != n {
			t.Fatalf("round trip %q -> %d -> %q -> %d, %v", s, n, FormatNanos(n), back, err)
		}
	})
}

func FuzzRoundAll(f *testing.F) {
	f.Add(int64(3_333_333), int64(3_333_333), int64(3_333_334))
	f.Add(int64(-1), int64(-5_000_000), int64(0))
	f.Fuzz(func(t *testing.T, a, b, c int64) {
		lines := []int64{a % 1e15, b % 1e15, c % 1e15}
		dst := make([]int64, 3)
		if err := RoundAll(lines, CNY, dst); err != nil {
			if errors.Is(err, ErrMixedSigns) {
				return
			}
			t.Fatalf("RoundAll(%v): %v", lines, err)
		}
		want, err := RoundMinor(lines[0]+lines[1]+lines[2], CNY)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for i, d := range dst {
			if d%MinorUnit(CNY) != 0 {
				t.Fatalf("line %d = %d not a whole fen", i, d)
			}
			if diff := d - lines[i]; diff >= MinorUnit(CNY) || diff <= -MinorUnit(CNY) {
				t.Fatalf("line %d moved by %d", i, diff)
			}
			sum += d
		}
		if sum != want {
			t.Fatalf("RoundAll(%v) = %v, sum %d, want %d", lines, dst, sum, want)
		}
	})
}
