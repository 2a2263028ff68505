package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Rounding rule (the only one in baimo): a quotient that is not exact is
// rounded half away from zero. It is applied in two places and nowhere else:
//
//   - MulDiv and MulDiv3 round a product-then-quotient once, to the nano, when a
//     price quoted per N units is applied to a quantity (rating a line);
//   - RoundMinor, RoundAll and Allocate round to the currency's minor unit (fen,
//     cent) where money leaves the system (statements, invoices), and give the
//     residue to the lines with the largest remainders so the parts add up to
//     the rounded total exactly.

// ErrDivideByZero is returned when a divisor is zero or negative.
var ErrDivideByZero = errors.New("money: divisor must be positive")

// ErrMixedSigns is returned by RoundAll when lines of both signs are given.
var ErrMixedSigns = errors.New("money: lines of mixed sign")

// MulDiv returns x*y/d rounded half away from zero. The product is held in 128
// bits, so it may exceed int64 as long as the quotient does not. d must be
// positive.
func MulDiv(x, y, d int64) (int64, error) { return MulDiv3(x, y, 1, d) }

// MulDiv3 returns x*y*z/d rounded half away from zero, with a 128-bit
// intermediate product (an intermediate above 128 bits is ErrOverflow). d must
// be positive.
func MulDiv3(x, y, z, d int64) (int64, error) {
	q, rem, neg, ud, err := mulDiv(x, y, z, d)
	if err != nil {
		return 0, err
	}
	if rem >= ud-rem { // rem*2 >= d without overflow: round half away from zero
		q++
		if q == 0 {
			return 0, ErrOverflow
		}
	}
	return signed(q, neg)
}

// MulDivFloor returns x*y/d rounded toward zero, with a 128-bit intermediate.
func MulDivFloor(x, y, d int64) (int64, error) {
	q, _, neg, _, err := mulDiv(x, y, 1, d)
	if err != nil {
		return 0, err
	}
	return signed(q, neg)
}

func mulDiv(x, y, z, d int64) (q, rem uint64, neg bool, ud uint64, err error) {
	if d <= 0 {
		return 0, 0, false, 0, ErrDivideByZero
	}
	neg = (x < 0) != (y < 0) != (z < 0)
	if x == 0 || y == 0 || z == 0 {
		return 0, 0, false, uint64(d), nil
	}
	hi, lo := bits.Mul64(abs(x), abs(y))
	// (hi,lo) * z as a 192-bit number; the top word must be zero.
	uz := abs(z)
	h1, l1 := bits.Mul64(lo, uz)
	h2, l2 := bits.Mul64(hi, uz)
	if h2 != 0 {
		return 0, 0, false, 0, ErrOverflow
	}
	mid, carry := bits.Add64(h1, l2, 0)
	if carry != 0 {
		return 0, 0, false, 0, ErrOverflow
	}
	ud = uint64(d)
	if mid >= ud {
		return 0, 0, false, 0, ErrOverflow
	}
	q, rem = bits.Div64(mid, l1, ud)
	return q, rem, neg, ud, nil
}

func signed(q uint64, neg bool) (int64, error) {
	if neg {
		if q > math.MaxInt64+1 {
			return 0, ErrOverflow
		}
		return int64(-q), nil //nolint:gosec // checked above
	}
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(q), nil
}

// MinorDigits returns the number of decimal digits of c's minor unit (2 for
// CNY and USD: fen and cent). Unknown currencies get 2.
func MinorDigits(c Currency) int {
	switch c {
	case "JPY", "KRW":
		return 0
	default:
		return 2
	}
}

// MinorUnit returns the number of nano-units in one minor unit of c
// (10,000,000 for a fen or a cent).
func MinorUnit(c Currency) int64 {
	u := int64(Scale)
	for i := 0; i < MinorDigits(c); i++ {
		u /= 10
	}
	return u
}

// RoundMinor rounds n nano-units of c to a whole number of minor units, half
// away from zero, and returns the result in nano-units.
func RoundMinor(n int64, c Currency) (int64, error) {
	u := MinorUnit(c)
	q, err := MulDiv(n, 1, u)
	if err != nil {
		return 0, err
	}
	return MulNanos(q, u)
}

