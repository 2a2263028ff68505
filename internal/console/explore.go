package console

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// explorerForm is the usage explorer's filters, kept in the URL.
type explorerForm struct {
	GroupBy  string
	Bucket   string
	Range    string
	From, To string
	Top      int
	TenantID string
	KeyID    string
	Model    string
	Channel  string
}

func readExplorerForm(q url.Values) explorerForm {
	f := explorerForm{GroupBy: q.Get("group_by"), Bucket: q.Get("bucket"), Range: q.Get("range"), From: q.Get("from"),
		To: q.Get("to"), Top: atoiDefault(q.Get("top"), 10), TenantID: q.Get("tenant_id"), KeyID: q.Get("key_id"),
		Model: q.Get("model"), Channel: q.Get("channel")}
	switch f.GroupBy {
	case "model", "channel", "tenant", "key", "vendor":
	default:
		f.GroupBy = "model"
	}
	if f.Bucket != "hour" && f.Bucket != "day" {
		f.Bucket = "day"
	}
	if f.Range == "" && f.From == "" {
		f.Range = "7d"
	}
	if f.Top < 1 || f.Top > maxTop {
		f.Top = 10
	}
	return f
}

// values is the form as the report API's parameters.
func (f explorerForm) values(zone *time.Location) url.Values {
	q := url.Values{"group_by": {f.GroupBy}, "bucket": {f.Bucket}, "top": {strconv.Itoa(f.Top)}, "tz": {zone.String()}}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("range", f.Range)
	set("from", f.From)
	set("to", f.To)
	set("tenant_id", f.TenantID)
	set("key_id", f.KeyID)
	set("model", f.Model)
	set("channel", f.Channel)
	if f.From != "" {
		q.Del("range")
	}
	return q
}

type explorerData struct {
	Form    explorerForm
	Ranges  []string
	Report  reportView
	Chart   chart
	CSV     string
	Filters url.Values
}

// DrillDown links a group's row to the request log with the same filters
// and range; "" where the log cannot filter by the group (other, vendor).
func (d *explorerData) DrillDown(g groupView) string {
	q := url.Values{}
	for _, k := range []string{"tenant_id", "key_id", "model", "channel"} {
		if v := d.Filters.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("from", d.Report.From.Format(time.RFC3339))
	q.Set("to", d.Report.To.Format(time.RFC3339))
	if g.Other {
		return ""
	}
	switch d.Form.GroupBy {
	case "model":
		q.Set("model", g.Group)
	case "tenant":
		q.Set("tenant_id", g.Group)
	case "key":
		q.Set("key_id", g.Group)
	case "channel":
		q.Set("channel", g.Group)
	default:
		return ""
	}
	return "/ui/requests?" + q.Encode()
}

// GroupName shows a group, with "other" translated by the page.
func (d *explorerData) IsOther(g string) bool { return g == otherGroup }

func (c *Console) explorer(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "usage", "nav_usage", nil)
	f := readExplorerForm(r.URL.Query())
	q := f.values(p.Zone)
	d := &explorerData{Form: f, Ranges: ranges, Filters: q, CSV: "/ui/usage.csv?" + q.Encode()}
	p.Data = d
	if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, &d.Report); e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	d.Chart = groupChart(p, d.Report, c.mainCurrency())
	c.write(w, r, http.StatusOK, p)
}

// groupChart draws each group's spend per bucket, stacked, so the stack's
// height is the total.
func groupChart(p *page, v reportView, cur string) chart {
	ch := chart{ID: "chart-groups", Title: p.T("chart_spend", cur), Kind: "bars", Unit: currencySymbol(cur), Stack: true}
	idx := map[int64]int{}
	now := p.Now.Unix()
	for i, t := range v.Buckets {
		ch.X = append(ch.X, t.Unix())
		idx[t.Unix()] = i
	}
	for _, g := range v.Groups {
		label := g.Group
		if g.Other {
			label = p.T("other")
		}
		vals := make([]*float64, len(v.Buckets))
		for i, t := range v.Buckets {
			if t.Unix() <= now {
				vals[i] = fptr(0)
			}
		}
		for _, b := range v.Series {
			if b.Group == g.Group {
				if i, ok := idx[b.Start.Unix()]; ok {
					vals[i] = fptr(nanosFloat(b.CostNanos(cur)))
				}
			}
		}
		ch.Series = append(ch.Series, chartSeries{Label: label, Values: vals})
	}
	return ch
}

