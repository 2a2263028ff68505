package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"baimo/internal/clock"
	"baimo/internal/keys"
	"baimo/internal/ledger"
)

const (
	sessionCookie = "baimo_session"
	csrfCookie    = "baimo_csrf"
	langCookie    = "baimo_lang"
	sessionTTL    = 12 * time.Hour
	// maxCookie bounds the cookies the console reads.
	maxCookie = 2048
)

// Roles.
const (
	roleAdmin  = "admin"
	roleTenant = "tenant"
)

// session is who is signed in. It travels in a signed cookie.
type session struct {
	Role    string `json:"r"`
	Tenant  string `json:"t,omitempty"` // tenant sessions: the tenant
	KeyHash string `json:"k,omitempty"` // tenant sessions: the hash of the key signed in with
	KeyID   string `json:"i,omitempty"`
	Login   string `json:"l,omitempty"` // tenant sessions of a login (no key)
	Expires int64  `json:"e"`           // Unix seconds
	// bearer is set when the request presented a key instead of a cookie
	// (scripts): it needs no CSRF token.
	bearer bool
}

// Admin reports whether s is an operator's session.
func (s *session) Admin() bool { return s != nil && s.Role == roleAdmin }

// sessionSecret derives the signing secret from the admin key's hash, so
// every node with the same admin key accepts the same sessions; without an
// admin key, a random one (sessions end at restart).
func sessionSecret(adminHash string) []byte {
	m := hmac.New(sha256.New, []byte(adminHash))
	m.Write([]byte("baimo console session v1"))
	if adminHash == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		m.Write(b)
	}
	return m.Sum(nil)
}

func (c *Console) sign(purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

func (c *Console) encodeSession(s session) string {
	b, _ := json.Marshal(s) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(c.sign("session", b))
}

func (c *Console) decodeSession(v string) (*session, bool) {
	body, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > maxCookie {
		return nil, false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, c.sign("session", b)) {
		return nil, false
	}
	var s session
	if json.Unmarshal(b, &s) != nil || c.opt.Clock.Now().Unix() >= s.Expires {
		return nil, false
	}
	return &s, true
}

// session returns who the request is from: a bearer key (the admin key or a
// tenant's API key) or a session cookie; nil when neither is valid. A tenant
// session ends as soon as its key is revoked, disabled or expires.
func (c *Console) session(r *http.Request) *session {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		s := c.fromSecret(r, strings.TrimSpace(a[7:]))
		if s != nil {
			s.bearer = true
		}
		return s
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s, ok := c.decodeSession(ck.Value)
	if !ok {
		return nil
	}
	switch s.Role {
	case roleAdmin:
		return s
	case roleTenant:
		if s.Login != "" {
			if l := c.loginNamed(r, s.Login); l == nil || l.TenantID != s.Tenant {
				return nil
			}
			return s
		}
		if k := c.tenantKey(r, s.KeyHash); k == nil || ledger.TenantFor(k.TenantID) != s.Tenant {
			return nil
		}
		return s
	}
	return nil
}

// fromSecret checks a presented secret: the admin key, or a usable API key.
func (c *Console) fromSecret(r *http.Request, secret string) *session {
	if secret == "" || len(secret) > 256 {
		return nil
	}
	h := keys.Hash(secret)
	exp := c.opt.Clock.Now().Add(sessionTTL).Unix()
	if c.opt.AdminKeyHash != "" && subtle.ConstantTimeCompare([]byte(h), []byte(c.opt.AdminKeyHash)) == 1 {
		return &session{Role: roleAdmin, Expires: exp}
	}
	k := c.tenantKey(r, h)
	if k == nil {
		return nil
	}
	return &session{Role: roleTenant, Tenant: ledger.TenantFor(k.TenantID), KeyHash: h, KeyID: k.ID, Expires: exp}
}

// loginNamed returns the login named name, or nil.
func (c *Console) loginNamed(r *http.Request, name string) *keys.Login {
	if c.opt.Logins == nil || name == "" {
		return nil
	}
	l, err := c.opt.Logins.LoginByName(r.Context(), name)
	if err != nil {
		if !errors.Is(err, keys.ErrNotFound) {
			c.logError(r, "login lookup", err)
		}
		return nil
	}
	return &l
}

// fromPassword checks a login's name and password.
func (c *Console) fromPassword(r *http.Request, name, password string) *session {
	l := c.loginNamed(r, name)
	if l == nil {
		// The same work for an unknown name, so that timing does not tell
		// which names exist.
		keys.CheckPassword(dummyHash, password)
		return nil
	}
	if !keys.CheckPassword(l.Hash, password) {
		return nil
	}
	return &session{Role: roleTenant, Tenant: l.TenantID, Login: l.Name, Expires: c.opt.Clock.Now().Add(sessionTTL).Unix()}
}

// dummyHash is checked against when a login name is unknown.
var dummyHash, _ = keys.PasswordHash("not a password anyone has")

// tenantKey returns the usable key with this hash, or nil.
func (c *Console) tenantKey(r *http.Request, hash string) *keys.Key {
	if c.opt.Keys == nil || hash == "" {
		return nil
	}
	k, err := c.opt.Keys.KeyByHash(r.Context(), hash)
	if err != nil {
		if !errors.Is(err, keys.ErrNotFound) {
			c.logError(r, "key lookup", err)
		}
		return nil
	}
	if ok, _ := k.Usable(c.opt.Clock.Now()); !ok {
		return nil
	}
	return &k
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: c.opt.Secure, SameSite: http.SameSiteStrictMode})
}

