package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Languages: English and Simplified Chinese. messages (messages.go) holds
// each text in both, side by side.
const (
	langEN = "en"
	langZH = "zh"
)

// lang picks the request's language: the switch's cookie, else the
// browser's Accept-Language (zh-* and zh pick Chinese), else English.
func (c *Console) lang(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil && (ck.Value == langEN || ck.Value == langZH) {
		return ck.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(q) == "q=0" {
			continue
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			return langZH
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return langEN
		}
	}
	return langEN
}

// setLang is the language switch: it keeps the choice in a cookie and goes
// back to the page it was clicked on.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if l != langEN && l != langZH {
		c.renderError(w, r, http.StatusNotFound, "err_not_found")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/ui", MaxAge: int(365 * 24 * time.Hour / time.Second),
		HttpOnly: true, Secure: c.opt.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, localNext(r.URL.Query().Get("next"), "/ui/"), http.StatusFound)
}

// localNext returns next when it is a path of the console, else def: a
// redirect never leaves the site.
func localNext(next, def string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/ui/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return def
	}
	return next
}

// translate returns the message id in lang, formatted with args; a missing
// id is shown as itself and remembered (tests fail on any).
func (c *Console) translate(lang, id string, args ...any) string {
	m, ok := messages[id]
	if !ok {
		c.mu.Lock()
		c.missing[id] = true
		c.mu.Unlock()
		return id
	}
	s := m[0]
	if lang == langZH {
		s = m[1]
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Missing returns the message ids asked for that have no translation.
func (c *Console) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id := range c.missing {
		out = append(out, id)
	}
	return out
}
