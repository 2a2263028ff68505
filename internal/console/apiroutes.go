package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/money"
	"baimo/internal/price"
)

// apiRoutes registers the admin JSON routes the console added (README,
// "Web console"):
//
//	GET /admin/reports/usage     usage by group and bucket, top N with "other"; format=csv for a file
//	GET /admin/prices/compare    a workload rated on every chat model, cheapest first
//	GET /admin/prices/buys       what an amount buys on a model
//	GET, POST /admin/channels; GET, PUT, DELETE /admin/channels/{name};
//	POST /admin/channels/{name}/disable and /enable
func (c *Console) apiRoutes(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc, writeErr func(http.ResponseWriter, *apierr.Error)) {
	mux.HandleFunc("GET /admin/reports/usage", admin(func(w http.ResponseWriter, r *http.Request) {
		c.serveReport(w, r, r.URL.Query(), writeErr)
	}))
	mux.HandleFunc("GET /admin/prices/compare", admin(func(w http.ResponseWriter, r *http.Request) {
		v, aerr := c.compare(r)
		if aerr != nil {
			writeErr(w, aerr)
			return
		}
		writeJSON(w, v)
	}))
	if c.opt.Channels != nil {
		c.channelAPIRoutes(mux, admin, writeErr)
	}
	if c.opt.Logins != nil {
		c.loginAPIRoutes(mux, admin, writeErr)
	}
	mux.HandleFunc("GET /admin/prices/buys", admin(func(w http.ResponseWriter, r *http.Request) {
		v, aerr := c.buys(r)
		if aerr != nil {
			writeErr(w, aerr)
			return
		}
		writeJSON(w, v)
	}))
}

// serveReport answers a usage report for the parameters q (the caller has
// fixed the tenant where it must).
func (c *Console) serveReport(w http.ResponseWriter, r *http.Request, q map[string][]string, writeErr func(http.ResponseWriter, *apierr.Error)) {
	if c.opt.Reports == nil {
		writeErr(w, apierr.NotFound("This store does not answer usage reports."))
		return
	}
	rr, err := c.parseReport(q, c.opt.Clock.Now())
	if err != nil {
		writeErr(w, apierr.BadRequest("", "%v", err))
		return
	}
	rows, err := c.opt.Reports.Report(r.Context(), rr.Query)
	if err != nil {
		c.logError(r, "report", err)
		writeErr(w, apierr.Internal(err))
		return
	}
	v := c.buildReport(rr, rows)
	if (map[string][]string)(q)["format"] != nil && q["format"][0] == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="usage-`+rr.Query.From.In(rr.Query.Zone).Format("20060102")+
			"-"+rr.Query.To.In(rr.Query.Zone).Format("20060102")+`.csv"`)
		if err := writeReportCSV(w, v, rr.Query.Zone); err != nil {
			c.logError(r, "report csv", err)
		}
		return
	}
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"message":"encoding failed","type":"api_error","param":null,"code":null}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// countParam reads a token count such as 1000000, 200K or 1.5M.
func countParam(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	mul := int64(1)
	switch {
	case strings.HasSuffix(s, "K") || strings.HasSuffix(s, "k"):
		mul, s = 1_000, s[:len(s)-1]
	case strings.HasSuffix(s, "M") || strings.HasSuffix(s, "m"):
		mul, s = 1_000_000, s[:len(s)-1]
	}
	n, err := money.ParseNanos(s) // a decimal with up to nine places, exactly
	if err != nil || n < 0 {
		return 0, false
	}
	v, err := money.MulDiv(n, mul, money.Scale)
	if err != nil || v > 1e12 {
		return 0, false
	}
	return v, true
}

// compareView is the answer of GET /admin/prices/compare.
type compareView struct {
	Object   string         `json:"object"`
	At       time.Time      `json:"at"`
	Currency string         `json:"currency"`
	Input    int64          `json:"input_tokens"`
	Cached   int64          `json:"cached_input_tokens"`
	Output   int64          `json:"output_tokens"`
	Data     []comparedView `json:"data"`
	Skipped  []skippedView  `json:"skipped"`
}

type comparedView struct {
	Model      string `json:"model"`
	Vendor     string `json:"vendor"`
	Cost       string `json:"cost"`
	PerMillion string `json:"per_million"`
	Version    string `json:"price_version"`
	costNanos  int64
}

type skippedView struct {
	Model  string `json:"model"`
	Reason string `json:"reason"`
}

