package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"baimo/internal/money"
)

// funcs are the template helpers. Each formats for people; none is used to
// compute money.
var funcs = template.FuncMap{
	"num":     formatInt,
	"money":   formatMoney,
	"exact":   money.FormatNanos,
	"ms":      formatMs,
	"pct":     formatPct,
	"add":     func(a, b int) int { return a + b },
	"symbol":  currencySymbol,
	"join":    strings.Join,
	"lower":   strings.ToLower,
	"inc":     func(i int) int { return i + 1 },
	"percent": func(part, whole int64) string { return formatPct(part, whole, 1) },
	"list":    func(xs ...any) []any { return xs },
	"dict":    dict,
}

// dict builds a map from key, value pairs, to pass several values to a
// template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict needs pairs")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict keys are strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// formatInt writes n with thousands separators.
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// currencySymbol returns ¥ for CNY, $ for USD, else the code and a space.
func currencySymbol(cur string) string {
	switch cur {
	case "CNY":
		return "¥"
	case "USD":
		return "$"
	case "":
		return ""
	}
	return cur + " "
}

// formatMoney shows nanos of a currency to four decimals, rounded half away
// from zero (the exact figure is in exports and the API), with the symbol.
func formatMoney(nanos int64, cur string) string {
	q, err := money.MulDiv(nanos, 1, 100_000) // to 1e-4
	if err != nil {
		return money.FormatNanos(nanos)
	}
	sign := ""
	if q < 0 {
		sign, q = "-", -q
	}
	return fmt.Sprintf("%s%s%s.%04d", sign, currencySymbol(cur), formatInt(q/10000), q%10000)
}

// formatMs shows a duration in milliseconds.
func formatMs(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return formatInt(d.Milliseconds()) + " ms"
}

// formatPct shows part/whole as a percentage with the given decimals, in
// integers; "" when whole is 0 (the caller shows "no data").
func formatPct(part, whole int64, decimals int) string {
	if whole == 0 {
		return ""
	}
	scale := int64(100)
	for i := 0; i < decimals; i++ {
		scale *= 10
	}
	q, err := money.MulDiv(part, scale, whole)
	if err != nil {
		return ""
	}
	unit := scale / 100
	if decimals == 0 {
		return strconv.FormatInt(q, 10) + "%"
	}
	return fmt.Sprintf("%d.%0*d%%", q/unit, decimals, q%unit)
}
