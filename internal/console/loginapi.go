package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
)

var loginName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,63}$`)

// loginView is a login as the admin API shows it: never its password hash.
type loginView struct {
	Name      string    `json:"name"`
	Object    string    `json:"object"`
	TenantID  string    `json:"tenant_id"`
	CreatedAt time.Time `json:"created_at"`
}

// loginAPIRoutes registers the admin API of tenant logins:
//
//	POST /admin/logins {"name","tenant_id","password"}; GET /admin/logins?tenant_id=; DELETE /admin/logins/{name}
func (c *Console) loginAPIRoutes(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc, writeErr func(http.ResponseWriter, *apierr.Error)) {
	st := c.opt.Logins
	mux.HandleFunc("POST /admin/logins", admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name     string `json:"name"`
			TenantID string `json:"tenant_id"`
			Password string `json:"password"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, apierr.InvalidJSON(err))
			return
		}
		if !loginName.MatchString(req.Name) {
			writeErr(w, apierr.BadRequest("name", "A login name is 1-64 letters, digits, '_', '.', '@' or '-'."))
			return
		}
		if c.opt.Billing {
			if e := c.call(r, "GET", "/admin/tenants/"+url.PathEscape(req.TenantID)+"/balance", nil, nil); e != nil {
				writeErr(w, apierr.BadRequest("tenant_id", "No tenant with the id %q.", req.TenantID))
				return
			}
		} else if req.TenantID == "" {
			writeErr(w, apierr.BadRequest("tenant_id", "A login belongs to a tenant: give tenant_id."))
			return
		}
		hash, err := keys.PasswordHash(req.Password)
		if err != nil {
			writeErr(w, apierr.BadRequest("password", "%v.", err))
			return
		}
		l := keys.Login{Name: req.Name, TenantID: req.TenantID, Hash: hash, CreatedAt: c.opt.Clock.Now().UTC()}
		if err := st.CreateLogin(r.Context(), l); err != nil {
			if errors.Is(err, keys.ErrLoginExists) {
				writeErr(w, &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "exists", Param: "name",
					Message: "This login name is taken."})
				return
			}
			writeErr(w, apierr.Internal(err))
			return
		}
		w.WriteHeader(http.StatusCreated)
		writeJSON(w, loginView{Name: l.Name, Object: "login", TenantID: l.TenantID, CreatedAt: l.CreatedAt})
	}))
	mux.HandleFunc("GET /admin/logins", admin(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.URL.Query().Get("tenant_id")
		if tenant == "" {
			writeErr(w, apierr.BadRequest("tenant_id", "List a tenant's logins: give tenant_id."))
			return
		}
		list, err := st.Logins(r.Context(), tenant)
		if err != nil {
			writeErr(w, apierr.Internal(err))
			return
		}
		data := make([]loginView, 0, len(list))
		for _, l := range list {
			data = append(data, loginView{Name: l.Name, Object: "login", TenantID: l.TenantID, CreatedAt: l.CreatedAt})
		}
		writeJSON(w, map[string]any{"object": "list", "data": data})
	}))
	mux.HandleFunc("DELETE /admin/logins/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		if err := st.DeleteLogin(r.Context(), r.PathValue("name")); err != nil {
			if errors.Is(err, keys.ErrNotFound) {
				writeErr(w, apierr.NotFound("No login with this name."))
				return
			}
			writeErr(w, apierr.Internal(err))
			return
		}
		writeJSON(w, map[string]any{"name": r.PathValue("name"), "object": "login", "deleted": true})
	}))
}
