package ledger

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// maxStatementTransfers bounds the money movements a statement lists.
const maxStatementTransfers = 10000

// StatementLine is one model's usage in a statement: exact, then rounded to
// the minor unit so that the rounded lines add up to the rounded total.
type StatementLine struct {
	// Model is the model asked for; usage.UnknownModel for requests
	// refused before their model was read.
	Model    string `json:"model"`
	Requests int64  `json:"requests"`
	// Served, Refused and Failed count Requests by outcome (usage.Outcome):
	// only served requests cost anything.
	Served       int64  `json:"served"`
	Refused      int64  `json:"refused"`
	Failed       int64  `json:"failed"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	ExactNanos   int64  `json:"exact_nanos"`
	Rounded      string `json:"amount"` // decimal, minor-unit precision
	// Kinds breaks the line down by rule kind (input, cached_input, output,
	// reasoning, ...), exact, from the records' rated lines.
	Kinds []KindLine `json:"kinds,omitempty"`
	// ExchangeRates are the rates that converted the model's prices into
	// the statement's currency, as the rated lines name them.
	ExchangeRates []RateUsed `json:"exchange_rates,omitempty"`
}

// RateUsed is an exchange rate a statement line's usage was rated with.
type RateUsed struct {
	From   string `json:"from"` // the price's currency
	Rate   string `json:"rate"` // statement currency units per From unit
	Source string `json:"source,omitempty"`
}

// KindLine is one rule kind's part of a statement line.
type KindLine struct {
	Kind       string `json:"kind"`
	Quantity   int64  `json:"quantity"`
	ExactNanos int64  `json:"exact_nanos"`
}

// Statement is a tenant's bill for a period [From, To).
type Statement struct {
	TenantID   string          `json:"tenant_id"`
	Currency   money.Currency  `json:"currency"`
	From       time.Time       `json:"from"`
	To         time.Time       `json:"to"`
	Lines      []StatementLine `json:"lines"`
	ExactNanos int64           `json:"exact_total_nanos"`
	Total      string          `json:"total"` // rounded by money.RoundAll's rule
	// Money movements in the period other than usage, exact, by kind.
	Credits map[TransferKind]int64 `json:"credits_nanos"`
}

// Statement builds a tenant's statement for [from, to): usage by model with
// exact totals, rounded to the minor unit by the money package's one rule.
func (l *Ledger) Statement(ctx context.Context, tenantID string, from, to time.Time) (Statement, error) {
	tenantID = TenantFor(tenantID)
	if !from.Before(to) {
		return Statement{}, fmt.Errorf("statement: empty period: %w", ErrInvalid)
	}
	var st Statement
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		t, err := v.Tenant(ctx, tenantID)
		if err != nil {
			return err
		}
		lines, err := v.UsageLines(ctx, tenantID, from, to)
		if err != nil {
			return err
		}
		ts, err := v.TenantTransfers(ctx, tenantID, from, to, maxStatementTransfers)
		if err != nil {
			return err
		}
		st = Statement{TenantID: t.ID, Currency: t.Currency, From: from, To: to, Credits: map[TransferKind]int64{}}
		exact := make([]int64, 0, len(lines))
		for _, u := range lines {
			if u.Currency != t.Currency && u.CostNanos != 0 {
				return fmt.Errorf("usage of %s in %s on a %s account", u.Model, u.Currency, t.Currency)
			}
			// Several currencies "" and the tenant's merge into one model line.
			model := usage.ShownModel(u.Model)
			served := u.Requests - u.Refused - u.Failed
			if n := len(st.Lines); n > 0 && st.Lines[n-1].Model == model {
				l := &st.Lines[n-1]
				l.Requests += u.Requests
				l.Served += served
				l.Refused += u.Refused
				l.Failed += u.Failed
				l.InputTokens += u.Input
				l.OutputTokens += u.Output
				l.ExactNanos += u.CostNanos
				exact[n-1] += u.CostNanos
				continue
			}
			st.Lines = append(st.Lines, StatementLine{Model: model, Requests: u.Requests, Served: served, Refused: u.Refused,
				Failed: u.Failed, InputTokens: u.Input, OutputTokens: u.Output, ExactNanos: u.CostNanos})
			exact = append(exact, u.CostNanos)
		}
		for _, x := range exact {
			if st.ExactNanos, err = money.AddNanos(st.ExactNanos, x); err != nil {
				return err
			}
		}
		rounded := make([]int64, len(exact))
		if err := money.RoundAll(exact, t.Currency, rounded); err != nil {
			return err
		}
		for i := range st.Lines {
			st.Lines[i].Rounded = formatMinor(rounded[i], t.Currency)
		}
		if err := addKinds(ctx, v, &st, tenantID, from, to); err != nil {
			return err
		}
		total, err := money.RoundMinor(st.ExactNanos, t.Currency)
		if err != nil {
			return err
		}
		st.Total = formatMinor(total, t.Currency)
		for _, tr := range ts {
			switch tr.Kind {
			case KindTopUp, KindAdjust, KindRefund, KindRedeem:
				n := tr.Amount
				if tr.Debit == MainAccount(t.ID) {
					n = -n
				}
				st.Credits[tr.Kind] += n
			}
		}
		return nil
	})
	if err != nil {
		return Statement{}, fmt.Errorf("statement of %s: %w", tenantID, err)
	}
	return st, nil
}

// addKinds breaks each model line down by rule kind.
func addKinds(ctx context.Context, v Reports, st *Statement, tenantID string, from, to time.Time) error {
	index := map[string]int{}
	for i, l := range st.Lines {
		index[l.Model] = i
	}
	kinds := map[string]map[string]*KindLine{}
	rates := map[string]map[RateUsed]bool{}
	err := v.EachRatedLines(ctx, tenantID, from, to, func(model string, lines []byte) error {
		model = usage.ShownModel(model)
		if _, ok := index[model]; !ok {
			return nil
		}
		// The record's currency and version are not needed: kinds,
		// quantities, amounts, and the price currency of a line with an
		// exchange rate (which differs from the record's, so is stored).
		rl, err := price.ParseLines(lines, "", "")
		if err != nil {
			return fmt.Errorf("rated lines of a %s record: %w", model, err)
		}
		for _, r := range rl {
			m := kinds[model]
			if m == nil {
				m = map[string]*KindLine{}
				kinds[model] = m
			}
			name := r.Kind.String()
			k := m[name]
			if k == nil {
				k = &KindLine{Kind: name}
				m[name] = k
			}
			k.Quantity += r.Quantity
			if k.ExactNanos, err = money.AddNanos(k.ExactNanos, r.Amount.Nanos); err != nil {
				return err
			}
			if r.ExchangeRate.Den != 0 {
				if rates[model] == nil {
					rates[model] = map[RateUsed]bool{}
				}
				rates[model][RateUsed{From: string(r.Price.Currency), Rate: r.ExchangeRate.String(), Source: r.RateSource}] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for model, m := range kinds {
		line := &st.Lines[index[model]]
		for _, k := range m {
			line.Kinds = append(line.Kinds, *k)
		}
		sort.Slice(line.Kinds, func(a, b int) bool { return line.Kinds[a].Kind < line.Kinds[b].Kind })
	}
	for model, set := range rates {
		line := &st.Lines[index[model]]
		for r := range set {
			line.ExchangeRates = append(line.ExchangeRates, r)
		}
		sort.Slice(line.ExchangeRates, func(a, b int) bool {
			x, y := line.ExchangeRates[a], line.ExchangeRates[b]
			if x.From != y.From {
				return x.From < y.From
			}
			if x.Rate != y.Rate {
				return x.Rate < y.Rate
			}
			return x.Source < y.Source
		})
	}
	return nil
}

// formatMinor writes n (a whole number of minor units, in nanos) with exactly
// the currency's minor digits.
func formatMinor(n int64, c money.Currency) string {
	d := money.MinorDigits(c)
	u := money.MinorUnit(c)
	q := n / u
	neg := q < 0
	if neg {
		q = -q
	}
	s := strconv.FormatInt(q, 10)
	if d > 0 {
		for len(s) <= d {
			s = "0" + s
		}
		s = s[:len(s)-d] + "." + s[len(s)-d:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// WriteCSV writes the statement's lines and total as CSV. The columns
// served, refused and failed come last, so that readers of the first nine
// read on.
func (st Statement) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := [][]string{{"model", "kind", "quantity", "requests", "input_tokens", "output_tokens", "exact", "amount", "currency",
		"served", "refused", "failed"}}
	n := strconv.FormatInt
	for _, l := range st.Lines {
		rows = append(rows, []string{l.Model, "all", "", n(l.Requests, 10), n(l.InputTokens, 10), n(l.OutputTokens, 10),
			money.FormatNanos(l.ExactNanos), l.Rounded, string(st.Currency), n(l.Served, 10), n(l.Refused, 10), n(l.Failed, 10)})
		for _, k := range l.Kinds {
			rows = append(rows, []string{l.Model, k.Kind, n(k.Quantity, 10), "", "", "",
				money.FormatNanos(k.ExactNanos), "", string(st.Currency), "", "", ""})
		}
	}
	rows = append(rows, []string{"total", "", "", "", "", "", money.FormatNanos(st.ExactNanos), st.Total, string(st.Currency), "", "", ""})
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("statement csv: %w", err)
	}
	return nil
}
