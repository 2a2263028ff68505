package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTenantIsolation signs in as acme and tries to reach globex's data
// through every page and route of the portal, and the operator's pages and
// API: nothing of globex may appear, and each attempt is refused or empty.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	globexMarks := []string{"req_globex", "key_globex1", "globex-prod", "Globex", "qwen-max"}
	// check looks for the other tenant's data in body; what the request
	// itself named (a filter echoed in its form) does not count.
	check := func(where, body string) {
		t.Helper()
		for _, m := range globexMarks {
			if strings.Contains(body, m) && !strings.Contains(where, m) {
				t.Errorf("%s shows %q of the other tenant", where, m)
			}
		}
	}
	for _, how := range []string{"cookie", "bearer"} {
		c := e.client(t, "en")
		var auth []string
		if how == "cookie" {
			c.signIn(acmeSecret)
		} else {
			auth = []string{"Authorization", "Bearer " + acmeSecret}
		}
		// The portal's pages, with parameters that try to name the other tenant.
		for _, path := range []string{"/ui/portal", "/ui/portal?tenant_id=globex", "/ui/portal/requests",
			"/ui/portal/requests?tenant_id=globex", "/ui/portal/requests?key_id=key_globex1", "/ui/portal/keys",
			"/ui/portal/statement", "/ui/portal/statement?tenant_id=globex", "/ui/portal/statement.csv"} {
			st, body := c.get(path, auth...)
			if st != http.StatusOK {
				t.Errorf("%s %s = %d", how, path, st)
			}
			check(how+" "+path, body)
		}
		if st, body := c.get("/ui/portal/requests/req_globex_00", auth...); st != http.StatusNotFound {
			t.Errorf("%s: another tenant's request = %d", how, st)
		} else {
			check("/ui/portal/requests/req_globex_00", body)
		}
		if how == "cookie" {
			// The session cookie is scoped to /ui: the tenant API takes the
			// key as a bearer token.
			if st, _ := c.get("/portal/api/balance"); st != http.StatusUnauthorized {
				t.Errorf("tenant API with the portal's cookie = %d, want 401", st)
			}
			auth = []string{"Authorization", "Bearer " + acmeSecret}
		}
		// The tenant API.
		for _, path := range []string{"/portal/api/balance", "/portal/api/usage?range=30d", "/portal/api/usage?range=30d&group_by=key",
			"/portal/api/usage?range=30d&tenant_id=globex", "/portal/api/usage?range=30d&key_id=key_globex1",
			"/portal/api/requests", "/portal/api/requests?tenant_id=globex&limit=1000", "/portal/api/keys",
			"/portal/api/budgets", "/portal/api/statement", "/portal/api/statement?format=csv"} {
			st, body := c.get(path, auth...)
			if st != http.StatusOK {
				t.Errorf("%s %s = %d %s", how, path, st, body)
			}
			check(how+" "+path, body)
		}
		for _, path := range []string{"/portal/api/usage?group_by=tenant", "/portal/api/usage?group_by=channel"} {
			if st, _ := c.get(path, auth...); st != http.StatusBadRequest {
				t.Errorf("%s %s = %d, want 400", how, path, st)
			}
		}
		if st, _ := c.get("/portal/api/requests/req_globex_00", auth...); st != http.StatusNotFound {
			t.Errorf("%s: another tenant's request through the API = %d, want 404", how, st)
		}
		// Revoking the other tenant's key fails and leaves it usable.
		if st, _ := c.do("POST", "/portal/api/keys/key_globex1/revoke", url.Values{}, auth...); st != http.StatusNotFound {
			t.Errorf("revoke another tenant's key through the API = %d, want 404", st)
		}
		if how == "cookie" {
			auth = nil
			c.get("/ui/portal/keys")
			if st, _ := c.post("/ui/portal/keys/key_globex1/revoke", nil); st != http.StatusNotFound {
				t.Errorf("revoke another tenant's key from the portal = %d, want 404", st)
			}
		}
		// The operator's pages and the admin API are closed to a tenant.
		for _, path := range []string{"/ui/overview", "/ui/tenants/globex", "/ui/requests/req_globex_00", "/ui/usage.csv"} {
			st, body := c.get(path, auth...)
			if st != http.StatusForbidden {
				t.Errorf("%s %s = %d, want 403", how, path, st)
			}
			check(how+" "+path, body)
		}
		for _, path := range []string{"/admin/usage", "/admin/reports/usage", "/admin/tenants/globex/balance"} {
			if st, _ := c.get(path, auth...); st != http.StatusUnauthorized {
				t.Errorf("%s %s = %d, want 401", how, path, st)
			}
		}
	}
	ks, err := e.db.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if k.ID == "key_globex1" && k.Disabled {
			t.Error("acme disabled globex's key")
		}
	}
}

