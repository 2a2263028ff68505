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
		{"negative third factor", 7, 3, -2, 4, -11, nil},
		{"two negatives", -7, -3, 2, 4, 11, nil},
		{"three negatives", -7, -3, -2, 4, -11, nil},
		{"zero first", 0, math.MaxInt64, math.MaxInt64, 3, 0, nil},
		{"zero last", math.MaxInt64, math.MaxInt64, 0, 3, 0, nil},
		{"quotient just fits", math.MaxInt64, 3, 1, 3, math.MaxInt64, nil},
		{"high word equals divisor", 1 << 32, 1 << 32, 1, 1, 0, ErrOverflow}, // 2^64 / 1
		{"high word above divisor", 1 << 33, 1 << 32, 1, 1, 0, ErrOverflow},
		{"high word just below divisor", 1 << 32, 1 << 32, 1, 2, 0, ErrOverflow}, // 2^63
		{"MinInt64 through 128 bits", -(1 << 32), 1 << 32, 1, 2, math.MinInt64, nil},
		{"rounds up to MinInt64", math.MinInt64 + 1, 2, 1, 2, math.MinInt64 + 1, nil},
		{"negative divisor", 1, 1, 1, -3, 0, ErrDivideByZero},
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

func TestMulDivFloor(t *testing.T) {
	tests := []struct {
		x, y, d int64
		want    int64
		err     error
	}{
		{7, 3, 4, 5, nil},    // 5.25
		{7, 3, 2, 10, nil},   // 10.5: cut, not rounded
		{-7, 3, 2, -10, nil}, // toward zero
		{7, -3, 2, -10, nil},
		{0, 3, 2, 0, nil},
		{1, 1, 0, 0, ErrDivideByZero},
		{math.MaxInt64, 2, 1, 0, ErrOverflow},
		{math.MinInt64, 1, 1, math.MinInt64, nil},
	}
	for _, tt := range tests {
		got, err := MulDivFloor(tt.x, tt.y, tt.d)
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("MulDivFloor(%d,%d,%d) = %d, %v; want %d, %v", tt.x, tt.y, tt.d, got, err, tt.want, tt.err)
		}
	}
}