func (c *Console) compare(r *http.Request) (compareView, *apierr.Error) {
	q := r.URL.Query()
	v := compareView{Object: "price_comparison", Data: []comparedView{}, Skipped: []skippedView{}}
	if c.opt.Catalog == nil {
		return v, apierr.NotFound("No price catalog.")
	}
	var ok1, ok2, ok3 bool
	v.Input, ok1 = countParam(q.Get("input"))
	v.Cached, ok2 = countParam(q.Get("cached"))
	v.Output, ok3 = countParam(q.Get("output"))
	if !ok1 || !ok2 || !ok3 {
		return v, apierr.BadRequest("input", "input, cached and output are token counts such as 1000000, 200K or 1.5M.")
	}
	if v.Input+v.Output == 0 || v.Cached > v.Input {
		return v, apierr.BadRequest("input", "Give input or output tokens; cached tokens are part of the input.")
	}
	at, aerr := c.atParam(q.Get("at"))
	if aerr != nil {
		return v, aerr
	}
	cur := c.currencyParam(q.Get("currency"))
	v.At, v.Currency = at, string(cur)
	ranked, skipped, err := c.opt.Catalog.Compare(price.CompareOptions{Workload: price.Workload{Input: v.Input,
		Cached: v.Cached, Output: v.Output}, At: at, Currency: cur, Rates: c.opt.Rates, Vendor: q.Get("vendor"),
		Batch: q.Get("batch") == "true"})
	if err != nil {
		return v, apierr.BadRequest("", "%v", err)
	}
	for _, rk := range ranked {
		v.Data = append(v.Data, comparedView{Model: rk.Model.Name, Vendor: rk.Model.Vendor, Cost: money.FormatNanos(rk.Rated.Total.Nanos),
			PerMillion: money.FormatNanos(rk.PerMillion.Nanos), Version: rk.Rated.Version, costNanos: rk.Rated.Total.Nanos})
	}
	for _, s := range skipped {
		v.Skipped = append(v.Skipped, skippedView{Model: s.Model, Reason: s.Err.Error()})
	}
	return v, nil
}

// buysView is the answer of GET /admin/prices/buys.
type buysView struct {
	Object        string `json:"object"`
	Model         string `json:"model"`
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Version       string `json:"price_version"`
	Period        string `json:"period,omitempty"`
	InputTokens   int64  `json:"input_tokens"`
	OutputTokens  int64  `json:"output_tokens"`
	InputZhChars  int64  `json:"input_zh_chars,omitempty"`
	InputEnWords  int64  `json:"input_en_words,omitempty"`
	OutputZhChars int64  `json:"output_zh_chars,omitempty"`
	OutputEnWords int64  `json:"output_en_words,omitempty"`
}

func (c *Console) buys(r *http.Request) (buysView, *apierr.Error) {
	q := r.URL.Query()
	v := buysView{Object: "price_buys"}
	if c.opt.Catalog == nil {
		return v, apierr.NotFound("No price catalog.")
	}
	amt := q.Get("amount")
	if amt == "" {
		amt = "1"
	}
	n, err := money.ParseNanos(amt)
	if err != nil || n <= 0 {
		return v, apierr.BadRequest("amount", "amount must be a positive decimal such as 1 or 0.5.")
	}
	at, aerr := c.atParam(q.Get("at"))
	if aerr != nil {
		return v, aerr
	}
	cur := c.currencyParam(q.Get("currency"))
	b, err := c.opt.Catalog.Buys(q.Get("model"), money.New(n, cur), at, c.opt.Rates)
	if err != nil {
		return v, apierr.BadRequest("model", "%v", err)
	}
	return buysView{Object: "price_buys", Model: b.Model, Amount: money.FormatNanos(n), Currency: string(cur),
		Version: b.Version, Period: b.Period, InputTokens: b.InputTokens, OutputTokens: b.OutputTokens,
		InputZhChars: b.InputZhChars, InputEnWords: b.InputEnWords, OutputZhChars: b.OutputZhChars,
		OutputEnWords: b.OutputEnWords}, nil
}

func (c *Console) atParam(s string) (time.Time, *apierr.Error) {
	if s == "" {
		return c.opt.Clock.Now(), nil
	}
	t, err := parseWhen(s, c.opt.Zone)
	if err != nil {
		return t, apierr.BadRequest("at", "at: %v", err)
	}
	return t, nil
}

func (c *Console) currencyParam(s string) money.Currency {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) == 3 {
		return money.Currency(s)
	}
	if c.opt.Currency != "" {
		return c.opt.Currency
	}
	return "CNY"
}