// explorerCSV downloads the explorer's report as CSV, from the same API
// route with format=csv.
func (c *Console) explorerCSV(w http.ResponseWriter, r *http.Request, s *session) {
	q := readExplorerForm(r.URL.Query()).values(c.zone(r))
	q.Set("format", "csv")
	c.proxyDownload(w, r, apiPath("/admin/reports/usage", q))
}

// proxyDownload passes a file answer of the admin API to the browser.
func (c *Console) proxyDownload(w http.ResponseWriter, r *http.Request, path string) {
	res, e := c.do(r, "GET", path, nil)
	if e != nil {
		c.renderPage(w, r, e.Status, "error", "error", nil, e.Message)
		return
	}
	for _, h := range []string{"Content-Type", "Content-Disposition"} {
		if v := res.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, &res.body)
}

// logForm is the request log's filters.
type logForm struct {
	TenantID, KeyID, Model, Channel, Status string
	From, To                                string
	Cursor                                  string // the API's next_cursor of the page before
}

type logData struct {
	Form    logForm
	Records []recordJSON
	Next    string // link to the next page, "" at the end
	Portal  bool
}

const logPage = 50

// readLog reads the request log's filters into the admin API's parameters.
func readLog(q url.Values, zone *time.Location) (logForm, url.Values) {
	f := logForm{TenantID: q.Get("tenant_id"), KeyID: q.Get("key_id"), Model: q.Get("model"), Channel: q.Get("channel"),
		Status: q.Get("status"), From: q.Get("from"), To: q.Get("to"), Cursor: q.Get("cursor")}
	// The log needs no totals (they would scan every record the filters select).
	api := url.Values{"limit": {strconv.Itoa(logPage)}, "totals": {"false"}}
	set := func(k, v string) {
		if v != "" {
			api.Set(k, v)
		}
	}
	set("tenant_id", f.TenantID)
	set("key_id", f.KeyID)
	set("model", f.Model)
	set("channel", f.Channel)
	set("status", f.Status)
	for _, t := range []struct{ k, v string }{{"from", f.From}, {"to", f.To}} {
		if t.v == "" {
			continue
		}
		if at, err := parseWhen(t.v, zone); err == nil {
			api.Set(t.k, at.UTC().Format(time.RFC3339Nano))
		} else {
			api.Set(t.k, t.v) // the API says what is wrong
		}
	}
	set("cursor", f.Cursor)
	return f, api
}

// nextLink is the link to the page at the API's next cursor, or "".
func nextLink(base string, q url.Values, next *string) string {
	if next == nil || *next == "" {
		return ""
	}
	n := url.Values{}
	for k, v := range q {
		n[k] = v
	}
	n.Set("cursor", *next)
	return base + "?" + n.Encode()
}

func (c *Console) requestLog(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "requests", "nav_requests", nil)
	f, api := readLog(r.URL.Query(), p.Zone)
	d := &logData{Form: f}
	p.Data = d
	var list recordList
	if e := c.call(r, "GET", apiPath("/admin/usage", api), nil, &list); e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	d.Records = list.Data
	d.Next = nextLink("/ui/requests", r.URL.Query(), list.NextCursor)
	c.write(w, r, http.StatusOK, p)
}

type detailData struct {
	Record recordJSON
	Portal bool
}

func (c *Console) requestDetail(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "request", "request_detail", nil)
	var list recordList
	id := r.PathValue("id")
	if e := c.call(r, "GET", apiPath("/admin/usage", url.Values{"request_id": {id}, "limit": {"1"}, "totals": {"false"}}), nil, &list); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	if len(list.Data) == 0 || list.Data[0].RequestID != id {
		c.renderError(w, r, http.StatusNotFound, "err_no_request")
		return
	}
	p.Data = &detailData{Record: list.Data[0]}
	c.write(w, r, http.StatusOK, p)
}
