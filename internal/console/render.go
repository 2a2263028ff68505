package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// pageTemplate is one page: the shared layout and partials plus the page's
// own "content".
type pageTemplate struct {
	t *template.Template
}

func parsePages() (map[string]*pageTemplate, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(assets, "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, n := range names {
		file := path.Base(n)
		if strings.HasPrefix(file, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", file, err)
		}
		pages[strings.TrimSuffix(file, ".html")] = &pageTemplate{t: t}
	}
	return pages, nil
}

// page is what every template gets: the request's language, session, CSRF
// token and zone, and the page's own data in Data.
type page struct {
	c       *Console
	Lang    string
	Name    string // the template's name, for the navigation
	TitleID string // message id of the title
	Session *session
	CSRF    string
	Zone    *time.Location
	Now     time.Time
	Path    string
	Query   string
	Error   string // message id or text of an error to show
	Notice  string
	Data    any
}

// T translates a message id into the page's language; args fill %s and %d
// verbs of the message.
func (p *page) T(id string, args ...any) string {
	return p.c.translate(p.Lang, id, args...)
}

// Msg shows an error or notice: a message id if it is one, else the text.
func (p *page) Msg(s string) string {
	if _, ok := messages[s]; ok {
		return p.T(s)
	}
	return s
}

// Title is the page's title.
func (p *page) Title() string { return p.T(p.TitleID) }

// Other returns the language to switch to.
func (p *page) Other() string {
	if p.Lang == "zh" {
		return "en"
	}
	return "zh"
}

// LangLink switches the language and comes back to this page.
func (p *page) LangLink() string {
	next := p.Path
	if p.Query != "" {
		next += "?" + p.Query
	}
	return "/ui/lang/" + p.Other() + "?next=" + url.QueryEscape(next)
}

// Time formats t in the page's zone; "—" for a zero time.
func (p *page) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.Zone).Format("2006-01-02 15:04:05")
}

// Day formats t as a date in the page's zone.
func (p *page) Day(t time.Time) string {
	if t.IsZero() {
		return "—" // not known (the admin API's null), never 0001-01-01
	}
	return t.In(p.Zone).Format("2006-01-02")
}

// ZoneName is the reporting zone's name.
func (p *page) ZoneName() string { return p.Zone.String() }

func (c *Console) newPage(w http.ResponseWriter, r *http.Request, name, title string, data any) *page {
	z := c.zone(r)
	return &page{c: c, Lang: c.lang(r), Name: name, TitleID: title, Session: c.session(r), CSRF: c.csrfToken(w, r),
		Zone: z, Now: c.opt.Clock.Now().In(z), Path: r.URL.Path, Query: r.URL.RawQuery, Data: data}
}

// render writes a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	c.renderPage(w, r, status, name, title, data, "")
}

// renderPage writes a page with an error message (a message id or text).
func (c *Console) renderPage(w http.ResponseWriter, r *http.Request, status int, name, title string, data any, errMsg string) {
	p := c.newPage(w, r, name, title, data)
	p.Error = errMsg
	if n := r.URL.Query().Get("done"); n != "" {
		if _, ok := messages["done_"+n]; ok {
			p.Notice = "done_" + n
		}
	}
	c.write(w, r, status, p)
}

func (c *Console) write(w http.ResponseWriter, r *http.Request, status int, p *page) {
	pages, err := c.pages()
	if err != nil {
		c.logError(r, "render", err)
		http.Error(w, "console templates failed", http.StatusInternalServerError)
		return
	}
	pt, ok := pages[p.Name]
	if !ok {
		c.logError(r, "render", fmt.Errorf("no template %q", p.Name))
		http.Error(w, "console template missing", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.logError(r, "render "+p.Name, err)
		http.Error(w, "console page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError writes an error page with a message id.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.renderPage(w, r, status, "error", "error", nil, msg)
}

// redirectDone sends the browser back to a page with a notice.
func redirectDone(w http.ResponseWriter, r *http.Request, to, done string) {
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	http.Redirect(w, r, to+sep+"done="+done, http.StatusSeeOther)
}
