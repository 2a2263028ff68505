package console

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"baimo/internal/money"
)

// The admin API's answers as the pages read them (the JSON field names are
// the API's; see httpapi).

// recordJSON is a record of GET /admin/usage.
type recordJSON struct {
	recordCore
	TenantID      string        `json:"tenant_id"`
	Channel       string        `json:"channel"`
	UpstreamModel string        `json:"upstream_model"`
	Attempts      []attemptJSON `json:"attempts"`
}

// recordCore is what a tenant sees of a record: no channel, upstream model
// or attempts (the operator's routing is not the tenant's business).
type recordCore struct {
	RequestID    string     `json:"request_id"`
	KeyID        string     `json:"key_id"`
	Endpoint     string     `json:"endpoint"`
	Model        string     `json:"model"`
	Stream       bool       `json:"stream"`
	Status       int        `json:"status"`
	Input        int64      `json:"input_tokens"`
	CachedInput  int64      `json:"cached_input_tokens"`
	CacheWrite5m int64      `json:"cache_write_5m_tokens"`
	CacheWrite1h int64      `json:"cache_write_1h_tokens"`
	Output       int64      `json:"output_tokens"`
	Reasoning    int64      `json:"reasoning_tokens"`
	Source       string     `json:"source"`
	Complete     bool       `json:"complete"`
	ErrorClass   string     `json:"error_class"`
	Start        time.Time  `json:"start"`
	TTFTms       float64    `json:"ttft_ms"`
	DurationMs   float64    `json:"duration_ms"`
	Cost         string     `json:"cost"`
	Currency     string     `json:"currency"`
	PriceVersion string     `json:"price_version"`
	Lines        []lineJSON `json:"lines"`
}

type attemptJSON struct {
	Channel    string `json:"channel"`
	Key        string `json:"key,omitempty"`
	Status     int    `json:"status"`
	ErrorClass string `json:"error_class"`
	DurationNs int64  `json:"duration_ns"`
}

// Duration is the attempt's duration.
func (a attemptJSON) Duration() time.Duration { return time.Duration(a.DurationNs) }

type lineJSON struct {
	Kind          string `json:"kind"`
	Quantity      int64  `json:"quantity"`
	Price         string `json:"price"`
	PriceCurrency string `json:"price_currency"`
	Per           int64  `json:"per"`
	Multiplier    string `json:"multiplier"`
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Version       string `json:"version"`
}

// CostNanos is the record's cost in nanos (0 when unrated).
func (r recordCore) CostNanos() int64 {
	n, _ := money.ParseNanos(r.Cost)
	return n
}

// TTFT is the time to first token, 0 when none.
func (r recordCore) TTFT() time.Duration { return time.Duration(r.TTFTms * float64(time.Millisecond)) }

// Duration is the request's duration.
func (r recordCore) Duration() time.Duration {
	return time.Duration(r.DurationMs * float64(time.Millisecond))
}

type recordList struct {
	Data       []recordJSON `json:"data"`
	NextCursor *string      `json:"next_cursor"`
	Totals     struct {
		Requests int64             `json:"requests"`
		Cost     map[string]string `json:"cost"`
	} `json:"totals"`
}

