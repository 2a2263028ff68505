// Package money holds exact amounts of money in a currency.
//
// An Amount is an int64 count of nano-units (1e-9 of the currency's main unit:
// one yuan or one dollar), so per-token prices far below a fen or a cent are
// exact. Arithmetic is checked: overflow is an error, never a wrap. There is no
// float64 anywhere in this package.
package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// Scale is the number of nano-units in one main unit of a currency.
const Scale = 1_000_000_000

// ScaleDigits is the number of decimal digits below the main unit.
const ScaleDigits = 9

// Currency is an ISO 4217 code such as "CNY" or "USD".
type Currency string

// Known currencies.
const (
	CNY Currency = "CNY"
	USD Currency = "USD"
)

// ErrOverflow is returned when a result does not fit in an Amount.
var ErrOverflow = errors.New("money: overflow")

// ErrCurrencyMismatch is returned when two amounts of different currencies meet.
var ErrCurrencyMismatch = errors.New("money: currency mismatch")

// Amount is an exact amount of money: Nanos nano-units of Currency.
type Amount struct {
	Nanos    int64
	Currency Currency
}

// New returns an amount of n nano-units of c.
func New(n int64, c Currency) Amount { return Amount{Nanos: n, Currency: c} }

// Zero returns a zero amount in c.
func Zero(c Currency) Amount { return Amount{Currency: c} }

// IsZero reports whether a is zero.
func (a Amount) IsZero() bool { return a.Nanos == 0 }

// Add returns a+b, or an error on overflow or currency mismatch.
func (a Amount) Add(b Amount) (Amount, error) {
	if a.Currency != b.Currency {
		return Amount{}, fmt.Errorf("add %s to %s: %w", b.Currency, a.Currency, ErrCurrencyMismatch)
	}
	s, err := AddNanos(a.Nanos, b.Nanos)
	return Amount{Nanos: s, Currency: a.Currency}, err
}

// Sub returns a-b, or an error on overflow or currency mismatch.
func (a Amount) Sub(b Amount) (Amount, error) {
	if b.Nanos == math.MinInt64 {
		return Amount{}, ErrOverflow
	}
	return a.Add(Amount{Nanos: -b.Nanos, Currency: b.Currency})
}

// AddNanos returns x+y, or ErrOverflow.
func AddNanos(x, y int64) (int64, error) {
	s := x + y
	if (x > 0 && y > 0 && s < 0) || (x < 0 && y < 0 && s >= 0) {
		return 0, ErrOverflow
	}
	return s, nil
}

// SubNanos returns x-y, or ErrOverflow.
func SubNanos(x, y int64) (int64, error) {
	if y == math.MinInt64 {
		return 0, ErrOverflow
	}
	return AddNanos(x, -y)
}

// MulNanos returns x*y, or ErrOverflow.
func MulNanos(x, y int64) (int64, error) {
	if x == 0 || y == 0 {
		return 0, nil
	}
	neg := (x < 0) != (y < 0)
	ux, uy := abs(x), abs(y)
	hi, lo := bits.Mul64(ux, uy)
	if hi != 0 || lo > math.MaxInt64+uint64(boolToInt(neg)) {
		return 0, ErrOverflow
	}
	if neg {
		return int64(-lo), nil //nolint:gosec // checked above
	}
	return int64(lo), nil
}

func abs(x int64) uint64 {
	if x < 0 {
		return uint64(-(x + 1)) + 1
	}
	return uint64(x)
}

func boolToInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Parse reads a decimal string such as "12.5", "-0.0005" or "3" into an amount
// of c, exactly. More than nine decimal places is an error, not a rounding.
func Parse(s string, c Currency) (Amount, error) {
	n, err := ParseNanos(s)
	if err != nil {
		return Amount{}, err
	}
	return Amount{Nanos: n, Currency: c}, nil
}

// ParseNanos reads a decimal string into nano-units, exactly.
func ParseNanos(s string) (int64, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("money: parse %q: empty", orig)
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("money: parse %q: no digits", orig)
	}
	if len(frac) > ScaleDigits {
		return 0, fmt.Errorf("money: parse %q: more than %d decimal places", orig, ScaleDigits)
	}
	var u uint64
	for _, r := range intPart {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("money: parse %q: invalid character %q", orig, r)
		}
		hi, lo := bits.Mul64(u, 10)
		if hi != 0 {
			return 0, fmt.Errorf("money: parse %q: %w", orig, ErrOverflow)
		}
		var carry uint64
		u, carry = bits.Add64(lo, uint64(r-'0'), 0)
		if carry != 0 {
			return 0, fmt.Errorf("money: parse %q: %w", orig, ErrOverflow)
		}
	}
	hi, lo := bits.Mul64(u, Scale)
	if hi != 0 {
		return 0, fmt.Errorf("money: parse %q: %w", orig, ErrOverflow)
	}
	u = lo
	var f uint64
	for i := 0; i < ScaleDigits; i++ {
		f *= 10
		if i < len(frac) {
			r := frac[i]
			if r < '0' || r > '9' {
				return 0, fmt.Errorf("money: parse %q: invalid character %q", orig, r)
			}
			f += uint64(r - '0')
		}
	}
	u, carry := bits.Add64(u, f, 0)
	if carry != 0 || u > math.MaxInt64 {
		return 0, fmt.Errorf("money: parse %q: %w", orig, ErrOverflow)
	}
	if neg {
		return -int64(u), nil
	}
	return int64(u), nil
}

// FormatNanos writes n nano-units as a decimal string with trailing zeros of
// the fraction removed ("0.0005", "12", "-3.25").
func FormatNanos(n int64) string {
	neg := n < 0
	u := abs(n)
	ip, fp := u/Scale, u%Scale
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	fmt.Fprintf(&b, "%d", ip)
	if fp != 0 {
		fs := fmt.Sprintf("%09d", fp)
		b.WriteByte('.')
		b.WriteString(strings.TrimRight(fs, "0"))
	}
	return b.String()
}

// String formats a as "12.5 CNY".
func (a Amount) String() string { return FormatNanos(a.Nanos) + " " + string(a.Currency) }
