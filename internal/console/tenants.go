package console

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (c *Console) tenantRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/tenants", c.requireAdmin(c.tenants))
	mux.HandleFunc("POST /ui/tenants", c.requireAdmin(c.createTenant))
	mux.HandleFunc("GET /ui/tenants/{id}", c.requireAdmin(c.tenant))
	mux.HandleFunc("POST /ui/tenants/{id}/money", c.requireAdmin(c.moneyOp))
	mux.HandleFunc("POST /ui/tenants/{id}/redeem", c.requireAdmin(c.redeem))
	mux.HandleFunc("POST /ui/tenants/{id}/logins", c.requireAdmin(c.loginCreate))
	mux.HandleFunc("POST /ui/tenants/{id}/logins/{name}/delete", c.requireAdmin(c.loginDelete))
	mux.HandleFunc("POST /ui/budgets/{scope}/{subject}", c.requireAdmin(c.setBudget))
	mux.HandleFunc("GET /ui/tenants/{id}/statement", c.requireAdmin(c.statement))
	mux.HandleFunc("GET /ui/tenants/{id}/statement.csv", c.requireAdmin(c.statementCSV))
	mux.HandleFunc("GET /ui/keys", c.requireAdmin(c.keysPage))
	mux.HandleFunc("POST /ui/keys", c.requireAdmin(c.createKey))
	mux.HandleFunc("POST /ui/keys/{id}/{action}", c.requireAdmin(c.keyAction))
	mux.HandleFunc("GET /ui/codes", c.requireAdmin(c.codesPage))
	mux.HandleFunc("POST /ui/codes", c.requireAdmin(c.createCode))
}

// idempotencyKey is a fresh key for a money form: submitting the same form
// twice (a double click, a reload) moves the money once.
func idempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "console-" + hex.EncodeToString(b)
}

type tenantRow struct {
	Tenant  tenantJSON
	Balance *balanceJSON
}

type tenantsData struct {
	Tenants []tenantRow
	Billing bool
}

func (c *Console) tenants(w http.ResponseWriter, r *http.Request, s *session) {
	c.tenantsWith(w, r, http.StatusOK, "")
}

func (c *Console) tenantsWith(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	p := c.newPage(w, r, "tenants", "nav_tenants", nil)
	d := &tenantsData{Billing: c.opt.Billing}
	p.Data = d
	p.Error = errMsg
	if !c.opt.Billing {
		c.write(w, r, status, p)
		return
	}
	var list struct {
		Data []tenantJSON `json:"data"`
	}
	if e := c.call(r, "GET", "/admin/tenants", nil, &list); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	for i, t := range list.Data {
		row := tenantRow{Tenant: t}
		if i < 200 { // balances of the first 200; the rest on their own pages
			var b balanceJSON
			if c.call(r, "GET", "/admin/tenants/"+url.PathEscape(t.ID)+"/balance", nil, &b) == nil {
				row.Balance = &b
			}
		}
		d.Tenants = append(d.Tenants, row)
	}
	c.write(w, r, status, p)
}

