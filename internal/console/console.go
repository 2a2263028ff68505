// Package console is baimo's web console, served by `baimo serve` at /ui:
// server-rendered pages (html/template, embedded with go:embed, working
// offline) for operators and for tenants, in English and Simplified Chinese.
//
// The pages read and write through the JSON admin API, called in-process
// (api.go), so whatever the console shows or does can be scripted with the
// same requests; the few JSON routes the console needed that the admin API
// lacked (usage reports, a request's detail, price comparisons and the
// tenant portal's API) are registered here and documented in the README.
//
// Operators sign in with the admin key (or send it as a bearer token);
// tenants with one of their API keys. Sessions are signed cookies (HttpOnly,
// SameSite=Strict, Secure behind TLS); every state-changing form carries a
// CSRF token. The tenant portal reaches the admin API only through portal.go,
// which fixes the tenant to the session's.
package console

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	_ "time/tzdata" // reporting zones work on hosts without a zone database

	"baimo/internal/apierr"
	"baimo/internal/channels"
	"baimo/internal/clock"
	"baimo/internal/keys"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

//go:embed templates/*.html static
var assets embed.FS

// DefaultZone is the reporting time zone when none is configured.
const DefaultZone = "Asia/Shanghai"

// Options configures a Console.
type Options struct {
	Clock clock.Clock
	Log   *slog.Logger
	// Zone is the reporting time zone: day buckets and exports use it.
	Zone *time.Location
	// AdminKeyHash is keys.Hash of the admin key: the admin signs in with
	// the key, and sessions are signed with a secret derived from it, so
	// rotating the admin key ends every session.
	AdminKeyHash string
	// Keys finds the API key a tenant signs in with.
	Keys keys.Store
	// Logins keeps the tenant users' names and passwords; nil leaves
	// sign-in by name out.
	Logins keys.LoginStore
	// Reports answers usage reports (the store).
	Reports usage.Reporter
	// Currency is the billing currency: charts of spend and rankings use it.
	Currency money.Currency
	// Rates converts prices for comparisons.
	Rates *price.ExchangeRates
	// Catalog names each model's vendor (reports by vendor) and draws price
	// history.
	Catalog *price.Catalog
	// Channels lists and changes the upstream channels (nil: the channels
	// page shows only the routing state).
	Channels *channels.Manager
	// Secure marks cookies Secure (the console is reached over TLS).
	Secure bool
	// Billing says whether tenants, balances and statements exist.
	Billing bool
	// MaxTenantKeys bounds the keys a tenant may hold through the portal.
	MaxTenantKeys int
}

// Console serves /ui and the console's JSON routes.
type Console struct {
	opt     Options
	pages   func() (map[string]*pageTemplate, error)
	secret  []byte // signs sessions and CSRF tokens
	api     http.Handler
	limiter *loginLimiter

	mu      sync.Mutex
	missing map[string]bool // translation keys asked for and not found (tests read it)
}

// New returns a console. Mount registers its routes.
func New(opt Options) (*Console, error) {
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Zone == nil {
		z, err := time.LoadLocation(DefaultZone)
		if err != nil {
			return nil, err
		}
		opt.Zone = z
	}
	if opt.MaxTenantKeys <= 0 {
		opt.MaxTenantKeys = 50
	}
	c := &Console{opt: opt, secret: sessionSecret(opt.AdminKeyHash), limiter: newLoginLimiter(opt.Clock),
		missing: map[string]bool{}}
	// The pages are parsed when the first is rendered, not here: a gateway
	// whose console is never opened does not keep their parse trees (about
	// 1 MB, and 3 MB of garbage while parsing, resident at rest). They are
	// embedded, so TestParsePages is what catches a template that does not
	// parse.
	c.pages = sync.OnceValues(parsePages)
	return c, nil
}

// Mount registers the console's pages under /ui/ and its JSON routes on mux,
// which must also serve the admin API: the console calls it in-process.
// admin wraps a handler with the admin API's authentication; writeErr writes
// an error in the admin API's format.
func (c *Console) Mount(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc, writeErr func(http.ResponseWriter, *apierr.Error)) {
	c.api = mux
	c.apiRoutes(mux, admin, writeErr)
	c.portalAPIRoutes(mux, writeErr)

	static, _ := fs.Sub(assets, "static")
	files := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))
	mux.Handle("GET /ui/static/", cacheForever(files))
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	mux.HandleFunc("GET /ui/{$}", c.home)
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.HandleFunc("POST /ui/logout", c.logout)
	mux.HandleFunc("GET /ui/lang/{lang}", c.setLang)
	c.operatorRoutes(mux)
	c.portalRoutes(mux)
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "err_not_found")
	})
}

func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The assets change only with the binary; a day is long enough.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	s := c.session(r)
	switch {
	case s == nil:
		http.Redirect(w, r, "/ui/login", http.StatusFound)
	case s.Admin():
		http.Redirect(w, r, "/ui/overview", http.StatusFound)
	default:
		http.Redirect(w, r, "/ui/portal", http.StatusFound)
	}
}

// now returns the time in the reporting zone.
func (c *Console) now() time.Time { return c.opt.Clock.Now().In(c.opt.Zone) }

// zone returns the reporting zone of a request: its tz parameter if valid,
// else the configured one.
func (c *Console) zone(r *http.Request) *time.Location {
	if name := r.URL.Query().Get("tz"); name != "" && len(name) <= 64 && !strings.Contains(name, "..") {
		if z, err := time.LoadLocation(name); err == nil {
			return z
		}
	}
	return c.opt.Zone
}

func (c *Console) logError(r *http.Request, what string, err error) {
	c.opt.Log.Error("console: "+what, "path", r.URL.Path, "err", err)
}
