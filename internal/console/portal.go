package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
)

// The tenant portal. Every function here takes the tenant from the session
// (never from the request) and passes it to the admin API; records and keys
// the API returns are checked again against it. This file is the only way a
// tenant reaches the admin API.

// portalAPIRoutes registers the tenant's JSON API (README, "Tenant portal
// API"): the same data as the portal's pages, for the tenant's own scripts,
// authenticated with one of the tenant's API keys as a bearer token. (The
// portal's session cookie is scoped to /ui and never reaches it.)
func (c *Console) portalAPIRoutes(mux *http.ServeMux, writeErr func(http.ResponseWriter, *apierr.Error)) {
	api := func(h func(w http.ResponseWriter, r *http.Request, s *session) *apiError) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s := c.session(r)
			if s == nil || s.Role != roleTenant {
				writeErr(w, apierr.Unauthorized("The tenant API needs one of the tenant's API keys as 'Authorization: Bearer KEY'."))
				return
			}
			if r.Method != http.MethodGet {
				r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
				if !c.checkCSRF(r, s) {
					writeErr(w, &apierr.Error{Status: http.StatusForbidden, Type: "permission_error", Code: "csrf",
						Message: "This request needs the console's CSRF token."})
					return
				}
			}
			if e := h(w, r, s); e != nil {
				writeErr(w, &apierr.Error{Status: e.Status, Type: "invalid_request_error", Code: e.Code, Param: e.Param, Message: e.Message})
			}
		}
	}
	mux.HandleFunc("GET /portal/api/balance", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		b, e := c.portalBalance(r, s)
		if e == nil {
			writeJSON(w, b)
		}
		return e
	}))
	mux.HandleFunc("GET /portal/api/usage", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		q, e := portalReportQuery(r.URL.Query(), s)
		if e != nil {
			return e
		}
		c.serveReport(w, r, q, func(w http.ResponseWriter, e *apierr.Error) { writeErr(w, e) })
		return nil
	}))
	mux.HandleFunc("GET /portal/api/requests", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		recs, next, e := c.portalRecords(r, s, r.URL.Query())
		if e == nil {
			writeJSON(w, map[string]any{"object": "list", "data": recs, "has_more": next != nil, "next_cursor": next})
		}
		return e
	}))
	mux.HandleFunc("GET /portal/api/requests/{id}", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		rec, e := c.portalRecord(r, s, r.PathValue("id"))
		if e == nil {
			writeJSON(w, rec)
		}
		return e
	}))
	mux.HandleFunc("GET /portal/api/keys", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		ks, e := c.tenantKeys(r, s.Tenant)
		if e == nil {
			writeJSON(w, map[string]any{"object": "list", "data": keysOrEmpty(ks)})
		}
		return e
	}))
	mux.HandleFunc("POST /portal/api/keys", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		var req struct {
			Name      string     `json:"name"`
			Models    []string   `json:"models"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "The body must be a JSON object with name, models and expires_at."}
		}
		k, e := c.portalCreateKey(r, s, req.Name, req.Models, req.ExpiresAt)
		if e == nil {
			w.WriteHeader(http.StatusCreated)
			writeJSON(w, k)
		}
		return e
	}))
	mux.HandleFunc("POST /portal/api/keys/{id}/revoke", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		e := c.portalRevoke(r, s, r.PathValue("id"))
		if e == nil {
			writeJSON(w, map[string]any{"id": r.PathValue("id"), "object": "api_key", "disabled": true})
		}
		return e
	}))
	mux.HandleFunc("GET /portal/api/budgets", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		bs, e := c.portalBudgets(r, s)
		if e == nil {
			writeJSON(w, map[string]any{"object": "list", "data": bs})
		}
		return e
	}))
	mux.HandleFunc("GET /portal/api/statement", api(func(w http.ResponseWriter, r *http.Request, s *session) *apiError {
		q := url.Values{}
		for _, k := range []string{"from", "to", "format"} {
			if v := r.URL.Query().Get(k); v != "" {
				q.Set(k, v)
			}
		}
		res, e := c.do(r, "GET", apiPath("/admin/tenants/"+url.PathEscape(s.Tenant)+"/statement", q), nil)
		if e != nil {
			return e
		}
		for _, h := range []string{"Content-Type", "Content-Disposition"} {
			if v := res.header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		_, _ = w.Write(res.body.Bytes())
		return nil
	}))
	mux.HandleFunc("/portal/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, apierr.NotFound("Unknown tenant API URL: "+r.Method+" "+r.URL.Path+"."))
	})
}

func keysOrEmpty(ks []keyJSON) []keyJSON {
	if ks == nil {
		return []keyJSON{}
	}
	return ks
}

// portalReportQuery fixes a report to the session's tenant; tenants group by
// model, key or vendor (channels are the operator's business).
func portalReportQuery(in url.Values, s *session) (url.Values, *apiError) {
	q := url.Values{}
	for _, k := range []string{"from", "to", "range", "tz", "bucket", "top", "key_id", "model", "format"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	switch g := in.Get("group_by"); g {
	case "", "model", "key", "vendor":
		if g != "" {
			q.Set("group_by", g)
		}
	default:
		return nil, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Param: "group_by",
			Message: "group_by must be model, key or vendor."}
	}
	q.Set("tenant_id", s.Tenant)
	return q, nil
}

func (c *Console) portalBalance(r *http.Request, s *session) (balanceJSON, *apiError) {
	var b balanceJSON
	e := c.call(r, "GET", "/admin/tenants/"+url.PathEscape(s.Tenant)+"/balance", nil, &b)
	return b, e
}

// portalRecords lists the tenant's requests, newest first (filters key_id,
// model, status, from, to; cursor, limit), with the next page's cursor.
func (c *Console) portalRecords(r *http.Request, s *session, in url.Values) ([]recordCore, *string, *apiError) {
	q := url.Values{}
	for _, k := range []string{"key_id", "model", "status", "from", "to", "cursor", "limit"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	_, api := readLog(q, c.zone(r))
	if l := in.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return nil, nil, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Param: "limit", Message: "limit must be from 1 to 1000."}
		}
		api.Set("limit", l)
	}
	api.Del("channel")
	api.Set("tenant_id", s.Tenant)
	var list recordList
	if e := c.call(r, "GET", apiPath("/admin/usage", api), nil, &list); e != nil {
		return nil, nil, e
	}
	out := make([]recordCore, 0, len(list.Data))
	for _, rec := range list.Data {
		if tenantOf(rec.TenantID) != s.Tenant { // never, unless the API's filter broke: then show nothing of it
			return nil, nil, &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "The request log answered records of another tenant."}
		}
		out = append(out, rec.recordCore)
	}
	return out, list.NextCursor, nil
}

func tenantOf(id string) string {
	if id == "" {
		return "default"
	}
	return id
}

func (c *Console) portalRecord(r *http.Request, s *session, id string) (recordCore, *apiError) {
	var list recordList
	q := url.Values{"request_id": {id}, "tenant_id": {s.Tenant}, "limit": {"1"}, "totals": {"false"}}
	if e := c.call(r, "GET", apiPath("/admin/usage", q), nil, &list); e != nil {
		return recordCore{}, e
	}
	if len(list.Data) != 1 || list.Data[0].RequestID != id || tenantOf(list.Data[0].TenantID) != s.Tenant {
		return recordCore{}, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "No request with this id."}
	}
	return list.Data[0].recordCore, nil
}

// ownKey returns the tenant's key with id, or a 404 that does not say
// whether the key exists elsewhere.
func (c *Console) ownKey(r *http.Request, s *session, id string) (*keyJSON, *apiError) {
	ks, e := c.tenantKeys(r, s.Tenant)
	if e != nil {
		return nil, e
	}
	for i := range ks {
		if ks[i].ID == id {
			return &ks[i], nil
		}
	}
	return nil, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "No key with this id."}
}

// portalCreateKey creates a key for the tenant within its limits: at most
// MaxTenantKeys keys, and no more than the key the tenant signed in with may
// do (its models and its expiry).
func (c *Console) portalCreateKey(r *http.Request, s *session, name string, models []string, expires *time.Time) (keyJSON, *apiError) {
	bad := func(param, msg string) (keyJSON, *apiError) {
		return keyJSON{}, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Param: param, Message: msg}
	}
	ks, e := c.tenantKeys(r, s.Tenant)
	if e != nil {
		return keyJSON{}, e
	}
	if len(ks) >= c.opt.MaxTenantKeys {
		return bad("", "This tenant has "+strconv.Itoa(len(ks))+" keys, the most it may have; revoke one first.")
	}
	signer := &keys.Key{} // a login: no key to stay within
	if s.Login == "" {
		if signer = c.tenantKey(r, s.KeyHash); signer == nil {
			return keyJSON{}, &apiError{Status: http.StatusUnauthorized, Code: "invalid_api_key", Message: "The key you signed in with is no longer usable."}
		}
	}
	if len(signer.Models) > 0 {
		if len(models) == 0 {
			models = signer.Models
		}
		for _, m := range models {
			if !slices.Contains(signer.Models, m) {
				return bad("models", "The key you signed in with may not use "+m+", so a key it creates may not either.")
			}
		}
	}
	if !signer.ExpiresAt.IsZero() {
		if expires == nil || expires.After(signer.ExpiresAt) {
			t := signer.ExpiresAt
			expires = &t
		}
	}
	body := map[string]any{"name": strings.TrimSpace(name), "tenant_id": s.Tenant, "models": models}
	if s.Tenant == "default" {
		body["tenant_id"] = ""
	}
	if expires != nil {
		body["expires_at"] = expires.UTC().Format(time.RFC3339)
	}
	var k keyJSON
	e = c.call(r, "POST", "/admin/keys", body, &k)
	return k, e
}

func (c *Console) portalRevoke(r *http.Request, s *session, id string) *apiError {
	if _, e := c.ownKey(r, s, id); e != nil {
		return e
	}
	return c.call(r, "POST", "/admin/keys/"+url.PathEscape(id)+"/disable", nil, nil)
}

// portalBudgets returns the tenant's budget and its keys' (those set).
func (c *Console) portalBudgets(r *http.Request, s *session) ([]budgetJSON, *apiError) {
	out := []budgetJSON{}
	var b budgetJSON
	if e := c.call(r, "GET", "/admin/budgets/tenant/"+url.PathEscape(s.Tenant), nil, &b); e == nil {
		out = append(out, b)
	} else if e.Status != http.StatusNotFound {
		return nil, e
	}
	ks, e := c.tenantKeys(r, s.Tenant)
	if e != nil {
		return nil, e
	}
	for _, k := range ks {
		var kb budgetJSON
		if e := c.call(r, "GET", "/admin/budgets/key/"+url.PathEscape(k.ID), nil, &kb); e == nil {
			out = append(out, kb)
		} else if e.Status != http.StatusNotFound {
			return nil, e
		}
	}
	return out, nil
}

// portalRoutes registers the tenant's pages.
func (c *Console) portalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/portal", c.requireTenant(c.portalHome))
	mux.HandleFunc("GET /ui/portal/requests", c.requireTenant(c.portalLog))
	mux.HandleFunc("GET /ui/portal/requests/{id}", c.requireTenant(c.portalDetail))
	mux.HandleFunc("GET /ui/portal/keys", c.requireTenant(c.portalKeys))
	mux.HandleFunc("POST /ui/portal/keys", c.requireTenant(c.portalKeyCreate))
	mux.HandleFunc("POST /ui/portal/keys/{id}/revoke", c.requireTenant(c.portalKeyRevoke))
	mux.HandleFunc("GET /ui/portal/statement", c.requireTenant(c.portalStatement))
	mux.HandleFunc("GET /ui/portal/statement.csv", c.requireTenant(c.portalStatementCSV))
}

type portalHomeData struct {
	Balance  *balanceJSON
	Budgets  []budgetJSON
	Range    string
	Ranges   []string
	ByModel  reportView
	ByKey    reportView
	Series   reportView
	Charts   []chart
	Currency string
}

func (c *Console) portalHome(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "portal", "nav_portal", nil)
	d := &portalHomeData{Ranges: ranges, Currency: c.mainCurrency()}
	p.Data = d
	d.Range = r.URL.Query().Get("range")
	if _, err := parseRange(d.Range); err != nil || d.Range == "" {
		d.Range = "30d"
	}
	if c.opt.Billing {
		if b, e := c.portalBalance(r, s); e == nil {
			d.Balance = &b
			if b.Currency != "" {
				d.Currency = b.Currency
			}
		}
		bs, e := c.portalBudgets(r, s)
		if e != nil {
			c.failPage(w, r, p, e)
			return
		}
		d.Budgets = bs
	}
	rng, _ := parseRange(d.Range)
	in := url.Values{"range": {d.Range}, "tz": {p.Zone.String()}, "bucket": {string(bucketFor(p.Now.Add(-rng), p.Now))}}
	for _, g := range []struct {
		group string
		out   *reportView
	}{{"", &d.Series}, {"model", &d.ByModel}, {"key", &d.ByKey}} {
		q := url.Values{}
		for k, v := range in {
			q[k] = v
		}
		if g.group != "" {
			q.Set("group_by", g.group)
			q.Set("top", "10")
			q.Del("bucket")
		}
		q, e := portalReportQuery(q, s)
		if e == nil {
			e = c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, g.out)
		}
		if e != nil {
			c.failPage(w, r, p, e)
			return
		}
	}
	d.Charts = c.overviewCharts(p, d.Series, d.Currency)[:3]
	c.write(w, r, http.StatusOK, p)
}

func (c *Console) portalLog(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "requests", "nav_requests", nil)
	f, _ := readLog(r.URL.Query(), p.Zone)
	d := &logData{Form: f, Portal: true}
	p.Data = d
	recs, next, e := c.portalRecords(r, s, r.URL.Query())
	if e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	for _, pr := range recs {
		d.Records = append(d.Records, recordJSON{recordCore: pr})
	}
	d.Next = nextLink("/ui/portal/requests", r.URL.Query(), next)
	c.write(w, r, http.StatusOK, p)
}

func (c *Console) portalDetail(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "request", "request_detail", nil)
	pr, e := c.portalRecord(r, s, r.PathValue("id"))
	if e != nil {
		if e.Status == http.StatusNotFound {
			c.renderError(w, r, http.StatusNotFound, "err_no_request")
			return
		}
		c.failPage(w, r, p, e)
		return
	}
	p.Data = &detailData{Portal: true, Record: recordJSON{recordCore: pr}}
	c.write(w, r, http.StatusOK, p)
}

type portalKeysData struct {
	Keys   []keyJSON
	NewKey *keyJSON
	Max    int
	Self   string // the key signed in with
}

func (c *Console) portalKeys(w http.ResponseWriter, r *http.Request, s *session) {
	c.portalKeysWith(w, r, s, http.StatusOK, "", nil)
}

func (c *Console) portalKeysWith(w http.ResponseWriter, r *http.Request, s *session, status int, errMsg string, k *keyJSON) {
	p := c.newPage(w, r, "portal_keys", "nav_keys", nil)
	p.Error = errMsg
	ks, e := c.tenantKeys(r, s.Tenant)
	if e != nil {
		c.failPage(w, r, p, e)
		return
	}
	p.Data = &portalKeysData{Keys: ks, NewKey: k, Max: c.opt.MaxTenantKeys, Self: s.KeyID}
	c.write(w, r, status, p)
}

func (c *Console) portalKeyCreate(w http.ResponseWriter, r *http.Request, s *session) {
	body, err := keyRequest(r, s.Tenant)
	if err != nil {
		c.portalKeysWith(w, r, s, http.StatusBadRequest, "err_bad_date", nil)
		return
	}
	var models []string
	if m, ok := body["models"].([]string); ok {
		models = m
	}
	var exp *time.Time
	if v, ok := body["expires_at"].(string); ok {
		t, _ := time.Parse(time.RFC3339, v)
		exp = &t
	}
	name, _ := body["name"].(string)
	k, e := c.portalCreateKey(r, s, name, models, exp)
	if e != nil {
		c.portalKeysWith(w, r, s, e.Status, e.Message, nil)
		return
	}
	c.portalKeysWith(w, r, s, http.StatusCreated, "", &k)
}

func (c *Console) portalKeyRevoke(w http.ResponseWriter, r *http.Request, s *session) {
	if e := c.portalRevoke(r, s, r.PathValue("id")); e != nil {
		c.portalKeysWith(w, r, s, e.Status, e.Message, nil)
		return
	}
	if r.PathValue("id") == s.KeyID {
		// The key this session stands on is gone: so is the session.
		c.setCookie(w, sessionCookie, "", -time.Second)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	redirectDone(w, r, "/ui/portal/keys", "key_disable")
}

func (c *Console) portalStatement(w http.ResponseWriter, r *http.Request, s *session) {
	c.statementPage(w, r, s.Tenant, "/admin/tenants/"+url.PathEscape(s.Tenant)+"/statement", "/ui/portal/statement.csv")
}

func (c *Console) portalStatementCSV(w http.ResponseWriter, r *http.Request, s *session) {
	c.statementDownload(w, r, "/admin/tenants/"+url.PathEscape(s.Tenant)+"/statement")
}
