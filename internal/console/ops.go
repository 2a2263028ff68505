package console

import (
	"net/http"
	"net/url"
	"time"

	"baimo/internal/usage"
)

// operatorRoutes registers the operator's pages. A page is a handler that
// reads the admin API with c.call, a template under templates/, its texts
// in messages.go (both languages) and a link in _layout.html.
func (c *Console) operatorRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/overview", c.requireAdmin(c.overview))
	mux.HandleFunc("GET /ui/usage", c.requireAdmin(c.explorer))
	mux.HandleFunc("GET /ui/usage.csv", c.requireAdmin(c.explorerCSV))
	mux.HandleFunc("GET /ui/requests", c.requireAdmin(c.requestLog))
	mux.HandleFunc("GET /ui/requests/{id}", c.requireAdmin(c.requestDetail))
	c.tenantRoutes(mux)
	c.channelRoutes(mux)
	c.priceRoutes(mux)
	c.poolRoutes(mux)
}

// overviewData is the overview page.
type overviewData struct {
	Range     string
	Ranges    []string
	Totals    sumsView
	Charts    []chart
	ByModel   reportView
	ByChannel reportView
	ByTenant  reportView
	Currency  string
	Empty     bool
}

// bucketFor picks hours for ranges up to two days, else days.
func bucketFor(from, to time.Time) usage.Bucket {
	if to.Sub(from) <= 48*time.Hour {
		return usage.BucketHour
	}
	return usage.BucketDay
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "overview", "nav_overview", nil)
	rng := r.URL.Query().Get("range")
	if _, err := parseRange(rng); err != nil || rng == "" {
		rng = "24h"
	}
	d, _ := parseRange(rng)
	q := url.Values{"range": {rng}, "bucket": {string(bucketFor(p.Now.Add(-d), p.Now))}, "tz": {p.Zone.String()}}
	data := &overviewData{Range: rng, Ranges: ranges, Currency: c.mainCurrency()}
	var series reportView
	if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, &series); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	q.Del("bucket")
	q.Set("top", "8")
	for _, g := range []struct {
		dim string
		out *reportView
	}{{"model", &data.ByModel}, {"channel", &data.ByChannel}, {"tenant", &data.ByTenant}} {
		q.Set("group_by", g.dim)
		if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, g.out); e != nil {
			c.failPage(w, r, p, e)
			return
		}
	}
	data.Totals = series.Totals
	data.Empty = series.Totals.Requests == 0
	data.Charts = c.overviewCharts(p, series, data.Currency)
	p.Data = data
	c.write(w, r, http.StatusOK, p)
}

// mainCurrency is the currency charts of spend use.
func (c *Console) mainCurrency() string {
	if c.opt.Currency != "" {
		return string(c.opt.Currency)
	}
	return "CNY"
}

// overviewCharts draws requests and errors, tokens, spend and TTFT over the
// report's buckets: a past bucket without requests is 0, one after now has
// no data.
func (c *Console) overviewCharts(p *page, v reportView, cur string) []chart {
	byStart := map[int64]*bucketView{}
	for i := range v.Series {
		byStart[v.Series[i].Start.Unix()] = &v.Series[i]
	}
	x := make([]int64, 0, len(v.Buckets))
	now := p.Now.Unix()
	type pick func(b *bucketView) *float64
	series := func(f pick) []*float64 {
		out := make([]*float64, 0, len(v.Buckets))
		for _, t := range v.Buckets {
			switch b := byStart[t.Unix()]; {
			case t.Unix() > now:
				out = append(out, nil)
			case b == nil:
				out = append(out, f(&bucketView{}))
			default:
				out = append(out, f(b))
			}
		}
		return out
	}
	for _, t := range v.Buckets {
		x = append(x, t.Unix())
	}
	count := func(get func(*bucketView) int64) pick {
		return func(b *bucketView) *float64 { return fptr(float64(get(b))) }
	}
	ttft := func(get func(*bucketView) *int64) pick {
		return func(b *bucketView) *float64 {
			if p := get(b); p != nil {
				return fptr(float64(*p))
			}
			return nil // no request had a first token: no data, not 0
		}
	}
	return []chart{
		{ID: "chart-requests", Title: p.T("chart_requests"), Kind: "bars", X: x, Series: []chartSeries{
			{p.T("requests"), series(count(func(b *bucketView) int64 { return b.Requests - b.Errors }))},
			{p.T("errors"), series(count(func(b *bucketView) int64 { return b.Errors }))}}, Stack: true},
		{ID: "chart-tokens", Title: p.T("chart_tokens"), Kind: "line", X: x, Series: []chartSeries{
			{p.T("input_tokens"), series(count(func(b *bucketView) int64 { return b.Input }))},
			{p.T("cached_tokens"), series(count(func(b *bucketView) int64 { return b.CachedInput }))},
			{p.T("output_tokens"), series(count(func(b *bucketView) int64 { return b.Output }))},
			{p.T("reasoning_tokens"), series(count(func(b *bucketView) int64 { return b.Reasoning }))}}},
		{ID: "chart-spend", Title: p.T("chart_spend", cur), Kind: "bars", Unit: currencySymbol(cur), X: x, Series: []chartSeries{
			{p.T("spend"), series(func(b *bucketView) *float64 { return fptr(nanosFloat(b.CostNanos(cur))) })}}},
		{ID: "chart-ttft", Title: p.T("chart_ttft"), Kind: "line", Unit: "ms", X: x, Series: []chartSeries{
			{"p50", series(ttft(func(b *bucketView) *int64 { return b.TTFTp50ms }))},
			{"p95", series(ttft(func(b *bucketView) *int64 { return b.TTFTp95ms }))}}},
	}
}

// failPage shows an error of the admin API on the page being built.
func (c *Console) failPage(w http.ResponseWriter, r *http.Request, p *page, e *apiError) {
	p.Error = e.Message
	status := e.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	if p.Data == nil {
		p.Name, p.TitleID = "error", "error"
	}
	c.write(w, r, status, p)
}
