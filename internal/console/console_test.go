package console_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"baimo/internal/console"
	"baimo/internal/money"
	"baimo/internal/usage"
)

var update = flag.Bool("update", false, "rewrite the golden HTML files under testdata/golden")

// The golden pages: what each template renders for the fixture, in both
// languages for some. Random values (CSRF tokens, idempotency keys) are
// replaced before comparing.
var goldenPages = []struct {
	name, path, as, lang string
}{
	{"login", "/ui/login", "", "en"},
	{"login.zh", "/ui/login", "", "zh-CN,zh;q=0.9"},
	{"overview", "/ui/overview", "admin", "en"},
	{"overview.zh", "/ui/overview?range=7d", "admin", "zh-CN"},
	{"usage", "/ui/usage?group_by=model&bucket=day&range=7d", "admin", "en"},
	{"usage-top1", "/ui/usage?group_by=tenant&bucket=hour&range=24h&top=1", "admin", "en"},
	{"requests", "/ui/requests", "admin", "en"},
	{"request", "/ui/requests/req_acme_01", "admin", "en"},
	{"tenants", "/ui/tenants", "admin", "en"},
	{"tenant", "/ui/tenants/acme", "admin", "en"},
	{"statement", "/ui/tenants/acme/statement?from=2026-12-01&to=2026-12-08", "admin", "en"},
	{"keys", "/ui/keys", "admin", "en"},
	{"codes", "/ui/codes", "admin", "en"},
	{"channels", "/ui/channels", "admin", "en"},
	{"audit", "/ui/audit", "admin", "en"},
	{"pools", "/ui/pools", "admin", "en"},
	{"batches", "/ui/batches", "admin", "en"},
	{"versions", "/ui/prices/versions", "admin", "en"},
	{"notfound", "/ui/nowhere", "admin", "en"},
	{"portal", "/ui/portal", "acme", "en"},
	{"portal.zh", "/ui/portal", "acme", "zh"},
	{"portal-requests", "/ui/portal/requests", "acme", "en"},
	{"portal-request", "/ui/portal/requests/req_acme_02", "acme", "en"},
	{"portal-keys", "/ui/portal/keys", "acme", "en"},
	{"portal-statement", "/ui/portal/statement?from=2026-12-01&to=2026-12-08", "acme", "en"},
}