func (c *Console) createTenant(w http.ResponseWriter, r *http.Request, s *session) {
	body := map[string]string{"id": strings.TrimSpace(r.PostFormValue("id")), "name": strings.TrimSpace(r.PostFormValue("name")),
		"kind": r.PostFormValue("kind"), "currency": r.PostFormValue("currency")}
	if cl := strings.TrimSpace(r.PostFormValue("credit_limit")); cl != "" {
		body["credit_limit"] = cl
	}
	if e := c.call(r, "POST", "/admin/tenants", body, nil); e != nil {
		c.tenantsWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/tenants/"+url.PathEscape(body["id"]), "tenant_created")
}

type tenantData struct {
	Tenant     tenantJSON
	Balance    balanceJSON
	Keys       []keyJSON
	Budget     *budgetJSON
	KeyBudgets map[string]*budgetJSON
	Usage      reportView
	Idem       string
	NewKey     *keyJSON
	Models     []string
	Logins     []loginView
	HasLogins  bool
}

func (c *Console) tenant(w http.ResponseWriter, r *http.Request, s *session) {
	c.tenantWith(w, r, http.StatusOK, "", nil)
}

func (c *Console) tenantWith(w http.ResponseWriter, r *http.Request, status int, errMsg string, newKey *keyJSON) {
	id := r.PathValue("id")
	p := c.newPage(w, r, "tenant", "tenant", nil)
	p.Error = errMsg
	d := &tenantData{Idem: idempotencyKey(), KeyBudgets: map[string]*budgetJSON{}, NewKey: newKey}
	var list struct {
		Data []tenantJSON `json:"data"`
	}
	if e := c.call(r, "GET", "/admin/tenants", nil, &list); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	i := slices.IndexFunc(list.Data, func(t tenantJSON) bool { return t.ID == id })
	if i < 0 {
		c.renderError(w, r, http.StatusNotFound, "err_no_tenant")
		return
	}
	d.Tenant = list.Data[i]
	p.Data = d
	if e := c.call(r, "GET", "/admin/tenants/"+url.PathEscape(id)+"/balance", nil, &d.Balance); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	ks, e := c.tenantKeys(r, id)
	if e != nil {
		c.failPage(w, r, p, e)
		return
	}
	d.Keys = ks
	var b budgetJSON
	if c.call(r, "GET", "/admin/budgets/tenant/"+url.PathEscape(id), nil, &b) == nil {
		d.Budget = &b
	}
	for _, k := range d.Keys {
		var kb budgetJSON
		if c.call(r, "GET", "/admin/budgets/key/"+url.PathEscape(k.ID), nil, &kb) == nil {
			d.KeyBudgets[k.ID] = &kb
		}
	}
	if c.opt.Logins != nil {
		d.HasLogins = true
		var ls struct {
			Data []loginView `json:"data"`
		}
		if e := c.call(r, "GET", apiPath("/admin/logins", url.Values{"tenant_id": {id}}), nil, &ls); e != nil {
			c.failPage(w, r, p, e)
			return
		}
		d.Logins = ls.Data
	}
	q := url.Values{"range": {"30d"}, "group_by": {"model"}, "tenant_id": {id}, "top": {"10"}, "tz": {p.Zone.String()}}
	if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, &d.Usage); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	c.write(w, r, status, p)
}

// tenantKeys lists the keys of a tenant (the default tenant's include keys
// made without one).
func (c *Console) tenantKeys(r *http.Request, tenant string) ([]keyJSON, *apiError) {
	var list struct {
		Data []keyJSON `json:"data"`
	}
	if e := c.call(r, "GET", "/admin/keys", nil, &list); e != nil {
		return nil, e
	}
	var out []keyJSON
	for _, k := range list.Data {
		t := k.TenantID
		if t == "" {
			t = "default"
		}
		if t == tenant {
			out = append(out, k)
		}
	}
	return out, nil
}

func (c *Console) moneyOp(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	op := r.PostFormValue("op")
	if op != "topup" && op != "adjust" && op != "refund" {
		c.tenantWith(w, r, http.StatusBadRequest, "err_bad_op", nil)
		return
	}
	body := map[string]string{"amount": strings.TrimSpace(r.PostFormValue("amount")), "note": r.PostFormValue("note")}
	if rid := strings.TrimSpace(r.PostFormValue("request_id")); rid != "" {
		body["request_id"] = rid
	}
	if e := c.call(r, "POST", "/admin/tenants/"+url.PathEscape(id)+"/"+op, body, nil,
		"Idempotency-Key", r.PostFormValue("idem")); e != nil {
		c.tenantWith(w, r, e.Status, e.Message, nil)
		return
	}
	redirectDone(w, r, "/ui/tenants/"+url.PathEscape(id), op)
}

func (c *Console) redeem(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	body := map[string]string{"code": strings.TrimSpace(r.PostFormValue("code"))}
	if e := c.call(r, "POST", "/admin/tenants/"+url.PathEscape(id)+"/redeem", body, nil,
		"Idempotency-Key", r.PostFormValue("idem")); e != nil {
		c.tenantWith(w, r, e.Status, e.Message, nil)
		return
	}
	redirectDone(w, r, "/ui/tenants/"+url.PathEscape(id), "redeem")
}

