package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"baimo/internal/money"
	"baimo/internal/price"
)

func (c *Console) priceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/prices", c.requireAdmin(c.pricesPage))
	mux.HandleFunc("GET /ui/prices/model/{model...}", c.requireAdmin(c.priceModel))
	mux.HandleFunc("GET /ui/prices/compare", c.requireAdmin(c.priceCompare))
	mux.HandleFunc("GET /ui/prices/buys", c.requireAdmin(c.priceBuys))
	mux.HandleFunc("GET /ui/prices/versions", c.requireAdmin(c.priceVersions))
	mux.HandleFunc("GET /ui/audit", c.requireAdmin(c.auditPage))
}

// priceRow is one model with its prices in force, per million tokens.
type priceRow struct {
	Model    price.ModelView
	Version  price.VersionView
	Input    string // per 1M tokens, "" when not priced
	Cached   string
	Output   string
	Versions int
}

type pricesData struct {
	Vendor  string
	Search  string
	Vendors []string
	Rows    []priceRow
}

// perMillion shows a price spec per million units, exactly, or "".
func perMillion(p price.PriceSpec, ok bool) string {
	if !ok || p.Price == "" {
		return ""
	}
	n, err := money.ParseNanos(p.Price)
	if err != nil {
		return p.Price
	}
	per := p.Per
	if per <= 0 {
		per = 1_000_000
	}
	v, err := money.MulDiv(n, 1_000_000, per)
	if err != nil {
		return p.Price
	}
	return money.FormatNanos(v)
}

func (c *Console) pricesPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "prices", "nav_prices", nil)
	q := r.URL.Query()
	d := &pricesData{Vendor: q.Get("vendor"), Search: strings.TrimSpace(q.Get("q"))}
	p.Data = d
	var now, hist price.View
	if e := c.call(r, "GET", "/v1/prices", nil, &now); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	if e := c.call(r, "GET", "/v1/prices?history=1", nil, &hist); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	count := map[string]int{}
	for _, m := range hist.Models {
		count[m.Name] = len(m.Versions)
	}
	vendors := map[string]bool{}
	for _, m := range now.Models {
		vendors[m.Vendor] = true
		if (d.Vendor != "" && m.Vendor != d.Vendor) ||
			(d.Search != "" && !strings.Contains(strings.ToLower(m.Name+" "+m.Title), strings.ToLower(d.Search))) {
			continue
		}
		for _, v := range m.Versions {
			in, okIn := v.Prices["input"]
			ca, okCa := v.Prices["cached_input"]
			out, okOut := v.Prices["output"]
			d.Rows = append(d.Rows, priceRow{Model: m, Version: v, Input: perMillion(in, okIn), Cached: perMillion(ca, okCa),
				Output: perMillion(out, okOut), Versions: count[m.Name]})
		}
	}
	for v := range vendors {
		d.Vendors = append(d.Vendors, v)
	}
	slices.Sort(d.Vendors)
	c.write(w, r, http.StatusOK, p)
}

type priceModelData struct {
	Model  price.ModelView
	Charts []chart
	Rows   []priceRow
}

func (c *Console) priceModel(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "price", "price_history", nil)
	name := r.PathValue("model")
	var hist price.View
	if e := c.call(r, "GET", "/v1/prices?history=1", nil, &hist); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	i := slices.IndexFunc(hist.Models, func(m price.ModelView) bool { return m.Name == name })
	if i < 0 {
		c.renderError(w, r, http.StatusNotFound, "err_no_model")
		return
	}
	m := hist.Models[i]
	d := &priceModelData{Model: m}
	for _, v := range m.Versions {
		in, okIn := v.Prices["input"]
		ca, okCa := v.Prices["cached_input"]
		out, okOut := v.Prices["output"]
		d.Rows = append(d.Rows, priceRow{Model: m, Version: v, Input: perMillion(in, okIn), Cached: perMillion(ca, okCa),
			Output: perMillion(out, okOut)})
	}
	d.Charts = priceCharts(p, d.Rows)
	p.Data = d
	c.write(w, r, http.StatusOK, p)
}

// priceCharts draws, per currency, the input, cached and output prices per
// million tokens as steps: each version holds until the next one, the last
// until now.
func priceCharts(p *page, rows []priceRow) []chart {
	byCur := map[money.Currency][]priceRow{}
	var curs []money.Currency
	for _, r := range rows {
		if byCur[r.Version.Currency] == nil {
			curs = append(curs, r.Version.Currency)
		}
		byCur[r.Version.Currency] = append(byCur[r.Version.Currency], r)
	}
	var out []chart
	for _, cur := range curs {
		rs := byCur[cur]
		ch := chart{ID: "chart-price-" + strings.ToLower(string(cur)), Title: p.T("chart_price", string(cur)), Kind: "step",
			Unit: currencySymbol(string(cur))}
		val := func(s string, free bool) *float64 {
			if free {
				return fptr(0)
			}
			if s == "" {
				return nil
			}
			n, err := money.ParseNanos(s)
			if err != nil {
				return nil
			}
			return fptr(nanosFloat(n))
		}
		in, ca, o := []*float64{}, []*float64{}, []*float64{}
		for _, r := range rs {
			ch.X = append(ch.X, r.Version.EffectiveFrom.Unix())
			in = append(in, val(r.Input, r.Version.Free))
			ca = append(ca, val(r.Cached, r.Version.Free))
			o = append(o, val(r.Output, r.Version.Free))
		}
		// Extend the last step to now (or to its end).
		end := p.Now
		if last := rs[len(rs)-1].Version.EffectiveTo; last != nil {
			end = *last
		}
		if end.Unix() > ch.X[len(ch.X)-1] {
			ch.X = append(ch.X, end.Unix())
			in, ca, o = append(in, in[len(in)-1]), append(ca, ca[len(ca)-1]), append(o, o[len(o)-1])
		}
		ch.Series = []chartSeries{{p.T("price_input"), in}, {p.T("price_cached"), ca}, {p.T("price_output"), o}}
		out = append(out, ch)
	}
	return out
}

