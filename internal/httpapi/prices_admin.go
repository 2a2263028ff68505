package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
	"baimo/internal/price"
)

// maxIdempotencyKey bounds the Idempotency-Key of price calls.
const maxIdempotencyKey = 200

// "now" as effective_from starts a version as soon as every gateway node
// applies it (now plus Prices.Lead): the only time an operator can name
// without a clock race (the past, and a start sooner than the lead, are
// refused).
const effectiveNow = "now"

// setPrice adds one price version (POST /admin/prices, a price.VersionSpec).
func (s *Server) setPrice(w http.ResponseWriter, r *http.Request) {
	s.priceCall(w, r, "set", func(body []byte, now time.Time) ([]price.VersionSpec, *apierr.Error) {
		var spec price.VersionSpec
		if e := decodeStrict(body, &spec); e != nil {
			return nil, e
		}
		return []price.VersionSpec{spec}, nil
	})
}

// importPrices adds several versions at once, all or none (POST
// /admin/prices/import, {"versions": [...]}: what `baimo prices import`
// reads from a file in the catalog's format).
func (s *Server) importPrices(w http.ResponseWriter, r *http.Request) {
	s.priceCall(w, r, "import", func(body []byte, now time.Time) ([]price.VersionSpec, *apierr.Error) {
		var req struct {
			Versions []price.VersionSpec `json:"versions"`
		}
		if e := decodeStrict(body, &req); e != nil {
			return nil, e
		}
		if len(req.Versions) == 0 {
			return nil, apierr.BadRequest("versions", "Give at least one version.")
		}
		return req.Versions, nil
	})
}

// retirePrice retires a model in every currency it is priced in (POST
// /admin/prices/retire, {"model": M, "effective_from": "now"}): requests for
// it are refused from then on.
func (s *Server) retirePrice(w http.ResponseWriter, r *http.Request) {
	s.priceCall(w, r, "retire", func(body []byte, now time.Time) ([]price.VersionSpec, *apierr.Error) {
		var req struct {
			Model         string `json:"model"`
			EffectiveFrom string `json:"effective_from"`
			Source        string `json:"source"`
		}
		if e := decodeStrict(body, &req); e != nil {
			return nil, e
		}
		from, e := effectiveTime(req.EffectiveFrom, now, s.Prices.Lead)
		if e != nil {
			return nil, e
		}
		if req.Source == "" {
			req.Source = "retired by the operator"
		}
		specs, err := s.Prices.Catalog.RetireSpecs(req.Model, from, req.Source)
		if err != nil {
			if errors.Is(err, price.ErrNoPrice) {
				return nil, apierr.NotFound(err.Error())
			}
			return nil, apierr.BadRequest("model", "%v", err)
		}
		return specs, nil
	})
}

// priceCall runs one price mutation: specs are read from the body, their
// "now" resolved to the gateway's clock, refused if they start in the past or
// would not apply, stored as one batch, then applied. With an
// Idempotency-Key the same call answers again with its first result (and
// changes nothing); the same key with another body is a 409.
func (s *Server) priceCall(w http.ResponseWriter, r *http.Request, op string,
	parse func(body []byte, now time.Time) ([]price.VersionSpec, *apierr.Error)) {
	body, aerr := readLimited(w, r, maxAdminBody)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		WriteOpenAIError(w, apierr.BadRequest("Idempotency-Key", "The Idempotency-Key must be at most %d printable characters.", maxIdempotencyKey))
		return
	}
	s.Prices.mu.Lock()
	defer s.Prices.mu.Unlock()
	hash := price.RequestHash(op, body)
	id := keys.NewID("pv_")
	if key != "" {
		sum := sha256.Sum256([]byte(key))
		id = "pv_k" + hex.EncodeToString(sum[:16])
		if done, e := s.replayPriceCall(r, id, hash); e != nil || done != nil {
			if e != nil {
				WriteOpenAIError(w, e)
			} else {
				writeJSON(w, http.StatusOK, done)
			}
			return
		}
	}
	now := s.Clock.Now()
	specs, e := parse(body, now)
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	for i := range specs {
		t, e := effectiveTime(specs[i].EffectiveFrom, now, s.Prices.Lead)
		if e != nil {
			WriteOpenAIError(w, e)
			return
		}
		specs[i].EffectiveFrom = t.Format(time.RFC3339Nano)
	}
	if err := s.Prices.Catalog.CheckVersions(specs); err != nil {
		WriteOpenAIError(w, apierr.BadRequest("", "%v", err))
		return
	}
	b, _ := json.Marshal(price.StoredBatch{Op: op, Request: hash, Versions: specs})
	sv := price.StoredVersion{ID: id, Created: now.UTC(), Spec: b}
	// Store first, then apply: a batch the catalog refuses (another call
	// won the race) is removed again, so the store never holds one that
	// would not replay.
	if err := s.Prices.Store.AddPriceVersion(r.Context(), sv); err != nil {
		if key != "" { // the same key stored by a concurrent call: answer as a replay
			if done, e := s.replayPriceCall(r, id, hash); e != nil || done != nil {
				if e != nil {
					WriteOpenAIError(w, e)
				} else {
					writeJSON(w, http.StatusOK, done)
				}
				return
			}
		}
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	if _, err := s.Prices.Catalog.AddVersions(specs); err != nil {
		if derr := s.Prices.Store.DeletePriceVersion(r.Context(), sv.ID); derr != nil {
			s.Log.Error("undo refused price version", "id", sv.ID, "err", derr)
		}
		WriteOpenAIError(w, apierr.BadRequest("", "%v", err))
		return
	}
	writeJSON(w, http.StatusCreated, priceCallResult(sv.ID, op, specs, false))
}

