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
}

// MarshalJSON writes l with its amounts as decimal strings.
func (l Line) MarshalJSON() ([]byte, error) {
	return json.Marshal(lineJSON{Kind: l.Kind, Quantity: l.Quantity, Price: money.FormatNanos(l.Price.Nanos),
		PriceCurrency: string(l.Price.Currency), Per: l.Per, Multiplier: l.Multiplier.String(),
		Amount: money.FormatNanos(l.Amount.Nanos), AmountCurrency: string(l.Amount.Currency), Version: l.Version})
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
		Multiplier: m, Amount: money.New(a, money.Currency(j.AmountCurrency)), Version: j.Version}
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
