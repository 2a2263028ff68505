package price_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"baimo/internal/money"
	"baimo/internal/price"
)

// checkStoredForms checks that r's lines read back the same from both the
// forms a usage record may hold: compact and (earlier releases) JSON.
func checkStoredForms(t *testing.T, r price.Rated) {
	t.Helper()
	compact := price.AppendLines(nil, r.Lines, r.Currency, r.Version)
	got, err := price.ParseLines(compact, r.Currency, r.Version)
	if err != nil || !sameLines(got, r.Lines) {
		t.Errorf("compact %q reads back as %+v, %v; want %+v", compact, got, err, r.Lines)
	}
	js, err := json.Marshal(r.Lines)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := price.ParseLines(js, r.Currency, r.Version); err != nil || !sameLines(got, r.Lines) {
		t.Errorf("JSON %s reads back as %+v, %v", js, got, err)
	}
	if len(r.Lines) > 0 && len(compact)*3 > len(js) {
		t.Errorf("compact form of %d bytes is not a third of the JSON's %d: %q", len(compact), len(js), compact)
	}
}

// sameLines compares lines as stored (a zero multiplier is stored as 1).
func sameLines(a, b []price.Line) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Multiplier == (money.Ratio{}) {
			x.Multiplier = money.One
		}
		if y.Multiplier == (money.Ratio{}) {
			y.Multiplier = money.One
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func TestLinesCompact(t *testing.T) {
	half, _ := money.NewRatio(1, 2)
	fx, _ := money.NewRatio(723, 100)
	lines := []price.Line{
		{Kind: price.KindInput, Quantity: 2627, Price: money.New(1_500_000_000, "CNY"), Per: 1_000_000, Multiplier: money.One,
			Amount: money.New(3_940_500, "CNY"), Version: "deepseek-chat/CNY/2026-08-16T16:00:00Z"},
		{Kind: price.KindSearchCall, Quantity: 3, Price: money.New(10_000_000, "USD"), Per: 1000, Multiplier: half,
			Amount: money.New(108_450, "CNY"), Version: "odd,version;100%", ExchangeRate: fx, RateSource: "config; 2026"},
	}
	b := price.AppendLines(nil, lines, "CNY", "deepseek-chat/CNY/2026-08-16T16:00:00Z")
	want := `0,2627,1.5,,,0.0039405;9,3,0.01,1000,0.5,0.00010845,USD,,odd%2Cversion%3B100%25,7.23,config%3B 2026`
	if string(b) != want {
		t.Errorf("AppendLines = %s\nwant          %s", b, want)
	}
	got, err := price.ParseLines(b, "CNY", "deepseek-chat/CNY/2026-08-16T16:00:00Z")
	if err != nil || !sameLines(got, lines) {
		t.Errorf("ParseLines = %+v, %v", got, err)
	}
	if got, err := price.ParseLines(nil, "CNY", "v"); err != nil || got != nil {
		t.Errorf("ParseLines(empty) = %v, %v", got, err)
	}
	for _, bad := range []string{"x", "0,1,2", "99,1,1,,,1", "0,a,1,,,1", "0,1,1,0,,1", "0,1,1,,x,1", "{}", "[{", "0,1,1,,,1" + strings.Repeat(";0,1,1,,,1", price.MaxLines)} {
		if _, err := price.ParseLines([]byte(bad), "CNY", "v"); err == nil {
			t.Errorf("ParseLines(%.40q) succeeded", bad)
		}
	}
}

// TestLinesBounds checks the edges of what ParseLines reads: up to MaxLines
// lines in either stored form, every kind from the first to the last and
// none after it, and a compact record that starts with any digit.
func TestLinesBounds(t *testing.T) {
	compact := func(n int, line string) string { return strings.TrimSuffix(strings.Repeat(line+";", n), ";") }
	jsonOf := func(n int) string {
		l := price.Line{Kind: price.KindInput, Quantity: 1, Price: money.New(1e9, "USD"), Per: 1_000_000, Multiplier: money.One,
			Amount: money.New(1000, "USD"), Version: "v"}
		b, err := json.Marshal(slices.Repeat([]price.Line{l}, n))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	last := fmt.Sprint(int(price.KindSearchCall))
	tests := []struct {
		name      string
		stored    string
		wantLines int // -1 for an error
		wantKind  price.Kind
	}{
		{"compact at MaxLines", compact(price.MaxLines, "0,1,1,,,0.000001"), price.MaxLines, price.KindInput},
		{"compact over MaxLines", compact(price.MaxLines+1, "0,1,1,,,0.000001"), -1, 0},
		{"JSON at MaxLines", jsonOf(price.MaxLines), price.MaxLines, price.KindInput},
		{"JSON over MaxLines", jsonOf(price.MaxLines + 1), -1, 0},
		{"the first kind", "0,3,0.01,1000,,0.00003", 1, price.KindInput},
		{"the last kind first", last + ",3,0.01,1000,,0.00003", 1, price.KindSearchCall},
		{"the last kind after another", "0,1,1,,,0.000001;" + last + ",3,0.01,1000,,0.00003", 2, price.KindInput},
		{"a kind after the last", fmt.Sprint(int(price.KindSearchCall)+1) + ",3,0.01,1000,,0.00003", -1, 0},
		{"a kind after the last, second", "0,1,1,,,0.000001;" + fmt.Sprint(int(price.KindSearchCall)+1) + ",3,0.01,1000,,0.00003", -1, 0},
		{"a character before the digits", "/,1,1,,,1", -1, 0},
		{"a character after the digits", ":,1,1,,,1", -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := price.ParseLines([]byte(tc.stored), "USD", "v")
			if tc.wantLines < 0 {
				if err == nil || !errors.Is(err, price.ErrLines) {
					t.Fatalf("ParseLines(%.60q) = %d lines, %v; want ErrLines", tc.stored, len(got), err)
				}
				return
			}
			if err != nil || len(got) != tc.wantLines || got[0].Kind != tc.wantKind {
				t.Fatalf("ParseLines(%.60q) = %+v, %v; want %d lines of kind %v first", tc.stored, got, err, tc.wantLines, tc.wantKind)
			}
			// What reads back is stored again in the same compact form.
			if again := price.AppendLines(nil, got, "USD", "v"); !strings.HasPrefix(tc.stored, "[") && string(again) != tc.stored {
				t.Errorf("stored again as %.60q", again)
			}
		})
	}
}