// RoundAll rounds each line to the minor unit of c so that the rounded lines
// add up to RoundMinor of the exact total: each line is first cut toward zero,
// then the minor units still missing go one each to the lines with the largest
// cut-off remainders (ties to the earlier line). All lines must have the same
// sign. The result is written to dst, which must have len(lines) elements (it
// may be lines itself).
func RoundAll(lines []int64, c Currency, dst []int64) error {
	if len(dst) != len(lines) {
		return fmt.Errorf("money: round %d lines into %d", len(lines), len(dst))
	}
	neg, pos := false, false
	var total int64
	for _, n := range lines {
		neg = neg || n < 0
		pos = pos || n > 0
		var err error
		if total, err = AddNanos(total, n); err != nil {
			return err
		}
	}
	if neg && pos {
		return ErrMixedSigns
	}
	want, err := RoundMinor(total, c)
	if err != nil {
		return err
	}
	u := MinorUnit(c)
	sign := int64(1)
	if neg {
		sign = -1
	}
	var got int64
	rems := make([]int64, len(lines))
	for i, n := range lines {
		a := n * sign // n >= MinInt64+1 is implied by total not overflowing with one line; guard anyway
		if a < 0 {
			return ErrOverflow
		}
		cut := a / u * u
		rems[i] = a - cut
		dst[i] = cut
		got += cut
	}
	missing := (want*sign - got) / u
	for ; missing > 0; missing-- {
		best := -1
		for i, r := range rems {
			if r > 0 && (best < 0 || r > rems[best]) {
				best = i
			}
		}
		if best < 0 {
			return fmt.Errorf("money: round lines: no remainder left for %d minor units", missing)
		}
		dst[best] += u
		rems[best] = 0
	}
	for i := range dst {
		dst[i] *= sign
	}
	return nil
}

// Allocate splits total into len(weights) parts proportional to the weights
// (non-negative, not all zero), exactly: each part is cut toward zero to the
// nano, and the nanos left over go one each to the parts with the largest
// remainders (ties to the earlier part). The parts add up to total.
func Allocate(total int64, weights []int64) ([]int64, error) {
	var sum int64
	for _, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("money: allocate: negative weight %d", w)
		}
		var err error
		if sum, err = AddNanos(sum, w); err != nil {
			return nil, err
		}
	}
	if sum == 0 {
		return nil, fmt.Errorf("money: allocate: weights add up to zero: %w", ErrDivideByZero)
	}
	parts := make([]int64, len(weights))
	rems := make([]uint64, len(weights))
	var got int64
	for i, w := range weights {
		q, rem, neg, _, err := mulDiv(total, w, 1, sum)
		if err != nil {
			return nil, err
		}
		p, err := signed(q, neg)
		if err != nil {
			return nil, err
		}
		parts[i], rems[i] = p, rem
		got += p
	}
	step := int64(1)
	if total < 0 {
		step = -1
	}
	for left := (total - got) * step; left > 0; left-- {
		best := -1
		for i, r := range rems {
			if r > 0 && (best < 0 || r > rems[best]) {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("money: allocate: %d nanos left with no remainder", left)
		}
		parts[best] += step
		rems[best] = 0
	}
	return parts, nil
}

// Ratio is an exact non-negative multiplier Num/Den, kept reduced. The zero
// Ratio is not valid; use One.
type Ratio struct {
	Num, Den int64
}

// One is the ratio 1/1.
var One = Ratio{Num: 1, Den: 1}

// NewRatio returns num/den reduced; den must be positive and num non-negative.
func NewRatio(num, den int64) (Ratio, error) {
	if den <= 0 {
		return Ratio{}, ErrDivideByZero
	}
	if num < 0 {
		return Ratio{}, fmt.Errorf("money: negative ratio %d/%d", num, den)
	}
	g := gcd(num, den)
	return Ratio{Num: num / g, Den: den / g}, nil
}

// ParseRatio reads a decimal multiplier such as "0.5", "2" or "1.15" exactly.
func ParseRatio(s string) (Ratio, error) {
	n, err := ParseNanos(s)
	if err != nil {
		return Ratio{}, err
	}
	return NewRatio(n, Scale)
}

// Mul returns r*o reduced, or ErrOverflow when the reduced result does not fit.
func (r Ratio) Mul(o Ratio) (Ratio, error) {
	if r.Den == 0 || o.Den == 0 {
		return Ratio{}, ErrDivideByZero
	}
	// Cross-reduce first to keep the numbers small.
	g1, g2 := gcd(r.Num, o.Den), gcd(o.Num, r.Den)
	n, err := MulNanos(r.Num/g1, o.Num/g2)
	if err != nil {
		return Ratio{}, err
	}
	d, err := MulNanos(r.Den/g2, o.Den/g1)
	if err != nil {
		return Ratio{}, err
	}
	return Ratio{Num: n, Den: d}, nil
}

// Inverse returns 1/r; r must be non-zero.
func (r Ratio) Inverse() (Ratio, error) {
	if r.Num <= 0 {
		return Ratio{}, ErrDivideByZero
	}
	return Ratio{Num: r.Den, Den: r.Num}, nil
}

// IsOne reports whether r is 1.
func (r Ratio) IsOne() bool { return r.Num == r.Den && r.Num != 0 }

// String formats r as a decimal when it has at most nine decimal places, and
// as "num/den" otherwise.
func (r Ratio) String() string {
	if r.Den != 0 && Scale%r.Den == 0 {
		if n, err := MulNanos(r.Num, Scale/r.Den); err == nil {
			return FormatNanos(n)
		}
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

func gcd(a, b int64) int64 {
	if a < 0 {
		a = -a
	}
	for b != 0 {
		a, b = b, a%b
	}
	if a == 0 {
		return 1
	}
	return a
}
