package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"baimo/internal/apierr"
	"baimo/internal/channels"
)

// channelAPIRoutes registers the admin API of channels: those of the
// configuration file are listed read-only, those stored in the database
// are created, edited, disabled and deleted here, and every node serves
// the change within about a second. No answer shows a channel's keys.
func (c *Console) channelAPIRoutes(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc, writeErr func(http.ResponseWriter, *apierr.Error)) {
	m := c.opt.Channels
	fail := func(w http.ResponseWriter, err error) {
		switch {
		case errors.Is(err, channels.ErrNotFound):
			writeErr(w, apierr.NotFound("No channel with this name."))
		case errors.Is(err, channels.ErrExists):
			writeErr(w, &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "exists", Message: err.Error()})
		case errors.Is(err, channels.ErrReadOnly):
			writeErr(w, &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "read_only", Message: err.Error()})
		case errors.Is(err, channels.ErrInvalid):
			writeErr(w, apierr.BadRequest("", "%s", strings.TrimPrefix(err.Error(), channels.ErrInvalid.Error()+": ")))
		default:
			writeErr(w, apierr.Internal(err))
		}
	}
	decode := func(w http.ResponseWriter, r *http.Request, s *channels.Spec) bool {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(s); err != nil {
			writeErr(w, apierr.InvalidJSON(err))
			return false
		}
		return true
	}
	mux.HandleFunc("GET /admin/channels", admin(func(w http.ResponseWriter, r *http.Request) {
		list, err := m.List(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]any{"object": "list", "data": list})
	}))
	mux.HandleFunc("GET /admin/channels/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		v, err := m.Get(r.Context(), r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, v)
	}))
	mux.HandleFunc("POST /admin/channels", admin(func(w http.ResponseWriter, r *http.Request) {
		var s channels.Spec
		if !decode(w, r, &s) {
			return
		}
		v, err := m.Create(r.Context(), s)
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
		writeJSON(w, v)
	}))
	mux.HandleFunc("PUT /admin/channels/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		var s channels.Spec
		if !decode(w, r, &s) {
			return
		}
		v, err := m.Update(r.Context(), r.PathValue("name"), s)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, v)
	}))
	for _, action := range []string{"disable", "enable"} {
		disabled := action == "disable"
		mux.HandleFunc("POST /admin/channels/{name}/"+action, admin(func(w http.ResponseWriter, r *http.Request) {
			v, err := m.SetDisabled(r.Context(), r.PathValue("name"), disabled)
			if err != nil {
				fail(w, err)
				return
			}
			writeJSON(w, v)
		}))
	}
	mux.HandleFunc("DELETE /admin/channels/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Delete(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]any{"name": r.PathValue("name"), "object": "channel", "deleted": true})
	}))
}