func TestMinorUnit(t *testing.T) {
	for _, tt := range []struct {
		c      Currency
		digits int
		unit   int64
	}{{CNY, 2, 10_000_000}, {USD, 2, 10_000_000}, {"JPY", 0, Scale}, {"KRW", 0, Scale}, {"EUR", 2, 10_000_000}} {
		if d, u := MinorDigits(tt.c), MinorUnit(tt.c); d != tt.digits || u != tt.unit {
			t.Errorf("%s: MinorDigits %d, MinorUnit %d; want %d, %d", tt.c, d, u, tt.digits, tt.unit)
		}
	}
	if got, err := RoundMinor(1_500_000_000, "JPY"); err != nil || got != 2*Scale {
		t.Errorf("RoundMinor(1.5 JPY) = %d, %v; want 2 yen", got, err)
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
		// The largest remainder wins, not the largest line.
		{"remainder beats size", []int64{11_000_000, 8_000_000}, []int64{10_000_000, 10_000_000}, nil},
		{"negative remainder beats size", []int64{-11_000_000, -8_000_000}, []int64{-10_000_000, -10_000_000}, nil},
		// Each line gets at most one minor unit: two missing fen go to two lines.
		{"spread", []int64{6_000_000, 6_000_000, 6_000_000, 1_000_000}, []int64{10_000_000, 10_000_000, 0, 0}, nil},
		{"spread negative", []int64{-6_000_000, -6_000_000, -6_000_000}, []int64{-10_000_000, -10_000_000, 0}, nil},
		{"zero lines with positive", []int64{0, 6_000_000, 0}, []int64{0, 10_000_000, 0}, nil},
		{"zero lines with negative", []int64{0, -6_000_000}, []int64{0, -10_000_000}, nil},
		{"all zero", []int64{0, 0}, []int64{0, 0}, nil},
		{"none", []int64{}, []int64{}, nil},
		{"whole lines untouched", []int64{20_000_000, 4_000_000, 7_000_000}, []int64{20_000_000, 0, 10_000_000}, nil},
		{"overflow", []int64{math.MaxInt64, 1}, nil, ErrOverflow},
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

func TestRoundAllDst(t *testing.T) {
	if err := RoundAll([]int64{1, 2}, CNY, make([]int64, 1)); err == nil {
		t.Error("RoundAll into a shorter dst succeeded")
	}
	lines := []int64{6_000_000, 6_000_000}
	if err := RoundAll(lines, CNY, lines); err != nil || lines[0] != 10_000_000 || lines[1] != 0 {
		t.Errorf("RoundAll in place = %v, %v", lines, err)
	}
}

// TestAllocate checks largest-remainder fairness: the parts add up to the
// total, each part is within one nano of its exact share, and the nanos left
// over go one each to the largest remainders (ties to the earlier part).
func TestAllocate(t *testing.T) {
	tests := []struct {
		name    string
		total   int64
		weights []int64
		want    []int64
		err     error
	}{
		{"one left over", 100, []int64{1, 1, 1}, []int64{34, 33, 33}, nil},
		{"two left over, one each", 200, []int64{1, 1, 1}, []int64{67, 67, 66}, nil},
		{"five left over", 5, []int64{1, 1, 1, 1, 1, 1, 1}, []int64{1, 1, 1, 1, 1, 0, 0}, nil},
		{"largest remainder first", 10, []int64{5, 2, 2}, []int64{6, 2, 2}, nil},                    // 5.56, 2.22, 2.22
		{"largest remainder, not largest weight", 8, []int64{5, 4}, []int64{4, 4}, nil},             // 4.44, 3.56
		{"ties to the earlier part", 10, []int64{1, 1, 1, 1, 1, 1}, []int64{2, 2, 2, 2, 1, 1}, nil}, // 1.67 each
		{"remainders decide", 10, []int64{6, 3, 1}, []int64{6, 3, 1}, nil},
		{"uneven", 7, []int64{1, 2, 4}, []int64{1, 2, 4}, nil},
		{"uneven leftovers", 11, []int64{1, 2, 4}, []int64{2, 3, 6}, nil}, // 1.57, 3.14, 6.29
		{"negative", -10, []int64{1, 2}, []int64{-3, -7}, nil},
		{"negative two left", -200, []int64{1, 1, 1}, []int64{-67, -67, -66}, nil},
		{"zero total", 0, []int64{1, 2}, []int64{0, 0}, nil},
		{"zero weight gets nothing", 10, []int64{0, 3, 0}, []int64{0, 10, 0}, nil},
		{"zero weights", 1, []int64{0, 0}, nil, ErrDivideByZero},
		{"negative weight", 1, []int64{2, -1}, nil, errAny},
		{"weights overflow", 1, []int64{math.MaxInt64, 1}, nil, ErrOverflow},
		{"big total", math.MaxInt64, []int64{1, 1}, []int64{math.MaxInt64/2 + 1, math.MaxInt64 / 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Allocate(tt.total, tt.weights)
			if tt.err != nil {
				if err == nil || (tt.err != errAny && !errors.Is(err, tt.err)) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Allocate(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Allocate(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
				}
			}
		})
	}
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func FuzzAllocate(f *testing.F) {
	f.Add(int64(200), int64(1), int64(1), int64(1))
	f.Add(int64(-7), int64(5), int64(0), int64(3))
	f.Fuzz(func(t *testing.T, total, a, b, c int64) {
		total %= 1e15
		ws := []int64{abs64(a % 1e6), abs64(b % 1e6), abs64(c % 1e6)}
		parts, err := Allocate(total, ws)
		if ws[0]+ws[1]+ws[2] == 0 {
			if err == nil {
				t.Fatal("zero weights: no error")
			}
			return
		}
		if err != nil {
			t.Fatalf("Allocate(%d, %v): %v", total, ws, err)
		}
		sum := ws[0] + ws[1] + ws[2]
		var got int64
		for i, p := range parts {
			got += p
			exact := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(total), big.NewInt(ws[i])), big.NewInt(sum))
			diff := new(big.Rat).Sub(new(big.Rat).SetInt64(p), exact)
			if diff.Abs(diff).Cmp(big.NewRat(1, 1)) >= 0 {
				t.Fatalf("Allocate(%d, %v) = %v: part %d is a whole nano or more from %v", total, ws, parts, i, exact)
			}
		}
		if got != total {
			t.Fatalf("Allocate(%d, %v) = %v, sum %d", total, ws, parts, got)
		}
	})
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestNewRatio(t *testing.T) {
	tests := []struct {
		num, den int64
		want     Ratio
		err      error
	}{
		{6, 4, Ratio{3, 2}, nil},
		{0, 5, Ratio{0, 1}, nil},
		{7, 7, Ratio{1, 1}, nil},
		{1, 0, Ratio{}, ErrDivideByZero},
		{1, -2, Ratio{}, ErrDivideByZero},
		{-1, 2, Ratio{}, errAny},
	}
	for _, tt := range tests {
		got, err := NewRatio(tt.num, tt.den)
		if tt.err != nil {
			if err == nil || (tt.err != errAny && !errors.Is(err, tt.err)) {
				t.Errorf("NewRatio(%d, %d) err = %v, want %v", tt.num, tt.den, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NewRatio(%d, %d) = %v, %v; want %v", tt.num, tt.den, got, err, tt.want)
		}
	}
}

func TestRatioMul(t *testing.T) {
	tests := []struct {
		a, b, want Ratio
		err        error
	}{
		{Ratio{2, 3}, Ratio{3, 4}, Ratio{1, 2}, nil}, // cross-reduced both ways
		{Ratio{3, 4}, Ratio{2, 3}, Ratio{1, 2}, nil},
		{Ratio{4, 9}, Ratio{3, 8}, Ratio{1, 6}, nil},
		{Ratio{5, 7}, Ratio{7, 5}, Ratio{1, 1}, nil},
		{Ratio{23, 20}, Ratio{71, 10}, Ratio{1633, 200}, nil}, // 1.15 × 7.1
		{Ratio{0, 1}, Ratio{3, 4}, Ratio{0, 1}, nil},
		{Ratio{1, 2}, Ratio{1, 0}, Ratio{}, ErrDivideByZero},
		{Ratio{1, 0}, Ratio{1, 2}, Ratio{}, ErrDivideByZero},
		{Ratio{math.MaxInt64, 1}, Ratio{3, 1}, Ratio{}, ErrOverflow},
		{Ratio{1, math.MaxInt64}, Ratio{1, 3}, Ratio{}, ErrOverflow},
	}
	for _, tt := range tests {
		got, err := tt.a.Mul(tt.b)
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("%v × %v = %v, %v; want %v, %v", tt.a, tt.b, got, err, tt.want, tt.err)
		}
	}
}

func TestRatioInverse(t *testing.T) {
	if r, err := (Ratio{71, 10}).Inverse(); err != nil || r != (Ratio{10, 71}) {
		t.Errorf("Inverse(7.1) = %v, %v", r, err)
	}
	for _, z := range []Ratio{{0, 1}, {-1, 2}} {
		if _, err := z.Inverse(); !errors.Is(err, ErrDivideByZero) {
			t.Errorf("Inverse(%v) err = %v, want ErrDivideByZero", z, err)
		}
	}
}

// TestGCD: reduction divides by a positive common divisor whatever the signs,
// so a reduced ratio keeps its sign in the numerator.
func TestGCD(t *testing.T) {
	for _, tt := range []struct{ a, b, want int64 }{
		{12, 18, 6}, {-6, 4, 2}, {6, -4, 2}, {-6, -4, 2}, {0, 5, 5}, {5, 0, 5}, {0, 0, 1}, {7, 13, 1},
	} {
		if got := gcd(tt.a, tt.b); got != tt.want {
			t.Errorf("gcd(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
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
	for _, tt := range []struct {
		r    Ratio
		want string
	}{{Ratio{23, 20}, "1.15"}, {Ratio{1, 1}, "1"}, {Ratio{0, 1}, "0"}, {Ratio{1, 3}, "1/3"}, {Ratio{1, 0}, "1/0"},
		{Ratio{math.MaxInt64, 1}, "9223372036854775807/1"}, {Ratio{1, Scale}, "0.000000001"}} {
		if s := tt.r.String(); s != tt.want {
			t.Errorf("%d/%d String = %q, want %q", tt.r.Num, tt.r.Den, s, tt.want)
		}
	}
	for _, tt := range []struct {
		r    Ratio
		want bool
	}{{Ratio{1, 1}, true}, {Ratio{3, 3}, true}, {Ratio{0, 0}, false}, {Ratio{2, 1}, false}, {Ratio{1, 2}, false}} {
		if got := tt.r.IsOne(); got != tt.want {
			t.Errorf("(%d/%d).IsOne() = %v", tt.r.Num, tt.r.Den, got)
		}
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