var randomParts = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(name="_csrf" value=")[^"]+`), "${1}CSRF"},
	{regexp.MustCompile(`("X-CSRF-Token": ")[^"]+`), "${1}CSRF"},
	{regexp.MustCompile(`console-[0-9a-f]{32}`), "console-IDEMPOTENCY"},
}

func TestGoldenPages(t *testing.T) {
	e := newEnv(t)
	clients := map[string]*client{}
	for _, g := range goldenPages {
		key := g.as + "/" + g.lang
		c := clients[key]
		if c == nil {
			c = e.client(t, g.lang)
			switch g.as {
			case "admin":
				c.signIn(adminKey)
			case "acme":
				c.signIn(acmeSecret)
			}
			clients[key] = c
		}
		st, body := c.get(g.path)
		if st != http.StatusOK && g.name != "notfound" {
			t.Errorf("%s: GET %s = %d", g.name, g.path, st)
		}
		for _, r := range randomParts {
			body = r.re.ReplaceAllString(body, r.with)
		}
		file := filepath.Join("testdata", "golden", g.name+".html")
		if *update {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./internal/console -run TestGoldenPages -update, then review the files)", g.name, err)
		}
		if string(want) != body {
			t.Errorf("%s: %s differs from %s; run with -update and review the diff", g.name, g.path, file)
		}
	}
	if m := e.con.Missing(); len(m) > 0 {
		t.Errorf("messages without a translation: %v", m)
	}
}

// TestEveryPageBothLanguages renders every page in English and Chinese and
// checks that no text is left untranslated.
func TestEveryPageBothLanguages(t *testing.T) {
	e := newEnv(t)
	admin := []string{"/ui/overview", "/ui/overview?range=1h", "/ui/usage?group_by=vendor", "/ui/usage?group_by=key&bucket=hour&range=24h",
		"/ui/requests?model=qwen-max", "/ui/requests/req_globex_00", "/ui/tenants", "/ui/tenants/globex", "/ui/tenants/default",
		"/ui/tenants/acme/statement", "/ui/keys", "/ui/codes", "/ui/channels", "/ui/prices", "/ui/prices?vendor=deepseek",
		"/ui/prices/model/deepseek-chat", "/ui/prices/compare", "/ui/prices/compare?input=2M&output=500K&cached=1M",
		"/ui/prices/buys?model=deepseek-chat&amount=1", "/ui/prices/versions", "/ui/audit", "/ui/pools", "/ui/batches"}
	tenant := []string{"/ui/portal", "/ui/portal?range=24h", "/ui/portal/requests", "/ui/portal/keys", "/ui/portal/statement"}
	for _, lang := range []string{"en-US", "zh-CN"} {
		a := e.client(t, lang)
		a.signIn(adminKey)
		p := e.client(t, lang)
		p.signIn(acmeSecret)
		for _, set := range []struct {
			c     *client
			paths []string
		}{{a, admin}, {p, tenant}} {
			for _, path := range set.paths {
				st, body := set.c.get(path)
				if st != http.StatusOK {
					t.Errorf("%s %s = %d\n%s", lang, path, st, excerpt(body))
				}
				if strings.Contains(body, `class="flash error"`) {
					t.Errorf("%s %s shows an error: %s", lang, path, excerpt(body))
				}
				if lang == "zh-CN" && !strings.Contains(body, `lang="zh-CN"`) {
					t.Errorf("%s %s is not in Chinese", lang, path)
				}
			}
		}
	}
	if m := e.con.Missing(); len(m) > 0 {
		t.Errorf("messages without a translation: %v", m)
	}
}

func excerpt(s string) string {
	if i := strings.Index(s, `class="flash`); i >= 0 {
		s = s[i:]
	}
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// TestLanguageSwitch keeps the choice in a cookie over the browser's.
func TestLanguageSwitch(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en-US")
	if _, body := c.get("/ui/login"); !strings.Contains(body, "Sign in") {
		t.Fatal("login page not in English")
	}
	st, loc := c.get("/ui/lang/zh?next=" + url.QueryEscape("/ui/login"))
	if st != http.StatusFound || loc != "/ui/login" {
		t.Fatalf("switch = %d %s", st, loc)
	}
	if _, body := c.get("/ui/login"); !strings.Contains(body, "登录") {
		t.Error("login page not in Chinese after the switch")
	}
	// The switch never sends the browser to another site.
	for _, next := range []string{"https://evil.example/", "//evil.example/ui/", "/\\evil.example", "/elsewhere"} {
		if _, loc := c.get("/ui/lang/en?next=" + url.QueryEscape(next)); loc != "/ui/" {
			t.Errorf("next=%q went to %q, want /ui/", next, loc)
		}
	}
}