// replayPriceCall returns the first result of the call stored as id, nil if
// there is none, or a 409 when it was made with another body.
func (s *Server) replayPriceCall(r *http.Request, id, hash string) (map[string]any, *apierr.Error) {
	list, err := s.Prices.Store.ListPriceVersions(r.Context())
	if err != nil {
		return nil, apierr.Internal(err)
	}
	for _, sv := range list {
		if sv.ID != id {
			continue
		}
		b, err := price.DecodeStored(sv)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		if b.Request != hash {
			return nil, &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_conflict",
				Message: "This Idempotency-Key was used with a different request."}
		}
		return priceCallResult(sv.ID, b.Op, b.Versions, true), nil
	}
	return nil, nil
}

// priceCallResult is the answer to a price call: the versions it added.
func priceCallResult(id, op string, specs []price.VersionSpec, replayed bool) map[string]any {
	vs := make([]map[string]any, len(specs))
	for i, sp := range specs {
		vs[i] = map[string]any{"version": sp.Model + "/" + sp.Currency + "/" + sp.EffectiveFrom, "model": sp.Model,
			"currency": sp.Currency, "effective_from": sp.EffectiveFrom, "origin": price.OriginOperator, "retired": sp.Retired}
	}
	out := map[string]any{"id": id, "object": "price_versions", "op": op, "versions": vs, "replayed": replayed}
	if len(vs) == 1 { // the fields of a single version, as before batches
		for _, k := range []string{"version", "model", "currency", "effective_from"} {
			out[k] = vs[0][k]
		}
	}
	return out
}

// effectiveTime reads effective_from: "now" (or empty) is the gateway's now
// plus lead; a time must not be in the past, so no request already rated
// changes, nor sooner than lead (price.CheckLead), so every node has the
// version before it starts.
func effectiveTime(s string, now time.Time, lead time.Duration) (time.Time, *apierr.Error) {
	if s == "" || s == effectiveNow {
		return now.Add(lead), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, apierr.BadRequest("effective_from", "effective_from must be \"now\" or an RFC 3339 time with a zone.")
	}
	if err := price.CheckLead(t, now, lead); err != nil {
		return time.Time{}, apierr.BadRequest("effective_from", "%v", err)
	}
	return t, nil
}

// decodeStrict decodes an admin body read already, refusing unknown fields.
func decodeStrict(body []byte, v any) *apierr.Error { return decodeJSON(body, v, true) }

// decodeJSON decodes body, which must hold one JSON object and nothing
// after it, into v; strict refuses fields v does not have. Each error is a
// 400 that names the field at fault, if any.
func decodeJSON(body []byte, v any, strict bool) *apierr.Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				return apierr.BadRequest("", "The request body must be a JSON object.")
			}
			return apierr.BadRequest(ute.Field, "The field %q must be of type %s.", ute.Field, ute.Type)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return apierr.BadRequest(strings.Trim(f, `"`), "Unknown field %s.", f)
		}
		return apierr.InvalidJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return apierr.InvalidJSON(errors.New("data after the JSON value"))
	}
	return nil
}