// TestPortalKeys creates and revokes keys within the tenant's limits.
func TestPortalKeys(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	auth := []string{"Authorization", "Bearer " + acmeSecret}
	var made []string
	for i := 0; i < 3; i++ {
		st, body := c.do("POST", "/portal/api/keys", nil, auth...)
		if st != http.StatusBadRequest {
			t.Fatalf("create with no body = %d %s", st, body)
		}
		req, _ := http.NewRequest("POST", e.url+"/portal/api/keys", strings.NewReader(`{"name":"ci"}`))
		req.Header.Set("Authorization", "Bearer "+acmeSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			ID       string `json:"id"`
			Key      string `json:"key"`
			TenantID string `json:"tenant_id"`
		}
		_ = json.NewDecoder(res.Body).Decode(&k)
		res.Body.Close()
		if i < 2 {
			if res.StatusCode != http.StatusCreated || k.TenantID != "acme" || !strings.HasPrefix(k.Key, "sk-baimo-") {
				t.Fatalf("create %d = %d %+v", i, res.StatusCode, k)
			}
			made = append(made, k.ID)
		} else if res.StatusCode != http.StatusBadRequest {
			// acme holds key_acme1 and two new ones: the limit (3) is reached.
			t.Errorf("a key past the limit = %d, want 400", res.StatusCode)
		}
	}
	// The new key signs in to the same tenant and sees it.
	if st, body := c.get("/portal/api/keys", auth...); st != http.StatusOK || strings.Count(body, `"tenant_id":"acme"`) != 3 {
		t.Errorf("keys = %d %s", st, body)
	}
	if st, body := c.do("POST", "/portal/api/keys/"+made[0]+"/revoke", url.Values{}, auth...); st != http.StatusOK {
		t.Errorf("revoke = %d %s", st, body)
	}
	// The session of a revoked key ends: sign in with acme's key, revoke it
	// from the portal, and the next page sends to the login.
	b := e.client(t, "en")
	b.signIn(acmeSecret)
	b.get("/ui/portal/keys")
	if st, loc := b.post("/ui/portal/keys/key_acme1/revoke", nil); st != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("revoke own key = %d %s", st, loc)
	}
	if st, loc := b.get("/ui/portal"); st != http.StatusFound || !strings.HasPrefix(loc, "/ui/login") {
		t.Errorf("after revoking its key the session goes on: %d %s", st, loc)
	}
}