func (c *Console) setBudget(w http.ResponseWriter, r *http.Request, s *session) {
	scope, subject := r.PathValue("scope"), r.PathValue("subject")
	back := localNext(r.PostFormValue("back"), "/ui/tenants")
	var alerts []int
	for _, a := range strings.Split(r.PostFormValue("alerts"), ",") {
		if a = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(a), "%")); a != "" {
			n, err := strconv.Atoi(a)
			if err != nil {
				c.renderError(w, r, http.StatusBadRequest, "err_bad_alerts")
				return
			}
			alerts = append(alerts, n)
		}
	}
	body := map[string]any{"period": r.PostFormValue("period"), "limit": strings.TrimSpace(r.PostFormValue("limit")), "alerts": alerts}
	if e := c.call(r, "PUT", "/admin/budgets/"+url.PathEscape(scope)+"/"+url.PathEscape(subject), body, nil); e != nil {
		c.renderPage(w, r, e.Status, "error", "error", nil, e.Message)
		return
	}
	redirectDone(w, r, back, "budget")
}

type statementData struct {
	TenantID  string
	From, To  string
	Statement statementJSON
	CSV       string
}

// statementRange reads from and to (dates in the zone); the default is the
// current month.
func statementRange(q url.Values, now time.Time) (string, string) {
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		from = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, now.Location()).Format("2006-01-02")
	}
	if to == "" {
		to = now.AddDate(0, 0, 1).Format("2006-01-02")
	}
	return from, to
}

// statementQuery turns the page's dates into the API's times.
func statementQuery(from, to string, zone *time.Location) (url.Values, error) {
	f, err := parseWhen(from, zone)
	if err != nil {
		return nil, err
	}
	t, err := parseWhen(to, zone)
	if err != nil {
		return nil, err
	}
	return url.Values{"from": {f.Format(time.RFC3339)}, "to": {t.Format(time.RFC3339)}}, nil
}

func (c *Console) statement(w http.ResponseWriter, r *http.Request, s *session) {
	c.statementPage(w, r, r.PathValue("id"), "/admin/tenants/"+url.PathEscape(r.PathValue("id"))+"/statement",
		"/ui/tenants/"+url.PathEscape(r.PathValue("id"))+"/statement.csv")
}

func (c *Console) statementPage(w http.ResponseWriter, r *http.Request, tenant, api, csv string) {
	p := c.newPage(w, r, "statement", "statement", nil)
	d := &statementData{TenantID: tenant}
	d.From, d.To = statementRange(r.URL.Query(), p.Now)
	p.Data = d
	q, err := statementQuery(d.From, d.To, p.Zone)
	if err != nil {
		p.Error = err.Error()
		c.write(w, r, http.StatusBadRequest, p)
		return
	}
	d.CSV = csv + "?" + url.Values{"from": {d.From}, "to": {d.To}}.Encode()
	if e := c.call(r, "GET", apiPath(api, q), nil, &d.Statement); e != nil {
		p.Error = e.Message
		c.write(w, r, e.Status, p)
		return
	}
	c.write(w, r, http.StatusOK, p)
}

func (c *Console) statementCSV(w http.ResponseWriter, r *http.Request, s *session) {
	c.statementDownload(w, r, "/admin/tenants/"+url.PathEscape(r.PathValue("id"))+"/statement")
}

func (c *Console) statementDownload(w http.ResponseWriter, r *http.Request, api string) {
	from, to := statementRange(r.URL.Query(), c.now())
	q, err := statementQuery(from, to, c.zone(r))
	if err != nil {
		c.renderPage(w, r, http.StatusBadRequest, "error", "error", nil, err.Error())
		return
	}
	q.Set("format", "csv")
	c.proxyDownload(w, r, apiPath(api, q))
}

type keysData struct {
	Keys    []keyJSON
	NewKey  *keyJSON
	Tenants []tenantJSON
	Models  []string
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.keysWith(w, r, http.StatusOK, "", nil)
}

