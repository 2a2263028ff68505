package price

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"baimo/internal/money"
)

// The compact stored form of rated lines (usage.Record.Lines): one line per
// ';', its fields separated by ',':
//
//	kind,quantity,price,per,multiplier,amount[,price currency,amount currency,version,exchange rate,rate source]
//
// kind is the Kind's number; price and amount are exact decimals
// (money.FormatNanos); per is left empty when it is 1,000,000 and the
// multiplier when it is 1. The trailing fields are left out when they say
// what the record says already: a currency equal to the record's, the
// record's price version, no exchange rate. Text fields escape '%', ',' and
// ';' as %25, %2C and %3B. For example, 2,627 input and 666 output tokens of
// deepseek-chat at its record's version and currency:
//
//	0,2627,1.5,,,0.0039405;4,666,4.5,,,0.002997
//
// Records written before this form hold a JSON array of lines (Line's
// MarshalJSON), which ParseLines reads too: a JSON array starts with '[',
// this form with a digit, and a later form will start with neither.

// MaxLines bounds the lines ParseLines reads from one record.
const MaxLines = 64

// AppendLines appends lines in their compact stored form to dst; currency
// and version are the record's (its Currency and PriceVersion).
func AppendLines(dst []byte, lines []Line, currency money.Currency, version string) []byte {
	for i, l := range lines {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = strconv.AppendUint(dst, uint64(l.Kind), 10)
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, l.Quantity, 10)
		dst = append(dst, ',')
		dst = append(dst, money.FormatNanos(l.Price.Nanos)...)
		dst = append(dst, ',')
		if l.Per != defaultPer {
			dst = strconv.AppendInt(dst, l.Per, 10)
		}
		dst = append(dst, ',')
		if l.Multiplier != money.One && l.Multiplier != (money.Ratio{}) {
			dst = append(dst, l.Multiplier.String()...)
		}
		dst = append(dst, ',')
		dst = append(dst, money.FormatNanos(l.Amount.Nanos)...)
		tail := [5]string{}
		if l.Price.Currency != currency {
			tail[0] = string(l.Price.Currency)
		}
		if l.Amount.Currency != currency {
			tail[1] = string(l.Amount.Currency)
		}
		if l.Version != version {
			tail[2] = l.Version
		}
		if l.ExchangeRate.Den != 0 {
			tail[3] = l.ExchangeRate.String()
		}
		tail[4] = l.RateSource
		n := len(tail)
		for n > 0 && tail[n-1] == "" {
			n--
		}
		for _, f := range tail[:n] {
			dst = append(dst, ',')
			dst = appendEscaped(dst, f)
		}
	}
	return dst
}

// defaultPer is the Per left out of the compact form.
const defaultPer = 1_000_000

var lineEscaper = strings.NewReplacer("%", "%25", ",", "%2C", ";", "%3B")

func appendEscaped(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, "%,;") {
		return append(dst, s...)
	}
	return append(dst, lineEscaper.Replace(s)...)
}

var lineUnescaper = strings.NewReplacer("%25", "%", "%2C", ",", "%3B", ";")

// ErrLines means stored rated lines could not be read.
var ErrLines = errors.New("price: unreadable rated lines")

// ParseLines reads rated lines as a usage record stores them (the compact
// form of AppendLines, or the JSON array of earlier releases); currency and
// version are the record's, for the fields the compact form leaves out.
// Empty input is no lines.
func ParseLines(b []byte, currency money.Currency, version string) ([]Line, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return nil, nil
	case b[0] == '[':
		var lines []Line
		if err := json.Unmarshal(b, &lines); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLines, err)
		}
		if len(lines) > MaxLines {
			return nil, fmt.Errorf("%w: %d lines", ErrLines, len(lines))
		}
		return lines, nil
	case b[0] < '0' || b[0] > '9':
		return nil, fmt.Errorf("%w: unknown form %q", ErrLines, b[:1])
	}
	parts := strings.Split(string(b), ";")
	if len(parts) > MaxLines {
		return nil, fmt.Errorf("%w: %d lines", ErrLines, len(parts))
	}
	out := make([]Line, 0, len(parts))
	for _, p := range parts {
		l, err := parseLine(p, currency, version)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrLines, p, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func parseLine(s string, currency money.Currency, version string) (Line, error) {
	f := strings.Split(s, ",")
	if len(f) < 6 || len(f) > 11 {
		return Line{}, fmt.Errorf("%d fields", len(f))
	}
	for len(f) < 11 {
		f = append(f, "")
	}
	k, err := strconv.ParseUint(f[0], 10, 8)
	if err != nil || Kind(k) >= numKinds {
		return Line{}, fmt.Errorf("kind %q", f[0])
	}
	l := Line{Kind: Kind(k), Per: defaultPer, Multiplier: money.One, Version: version}
	if l.Quantity, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return Line{}, fmt.Errorf("quantity %q", f[1])
	}
	p, err := money.ParseNanos(f[2])
	if err != nil {
		return Line{}, err
	}
	if f[3] != "" {
		if l.Per, err = strconv.ParseInt(f[3], 10, 64); err != nil || l.Per <= 0 {
			return Line{}, fmt.Errorf("per %q", f[3])
		}
	}
	if f[4] != "" {
		if l.Multiplier, err = parseMultiplier(f[4]); err != nil {
			return Line{}, err
		}
	}
	a, err := money.ParseNanos(f[5])
	if err != nil {
		return Line{}, err
	}
	text := func(s, def string) string {
		if s == "" {
			return def
		}
		if strings.Contains(s, "%") {
			return lineUnescaper.Replace(s)
		}
		return s
	}
	l.Price = money.New(p, money.Currency(text(f[6], string(currency))))
	l.Amount = money.New(a, money.Currency(text(f[7], string(currency))))
	l.Version = text(f[8], version)
	if f[9] != "" {
		if l.ExchangeRate, err = parseMultiplier(text(f[9], "")); err != nil {
			return Line{}, err
		}
	}
	l.RateSource = text(f[10], "")
	return l, nil
}