// TestSessionsAndCSRF covers sign-in, cookies, forged and cross-site forms,
// and the login limit.
func TestSessionsAndCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	if st, loc := c.get("/ui/overview"); st != http.StatusFound || !strings.HasPrefix(loc, "/ui/login") {
		t.Fatalf("signed out overview = %d %s", st, loc)
	}
	// A login form without the CSRF token is refused.
	if st, _ := c.do("POST", "/ui/login", url.Values{"key": {adminKey}}); st != http.StatusForbidden {
		t.Errorf("login without token = %d, want 403", st)
	}
	c.get("/ui/login")
	if st, _ := c.post("/ui/login", url.Values{"key": {"sk-baimo-wrong"}}); st != http.StatusUnauthorized {
		t.Errorf("wrong key = %d", st)
	}
	// The session cookie.
	c.get("/ui/login")
	form := url.Values{"key": {adminKey}, "_csrf": {c.csrf}}
	req, _ := http.NewRequest("POST", e.url+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var sess *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "baimo_session" {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/ui" || sess.Secure {
		t.Fatalf("session cookie = %+v", sess)
	}
	if strings.Contains(sess.Value, adminKey) {
		t.Error("the session cookie holds the admin key")
	}
	if st, _ := c.get("/ui/overview"); st != http.StatusOK {
		t.Fatalf("overview after sign-in = %d", st)
	}
	// A tampered session is no session.
	forged := e.client(t, "en")
	u, _ := url.Parse(e.url)
	forged.http.Jar.SetCookies(u, []*http.Cookie{{Name: "baimo_session", Value: sess.Value[:len(sess.Value)-2] + "AA", Path: "/ui"}})
	if st, _ := forged.get("/ui/overview"); st != http.StatusFound {
		t.Errorf("tampered session = %d, want a redirect to sign in", st)
	}
	// Forms need the token, from this site.
	c.get("/ui/tenants")
	good := c.csrf
	for _, tc := range []struct {
		name  string
		token string
		hdr   []string
	}{
		{"no token", "", nil},
		{"wrong token", "AAAA", nil},
		{"cross-site", good, []string{"Sec-Fetch-Site", "cross-site"}},
		{"other origin", good, []string{"Origin", "https://evil.example"}},
	} {
		f := url.Values{"id": {"mallory"}, "kind": {"prepaid"}, "currency": {"CNY"}, "_csrf": {tc.token}}
		if tc.token == "" {
			f.Del("_csrf")
		}
		if st, _ := c.do("POST", "/ui/tenants", f, tc.hdr...); st != http.StatusForbidden {
			t.Errorf("%s: POST /ui/tenants = %d, want 403", tc.name, st)
		}
	}
	if st, loc := c.post("/ui/tenants", url.Values{"id": {"initech"}, "kind": {"prepaid"}, "currency": {"CNY"}}); st != http.StatusSeeOther ||
		loc != "/ui/tenants/initech?done=tenant_created" {
		t.Errorf("create tenant = %d %s", st, loc)
	}
	// The admin key as a bearer token needs no CSRF token (scripts).
	b := e.client(t, "en")
	if st, _ := b.do("POST", "/ui/tenants", url.Values{"id": {"hooli"}, "kind": {"free"}, "currency": {"CNY"}},
		"Authorization", "Bearer "+adminKey); st != http.StatusSeeOther {
		t.Errorf("bearer form = %d", st)
	}
	// Sign-out ends the session in this browser.
	c.get("/ui/overview")
	if st, _ := c.post("/ui/logout", nil); st != http.StatusSeeOther {
		t.Errorf("logout = %d", st)
	}
	if st, _ := c.get("/ui/overview"); st != http.StatusFound {
		t.Errorf("overview after logout = %d", st)
	}
	// Sessions expire.
	d := e.client(t, "en")
	d.signIn(adminKey)
	e.clk.Advance(13 * time.Hour)
	if st, _ := d.get("/ui/overview"); st != http.StatusFound {
		t.Errorf("overview after 13 hours = %d, want a redirect to sign in", st)
	}
	// Ten wrong keys a minute from one address, then refused.
	l := e.client(t, "en")
	l.get("/ui/login")
	var last int
	for i := 0; i < 12; i++ {
		last, _ = l.post("/ui/login", url.Values{"key": {"sk-baimo-guess"}})
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("12th wrong key in a minute = %d, want 429", last)
	}
}