// TestReportAPI checks the usage report's JSON: top-N with "other" adds up
// to the total, and the CSV's totals row equals the JSON's and guards its
// text cells.
func TestReportAPI(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	auth := []string{"Authorization", "Bearer " + adminKey}
	st, body := c.get("/admin/reports/usage?range=30d&group_by=model&top=1", auth...)
	if st != http.StatusOK {
		t.Fatalf("report = %d %s", st, body)
	}
	var rep struct {
		Totals struct {
			Requests int64             `json:"requests"`
			Cost     map[string]string `json:"cost"`
		} `json:"totals"`
		Groups []struct {
			Group    string            `json:"group"`
			Other    bool              `json:"other"`
			Requests int64             `json:"requests"`
			Cost     map[string]string `json:"cost"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Group != "deepseek-chat" || !rep.Groups[1].Other {
		t.Fatalf("groups = %+v, want deepseek-chat then other", rep.Groups)
	}
	var n, cost int64
	for _, g := range rep.Groups {
		n += g.Requests
		v, _ := money.ParseNanos(g.Cost["CNY"])
		cost += v
	}
	total, _ := money.ParseNanos(rep.Totals.Cost["CNY"])
	// The fixture: 24 requests, 3 failed unrated; cost 1,234,567 × i+1 nanos for the others.
	var want int64
	for i := 0; i < 24; i++ {
		if i%7 != 6 {
			want += int64(1_234_567 * (i + 1))
		}
	}
	if n != 24 || rep.Totals.Requests != 24 || cost != total || total != want {
		t.Errorf("groups sum to %d requests and %d nanos; totals %d and %d; want 24 and %d", n, cost, rep.Totals.Requests, total, want)
	}

	st, body = c.get("/admin/reports/usage?range=30d&group_by=model&top=1&format=csv", auth...)
	if st != http.StatusOK {
		t.Fatalf("csv = %d", st)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if last[0] != "TOTAL" || last[9] != money.FormatNanos(want) || last[2] != "24" {
		t.Errorf("csv totals row = %v, want TOTAL … 24 … %s", last, money.FormatNanos(want))
	}
	for _, bad := range []string{"=1+1", "+cmd", "-2", "@SUM(A1)"} {
		if !strings.HasPrefix(console.CSVSafe(bad), "'") {
			t.Errorf("csvSafe(%q) not guarded", bad)
		}
	}

	for _, q := range []string{"group_by=price", "range=5y", "from=yesterday", "top=0", "bucket=minute", "tz=Mars/Base",
		"from=2026-01-01&to=2025-01-01", "bucket=hour&range=90d"} {
		if st, _ := c.get("/admin/reports/usage?"+q, auth...); st != http.StatusBadRequest {
			t.Errorf("report?%s = %d, want 400", q, st)
		}
	}
	if st, _ := c.get("/admin/reports/usage"); st != http.StatusUnauthorized {
		t.Errorf("report without the admin key = %d, want 401", st)
	}
}

// TestCSVInjection exports, from the explorer, a report with a model named
// like a formula (a client chooses the model name it sends) and checks the
// cell is guarded and the buckets are in the reporting zone.
func TestCSVInjection(t *testing.T) {
	e := newEnv(t)
	evil := `=HYPERLINK("http://x","y")`
	if err := e.db.WriteRecords(context.Background(), []usage.Record{{RequestID: "req_evil", KeyID: "key_acme1", TenantID: "acme",
		Model: evil, Status: 404, Start: testNow.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, "en")
	c.signIn(adminKey)
	st, body := c.get("/ui/usage.csv?group_by=model&range=30d")
	if st != http.StatusOK {
		t.Fatalf("csv = %d", st)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "bucket_start" || rows[len(rows)-1][1] != "TOTAL" {
		t.Errorf("csv head %v, last %v", rows[0], rows[len(rows)-1])
	}
	guarded := false
	for _, r := range rows[1:] {
		if r[1] == evil {
			t.Errorf("formula cell exported as is: %v", r)
		}
		guarded = guarded || r[1] == "'"+evil
		if _, err := time.Parse(time.RFC3339, r[0]); r[0] != "" && (err != nil || !strings.HasSuffix(r[0], "+08:00")) {
			t.Errorf("bucket %q is not a time in the reporting zone", r[0])
		}
	}
	if !guarded {
		t.Errorf("the formula model is missing from the export:\n%s", body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	req, _ := http.NewRequest("GET", e.url+"/ui/login", nil)
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers = %v", res.Header)
	}
	var csrf *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "baimo_csrf" {
			csrf = ck
		}
	}
	if csrf == nil || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Errorf("csrf cookie = %+v", csrf)
	}
	for _, asset := range []string{"/ui/static/console.js", "/ui/static/console.css", "/ui/static/vendor/htmx.min.js",
		"/ui/static/vendor/uPlot.iife.min.js", "/ui/static/vendor/uPlot.min.css"} {
		if st, _ := c.get(asset); st != http.StatusOK {
			t.Errorf("GET %s = %d", asset, st)
		}
	}
}

func regexpFind(s, pattern string) string {
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestRequestLogPages walks the request log's pages: every record once, in
// order, the operator's and the tenant's.
func TestRequestLogPages(t *testing.T) {
	e := newEnv(t)
	var recs []usage.Record
	for i := 0; i < 130; i++ {
		recs = append(recs, usage.Record{RequestID: fmt.Sprintf("req_page_%03d", i), KeyID: "key_acme1", TenantID: "acme",
			Model: "deepseek-chat", Status: 200, Start: testNow.Add(-time.Duration(i%40) * time.Minute)})
	}
	if err := e.db.WriteRecords(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`href="([^"]*cursor=[^"]*)">`)
	row := regexp.MustCompile(`requests/(req_page_\d{3})"`)
	for _, who := range []struct{ key, path string }{{adminKey, "/ui/requests?model=deepseek-chat&key_id=key_acme1"},
		{acmeSecret, "/ui/portal/requests"}} {
		c := e.client(t, "en")
		c.signIn(who.key)
		seen := map[string]int{}
		path, pages := who.path, 0
		for path != "" && pages < 10 {
			st, body := c.get(path)
			if st != http.StatusOK {
				t.Fatalf("%s = %d", path, st)
			}
			for _, m := range row.FindAllStringSubmatch(body, -1) {
				seen[m[1]]++
			}
			path = ""
			if m := link.FindStringSubmatch(body); m != nil {
				path = strings.ReplaceAll(m[1], "&amp;", "&")
			}
			pages++
		}
		if len(seen) != 130 || pages != 3 {
			t.Errorf("%s: %d pages showed %d distinct records, want 3 pages of all 130", who.path, pages, len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: %s shown %d times", who.path, id, n)
			}
		}
	}
}