func (c *Console) keysWith(w http.ResponseWriter, r *http.Request, status int, errMsg string, newKey *keyJSON) {
	p := c.newPage(w, r, "keys", "nav_keys", nil)
	d := &keysData{NewKey: newKey}
	p.Data = d
	p.Error = errMsg
	var list struct {
		Data []keyJSON `json:"data"`
	}
	if e := c.call(r, "GET", "/admin/keys", nil, &list); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	d.Keys = list.Data
	if c.opt.Billing {
		var ts struct {
			Data []tenantJSON `json:"data"`
		}
		if c.call(r, "GET", "/admin/tenants", nil, &ts) == nil {
			d.Tenants = ts.Data
		}
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = models
	c.write(w, r, status, p)
}

// keyRequest reads a key form into the admin API's body.
func keyRequest(r *http.Request, tenant string) (map[string]any, error) {
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "tenant_id": tenant}
	var models []string
	for _, m := range strings.FieldsFunc(r.PostFormValue("models"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		models = append(models, strings.TrimSpace(m))
	}
	if len(models) > 0 {
		body["models"] = models
	}
	if exp := strings.TrimSpace(r.PostFormValue("expires")); exp != "" {
		t, err := time.Parse("2006-01-02", exp)
		if err != nil {
			return nil, err
		}
		body["expires_at"] = t.UTC().Format(time.RFC3339)
	}
	return body, nil
}

func (c *Console) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	tenant := strings.TrimSpace(r.PostFormValue("tenant_id"))
	body, err := keyRequest(r, tenant)
	back := r.PostFormValue("back")
	if err != nil {
		c.keysWith(w, r, http.StatusBadRequest, "err_bad_date", nil)
		return
	}
	var k keyJSON
	if e := c.call(r, "POST", "/admin/keys", body, &k); e != nil {
		if back == "tenant" {
			r.SetPathValue("id", tenant)
			c.tenantWith(w, r, e.Status, e.Message, nil)
			return
		}
		c.keysWith(w, r, e.Status, e.Message, nil)
		return
	}
	// The secret is shown once, on this answer; it is never stored or shown again.
	if back == "tenant" {
		r.SetPathValue("id", tenant)
		c.tenantWith(w, r, http.StatusCreated, "", &k)
		return
	}
	c.keysWith(w, r, http.StatusCreated, "", &k)
}

func (c *Console) keyAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	method, path := "POST", "/admin/keys/"+url.PathEscape(id)+"/"+action
	switch action {
	case "disable", "enable":
	case "delete":
		method, path = "DELETE", "/admin/keys/"+url.PathEscape(id)
	default:
		c.renderError(w, r, http.StatusNotFound, "err_not_found")
		return
	}
	if e := c.call(r, method, path, nil, nil); e != nil {
		c.keysWith(w, r, e.Status, e.Message, nil)
		return
	}
	redirectDone(w, r, localNext(r.PostFormValue("back"), "/ui/keys"), "key_"+action)
}

type codesData struct {
	Code     string
	Amount   string
	Currency string
}

func (c *Console) codesPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, http.StatusOK, "codes", "nav_codes", &codesData{})
}

func (c *Console) createCode(w http.ResponseWriter, r *http.Request, s *session) {
	body := map[string]any{"amount": strings.TrimSpace(r.PostFormValue("amount")), "currency": r.PostFormValue("currency")}
	if exp := strings.TrimSpace(r.PostFormValue("expires")); exp != "" {
		t, err := time.Parse("2006-01-02", exp)
		if err != nil {
			c.renderPage(w, r, http.StatusBadRequest, "codes", "nav_codes", &codesData{}, "err_bad_date")
			return
		}
		body["expires_at"] = t.UTC().Format(time.RFC3339)
	}
	var out struct {
		Code     string `json:"code"`
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	}
	if e := c.call(r, "POST", "/admin/codes", body, &out); e != nil {
		c.renderPage(w, r, e.Status, "codes", "nav_codes", &codesData{}, e.Message)
		return
	}
	// Shown once, like a new key.
	c.render(w, r, http.StatusCreated, "codes", "nav_codes", &codesData{Code: out.Code, Amount: out.Amount, Currency: out.Currency})
}

func (c *Console) loginCreate(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	body := map[string]string{"name": strings.TrimSpace(r.PostFormValue("name")), "tenant_id": id, "password": r.PostFormValue("password")}
	if e := c.call(r, "POST", "/admin/logins", body, nil); e != nil {
		c.tenantWith(w, r, e.Status, e.Message, nil)
		return
	}
	redirectDone(w, r, "/ui/tenants/"+url.PathEscape(id), "login_created")
}

func (c *Console) loginDelete(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if e := c.call(r, "DELETE", "/admin/logins/"+url.PathEscape(r.PathValue("name")), nil, nil); e != nil {
		c.tenantWith(w, r, e.Status, e.Message, nil)
		return
	}
	redirectDone(w, r, "/ui/tenants/"+url.PathEscape(id), "login_deleted")
}