// TestMoneyFormIdempotent submits the same top-up form twice: the money
// moves once.
func TestMoneyFormIdempotent(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	c.signIn(adminKey)
	_, page := c.get("/ui/tenants/acme")
	idem := regexpFind(page, `name="idem" value="([^"]+)"`)
	if idem == "" {
		t.Fatal("the money form has no idempotency key")
	}
	for i := 0; i < 2; i++ {
		st, loc := c.post("/ui/tenants/acme/money", url.Values{"op": {"topup"}, "amount": {"25"}, "idem": {idem}})
		if st != http.StatusSeeOther || !strings.Contains(loc, "done=topup") {
			t.Fatalf("top-up %d = %d %s", i, st, loc)
		}
	}
	b, err := e.books.Balance(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	// 100 from the fixture, 25 once.
	if b.Posted != 125_000_000_000 {
		t.Errorf("posted = %d nanos after the same form twice, want 125 CNY", b.Posted)
	}
	if st, body := c.post("/ui/tenants/acme/money", url.Values{"op": {"topup"}, "amount": {"-5"}, "idem": {"other"}}); st != http.StatusBadRequest ||
		!strings.Contains(body, `class="flash error"`) {
		t.Errorf("negative top-up = %d", st)
	}
}

// TestTenantLogins: the operator creates a login for acme; its user signs
// in with name and password, sees only acme, creates a key; a wrong
// password is refused; deleting the login ends its session.
func TestTenantLogins(t *testing.T) {
	e := newEnv(t)
	op := e.client(t, "en")
	op.signIn(adminKey)
	op.get("/ui/tenants/acme")
	if st, body := op.post("/ui/tenants/acme/logins", url.Values{"name": {"ann@acme"}, "password": {"short"}}); st != http.StatusBadRequest ||
		!strings.Contains(body, "12 to 256") {
		t.Errorf("short password = %d", st)
	}
	if st, loc := op.post("/ui/tenants/acme/logins", url.Values{"name": {"ann@acme"}, "password": {"a long passphrase 42"}}); st != http.StatusSeeOther ||
		!strings.Contains(loc, "done=login_created") {
		t.Fatalf("create login = %d %s", st, loc)
	}
	if _, body := op.get("/admin/logins?tenant_id=acme", "Authorization", "Bearer "+adminKey); !strings.Contains(body, `"ann@acme"`) ||
		strings.Contains(body, "pbkdf2") {
		t.Errorf("logins = %s", body)
	}
	u := e.client(t, "en")
	u.get("/ui/login")
	if st, _ := u.post("/ui/login", url.Values{"login": {"ann@acme"}, "password": {"a long passphrase 43"}}); st != http.StatusUnauthorized {
		t.Errorf("wrong password = %d", st)
	}
	if st, loc := u.post("/ui/login", url.Values{"login": {"ann@acme"}, "password": {"a long passphrase 42"}}); st != http.StatusSeeOther || loc != "/ui/portal" {
		t.Fatalf("sign in by name = %d %s", st, loc)
	}
	st, body := u.get("/ui/portal/requests")
	if st != http.StatusOK || !strings.Contains(body, "req_acme_") || strings.Contains(body, "req_globex") {
		t.Errorf("portal requests by login = %d", st)
	}
	u.get("/ui/portal/keys")
	if st, body := u.post("/ui/portal/keys", url.Values{"name": {"from-login"}}); st != http.StatusCreated || !strings.Contains(body, `id="new-key"`) {
		t.Errorf("key from a login's session = %d", st)
	}
	if st, _ := u.get("/ui/overview"); st != http.StatusForbidden {
		t.Errorf("a login on the operator's pages = %d", st)
	}
	op.get("/ui/tenants/acme")
	if st, _ := op.post("/ui/tenants/acme/logins/ann@acme/delete", nil); st != http.StatusSeeOther {
		t.Errorf("delete login = %d", st)
	}
	if st, _ := u.get("/ui/portal"); st != http.StatusFound {
		t.Errorf("the deleted login's session goes on: %d", st)
	}
	if st, _ := op.post("/ui/tenants/nobody/logins", url.Values{"name": {"x"}, "password": {"a long passphrase 42"}}); st == http.StatusSeeOther {
		t.Error("a login for a tenant that does not exist was created")
	}
}