type compareData struct {
	Input, Cached, Output, Currency, Vendor, At string
	Result                                      *compareView
}

func (c *Console) priceCompare(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "compare", "nav_compare", nil)
	q := r.URL.Query()
	d := &compareData{Input: q.Get("input"), Cached: q.Get("cached"), Output: q.Get("output"), Currency: q.Get("currency"),
		Vendor: q.Get("vendor"), At: q.Get("at")}
	if d.Input == "" && d.Output == "" {
		d.Input, d.Output = "1M", "200K"
	}
	if d.Currency == "" {
		d.Currency = c.mainCurrency()
	}
	p.Data = d
	api := url.Values{"input": {d.Input}, "output": {d.Output}, "currency": {d.Currency}}
	for k, v := range map[string]string{"cached": d.Cached, "vendor": d.Vendor, "at": d.At} {
		if v != "" {
			api.Set(k, v)
		}
	}
	var res compareView
	if e := c.call(r, "GET", apiPath("/admin/prices/compare", api), nil, &res); e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	d.Result = &res
	c.write(w, r, http.StatusOK, p)
}

type buysData struct {
	Model, Amount, Currency, At string
	Models                      []string
	Result                      *buysView
}

func (c *Console) priceBuys(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "buys", "nav_buys", nil)
	q := r.URL.Query()
	d := &buysData{Model: q.Get("model"), Amount: q.Get("amount"), Currency: q.Get("currency"), At: q.Get("at")}
	if d.Amount == "" {
		d.Amount = "1"
	}
	if d.Currency == "" {
		d.Currency = c.mainCurrency()
	}
	p.Data = d
	if c.opt.Catalog != nil {
		for _, m := range c.opt.Catalog.Models() {
			if m.Kind == "chat" {
				d.Models = append(d.Models, m.Name)
			}
		}
	}
	if d.Model == "" {
		c.write(w, r, http.StatusOK, p)
		return
	}
	api := url.Values{"model": {d.Model}, "amount": {d.Amount}, "currency": {d.Currency}}
	if d.At != "" {
		api.Set("at", d.At)
	}
	var res buysView
	if e := c.call(r, "GET", apiPath("/admin/prices/buys", api), nil, &res); e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	d.Result = &res
	c.write(w, r, http.StatusOK, p)
}

type versionJSON struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Spec    json.RawMessage `json:"spec"`
}

// SpecText is the version's spec, indented.
func (v versionJSON) SpecText() string {
	var x any
	if json.Unmarshal(v.Spec, &x) != nil {
		return string(v.Spec)
	}
	b, _ := json.MarshalIndent(x, "", "  ")
	return string(b)
}

func (c *Console) priceVersions(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "versions", "nav_versions", nil)
	var list struct {
		Data []versionJSON `json:"data"`
	}
	if e := c.call(r, "GET", "/admin/prices", nil, &list); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	p.Data = list.Data
	c.write(w, r, http.StatusOK, p)
}

type driftJSON struct {
	Channel       string `json:"channel"`
	UpstreamModel string `json:"upstream_model"`
	Requests      int64  `json:"requests"`
	VendorInput   int64  `json:"vendor_input_tokens"`
	CountedInput  int64  `json:"counted_input_tokens"`
	DriftPercent  string `json:"drift_percent"`
}

type auditData struct {
	Range string
	Drift []driftJSON
	Books map[string]any
	OK    *bool
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "audit", "nav_audit", nil)
	d := &auditData{Range: r.URL.Query().Get("range")}
	if _, err := parseRange(d.Range); err != nil || d.Range == "" {
		d.Range = "30d"
	}
	p.Data = d
	rng, _ := parseRange(d.Range)
	q := url.Values{"from": {p.Now.Add(-rng).UTC().Format(time.RFC3339)}}
	var drift struct {
		Data []driftJSON `json:"data"`
	}
	if e := c.call(r, "GET", apiPath("/admin/audit/vendors", q), nil, &drift); e != nil && e.Status != http.StatusNotFound {
		c.failPage(w, r, p, e)
		return
	}
	d.Drift = drift.Data
	if c.opt.Billing {
		// The books' audit answers 409 with the same body when it finds a problem.
		res, e := c.do(r, "GET", "/admin/audit", nil)
		var body []byte
		if e == nil {
			body = res.body.Bytes()
		}
		if e != nil && e.Status == http.StatusConflict {
			f := false
			d.OK = &f
		} else if e == nil {
			t := true
			d.OK = &t
		}
		if len(body) > 0 {
			_ = json.Unmarshal(body, &d.Books)
		}
	}
	c.write(w, r, http.StatusOK, p)
}
