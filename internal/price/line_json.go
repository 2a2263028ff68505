package price

import (
	"encoding/json"
	"fmt"

	"baimo/internal/money"
)

// lineJSON is the stored form of a Line (usage.Record.Lines holds a JSON
// array of these). Money is written as decimal strings, never floats.
type lineJSON struct {
	Kind           Kind   `json:"kind"`
	Quantity       int64  `json:"quantity"`
	Price          string `json:"price"`
	PriceCurrency  string `json:"price_currency"`
	Per            int64  `json:"per"`
	Multiplier     string `json:"multiplier"`
	Amount         string `json:"amount"`
	AmountCurrency string `json:"currency"`
	Version        string `json:"version"`
	// ExchangeRate and RateSource name the rate that converted the price's
	// currency into the account's; omitted when they are the same.
	ExchangeRate string `json:"exchange_rate,omitempty"`
	RateSource   string `json:"rate_source,omitempty"`
}

// MarshalJSON writes l with its amounts as decimal strings.
func (l Line) MarshalJSON() ([]byte, error) {
	j := lineJSON{Kind: l.Kind, Quantity: l.Quantity, Price: money.FormatNanos(l.Price.Nanos),
		PriceCurrency: string(l.Price.Currency), Per: l.Per, Multiplier: l.Multiplier.String(),
		Amount: money.FormatNanos(l.Amount.Nanos), AmountCurrency: string(l.Amount.Currency), Version: l.Version,
		RateSource: l.RateSource}
	if l.ExchangeRate.Den != 0 {
		j.ExchangeRate = l.ExchangeRate.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a line written by MarshalJSON.
func (l *Line) UnmarshalJSON(b []byte) error {
	var j lineJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	p, err := money.ParseNanos(j.Price)
	if err != nil {
		return fmt.Errorf("line price: %w", err)
	}
	a, err := money.ParseNanos(j.Amount)
	if err != nil {
		return fmt.Errorf("line amount: %w", err)
	}
	m, err := parseMultiplier(j.Multiplier)
	if err != nil {
		return fmt.Errorf("line multiplier: %w", err)
	}
	*l = Line{Kind: j.Kind, Quantity: j.Quantity, Price: money.New(p, money.Currency(j.PriceCurrency)), Per: j.Per,
		Multiplier: m, Amount: money.New(a, money.Currency(j.AmountCurrency)), Version: j.Version, RateSource: j.RateSource}
	if j.ExchangeRate != "" {
		if l.ExchangeRate, err = parseMultiplier(j.ExchangeRate); err != nil {
			return fmt.Errorf("line exchange rate: %w", err)
		}
	}
	return nil
}

// parseMultiplier reads money.Ratio.String output: a decimal or "num/den".
func parseMultiplier(s string) (money.Ratio, error) {
	var n, d int64
	if _, err := fmt.Sscanf(s, "%d/%d", &n, &d); err == nil {
		return money.NewRatio(n, d)
	}
	return money.ParseRatio(s)
}