// csrfToken returns the request's CSRF token, setting the cookie it is bound
// to when the browser has none. The token is an HMAC of a random nonce kept
// in its own cookie: a page of another site can neither read the cookie nor
// compute the token.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	nonce := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		nonce = ck.Value
	}
	if nonce == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		nonce = base64.RawURLEncoding.EncodeToString(b)
		c.setCookie(w, csrfCookie, nonce, 30*24*time.Hour)
		// Later code in this request (the page) must see the same nonce.
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: nonce})
	}
	return base64.RawURLEncoding.EncodeToString(c.sign("csrf", []byte(nonce)))
}

// checkCSRF verifies a state-changing request: one that a bearer key
// authenticates needs nothing more; otherwise it must come from this site
// and carry the token of its CSRF cookie (form field _csrf or header
// X-CSRF-Token).
func (c *Console) checkCSRF(r *http.Request, s *session) bool {
	if s != nil && s.bearer {
		return true
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != 43 {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("_csrf")
	}
	want := base64.RawURLEncoding.EncodeToString(c.sign("csrf", []byte(ck.Value)))
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// loginLimiter bounds sign-in attempts per client address: 10 a minute.
type loginLimiter struct {
	clock clock.Clock
	mu    sync.Mutex
	seen  map[string][]time.Time
}

func newLoginLimiter(c clock.Clock) *loginLimiter {
	return &loginLimiter{clock: c, seen: map[string][]time.Time{}}
}

const (
	loginBurst   = 10
	loginWindow  = time.Minute
	loginClients = 10000 // addresses remembered; past that the oldest window is forgotten
)

// allow records an attempt from addr and reports whether it is within the limit.
func (l *loginLimiter) allow(addr string) bool {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) >= loginClients {
		for k, ts := range l.seen {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) > loginWindow {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= loginClients {
			l.seen = map[string][]time.Time{}
		}
	}
	ts := l.seen[addr]
	for len(ts) > 0 && now.Sub(ts[0]) > loginWindow {
		ts = ts[1:]
	}
	if len(ts) >= loginBurst {
		l.seen[addr] = ts
		return false
	}
	l.seen[addr] = append(ts, now)
	return true
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", "sign_in", nil)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !c.checkCSRF(r, nil) {
		c.renderError(w, r, http.StatusForbidden, "err_csrf")
		return
	}
	if !c.limiter.allow(r.RemoteAddr) {
		w.Header().Set("Retry-After", "60")
		c.renderPage(w, r, http.StatusTooManyRequests, "login", "sign_in", nil, "err_too_many_logins")
		return
	}
	var s *session
	if name := strings.TrimSpace(r.PostFormValue("login")); name != "" {
		s = c.fromPassword(r, name, r.PostFormValue("password"))
	} else {
		s = c.fromSecret(r, strings.TrimSpace(r.PostFormValue("key")))
	}
	if s == nil {
		c.renderPage(w, r, http.StatusUnauthorized, "login", "sign_in", nil, "err_bad_key")
		return
	}
	c.setCookie(w, sessionCookie, c.encodeSession(*s), sessionTTL)
	if s.Admin() {
		http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/portal", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !c.checkCSRF(r, c.session(r)) {
		c.renderError(w, r, http.StatusForbidden, "err_csrf")
		return
	}
	c.setCookie(w, sessionCookie, "", -time.Second)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// requireAdmin wraps an operator page: it signs the visitor in or refuses,
// and checks CSRF on anything but GET and HEAD.
func (c *Console) requireAdmin(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return c.require(roleAdmin, h)
}

func (c *Console) requireTenant(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return c.require(roleTenant, h)
}

func (c *Console) require(role string, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			c.renderError(w, r, http.StatusUnauthorized, "err_signed_out")
			return
		}
		if s.Role != role {
			c.renderError(w, r, http.StatusForbidden, "err_forbidden")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !c.checkCSRF(r, s) {
				c.renderError(w, r, http.StatusForbidden, "err_csrf")
				return
			}
		}
		h(w, r, s)
	}
}