type keyJSON struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix"`
	Name      string     `json:"name"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
}

type tenantJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Currency    string    `json:"currency"`
	CreditLimit string    `json:"credit_limit"`
	CreatedAt   time.Time `json:"created_at"`
}

type balanceJSON struct {
	TenantID    string `json:"tenant_id"`
	Kind        string `json:"kind"`
	Currency    string `json:"currency"`
	CreditLimit string `json:"credit_limit"`
	Posted      string `json:"posted"`
	Pending     string `json:"pending"`
	Available   string `json:"available"`
	Debt        string `json:"debt"`
	Spendable   string `json:"spendable"`
	CreditUsed  string `json:"credit_used"`
	// AvailableNote is the admin API's reason for an available balance
	// below zero (null otherwise), passed on by the portal's API.
	AvailableNote *string `json:"available_note"`
}

// Negative reports whether the available balance is below zero: a page
// then says why (a postpaid tenant spending on credit).
func (b balanceJSON) Negative() bool { return strings.HasPrefix(b.Available, "-") }

type budgetJSON struct {
	Scope   string `json:"scope"`
	Subject string `json:"subject"`
	Period  string `json:"period"`
	Limit   string `json:"limit"`
	Alerts  []int  `json:"alerts"`
	Spent   string `json:"spent"`
	Pending string `json:"pending"`
}

// UsedPct is the share of the budget spent or held, in whole percent.
func (b *budgetJSON) UsedPct() int64 {
	l, _ := money.ParseNanos(b.Limit)
	s, _ := money.ParseNanos(b.Spent)
	p, _ := money.ParseNanos(b.Pending)
	if l <= 0 {
		return 0
	}
	v, err := money.MulDiv(s+p, 100, l)
	if err != nil {
		return 0
	}
	return v
}

type statementJSON struct {
	TenantID   string `json:"tenant_id"`
	Currency   string `json:"currency"`
	From       time.Time
	To         time.Time
	ExactNanos int64  `json:"exact_total_nanos"`
	Total      string `json:"total"`
	Lines      []struct {
		Model        string `json:"model"`
		Requests     int64  `json:"requests"`
		InputTokens  int64  `json:"input_tokens"`
		OutputTokens int64  `json:"output_tokens"`
		ExactNanos   int64  `json:"exact_nanos"`
		Amount       string `json:"amount"`
		Kinds        []struct {
			Kind       string `json:"kind"`
			Quantity   int64  `json:"quantity"`
			ExactNanos int64  `json:"exact_nanos"`
		} `json:"kinds"`
	} `json:"lines"`
	Credits map[string]int64 `json:"credits_nanos"`
}

// CreditList is the statement's money movements in a stable order.
func (s *statementJSON) CreditList() []kindAmount {
	out := make([]kindAmount, 0, len(s.Credits))
	for k, n := range s.Credits {
		out = append(out, kindAmount{Kind: k, Nanos: n})
	}
	slices.SortFunc(out, func(a, b kindAmount) int {
		if a.Kind < b.Kind {
			return -1
		}
		return 1
	})
	return out
}

type kindAmount struct {
	Kind  string
	Nanos int64
}

// costItem is an amount in one currency.
type costItem struct {
	Currency string
	Nanos    int64
}

// Costs returns the sums' costs, one per currency, sorted.
func (s sumsView) Costs() []costItem {
	out := make([]costItem, 0, len(s.Cost))
	for cur, v := range s.Cost {
		n, _ := money.ParseNanos(v)
		out = append(out, costItem{cur, n})
	}
	slices.SortFunc(out, func(a, b costItem) int {
		if a.Currency < b.Currency {
			return -1
		}
		return 1
	})
	return out
}

// CostNanos is the cost in one currency.
func (s sumsView) CostNanos(cur string) int64 {
	n, _ := money.ParseNanos(s.Cost[cur])
	return n
}

// ErrorRate is the share of requests that failed, "" without requests.
func (s sumsView) ErrorRate() string { return formatPct(s.Errors, s.Requests, 1) }

// Tokens is input plus output.
func (s sumsView) Tokens() int64 { return s.Input + s.Output }

// TTFT50 and TTFT95 show the percentiles, "" when there is no data.
func (s sumsView) TTFT50() string { return msPtr(s.TTFTp50ms) }

// TTFT95 shows the 95th percentile of the time to first token.
func (s sumsView) TTFT95() string { return msPtr(s.TTFTp95ms) }

func msPtr(p *int64) string {
	if p == nil {
		return ""
	}
	return "≤ " + formatInt(*p) + " ms"
}

// chart is what console.js draws with uPlot: x values in Unix seconds and
// series whose nil values are "no data" (a gap), apart from 0.
type chart struct {
	ID     string        `json:"id"`
	Title  string        `json:"title"`
	Kind   string        `json:"kind"` // "line", "bars", "step"
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
	Unit   string        `json:"unit,omitempty"`
	Stack  bool          `json:"stack,omitempty"`
}

type chartSeries struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"`
}

func fptr(f float64) *float64 { return &f }

// nanosFloat converts nanos to units for a chart axis (display only).
func nanosFloat(n int64) float64 { return float64(n) / money.Scale }

func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}
