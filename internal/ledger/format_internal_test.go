package ledger

import (
	"testing"

	"baimo/internal/money"
)

// TestFormatMinor: a whole number of minor units is written with exactly
// the currency's minor digits, a negative one with its sign in front.
func TestFormatMinor(t *testing.T) {
	fen := money.MinorUnit(money.CNY)
	for _, tc := range []struct {
		n    int64
		c    money.Currency
		want string
	}{
		{0, money.CNY, "0.00"},
		{5 * fen, money.CNY, "0.05"},
		{1234 * fen, money.CNY, "12.34"},
		{-5 * fen, money.CNY, "-0.05"},
		{-1234 * fen, money.CNY, "-12.34"},
		{7 * money.Scale, "JPY", "7"},
		{-7 * money.Scale, "JPY", "-7"},
	} {
		if got := formatMinor(tc.n, tc.c); got != tc.want {
			t.Errorf("formatMinor(%d, %s) = %q, want %q", tc.n, tc.c, got, tc.want)
		}
	}
}
